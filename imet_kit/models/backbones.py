"""Backbone registry: a name -> how to build it and what it expects of its input.

Every entry is a :class:`BackboneSpec` (timm's ``PretrainedCfg`` idea): default
input size, the value range the network itself wants, and where its weights come
from. Classifiers feed 0-255 images and let :func:`preprocessing_layer` bridge the
gap, so no caller needs to know a backbone's normalisation.

Sources:
    * ``keras.applications``: EfficientNet B0-B7, EfficientNetV2 B0-B3 / S / M / L
      (0-255 input, normalisation inside).
    * the optional ``efficientnet`` package (qubvel, 2019): ``efn_b0`` .. ``efn_b7``
      with ``"imagenet"`` or ``"noisy-student"`` weights (``pip install 'imet_kit[efficientnet]'``).
    * ``tiny_cnn``: three convolutions, for tests; ``small_cnn``: seven separable blocks, for the demo;
      ``plain_cnn`` and ``resnet_small`` (:mod:`imet_kit.models.scratch`): stronger from-scratch CPU nets.
    * every other ``keras.applications`` image family (ConvNeXt, DenseNet, Inception, MobileNet
      v1-v3, NASNet, ResNet, ResNetV2, VGG, Xception) and ``hub:<preset>`` keras-hub image
      backbones (optional: ``pip install keras-hub``): see :mod:`imet_kit.models.families`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import keras

import imet_kit.models.families as families
from imet_kit.errors import (
    DataFileError,
    InputError,
    WeightsUnavailableError,
    backend_mismatch,
    describe_choices,
)
from imet_kit.models import scratch

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_RANGES = ("0-255", "0-1", "-1-1", "imagenet", "caffe")
DEFAULT_DOWNLOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is and expects.

    Attributes:
        name: registry key.
        builder: ``builder(input_shape, weights, name) -> keras.Model`` (no top, a 4-D feature map).
        default_size: the input side it was trained at.
        input_range: what the network takes: ``"0-255"``, ``"0-1"``, ``"-1-1"``,
            ``"imagenet"`` (``(x / 255 - mean) / std``) or ``"caffe"`` (BGR minus the mean).
        source: ``"keras"``, ``"efficientnet"`` (optional package), ``"keras-hub"`` (optional)
            or ``"imet_kit"``.
        pretrained: weight names the builder can download (``()`` for none).
        constructor: the public call that builds it, for messages.
        params: headless parameter count (``None``: not known without building it).
        backend: the only Keras backend it builds under (``None``: any).
    """

    name: str
    builder: Callable[..., keras.Model]
    default_size: int
    input_range: str = "0-255"
    source: str = "keras"
    pretrained: tuple[str, ...] = ("imagenet",)
    constructor: str = ""
    params: int | None = None
    backend: str | None = None

    def preprocess(self, images):
        """Map 0-255 images (numpy or tensor, channels last) to :attr:`input_range`.

        Example:
            >>> import numpy as np
            >>> get_backbone_spec("tiny_cnn").preprocess(np.full((1, 2, 2, 3), 255.0)).max().item()
            1.0
        """
        layer = preprocessing_layer(self)
        if layer is None:
            return images
        return keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(images, "float32")))


def preprocessing_layer(spec: BackboneSpec, name: str = "preprocess") -> keras.layers.Layer | None:
    """The layer mapping 0-255 images to what ``spec`` expects (``None`` if nothing to do)."""
    if spec.input_range == "0-255":
        return None
    if spec.input_range == "0-1":
        return keras.layers.Rescaling(1.0 / 255.0, name=name)
    if spec.input_range == "-1-1":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)
    if spec.input_range == "caffe":
        return families.CaffePreprocessing(name=name)
    mean = [255.0 * m for m in IMAGENET_MEAN]
    var = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return keras.layers.Normalization(mean=mean, variance=var, name=name)


def _keras_app(fn: str, input_shape, weights, name: str) -> keras.Model:
    build = getattr(keras.applications, fn)
    # Never pass `name`: keras.applications builds the ImageNet weights URL from it
    # ("<name>_notop.h5"), and EfficientNetV2 selects its block configuration by it.
    model = build(include_top=False, weights=weights, input_shape=input_shape)
    return keras.Model(model.input, model.output, name=name)


def _qubvel(fn: str, input_shape, weights, name: str) -> keras.Model:
    try:
        import efficientnet.tfkeras as efn
    except ImportError as exc:
        raise ImportError(
            "Backbones efn_b0..efn_b7 need the optional 'efficientnet' package: "
            "pip install 'imet_kit[efficientnet]' (or pip install efficientnet==1.1.1)."
        ) from exc
    model = getattr(efn, fn)(include_top=False, weights=weights, input_shape=input_shape)
    return keras.Model(model.input, model.output, name=name)


def _tiny_cnn(input_shape, weights, name: str) -> keras.Model:
    """Three strided convolutions (~6k parameters): for tests and the demo."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((8, 16, 32)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
    return keras.Model(inputs, x, name=name)


def _small_cnn(input_shape, weights, name: str) -> keras.Model:
    """Seven separable-convolution blocks (~0.2 M parameters) that learn from scratch in minutes
    on a CPU: the demo's backbone. BatchNorm momentum 0.9 so that its moving statistics keep up
    within the few hundred steps of a short run (at Keras' 0.99 they lag and validation collapses)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, (filters, stride) in enumerate(((24, 2), (48, 2), (96, 2), (96, 1), (160, 2), (160, 1),
                                           (256, 2))):
        conv = keras.layers.Conv2D if i == 0 else keras.layers.SeparableConv2D
        x = conv(filters, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
    return keras.Model(inputs, x, name=name)


def _registry() -> dict[str, BackboneSpec]:
    specs = [BackboneSpec("tiny_cnn", _tiny_cnn, 32, "0-1", "imet_kit", (), "imet_kit tiny_cnn"),
             BackboneSpec("small_cnn", _small_cnn, 128, "0-1", "imet_kit", (), "imet_kit small_cnn"),
             BackboneSpec("plain_cnn", scratch.plain_cnn, 96, "0-1", "imet_kit", (), "imet_kit plain_cnn"),
             BackboneSpec("resnet_small", scratch.resnet_small, 96, "0-1", "imet_kit", (),
                          "imet_kit resnet_small")]
    for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600)):
        fn = f"EfficientNetB{i}"
        specs.append(BackboneSpec(f"efficientnet_b{i}", functools.partial(_keras_app, fn), size,
                                  constructor=f"keras.applications.{fn}",
                                  params=families.EFFICIENTNET_PARAMS[fn]))
        specs.append(BackboneSpec(f"efn_b{i}", functools.partial(_qubvel, fn), size, "imagenet",
                                  "efficientnet", ("imagenet", "noisy-student"),
                                  f"efficientnet.tfkeras.{fn}", backend="tensorflow"))
    for key, size in (("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("s", 384),
                      ("m", 480), ("l", 480)):
        fn = f"EfficientNetV2{key.upper()}"
        specs.append(BackboneSpec(f"efficientnetv2_{key}", functools.partial(_keras_app, fn), size,
                                  constructor=f"keras.applications.{fn}",
                                  params=families.EFFICIENTNET_PARAMS[fn]))
    specs += _keras_families()
    return {s.name: s for s in sorted(specs, key=lambda s: s.name)}


def _keras_families() -> list[BackboneSpec]:
    """The other keras.applications image families (:data:`families.KERAS_FAMILIES`)."""
    return [BackboneSpec(name, functools.partial(_keras_app, fn), size, input_range,
                         constructor=f"keras.applications.{fn}", params=params)
            for name, fn, _module, size, input_range, params in families.KERAS_FAMILIES]


def _hub_spec(name: str) -> BackboneSpec:
    """``hub:<preset>``: built by keras-hub (optional); 224 px unless --image-size says otherwise."""
    preset = families.hub_preset(name)
    return BackboneSpec(name, functools.partial(families.build_hub, preset), 224, "0-255",
                        "keras-hub", ("imagenet",),
                        f"keras_hub.models.Backbone.from_preset({preset!r})")


BACKBONES: dict[str, BackboneSpec] = _registry()


def get_backbone_spec(name: str) -> BackboneSpec:
    """Look a backbone up by name (a :data:`BACKBONES` key, or ``hub:<preset>`` for keras-hub).

    Example:
        >>> get_backbone_spec("efficientnet_b3").default_size
        300
        >>> get_backbone_spec("resnet50").input_range
        'caffe'
    """
    if isinstance(name, str) and name.startswith(families.HUB_PREFIX):
        return _hub_spec(name)
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"Unknown backbone {name!r}. Expected one of: {describe_choices(BACKBONES)}, "
            f"or hub:<preset> (keras-hub)."
        ) from None


def backend_problem(spec: BackboneSpec, backend: str | None = None) -> str | None:
    """Why ``spec`` cannot be built under the Keras backend (None: it can). ``efn_b*`` calls
    TensorFlow ops on Keras tensors; ``efficientnet_b*`` (keras.applications) runs everywhere.

    Example:
        >>> backend_problem(get_backbone_spec("efn_b3"), "jax").split("; ")[0]
        "backbone: 'efn_b3' is efficientnet.tfkeras.EfficientNetB3 (TensorFlow ops inside), which needs KERAS_BACKEND=tensorflow"
    """
    backend = backend or keras.backend.backend()
    if spec.backend is None or backend == spec.backend:
        return None
    other = spec.name.replace("efn_", "efficientnet_") if spec.name.startswith("efn_") else "efficientnet_b0"
    return backend_mismatch(f"backbone: {spec.name!r}", f"{spec.constructor} (TensorFlow ops inside)",
                            spec.backend, backend, f"use --backbone {other} (keras.applications: "
                                                   f"every backend; ImageNet weights only)")


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    # keras.utils.get_file has no timeout: on a network that accepts but never
    # answers it hangs; a default socket timeout bounds every connect and read.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _is_download_error(exc: BaseException) -> bool:
    msg = str(exc)  # keras.utils.get_file raises a bare Exception / ValueError
    return isinstance(exc, OSError) or "URL fetch failure" in msg or "corrupted file" in msg


def build_backbone(
    name: str,
    input_shape: tuple[int | None, int | None, int] | None = None,
    weights: str | os.PathLike | None = None,
    *,
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    model_name: str = "backbone",
) -> keras.Model:
    """Build a headless backbone (a ``keras.Model`` named ``model_name``).

    Args:
        name: a key of :data:`BACKBONES`.
        input_shape: ``(height, width, 3)``; default the spec's square size.
        weights: ``None`` (random), a name in ``spec.pretrained`` (downloaded; needs
            network), or a path to a weights file (``*.weights.h5`` saved from the same
            backbone, or the Keras ``*_notop.h5`` file).
        download_timeout: seconds any one network operation may stall.
        model_name: the returned model's name.

    Returns:
        The backbone; its output is a feature map ``(batch, h', w', channels)``.

    Raises:
        InputError: unknown name or weights name; DataFileError: missing weights file;
        WeightsUnavailableError: the download failed (offline).

    Example:
        >>> build_backbone("tiny_cnn", (32, 32, 3)).output.shape
        (None, 4, 4, 32)
    """
    spec = get_backbone_spec(name)
    problem = backend_problem(spec)
    if problem:
        raise InputError(problem + ".")
    input_shape = tuple(input_shape or (spec.default_size, spec.default_size, 3))
    path = None
    if weights is not None and str(weights) not in spec.pretrained:
        path = os.fspath(weights)
        if path in ("imagenet", "noisy-student") or not path.endswith(".h5"):
            raise InputError(
                f"Backbone {name!r} cannot use weights={weights!r}. Expected None, "
                f"{' or '.join(repr(p) for p in spec.pretrained) + ', ' if spec.pretrained else ''}"
                f"or a path to a *.weights.h5 file."
            )
        if not os.path.isfile(path):
            raise DataFileError(f"Weights file '{path}' does not exist; expected a *.weights.h5 "
                                f"file saved from backbone {name!r}.")
    if weights is None or path is not None:
        model = spec.builder(input_shape, None, model_name)
        if path is not None:
            try:
                model.load_weights(path)
            except Exception as exc:
                raise InputError(
                    f"Cannot load '{path}' into backbone {name!r} (input {input_shape}): {exc}. "
                    f"The file must hold this backbone's weights, e.g. saved with "
                    f"{spec.constructor}(include_top=False, weights='imagenet').save_weights(...)."
                ) from exc
            logger.info("backbone %s: weights from %s", name, path)
        return model
    try:
        with _socket_timeout(download_timeout):
            model = spec.builder(input_shape, str(weights), model_name)
    except Exception as exc:
        if not _is_download_error(exc):
            raise
        fname = f"{name}.weights.h5"
        raise WeightsUnavailableError(
            f"Could not download the {weights!r} weights of backbone {name!r} "
            f"({type(exc).__name__}: {str(exc)[:160]}); this machine looks offline. On a machine "
            f"with network run `{spec.constructor}(include_top=False, weights={str(weights)!r})"
            f".save_weights('{fname}')`, copy the file here and pass weights='path/to/{fname}' "
            f"(CLI: --weights path/to/{fname})."
        ) from exc
    logger.info("backbone %s: %s weights", name, weights)
    return model
