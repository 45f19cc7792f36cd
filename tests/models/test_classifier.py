"""imet_kit.models.classifier: the classifier's shape and layer names (odd input sizes catch
height/width swaps), probabilities out, the input-size check, and freezing / unfreezing the backbone
with BatchNorm kept frozen."""

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models import load_classifier
from imet_kit.models.classifier import BACKBONE_LAYER, build_classifier, set_backbone_trainable
from imet_kit.models.loading import load_model


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_classifier("tiny_cnn", 5, input_size=(33, 31), embedding_dim=8, dropout=0.5)


def test_shapes_names_and_probabilities(model):
    assert model.input_shape == (None, 33, 31, 3) and model.output_shape == (None, 5)
    for name in (BACKBONE_LAYER, "pool", "embedding", "logits", "probs"):
        model.get_layer(name)
    assert model.get_layer("embedding").output.shape[-1] == 8
    x = np.random.default_rng(0).uniform(0, 255, (2, 33, 31, 3)).astype(np.float32)
    p = keras.ops.convert_to_numpy(model(x, training=False))
    assert p.dtype == np.float32 and ((p > 0) & (p < 1)).all()
    np.testing.assert_array_equal(p, keras.ops.convert_to_numpy(model(x, training=False)))


def test_default_input_size_is_the_backbones():
    assert build_classifier("tiny_cnn", 2).input_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("size", [7, (32,), (32, 32, 3), (32.0, 32), "32", (32, -1)])
def test_bad_input_size(size):
    with pytest.raises(InputError, match=r"input_size must be an int >= 8 or \(height, width\)"):
        build_classifier("tiny_cnn", 2, input_size=size)


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(InputError, match="Unknown backbone 'tiny'. Expected one of: .*tiny_cnn"):
        build_classifier("tiny", 2)


def _bn_layers(model):
    net = model.get_layer(BACKBONE_LAYER)
    return [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_freeze_and_unfreeze_the_backbone():
    model = build_classifier("tiny_cnn", 3, input_size=32)
    head = 4  # embedding and logits: kernel + bias each
    assert set_backbone_trainable(model, False) == head == len(model.trainable_weights)
    assert not model.get_layer(BACKBONE_LAYER).trainable
    n_conv = 3  # tiny_cnn: three bias-free convolutions
    assert set_backbone_trainable(model, True) == head + n_conv  # BatchNorm stays frozen
    assert all(not bn.trainable for bn in _bn_layers(model))
    n_bn = 2 * len(_bn_layers(model))  # gamma and beta
    assert set_backbone_trainable(model, True, freeze_batchnorm=False) == head + n_conv + n_bn
    assert all(bn.trainable for bn in _bn_layers(model))


def test_frozen_backbone_does_not_change_in_a_training_step():
    model = build_classifier("tiny_cnn", 3, input_size=32, dropout=0.0)
    set_backbone_trainable(model, False)
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    before = [w.copy() for w in model.get_layer(BACKBONE_LAYER).get_weights()]
    head_before = model.get_layer("logits").get_weights()[0].copy()
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    for a, b in zip(before, model.get_layer(BACKBONE_LAYER).get_weights()):
        np.testing.assert_array_equal(a, b)  # BatchNorm statistics too: inference mode
    assert not np.array_equal(head_before, model.get_layer("logits").get_weights()[0])


def test_a_model_without_a_backbone_layer_is_refused():
    inp = keras.Input((4,))
    other = keras.Model(inp, keras.layers.Dense(2)(inp), name="plain")
    with pytest.raises(InputError, match="Model 'plain' has no layer named 'backbone'"):
        set_backbone_trainable(other, False)


def test_load_classifier_is_the_one_loader():
    assert load_classifier is load_model
