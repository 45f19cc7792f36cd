"""Cross-batch memory (XBM, Wang et al. 2020): a queue of past embeddings for a contrastive loss.

Embeddings drift slowly once a model has warmed up, so those of the last few thousand
images are still good negatives and positives. :class:`CrossBatchMemory` is a
pass-through layer called on ``[embedding, label]``: in training it adds (``add_loss``)

    batch_weight * contrastive(batch, batch) + [step > warmup] * memory_weight * contrastive(batch, memory)

and, once warm, enqueues the batch (without gradient) into a FIFO ring buffer. It
works alone (compile with ``loss=None``) or in front of a margin head.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imet_kit.errors import InputError

_POSITIVE_EPS = 1e-5  # pairs this close to identical (an image with itself) carry no loss


def contrastive_loss(embeddings, labels, ref_embeddings, ref_labels, margin: float = 0.5):
    """Mean over anchors of ``sum_pos (1 - s) + sum_neg max(s - margin, 0)``.

    Cosine similarities ``s`` between L2-normalised ``embeddings`` (anchors) and
    ``ref_embeddings``. References with a negative label are empty memory slots and ignored;
    positive pairs with ``s >= 1 - 1e-5`` (an image with itself) are skipped, as in XBM.
    The negative term is the hinge ``s - margin`` (XBM sums ``s``: same gradient, but
    a loss continuous at the margin).

    Example:
        >>> e = np.array([[1.0, 0.0], [0.6, 0.8]], "float32")
        >>> round(float(contrastive_loss(e, np.array([0, 1]), e, np.array([0, 1]))), 3)
        0.1
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    ref_labels = ops.reshape(ops.cast(ref_labels, "int32"), (1, -1))
    sim = ops.matmul(ops.cast(embeddings, "float32"), ops.transpose(ops.cast(ref_embeddings, "float32")))
    valid = ref_labels >= 0
    same = ops.logical_and(ops.equal(labels, ref_labels), valid)
    diff = ops.logical_and(ops.not_equal(labels, ref_labels), valid)
    pos = ops.where(ops.logical_and(same, sim < 1.0 - _POSITIVE_EPS), 1.0 - sim, 0.0)
    neg = ops.where(diff, ops.relu(sim - margin), 0.0)
    return ops.mean(ops.sum(pos + neg, axis=1))


def _l2_normalize(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="imet_kit")
class CrossBatchMemory(keras.layers.Layer):
    """A FIFO memory of ``memory_size`` embeddings and labels feeding a contrastive loss.

    Args:
        memory_size: rows kept (XBM used 55k on SOP; a few epochs' worth of small data).
        warmup_steps: training steps before the memory is filled and used.
        margin: negatives with cosine above it are pushed away.
        memory_weight: weight of the batch-vs-memory loss.
        batch_weight: weight of the batch-vs-batch loss (0 beside a margin head if wanted).

    Labels must be non-negative integers (-1 marks an empty slot). A batch larger than
    the memory stores only its last ``memory_size`` rows.

    Example:
        >>> xbm = CrossBatchMemory(memory_size=4, warmup_steps=0)
        >>> e = np.eye(3, dtype="float32")
        >>> _ = xbm([e, np.array([0, 1, 2])], training=True)
        >>> xbm.memory()[1].tolist()
        [0, 1, 2]
    """

    def __init__(self, memory_size: int, warmup_steps: int = 0, margin: float = 0.5,
                 memory_weight: float = 1.0, batch_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(memory_size) < 1:
            raise InputError(f"memory_size must be >= 1; received {memory_size}.")
        if int(warmup_steps) < 0:
            raise InputError(f"warmup_steps must be >= 0; received {warmup_steps}.")
        self.memory_size = int(memory_size)
        self.warmup_steps = int(warmup_steps)
        self.margin = float(margin)
        self.memory_weight = float(memory_weight)
        self.batch_weight = float(batch_weight)

    def build(self, input_shape) -> None:
        dim = int(input_shape[0][-1])
        self.memory_embeddings = self.add_weight(
            shape=(self.memory_size, dim), initializer="zeros", trainable=False,
            name="memory_embeddings")
        self.memory_labels = self.add_weight(
            shape=(self.memory_size,), initializer=keras.initializers.Constant(-1),
            dtype="int32", trainable=False, name="memory_labels")
        self.pointer = self.add_weight(shape=(), initializer="zeros", dtype="int32",
                                       trainable=False, name="pointer")
        self.step = self.add_weight(shape=(), initializer="zeros", dtype="int32",
                                    trainable=False, name="step")

    def call(self, inputs, training=None):
        embeddings, labels = inputs
        if not training:
            return embeddings
        z = _l2_normalize(ops.cast(embeddings, "float32"))
        y = ops.reshape(ops.cast(labels, "int32"), (-1,))
        loss = ops.zeros(())
        if self.batch_weight:
            loss = loss + self.batch_weight * contrastive_loss(z, y, z, y, self.margin)
        # ops take the variables' .value: the JAX backend refuses a Keras Variable inside a traced op
        self.step.assign(self.step.value + 1)
        warm = self.step.value > self.warmup_steps
        self._enqueue(ops.stop_gradient(z), y, warm)
        if self.memory_weight:
            memory_loss = contrastive_loss(z, y, self.memory_embeddings.value, self.memory_labels.value,
                                           self.margin)
            loss = loss + ops.where(warm, self.memory_weight * memory_loss, 0.0)
        self.add_loss(loss)
        return embeddings

    def _enqueue(self, z, y, warm) -> None:
        z, y = z[-self.memory_size:], y[-self.memory_size:]
        n = ops.shape(y)[0]
        emb, lab, pointer = self.memory_embeddings.value, self.memory_labels.value, self.pointer.value
        slots = ops.expand_dims(ops.mod(pointer + ops.arange(n, dtype="int32"), self.memory_size), -1)
        new_emb = ops.scatter_update(emb, slots, ops.cast(z, emb.dtype))
        new_lab = ops.scatter_update(lab, slots, y)
        self.memory_embeddings.assign(ops.where(warm, new_emb, emb))
        self.memory_labels.assign(ops.where(warm, new_lab, lab))
        self.pointer.assign(ops.where(warm, ops.mod(pointer + n, self.memory_size), pointer))

    def memory(self) -> tuple[np.ndarray, np.ndarray]:
        """The filled part of the memory, oldest first: ``(embeddings, labels)`` as numpy."""
        emb = keras.ops.convert_to_numpy(self.memory_embeddings)
        lab = keras.ops.convert_to_numpy(self.memory_labels)
        filled = int((lab >= 0).sum())
        if filled < self.memory_size:
            return emb[:filled], lab[:filled]
        order = np.roll(np.arange(self.memory_size), -int(keras.ops.convert_to_numpy(self.pointer)))
        return emb[order], lab[order]

    def reset_memory(self) -> None:
        """Empty the queue (e.g. after changing the learning rate a lot)."""
        self.memory_labels.assign(ops.full((self.memory_size,), -1, dtype="int32"))
        self.pointer.assign(0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(memory_size=self.memory_size, warmup_steps=self.warmup_steps,
                      margin=self.margin, memory_weight=self.memory_weight,
                      batch_weight=self.batch_weight)
        return config
