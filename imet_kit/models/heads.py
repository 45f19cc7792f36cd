"""Classification head: pooling, a named embedding, dropout, float32 sigmoid.

The head is a function of the backbone's feature map, so other heads (margin
heads for retrieval) can reuse :func:`pooling_layer` and the embedding layer name.
"""

from __future__ import annotations

import keras
from keras import ops

from imet_kit.errors import InputError, describe_choices

POOLINGS = ("avg", "max", "gem", "avgmax")
EMBEDDING_LAYER = "embedding"
OUTPUT_LAYER = "probs"


@keras.saving.register_keras_serializable(package="imet_kit")
class GeMPooling2D(keras.layers.Layer):
    """Generalised-mean pooling over height and width (Radenovic et al. 2018).

    ``y = mean(max(x, eps) ** p) ** (1 / p)`` per channel: ``p = 1`` is average
    pooling (for inputs >= eps), large ``p`` tends to max pooling. ``p`` is learned
    unless ``trainable_p=False``. Computed in float32 even under mixed precision,
    on activations scaled by their maximum, so no power overflows.

    Args:
        p: initial exponent (3.0 is the usual start).
        eps: floor applied to activations before the power (negative values are clipped).
        trainable_p: learn ``p`` with the network.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Example:
        >>> import numpy as np
        >>> x = np.ones((2, 4, 4, 8), "float32")
        >>> tuple(GeMPooling2D(p=3.0)(x).shape)
        (2, 8)
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable_p: bool = True, **kwargs):
        super().__init__(**kwargs)
        if p <= 0 or eps <= 0:
            raise InputError(f"GeMPooling2D needs p > 0 and eps > 0; received p={p}, eps={eps}.")
        self.p = float(p)
        self.eps = float(eps)
        self.trainable_p = bool(trainable_p)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        self.p_weight = self.add_weight(
            name="p", shape=(), initializer=keras.initializers.Constant(self.p),
            trainable=self.trainable_p, dtype="float32",
        )

    def call(self, inputs):
        p = ops.cast(self.p_weight, "float32")
        x = ops.maximum(ops.cast(inputs, "float32"), self.eps)
        # GeM(x) = m * GeM(x / m) with m the spatial max: x ** p cannot overflow for any p.
        m = ops.max(x, axis=(1, 2), keepdims=True)
        y = ops.power(ops.mean(ops.power(x / m, p), axis=(1, 2)), 1.0 / p) * ops.squeeze(m, (1, 2))
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "p": self.p, "eps": self.eps, "trainable_p": self.trainable_p}


@keras.saving.register_keras_serializable(package="imet_kit")
class AvgMaxPooling2D(keras.layers.Layer):
    """Global max and global average pooling, concatenated: (B, H, W, C) -> (B, 2C), max first.

    Max pooling answers "is the object anywhere?" (a small glyph in a corner), average pooling
    "how much of the image is it?" (a background scene); a multi-label head wants both.

    Args:
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Example:
        >>> import numpy as np
        >>> x = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
        >>> keras.ops.convert_to_numpy(AvgMaxPooling2D()(x)).tolist()
        [[6.0, 7.0, 3.0, 4.0]]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        return ops.concatenate([ops.max(inputs, axis=(1, 2)), ops.mean(inputs, axis=(1, 2))], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else 2 * channels)


def pooling_layer(pooling: str, name: str = "pool") -> keras.layers.Layer:
    """``"avg"``, ``"max"``, ``"gem"`` or ``"avgmax"`` -> a layer mapping (B, H, W, C) to (B, C)
    (``"avgmax"``: to (B, 2C)).

    Example:
        >>> pooling_layer("gem").__class__.__name__
        'GeMPooling2D'
    """
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name)
    if pooling == "gem":
        return GeMPooling2D(name=name)
    if pooling == "avgmax":
        return AvgMaxPooling2D(name=name)
    raise InputError(f"Unknown pooling {pooling!r}. Expected one of: {describe_choices(POOLINGS)}.")


def apply_head(features, n_classes: int, *, pooling: str = "avg", embedding_dim: int = 512,
               dropout: float = 0.2):
    """Pool -> ``Dense(embedding_dim, relu)`` named ``"embedding"`` -> dropout -> sigmoid
    (``embedding_dim=0``: pool -> dropout -> sigmoid, as the reference CNN of issue 12).

    Args:
        features: the backbone's 4-D output tensor.
        n_classes: C, the number of sigmoid outputs.
        pooling: ``"avg"``, ``"max"``, ``"gem"`` or ``"avgmax"``.
        embedding_dim: width of the embedding layer; 0 leaves it out (the pooled features
            feed the sigmoid layer directly).
        dropout: rate before the output layer, in [0, 1).

    Returns:
        The (B, C) float32 probability tensor (layer ``"probs"``; logits in ``"logits"``).

    Example:
        >>> x = keras.Input((4, 4, 8))
        >>> apply_head(x, 5).dtype
        'float32'
    """
    if int(n_classes) < 1 or int(embedding_dim) < 0:
        raise InputError(f"n_classes must be >= 1 and embedding_dim >= 0; received {n_classes}, "
                         f"{embedding_dim}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be in [0, 1); received {dropout}.")
    x = pooling_layer(pooling)(features)
    if int(embedding_dim):
        x = keras.layers.Dense(int(embedding_dim), activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(float(dropout), name="dropout")(x)
    x = keras.layers.Dense(int(n_classes), name="logits")(x)
    # float32 output under mixed precision: the loss and the thresholds need it.
    return keras.layers.Activation("sigmoid", dtype="float32", name=OUTPUT_LAYER)(x)
