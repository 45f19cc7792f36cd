"""Backbone registry: specs, building, weights from a file, and offline ImageNet failing fast."""

import socket
import time
import warnings

import keras
import numpy as np
import pytest

from imet_kit.errors import DataFileError, InputError, WeightsUnavailableError
from imet_kit.models import BACKBONES, build_backbone, build_classifier, get_backbone_spec
from imet_kit.models.backbones import backend_problem, preprocessing_layer

KERAS_NAMES = [f"efficientnet_b{i}" for i in range(8)] + [
    f"efficientnetv2_{k}" for k in ("b0", "b1", "b2", "b3", "s", "m", "l")
]


def test_registry_holds_the_promised_backbones_with_their_input_specs():
    for name in KERAS_NAMES:
        spec = get_backbone_spec(name)
        assert spec.source == "keras" and spec.input_range == "0-255" and "imagenet" in spec.pretrained
        assert hasattr(keras.applications, spec.constructor.split(".")[-1])
    assert get_backbone_spec("efficientnet_b0").default_size == 224
    assert get_backbone_spec("efficientnet_b7").default_size == 600
    assert get_backbone_spec("efficientnetv2_s").default_size == 384
    for i in range(8):
        spec = get_backbone_spec(f"efn_b{i}")
        assert spec.source == "efficientnet" and spec.input_range == "imagenet"
        assert spec.pretrained == ("imagenet", "noisy-student")
    assert get_backbone_spec("tiny_cnn").pretrained == ()


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(InputError, match=r"Unknown backbone 'effnet_b0'\. Expected one of: .*efficientnet_b0.*tiny_cnn"):
        get_backbone_spec("effnet_b0")
    assert list(BACKBONES) == sorted(BACKBONES)


def test_tiny_cnn_builds_fast_at_odd_sizes():
    model = build_backbone("tiny_cnn", (33, 31, 3))
    assert model.name == "backbone"
    assert model.output_shape == (None, 5, 4, 32)
    assert model.count_params() < 10_000


@pytest.mark.parametrize("name", ["tiny_cnn", "efn_b0"])
def test_preprocessing_maps_0_255_to_the_expected_range(name):
    spec = get_backbone_spec(name)
    x = np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 255.0)]).astype("float32")
    out = spec.preprocess(x)
    if spec.input_range == "0-1":
        np.testing.assert_allclose(out[1], 1.0)
    else:  # (x / 255 - mean) / std
        np.testing.assert_allclose(out[0, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-5)
    assert preprocessing_layer(get_backbone_spec("efficientnet_b0")) is None


def test_weights_file_round_trip_and_errors(tmp_path):
    a = build_backbone("tiny_cnn", (32, 32, 3))
    a.set_weights([w + np.float32(0.1) for w in a.get_weights()])
    path = tmp_path / "tiny.weights.h5"
    a.save_weights(path)
    b = build_backbone("tiny_cnn", (32, 32, 3), weights=path)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    with pytest.raises(DataFileError, match="does not exist"):
        build_backbone("tiny_cnn", (32, 32, 3), weights=tmp_path / "missing.weights.h5")
    with pytest.raises(InputError, match="cannot use weights='imagenet'"):
        build_backbone("tiny_cnn", (32, 32, 3), weights="imagenet")
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(other)
    with warnings.catch_warnings(), pytest.raises(InputError, match="Cannot load"):
        warnings.simplefilter("ignore")  # Keras warns about each container it skips first
        build_backbone("tiny_cnn", (32, 32, 3), weights=other)


@pytest.mark.parametrize("name", ["efficientnet_b0", pytest.param("efficientnetv2_b0", marks=pytest.mark.slow)])
def test_keras_backbone_loads_weights_saved_from_keras_applications(tmp_path, name):
    """The recipe of the offline message: save from keras.applications, pass the path."""
    constructor = getattr(keras.applications, get_backbone_spec(name).constructor.split(".")[-1])
    src = constructor(include_top=False, weights=None, input_shape=(32, 32, 3))
    src.set_weights([w + np.float32(0.01) for w in src.get_weights()])
    path = tmp_path / f"{name}.weights.h5"
    src.save_weights(path)
    ours = build_backbone(name, (32, 32, 3), weights=str(path))
    assert ours.name == "backbone"
    x = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), src.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.fixture
def isolated_keras_cache(tmp_path, monkeypatch):
    import keras.src.backend.config as kconfig

    monkeypatch.setattr(kconfig, "_KERAS_DIR", str(tmp_path / "keras_home"))


def test_imagenet_fails_fast_when_dns_fails(isolated_keras_cache, monkeypatch):
    import keras.src.applications.efficientnet as eff

    monkeypatch.setattr(eff, "BASE_WEIGHTS_PATH", "http://imet-kit-offline.invalid/")
    with pytest.raises(WeightsUnavailableError, match=r"weights='path/to/efficientnet_b0\.weights\.h5'"):
        build_backbone("efficientnet_b0", (32, 32, 3), weights="imagenet", download_timeout=2)


@pytest.mark.parametrize("name, file_name", [("efficientnet_b0", "efficientnetb0_notop.h5"),
                                             ("efficientnet_b3", "efficientnetb3_notop.h5")])
def test_imagenet_asks_for_the_published_weights_file(isolated_keras_cache, monkeypatch, name, file_name):
    """The URL must be Keras' own file name, not one built from our layer name ("backbone")."""
    import keras.src.applications.efficientnet as eff

    asked = []

    def fake_get_file(fname, origin, **kwargs):
        asked.append(origin)
        raise Exception(f"URL fetch failure on {origin}: offline")

    monkeypatch.setattr(eff.file_utils, "get_file", fake_get_file)
    with pytest.raises(WeightsUnavailableError):
        build_backbone(name, (32, 32, 3), weights="imagenet", download_timeout=2)
    assert asked and asked[0].endswith("/" + file_name), asked


def test_imagenet_download_that_never_answers_is_bounded(isolated_keras_cache, monkeypatch):
    """A server that accepts and never replies: get_file alone would hang."""
    import keras.src.applications.efficientnet as eff

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        monkeypatch.setattr(eff, "BASE_WEIGHTS_PATH", f"http://127.0.0.1:{server.getsockname()[1]}/")
        t0 = time.perf_counter()
        with pytest.raises(WeightsUnavailableError, match="looks offline"):
            build_backbone("efficientnet_b0", (32, 32, 3), weights="imagenet", download_timeout=1.0)
        assert time.perf_counter() - t0 < 30
    finally:
        server.close()
    assert socket.getdefaulttimeout() is None  # restored


@pytest.mark.tf_only(reason="efficientnet.tfkeras calls TensorFlow ops on Keras tensors")
def test_qubvel_efficientnet_is_an_optional_backbone_source(tmp_path, isolated_keras_cache, monkeypatch):
    pytest.importorskip("efficientnet")
    import efficientnet.model as qubvel
    import efficientnet.tfkeras as efn

    model = build_classifier("efn_b0", 7, input_size=32, weights=None)
    assert model.get_layer("backbone").count_params() > 1_000_000
    assert model.get_layer("preprocess").__class__.__name__ == "Normalization"
    out = model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (1, 7)
    # the offline recipe: weights saved from the package's own model load into ours
    src = efn.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    src.set_weights([w + np.float32(0.01) for w in src.get_weights()])
    src.save_weights(tmp_path / "efn_b0.weights.h5")
    ours = build_backbone("efn_b0", (32, 32, 3), weights=tmp_path / "efn_b0.weights.h5")
    x = np.random.default_rng(2).normal(0, 1, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), src.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(qubvel, "NS_WEIGHTS_PATH", "http://imet-kit-offline.invalid/")
    with pytest.raises(WeightsUnavailableError, match="noisy-student"):
        build_backbone("efn_b0", (32, 32, 3), weights="noisy-student", download_timeout=2)


def test_efn_backbones_need_tensorflow_and_say_so_in_one_line():
    spec = get_backbone_spec("efn_b0")
    assert spec.backend == "tensorflow" and backend_problem(spec, "tensorflow") is None
    assert backend_problem(get_backbone_spec("efficientnet_b0"), "jax") is None  # keras.applications
    msg = ("backbone: 'efn_b0' is efficientnet.tfkeras.EfficientNetB0 (TensorFlow ops inside), which "
           "needs KERAS_BACKEND=tensorflow; this process runs KERAS_BACKEND=jax. Set "
           "KERAS_BACKEND=tensorflow, or use --backbone efficientnet_b0 (keras.applications: every "
           "backend; ImageNet weights only)")
    assert backend_problem(spec, "jax") == msg
    if keras.backend.backend() == "jax":  # the build refuses before any TensorFlow op is traced
        with pytest.raises(InputError) as err:
            build_classifier("efn_b0", 7, input_size=32, weights=None)
        assert str(err.value) == msg + "."


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnetv2_b0"])
def test_full_size_keras_backbone_forward(name):
    spec = get_backbone_spec(name)
    model = build_classifier(name, 1103, weights=None)
    assert model.input_shape == (None, spec.default_size, spec.default_size, 3)
    out = model.predict(np.zeros((1, spec.default_size, spec.default_size, 3), "float32"), verbose=0)
    assert out.shape == (1, 1103) and out.dtype == np.float32


@pytest.mark.parametrize("module", ["imet_kit.models.backbones"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
