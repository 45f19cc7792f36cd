"""The multi-label classifier: 0-255 image -> preprocessing -> backbone -> head.

The backbone is one nested layer named ``"backbone"`` so it can be frozen for a
head warm-up and unfrozen afterwards (:func:`set_backbone_trainable`).
"""

from __future__ import annotations

import logging
import os

import keras

from imet_kit.errors import InputError
from imet_kit.models.backbones import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    build_backbone,
    get_backbone_spec,
    preprocessing_layer,
)
from imet_kit.models.heads import apply_head
from imet_kit.models.loading import load_model

logger = logging.getLogger(__name__)

BACKBONE_LAYER = "backbone"


def _input_hw(input_size, default: int) -> tuple[int, int]:
    if input_size is None:
        return default, default
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(hw) != 2 or not all(isinstance(v, int) and v >= 8 for v in hw):
        raise InputError(f"input_size must be an int >= 8 or (height, width); received {input_size!r}.")
    return hw


def build_classifier(
    backbone: str,
    n_classes: int,
    *,
    input_size: int | tuple[int, int] | None = None,
    weights: str | os.PathLike | None = None,
    pooling: str = "avg",
    embedding_dim: int = 512,
    dropout: float = 0.2,
    name: str = "imet_classifier",
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
) -> keras.Model:
    """Build the classifier that takes 0-255 float images and returns (B, C) float32 probabilities.

    Args:
        backbone: a registry name (``imet_kit.models.BACKBONES``).
        n_classes: C.
        input_size: side (or ``(height, width)``); default the backbone's ``default_size``.
        weights: ``None``, ``"imagenet"`` (or ``"noisy-student"`` for ``efn_*``) or a
            path to the backbone's ``*.weights.h5``.
        pooling: ``"avg"``, ``"max"`` or ``"gem"``.
        embedding_dim: width of the ``"embedding"`` layer.
        dropout: rate before the output layer.
        name: the model's name.
        download_timeout: seconds a weights download may stall before failing.

    Returns:
        A functional ``keras.Model`` with layers ``"backbone"``, ``"pool"``,
        ``"embedding"``, ``"logits"`` and ``"probs"``.

    Example:
        >>> model = build_classifier("tiny_cnn", 5, input_size=32)
        >>> model.output_shape, model.get_layer("backbone").name
        ((None, 5), 'backbone')
    """
    spec = get_backbone_spec(backbone)
    h, w = _input_hw(input_size, spec.default_size)
    inputs = keras.Input((h, w, 3), name="image")
    x = inputs
    pre = preprocessing_layer(spec)
    if pre is not None:
        x = pre(x)
    net = build_backbone(backbone, (h, w, 3), weights, download_timeout=download_timeout,
                         model_name=BACKBONE_LAYER)
    x = net(x)
    outputs = apply_head(x, n_classes, pooling=pooling, embedding_dim=embedding_dim, dropout=dropout)
    return keras.Model(inputs, outputs, name=name)


def _walk(layer):
    yield layer
    for sub in getattr(layer, "layers", []):
        yield from _walk(sub)


def set_backbone_trainable(model: keras.Model, trainable: bool, *, freeze_batchnorm: bool = True) -> int:
    """Freeze (head warm-up) or unfreeze (fine-tuning) the ``"backbone"`` layer.

    Recompile the model afterwards: Keras fixes the trainable set at ``compile``.
    A frozen layer also runs in inference mode, so frozen BatchNorm layers keep
    their ImageNet statistics (the usual recipe for fine-tuning EfficientNet).

    Args:
        model: a model from :func:`build_classifier`.
        trainable: ``False`` to freeze the backbone, ``True`` to unfreeze it.
        freeze_batchnorm: when unfreezing, keep BatchNormalization layers frozen.

    Returns:
        The number of trainable weight tensors of the whole model afterwards.

    Example:
        >>> m = build_classifier("tiny_cnn", 3, input_size=32)
        >>> set_backbone_trainable(m, False)  # embedding + logits kernels and biases
        4
    """
    try:
        net = model.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise InputError(
            f"Model {model.name!r} has no layer named {BACKBONE_LAYER!r}; build it with "
            f"imet_kit.models.build_classifier."
        ) from None
    for layer in _walk(net):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = bool(trainable) and not (is_bn and freeze_batchnorm)
    n = len(model.trainable_weights)
    logger.info("backbone %s: %d trainable weight tensors in the model",
                "unfrozen" if trainable else "frozen", n)
    return n




load_classifier = load_model  # the name this loader had before imet_kit.models.loading
