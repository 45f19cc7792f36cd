"""Margin heads for metric learning: ArcFace, CosFace, sub-center ArcFace; the embedding model.

Each head is a Keras layer holding its class centres. It is called on
``[embeddings, labels]`` (labels as a second model input, as in the landmark
notebooks) and returns logits for ``SparseCategoricalCrossentropy(from_logits=True)``:

* ``ArcFace``:  target ``s * cos(theta + m)``; where ``cos(theta) <= cos(pi - m)`` (the
  angle plus margin would pass pi and the logit would rise again) it falls back to
  ``s * (cos(theta) - sin(pi - m) * m)``. ``easy_margin`` keeps ``cos(theta)`` when it is <= 0.
* ``CosFace``:  target ``s * (cos(theta) - m)``.
* ``SubCenterArcFace``: ``cos(theta)`` is the max over ``K`` sub-centres per class, with a
  margin per class that grows for rare classes (:func:`adaptive_margins`).

Non-target logits are ``s * cos(theta)``. ``label_smoothing`` mixes the margin logit into every
class as the notebooks' ``ArcMarginProduct(ls_eps=...)`` did: ``onehot = (1 - eps) * onehot + eps / C``.
The margin applies when labels are given and the layer is not in inference mode
(``training=False``, as in ``evaluate`` / ``predict``), so validation logits are plain cosines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from imet_kit.errors import InputError, describe_choices

_EPS = 1e-12


def _l2_normalize(x, axis: int = -1):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), _EPS))


def adaptive_margins(
    class_counts: Sequence[int] | np.ndarray,
    margin_min_radians: float = 0.05,
    margin_max_radians: float = 0.5,
    power: float = 0.25,
) -> np.ndarray:
    """Per-class margins from class frequency: ``n^-power`` rescaled to [min, max].

    The Google Landmark 2020 winners' dynamic margins: rarer classes get larger margins.
    Classes with a count below 1 are treated as 1; equal counts give ``margin_max_radians``.

    Example:
        >>> [round(float(m), 3) for m in adaptive_margins([1, 16, 256])]
        [0.5, 0.2, 0.05]
    """
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    if counts.ndim != 1 or counts.size == 0:
        raise InputError(f"class_counts must be a non-empty 1-D sequence; received shape {counts.shape}.")
    if not 0 <= margin_min_radians <= margin_max_radians < math.pi / 2:
        raise InputError(
            "Expected 0 <= margin_min_radians <= margin_max_radians < pi/2; received "
            f"{margin_min_radians}, {margin_max_radians}."
        )
    tmp = counts ** (-power)
    span = tmp.max() - tmp.min()
    if span <= 0:
        return np.full(counts.shape, margin_max_radians, dtype=np.float32)
    scaled = (tmp - tmp.min()) / span
    return (margin_min_radians + scaled * (margin_max_radians - margin_min_radians)).astype(np.float32)


class _MarginHead(keras.layers.Layer):
    """Shared parts: the (d, C*K) centres, cosine logits, label handling, config."""

    def __init__(self, n_classes: int, scale: float = 30.0, label_smoothing: float = 0.0,
                 n_subcenters: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if int(n_classes) < 2:
            raise InputError(f"n_classes must be >= 2; received {n_classes}.")
        if int(n_subcenters) < 1:
            raise InputError(f"n_subcenters must be >= 1; received {n_subcenters}.")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1); received {label_smoothing}.")
        self.n_classes = int(n_classes)
        self.scale = float(scale)
        self.label_smoothing = float(label_smoothing)
        self.n_subcenters = int(n_subcenters)

    def build(self, input_shape) -> None:
        emb_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        self.kernel = self.add_weight(
            shape=(int(emb_shape[-1]), self.n_classes * self.n_subcenters),
            initializer="glorot_uniform", name="kernel",
        )

    def cosine(self, embeddings):
        """``cos(theta)`` between each embedding and each class (max over sub-centres)."""
        x = _l2_normalize(ops.cast(embeddings, "float32"))
        w = _l2_normalize(ops.cast(self.kernel, "float32"), axis=0)
        cos = ops.matmul(x, w)
        if self.n_subcenters > 1:
            cos = ops.max(ops.reshape(cos, (-1, self.n_classes, self.n_subcenters)), axis=-1)
        return ops.clip(cos, -1.0, 1.0)

    def target_cosine(self, cos, labels):
        """The margin-adjusted cosine for every class; only the label's column is used."""
        raise NotImplementedError

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            embeddings, labels = inputs[0], (inputs[1] if len(inputs) > 1 else None)
        else:
            embeddings, labels = inputs, None
        cos = self.cosine(embeddings)
        if labels is None or training is False:
            return self.scale * cos
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        onehot = ops.one_hot(labels, self.n_classes, dtype="float32")
        if self.label_smoothing > 0:
            onehot = (1.0 - self.label_smoothing) * onehot + self.label_smoothing / self.n_classes
        target = self.target_cosine(cos, labels)
        return self.scale * (onehot * target + (1.0 - onehot) * cos)

    def compute_output_shape(self, input_shape):
        emb_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return (emb_shape[0], self.n_classes)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(n_classes=self.n_classes, scale=self.scale,
                      label_smoothing=self.label_smoothing)
        return config


def _arc_target(cos, margin, easy_margin: bool):
    """``cos(theta + m)`` with the easy-margin or the ``cos(pi - m)`` fallback."""
    sin = ops.sqrt(ops.clip(1.0 - ops.square(cos), 0.0, 1.0))
    phi = cos * ops.cos(margin) - sin * ops.sin(margin)
    if easy_margin:
        return ops.where(cos > 0.0, phi, cos)
    threshold = ops.cos(math.pi - margin)
    return ops.where(cos > threshold, phi, cos - ops.sin(math.pi - margin) * margin)


@keras.saving.register_keras_serializable(package="imet_kit")
class ArcFace(_MarginHead):
    """Additive angular margin head (Deng et al. 2019).

    Args:
        n_classes: number of identities C.
        scale: s, the logit scale (30 for landmarks, 64 for faces).
        margin_radians: m, added to the target angle (0.5 rad ~ 28.6 degrees).
        easy_margin: apply the margin only where ``cos(theta) > 0``.
        label_smoothing: epsilon of the notebooks' smoothed one-hot mixing.

    Example:
        >>> head = ArcFace(n_classes=3, scale=10.0, margin_radians=0.5)
        >>> tuple(head([np.eye(4, dtype="float32")[:2], np.array([0, 2])]).shape)
        (2, 3)
    """

    def __init__(self, n_classes: int, scale: float = 30.0, margin_radians: float = 0.5,
                 easy_margin: bool = False, label_smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(n_classes, scale=scale, label_smoothing=label_smoothing, **kwargs)
        if not 0.0 <= float(margin_radians) < math.pi / 2:
            raise InputError(f"margin_radians must be in [0, pi/2); received {margin_radians}.")
        self.margin_radians = float(margin_radians)
        self.easy_margin = bool(easy_margin)

    def target_cosine(self, cos, labels):
        return _arc_target(cos, self.margin_radians, self.easy_margin)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(margin_radians=self.margin_radians, easy_margin=self.easy_margin)
        return config


@keras.saving.register_keras_serializable(package="imet_kit")
class CosFace(_MarginHead):
    """Additive cosine margin head (Wang et al. 2018): target ``s * (cos(theta) - m)``.

    ``margin`` here is a cosine offset, not an angle, hence ``margin_cosine``.
    """

    def __init__(self, n_classes: int, scale: float = 30.0, margin_cosine: float = 0.35,
                 label_smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(n_classes, scale=scale, label_smoothing=label_smoothing, **kwargs)
        self.margin_cosine = float(margin_cosine)

    def target_cosine(self, cos, labels):
        return cos - self.margin_cosine

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(margin_cosine=self.margin_cosine)
        return config


@keras.saving.register_keras_serializable(package="imet_kit")
class SubCenterArcFace(_MarginHead):
    """Sub-center ArcFace (Deng et al. 2020) with optional per-class adaptive margins.

    Each class has ``n_subcenters`` centres; ``cos(theta)`` is the closest one, so noisy
    images gather on a secondary centre. With ``class_counts`` the margin of class c is
    :func:`adaptive_margins` of the counts (larger for rare classes); without, every class
    uses ``margin_radians``. The margins live in a non-trainable weight, so a saved model
    keeps them and the config stays small at 100k classes.
    """

    def __init__(self, n_classes: int, n_subcenters: int = 3, scale: float = 30.0,
                 margin_radians: float = 0.5, class_counts: Sequence[int] | None = None,
                 margin_min_radians: float = 0.05, margin_max_radians: float = 0.5,
                 easy_margin: bool = False, label_smoothing: float = 0.0, **kwargs) -> None:
        super().__init__(n_classes, scale=scale, label_smoothing=label_smoothing,
                         n_subcenters=n_subcenters, **kwargs)
        self.margin_radians = float(margin_radians)
        self.margin_min_radians = float(margin_min_radians)
        self.margin_max_radians = float(margin_max_radians)
        self.easy_margin = bool(easy_margin)
        self.adaptive = class_counts is not None
        if class_counts is not None:
            if len(class_counts) != self.n_classes:
                raise InputError(
                    f"class_counts has {len(class_counts)} entries; expected one per class "
                    f"({self.n_classes})."
                )
            self._initial_margins = adaptive_margins(class_counts, margin_min_radians, margin_max_radians)
        else:
            self._initial_margins = np.full(self.n_classes, self.margin_radians, np.float32)

    def build(self, input_shape) -> None:
        super().build(input_shape)
        self.margins = self.add_weight(
            shape=(self.n_classes,), name="margins", trainable=False,
            initializer=keras.initializers.Constant(self._initial_margins),
        )

    def target_cosine(self, cos, labels):
        margin = ops.expand_dims(ops.take(ops.cast(self.margins, "float32"), labels), -1)
        return _arc_target(cos, margin, self.easy_margin)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(n_subcenters=self.n_subcenters, margin_radians=self.margin_radians,
                      margin_min_radians=self.margin_min_radians,
                      margin_max_radians=self.margin_max_radians, easy_margin=self.easy_margin)
        return config


HEADS = {"arcface": ArcFace, "cosface": CosFace, "subcenter_arcface": SubCenterArcFace}


class EmbeddingModels(NamedTuple):
    """The two views of one set of weights built by :func:`build_embedding_model`."""

    train_model: keras.Model  # {"image", "label"} -> logits (or the embedding, XBM alone)
    embedding_model: keras.Model  # image -> L2-normalised embedding


def build_embedding_model(
    backbone: keras.Model,
    n_classes: int | None = None,
    *,
    head: str | keras.layers.Layer | None = "arcface",
    embedding_dim: int = 512,
    dropout: float = 0.0,
    xbm: keras.layers.Layer | None = None,
    preprocess: keras.layers.Layer | None = None,
    pooling: keras.layers.Layer | None = None,
    **head_kwargs,
) -> EmbeddingModels:
    """[preprocess] -> backbone -> pool -> Dense + BN (``"embedding"``) -> [XBM] -> margin head.

    Args:
        backbone: image -> feature map ``(H, W, F)`` or vector ``(F,)``.
        n_classes: number of identities (needed for a head given by name).
        head: ``"arcface"``, ``"cosface"``, ``"subcenter_arcface"``, a layer, or None to
            train with ``xbm`` alone (its loss is added by the layer; compile with ``loss=None``).
        embedding_dim: width of the embedding.
        dropout: dropout before the embedding projection.
        xbm: an :class:`imet_kit.models.xbm.CrossBatchMemory` fed with ``[embedding, label]``.
        preprocess: a layer mapping 0-255 images to the backbone's range (e.g.
            ``preprocessing_layer(spec)``), so both models take 0-255 RGB.
        pooling: feature map -> vector; default ``GlobalAveragePooling2D`` (GeM: ``pooling_layer("gem")``).
        **head_kwargs: passed to the head class (``scale``, ``margin_radians``, ...).

    Returns:
        :class:`EmbeddingModels`; compile ``train_model`` with
        ``SparseCategoricalCrossentropy(from_logits=True)`` and fit it on
        ``({"image": x, "label": y}, y)``.
    """
    if head is None and xbm is None:
        raise InputError("build_embedding_model needs a margin head, an xbm layer or both; received neither.")
    image = keras.Input(shape=backbone.input_shape[1:], name="image")
    label = keras.Input(shape=(), dtype="int32", name="label")
    x = backbone(preprocess(image) if preprocess is not None else image)
    if len(x.shape) == 4:
        x = (pooling or keras.layers.GlobalAveragePooling2D(name="pool"))(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    x = keras.layers.Dense(embedding_dim, name="embedding_dense")(x)
    emb = keras.layers.BatchNormalization(name="embedding")(x)
    out = xbm([emb, label]) if xbm is not None else emb
    if head is not None:
        if isinstance(head, str):
            if head not in HEADS:
                raise InputError(f"Unknown margin head '{head}'. Expected one of: {describe_choices(HEADS)}.")
            if n_classes is None:
                raise InputError(f"n_classes is required to build the '{head}' head.")
            head = HEADS[head](n_classes, name="margin_head", **head_kwargs)
        out = head([out, label])
    train_model = keras.Model({"image": image, "label": label}, out, name="embedding_trainer")
    normalized = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(emb)
    embedding_model = keras.Model(image, normalized, name="embedding_model")
    return EmbeddingModels(train_model, embedding_model)


def topk_metrics(n_classes: int, ks: Sequence[int] = (1, 5, 10)) -> list[keras.metrics.Metric]:
    """Top-k accuracy metrics named ``top1``, ``top5``, ``top10`` (k capped at n_classes)."""
    return [keras.metrics.SparseTopKCategoricalAccuracy(k=min(k, n_classes), name=f"top{k}")
            for k in ks]
