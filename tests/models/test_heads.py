"""Head and classifier: GeM, save/load round trips, freezing, mixed precision."""

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models import (
    AvgMaxPooling2D,
    GeMPooling2D,
    build_classifier,
    load_classifier,
    pooling_layer,
    set_backbone_trainable,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (4, 33, 31, 3)).astype("float32")


def test_gem_equals_average_pooling_at_p_1():
    x = RNG.uniform(0.01, 5.0, (3, 5, 7, 6)).astype("float32")
    gem = GeMPooling2D(p=1.0)(x)
    avg = keras.layers.GlobalAveragePooling2D()(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gem), keras.ops.convert_to_numpy(avg), rtol=1e-5)


def test_gem_formula_and_large_p_tends_to_max():
    x = RNG.uniform(0.01, 5.0, (2, 4, 4, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(GeMPooling2D(p=3.0)(x))
    np.testing.assert_allclose(got, np.mean(x**3, axis=(1, 2)) ** (1 / 3), rtol=1e-5)
    big = keras.ops.convert_to_numpy(GeMPooling2D(p=200.0)(x * 1e3))  # x ** 200 would overflow
    assert np.isfinite(big).all()
    np.testing.assert_allclose(big, 1e3 * x.max(axis=(1, 2)), rtol=0.05)


def test_gem_p_is_learned_unless_frozen():
    assert tuple(GeMPooling2D()(np.ones((1, 2, 2, 1), "float32")).shape) == (1, 1)
    layer = GeMPooling2D(trainable_p=False)
    layer.build((None, 2, 2, 1))
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
    with pytest.raises(InputError, match="p > 0"):
        GeMPooling2D(p=0)


def test_gem_layer_round_trip_keeps_learned_p(tmp_path):
    inp = keras.Input((5, 5, 4))
    model = keras.Model(inp, keras.layers.Dense(3)(GeMPooling2D(p=3.0, eps=1e-5, name="gem")(inp)))
    model.get_layer("gem").p_weight.assign(2.25)
    model.save(tmp_path / "gem.keras")
    loaded = keras.saving.load_model(tmp_path / "gem.keras")
    x = RNG.uniform(0, 2, (2, 5, 5, 4)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert float(loaded.get_layer("gem").p_weight.numpy()) == 2.25
    assert loaded.get_layer("gem").get_config()["eps"] == 1e-5


def test_avgmax_is_max_then_average_concatenated():
    x = RNG.normal(size=(3, 5, 7, 4)).astype("float32")
    got = keras.ops.convert_to_numpy(AvgMaxPooling2D()(x))
    np.testing.assert_allclose(got, np.concatenate([x.max(axis=(1, 2)), x.mean(axis=(1, 2))], -1), rtol=1e-6)
    layer = pooling_layer("avgmax", name="pool")
    assert isinstance(layer, AvgMaxPooling2D) and layer.name == "pool"
    assert layer.compute_output_shape((None, 5, 7, 4)) == (None, 8)
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, AvgMaxPooling2D) and again.get_config() == layer.get_config()
    with pytest.raises(InputError, match="avg, max, gem, avgmax"):
        pooling_layer("sum")


@pytest.mark.parametrize("pooling", ["avg", "max", "gem", "avgmax"])
def test_classifier_round_trip_identical_outputs(tmp_path, pooling):
    model = build_classifier("tiny_cnn", 6, input_size=(33, 31), pooling=pooling, embedding_dim=16)
    names = [layer.name for layer in model.layers]
    assert {"backbone", "pool", "embedding", "logits", "probs"} <= set(names)
    assert model.get_layer("embedding").units == 16
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_classifier(path)
    np.testing.assert_array_equal(model.predict(IMAGES, verbose=0), loaded.predict(IMAGES, verbose=0))


def test_embedding_dim_0_feeds_the_pooled_features_to_the_sigmoid_layer():
    # the reference CNN's head: pool -> dropout -> Dense(C) -> sigmoid, no hidden Dense layer
    model = build_classifier("tiny_cnn", 6, input_size=32, pooling="avgmax", embedding_dim=0)
    names = [layer.name for layer in model.layers]
    assert "embedding" not in names and names[-4:] == ["pool", "dropout", "logits", "probs"]
    pooled = model.get_layer("pool").output.shape[-1]
    assert model.get_layer("logits").kernel.shape == (pooled, 6)
    x = RNG.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    feats = keras.Model(model.inputs, model.get_layer("pool").output).predict(x, verbose=0)
    logits = model.get_layer("logits")
    want = 1 / (1 + np.exp(-(feats @ keras.ops.convert_to_numpy(logits.kernel)
                             + keras.ops.convert_to_numpy(logits.bias))))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="embedding_dim >= 0"):
        build_classifier("tiny_cnn", 6, input_size=32, embedding_dim=-1)


def test_classifier_takes_0_255_images_and_outputs_probabilities():
    model = build_classifier("tiny_cnn", 5, input_size=32)
    assert model.get_layer("preprocess").get_config()["scale"] == pytest.approx(1 / 255)
    out = model.predict(RNG.uniform(0, 255, (2, 32, 32, 3)).astype("float32"), verbose=0)
    assert out.shape == (2, 5) and out.dtype == np.float32 and (out > 0).all() and (out < 1).all()
    with pytest.raises(InputError, match="Unknown pooling 'mean'"):
        pooling_layer("mean")
    with pytest.raises(InputError, match="dropout"):
        build_classifier("tiny_cnn", 5, input_size=32, dropout=1.0)


def test_freeze_then_unfreeze_backbone_keeps_batchnorm_frozen():
    model = build_classifier("tiny_cnn", 3, input_size=32)
    n_all = len(model.trainable_weights)
    assert set_backbone_trainable(model, False) == 4  # embedding + logits kernels and biases
    n_unfrozen = set_backbone_trainable(model, True)
    bns = [lay for lay in model.get_layer("backbone").layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert bns and not any(b.trainable for b in bns)
    assert n_unfrozen == n_all - 2 * len(bns)  # gamma and beta of each BN stay frozen
    assert set_backbone_trainable(model, True, freeze_batchnorm=False) == n_all
    with pytest.raises(InputError, match="no layer named 'backbone'"):
        set_backbone_trainable(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), False)


def test_frozen_backbone_does_not_change_during_training():
    model = build_classifier("tiny_cnn", 3, input_size=32)
    set_backbone_trainable(model, False)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    before = [w.copy() for w in model.get_layer("backbone").get_weights()]
    head = model.get_layer("logits").get_weights()[0].copy()
    x = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, (RNG.random((8, 3)) < 0.5).astype("float32"), epochs=1, verbose=0)
    for a, b in zip(before, model.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)  # BN moving statistics too: inference mode
    assert not np.array_equal(head, model.get_layer("logits").get_weights()[0])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_output_stays_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_classifier("tiny_cnn", 4, input_size=32, pooling="gem")
        assert model.get_layer("embedding").compute_dtype == policy.split("_")[1]
        out = model.predict(RNG.uniform(0, 255, (2, 32, 32, 3)).astype("float32"), verbose=0)
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("module", ["imet_kit.models.heads", "imet_kit.models.classifier"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
