"""imet_kit.models.families: every keras.applications image family in the registry, each with the
input its network expects; parameter counts; offline weights; keras-hub as an optional source."""

import importlib.util

import keras
import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError, WeightsUnavailableError
from imet_kit.models import BACKBONES, build_backbone, build_classifier, get_backbone_spec
from imet_kit.models.families import KERAS_FAMILIES, CaffePreprocessing
from imet_kit.models.loading import load_model
from imet_kit.training.validate import name_problems

ONE_PER_MODULE = {row[2]: row for row in KERAS_FAMILIES}  # preprocess_input module -> a member


def test_every_keras_applications_family_is_registered():
    public = {n for n in dir(keras.applications) if n[0].isupper()}
    ours = {spec.constructor.split(".")[-1] for spec in BACKBONES.values() if spec.source == "keras"}
    assert public <= ours, sorted(public - ours)
    for name, fn, _module, size, input_range, params in KERAS_FAMILIES:
        spec = get_backbone_spec(name)
        assert (spec.default_size, spec.input_range, spec.params) == (size, input_range, params)
        assert spec.pretrained == ("imagenet",) and spec.constructor == f"keras.applications.{fn}"


@pytest.mark.parametrize("module", sorted(ONE_PER_MODULE))
def test_preprocessing_matches_the_familys_preprocess_input(module):
    """Our layer on 0-255 RGB equals keras.applications.<module>.preprocess_input."""
    name = ONE_PER_MODULE[module][0]
    x = np.array([[[[10.0, 100.0, 200.0], [0.0, 127.5, 255.0]]]], "float32")
    theirs = getattr(keras.applications, module).preprocess_input(x.copy())
    ours = get_backbone_spec(name).preprocess(x.copy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "vgg16", "resnet50", "densenet121",
                                  "efficientnet_b0"])
def test_parameter_table_matches_a_build(name):
    model = build_backbone(name, (64, 64, 3), None)
    assert model.count_params() == get_backbone_spec(name).params
    keras.backend.clear_session()


def test_caffe_preprocessing_is_a_saved_layer(tmp_path):
    model = build_classifier("resnet50", 3, input_size=32)
    assert isinstance(model.get_layer("preprocess"), CaffePreprocessing)
    small = keras.Sequential([keras.Input((4, 4, 3)), CaffePreprocessing(name="preprocess"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    small.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(back.predict(x, verbose=0), small.predict(x, verbose=0), rtol=1e-6)


@pytest.fixture
def isolated_keras_cache(tmp_path, monkeypatch):
    import keras.src.backend.config as kconfig

    monkeypatch.setattr(kconfig, "_KERAS_DIR", str(tmp_path / "keras_home"))


def test_offline_imagenet_of_another_family_fails_with_the_recipe(isolated_keras_cache, monkeypatch,
                                                                  tmp_path):
    import keras.src.applications.mobilenet_v3 as mv3

    monkeypatch.setattr(mv3, "BASE_WEIGHT_PATH", "http://imet-kit-offline.invalid/")
    with pytest.raises(WeightsUnavailableError,
                       match=r"MobileNetV3Small\(include_top=False, weights='imagenet'\)"
                             r"\.save_weights\('mobilenet_v3_small\.weights\.h5'\)"):
        build_backbone("mobilenet_v3_small", (64, 64, 3), weights="imagenet", download_timeout=2)
    # the recipe of that message: weights saved from keras.applications load into ours
    src = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(64, 64, 3))
    src.set_weights([w + np.float32(0.01) for w in src.get_weights()])
    src.save_weights(tmp_path / "mobilenet_v3_small.weights.h5")
    ours = build_backbone("mobilenet_v3_small", (64, 64, 3),
                          weights=tmp_path / "mobilenet_v3_small.weights.h5")
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), src.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("keras_hub") is not None,
                    reason="keras-hub is installed: the missing-package path cannot be seen")
def test_hub_backbones_are_optional_and_say_how_to_install():
    spec = get_backbone_spec("hub:resnet_50_imagenet")
    assert spec.source == "keras-hub" and spec.default_size == 224
    with pytest.raises(ImportError, match=r"pip install keras-hub"):
        build_backbone("hub:resnet_50_imagenet", (32, 32, 3), None)
    problems = name_problems(TrainConfig(backbone="hub:resnet_50_imagenet"))
    assert problems == ["backbone: hub:<preset> backbones need the optional keras-hub package: "
                        "pip install keras-hub"]
    with pytest.raises(InputError, match="names no keras-hub preset"):
        get_backbone_spec("hub:")
    assert any("names no preset" in p for p in name_problems(TrainConfig(backbone="hub: ")))
