"""TensorBoard event files per fold, and the learning rate in every epoch's logs.

::

    RUN/tensorboard/fold{k}/train       epoch_loss, epoch_learning_rate, ... per epoch, and
                                        "augmented_batch": images of one augmented training batch
    RUN/tensorboard/fold{k}/validation  the task's val_* logs without the prefix: epoch_f2,
                                        epoch_threshold (multilabel) or epoch_map@10 (embedding)
    RUN/tensorboard/full/...            the refit (``train --refit``), laid out the same way

``tensorboard --logdir RUN`` shows every fold side by side. The writer is Keras' own
``keras.callbacks.TensorBoard`` (per epoch, no graph, no histograms); :class:`FoldTensorBoard`
adds the image batch and flushes after every epoch, so a killed run loses no finished epoch. On
resume it writes the epochs that follow; an epoch done again after a kill gets the same step,
and TensorBoard keeps the later value.

Example:
    >>> from imet_kit.training.rundir import RunDir
    >>> tensorboard_dir(RunDir("runs/demo"), 1).as_posix()
    'runs/demo/tensorboard/fold1'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

TENSORBOARD_DIR = "tensorboard"
MAX_IMAGES = 8  # images of the augmented batch written per fold


def tensorboard_dir(run, k: int) -> Path:
    """``RUN/tensorboard/<name of fold k's folder>``: ``fold{k}``, or ``full`` for the refit."""
    return Path(run.path) / TENSORBOARD_DIR / run.fold_dir(k).name


def current_learning_rate(optimizer) -> float | None:
    """The optimizer's learning rate now (a schedule evaluated at its step), or None."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):  # no optimizer, or no single rate
        return None


class LearningRateLog(keras.callbacks.Callback):
    """Put ``learning_rate`` into each epoch's logs (Keras does so only with its LR callbacks).

    Placed before the checkpoint so that the history file, TensorBoard, ``History`` and the
    one-line-per-epoch log (``verbose=2``) all carry it.
    """

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        lr = current_learning_rate(getattr(self.model, "optimizer", None))
        if logs is not None and lr is not None:
            logs["learning_rate"] = lr


def batch_images(batch) -> np.ndarray:
    """The images of one batch as a loader yields it: ``x``, ``(x, y)`` or ``({"image": x}, y)``."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if isinstance(x, dict):
        x = x["image"] if "image" in x else next(iter(x.values()))
    return np.asarray(keras.ops.convert_to_numpy(x))


def displayable(images: np.ndarray) -> np.ndarray:
    """Scale a float batch into [0, 1] for ``tf.summary.image``: 0-255 pixels are divided by
    255, anything else (a normalised input) is stretched per image."""
    x = np.asarray(images, dtype=np.float32)
    if not x.size:
        return x
    if x.ndim == 3:
        x = x[..., None]
    if 0.0 <= x.min() and x.max() <= 1.0:
        return x
    if 0.0 <= x.min() and x.max() <= 255.0:
        return x / 255.0
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(x.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    return (x - lo) / span


def first_batch(train):
    """Batch 0 of a training loader (a PyDataset, or a Keras adapter of a ``tf.data.Dataset``)
    for the epoch it is set to; loaders here seed each batch from (seed, epoch, index), so
    reading it changes nothing that training sees."""
    if hasattr(train, "__getitem__"):
        return train[0]
    dataset = train.get_tf_dataset() if hasattr(train, "get_tf_dataset") else train
    return next(iter(dataset.take(1)))


class FoldTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, per epoch, plus one augmented batch as images.

    Args:
        log_dir: the fold's folder (:func:`tensorboard_dir`).
        sample: called once, when the first epoch begins, for a batch to show (see
            :func:`first_batch`); None writes no images (a resumed fold already has them).
        max_images: at most this many images of the batch.
    """

    def __init__(self, log_dir, sample: Callable[[], object] | None = None,
                 max_images: int = MAX_IMAGES) -> None:
        super().__init__(log_dir=str(log_dir), histogram_freq=0, write_graph=False,
                         update_freq="epoch", profile_batch=0)
        self.sample, self.max_images = sample, int(max_images)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        super().on_epoch_begin(epoch, logs)
        if self.sample is None:
            return
        # when the first epoch begins, not when training does: by then fit has reset the loader
        # (Keras calls its on_epoch_end once before the first epoch) and the task's callbacks
        # have set a tf.data loader's epoch, so batch 0 is the one this epoch trains on
        sample, self.sample = self.sample, None  # once per fold, not once per fit phase
        images = displayable(batch_images(sample()))[: self.max_images]
        with self._train_writer.as_default():
            self.summary.image("augmented_batch", images, step=epoch, max_outputs=self.max_images)
        self._train_writer.flush()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        super().on_epoch_end(epoch, logs)
        for writer in self._writers.values():
            writer.flush()


def fold_tensorboard(run, k: int, train, *, write_images: bool = True) -> FoldTensorBoard:
    """The TensorBoard callback of fold ``k`` (``run.fold_dir(k)`` names its folder), showing
    batch 0 of ``train`` when ``write_images``."""
    return FoldTensorBoard(tensorboard_dir(run, k),
                           sample=(lambda: first_batch(train)) if write_images else None)
