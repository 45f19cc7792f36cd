"""Backbone families beyond EfficientNet: every ``keras.applications`` image family, and
``keras-hub`` image backbones by preset name (``hub:<preset>``, optional).

Each ``keras.applications`` row says what the network expects, read from its module's
``preprocess_input`` (Keras 3.15):

* ``"0-255"``: the network normalises inside (ConvNeXt, MobileNetV3: ``include_preprocessing``);
  their ``preprocess_input`` is the identity.
* ``"-1-1"``: ``mode="tf"``, ``x / 127.5 - 1`` (Inception, Xception, MobileNet v1/v2, NASNet,
  ResNetV2).
* ``"imagenet"``: ``mode="torch"``, ``(x / 255 - mean) / std`` (DenseNet).
* ``"caffe"``: ``mode="caffe"``, RGB -> BGR, then minus the ImageNet BGR mean, no scaling
  (ResNet v1, VGG): :class:`CaffePreprocessing`.

Parameter counts are of the headless network (``include_top=False``), counted once with
``weights=None`` (Keras 3.15.1); a test rebuilds a few and compares. RegNet and ResNet-RS left
``keras.applications`` in Keras 3; keras-hub presets cover more families.
"""

from __future__ import annotations

import keras

from imet_kit.errors import InputError, WeightsUnavailableError

HUB_PREFIX = "hub:"
HUB_INSTALL = "pip install keras-hub"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

# (registry name, keras.applications constructor, preprocess_input module, default size,
#  input range, headless parameter count)
KERAS_FAMILIES: tuple[tuple[str, str, str, int, str, int], ...] = (
    ("convnext_tiny", "ConvNeXtTiny", "convnext", 224, "0-255", 27_820_128),
    ("convnext_small", "ConvNeXtSmall", "convnext", 224, "0-255", 49_454_688),
    ("convnext_base", "ConvNeXtBase", "convnext", 224, "0-255", 87_566_464),
    ("convnext_large", "ConvNeXtLarge", "convnext", 224, "0-255", 196_230_336),
    ("convnext_xlarge", "ConvNeXtXLarge", "convnext", 224, "0-255", 348_147_968),
    ("densenet121", "DenseNet121", "densenet", 224, "imagenet", 7_037_504),
    ("densenet169", "DenseNet169", "densenet", 224, "imagenet", 12_642_880),
    ("densenet201", "DenseNet201", "densenet", 224, "imagenet", 18_321_984),
    ("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, "-1-1", 54_336_736),
    ("inception_v3", "InceptionV3", "inception_v3", 299, "-1-1", 21_802_784),
    ("mobilenet", "MobileNet", "mobilenet", 224, "-1-1", 3_228_864),
    ("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, "-1-1", 2_257_984),
    ("mobilenet_v3_small", "MobileNetV3Small", "mobilenet_v3", 224, "0-255", 939_120),
    ("mobilenet_v3_large", "MobileNetV3Large", "mobilenet_v3", 224, "0-255", 2_996_352),
    ("nasnet_mobile", "NASNetMobile", "nasnet", 224, "-1-1", 4_269_716),
    ("nasnet_large", "NASNetLarge", "nasnet", 331, "-1-1", 84_916_818),
    ("resnet50", "ResNet50", "resnet", 224, "caffe", 23_587_712),
    ("resnet101", "ResNet101", "resnet", 224, "caffe", 42_658_176),
    ("resnet152", "ResNet152", "resnet", 224, "caffe", 58_370_944),
    ("resnet50_v2", "ResNet50V2", "resnet_v2", 224, "-1-1", 23_564_800),
    ("resnet101_v2", "ResNet101V2", "resnet_v2", 224, "-1-1", 42_626_560),
    ("resnet152_v2", "ResNet152V2", "resnet_v2", 224, "-1-1", 58_331_648),
    ("vgg16", "VGG16", "vgg16", 224, "caffe", 14_714_688),
    ("vgg19", "VGG19", "vgg19", 224, "caffe", 20_024_384),
    ("xception", "Xception", "xception", 299, "-1-1", 20_861_480),
)

# headless parameter counts of the EfficientNets already in the registry (same measurement)
EFFICIENTNET_PARAMS = {
    "EfficientNetB0": 4_049_571, "EfficientNetB1": 6_575_239, "EfficientNetB2": 7_768_569,
    "EfficientNetB3": 10_783_535, "EfficientNetB4": 17_673_823, "EfficientNetB5": 28_513_527,
    "EfficientNetB6": 40_960_143, "EfficientNetB7": 64_097_687, "EfficientNetV2B0": 5_919_312,
    "EfficientNetV2B1": 6_931_124, "EfficientNetV2B2": 8_769_374, "EfficientNetV2B3": 12_930_622,
    "EfficientNetV2S": 20_331_360, "EfficientNetV2M": 53_150_388, "EfficientNetV2L": 117_746_848,
}


@keras.saving.register_keras_serializable(package="imet_kit")
class CaffePreprocessing(keras.layers.Layer):
    """RGB 0-255 -> BGR minus the ImageNet BGR mean: ``preprocess_input(mode="caffe")`` as a
    layer (ResNet v1, VGG), so the saved model carries it and no ``Lambda`` is needed.

    Args:
        mean: the per-channel mean subtracted after the channel flip, in BGR order.
        **kwargs: ``keras.layers.Layer`` arguments.

    Example:
        >>> import numpy as np
        >>> out = CaffePreprocessing()(np.array([[[[10.0, 100.0, 200.0]]]]))
        >>> keras.ops.convert_to_numpy(out).astype(float).round(3).tolist()
        [[[[96.061, -16.779, -113.68]]]]
    """

    def __init__(self, mean=CAFFE_BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)

    def call(self, inputs):
        x = keras.ops.flip(keras.ops.cast(inputs, self.compute_dtype), axis=-1)
        return x - keras.ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean)}


# --- keras-hub (optional) ---------------------------------------------------------------------
def hub_preset(name: str) -> str:
    """The preset of a ``hub:<preset>`` backbone name (a Kaggle handle, a name or a local folder)."""
    preset = name[len(HUB_PREFIX):].strip()
    if not preset:
        raise InputError(f"Backbone {name!r} names no keras-hub preset. Expected hub:<preset>, "
                         f"e.g. hub:resnet_50_imagenet, or hub:/path/to/a/saved/preset.")
    return preset


def hub_missing() -> str | None:
    """Why ``hub:`` backbones cannot be built here (None when keras-hub imports)."""
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        return f"hub:<preset> backbones need the optional keras-hub package: {HUB_INSTALL}"
    return None


def build_hub(preset: str, input_shape, weights, name: str) -> keras.Model:
    """A keras-hub image backbone with its preset's input scaling inside (it takes 0-255 images).

    ``weights="imagenet"`` loads the preset's pretrained weights, ``None`` only its architecture.
    """
    missing = hub_missing()
    if missing:
        raise ImportError(f"Backbone 'hub:{preset}': {missing}.")
    import keras_hub

    try:
        net = keras_hub.models.Backbone.from_preset(preset, load_weights=weights is not None,
                                                    image_shape=tuple(input_shape))
        # image_size=None: our loader already resized; keep only the preset's scale and offset
        convert = keras_hub.layers.ImageConverter.from_preset(preset, image_size=None)
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise WeightsUnavailableError(
            f"Could not fetch keras-hub preset {preset!r} ({type(exc).__name__}: {str(exc)[:160]}); "
            f"this machine looks offline. On a machine with network run "
            f"`keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset('{preset}_dir')` and "
            f"`keras_hub.layers.ImageConverter.from_preset({preset!r}).save_to_preset('{preset}_dir')`, "
            f"copy the folder here and pass --backbone hub:path/to/{preset}_dir."
        ) from exc
    inputs = keras.Input(tuple(input_shape))
    features = net(convert(inputs))
    if len(features.shape) != 4:
        raise InputError(f"keras-hub preset {preset!r} returns {tuple(features.shape)}, not a 2-D "
                         f"feature map (batch, h, w, channels); choose a convolutional image "
                         f"backbone preset (ResNet, EfficientNet, DenseNet, MobileNet, ...).")
    return keras.Model(inputs, features, name=name)
