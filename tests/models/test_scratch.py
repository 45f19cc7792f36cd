"""imet_kit.models.scratch: the from-scratch CPU backbones (plain_cnn, resnet_small)."""

import keras
import numpy as np
import pytest

from imet_kit.models import build_backbone, build_classifier, get_backbone_spec, load_classifier


def test_registered_with_their_input_specs():
    for name in ("plain_cnn", "resnet_small"):
        spec = get_backbone_spec(name)
        assert (spec.default_size, spec.input_range, spec.source, spec.pretrained) == (96, "0-1", "imet_kit", ())


@pytest.mark.parametrize("name, shape, params", [
    ("plain_cnn", (None, 6, 6, 256), (0.8e6, 1.0e6)),
    ("resnet_small", (None, 6, 6, 256), (1.1e6, 1.4e6)),
])
def test_shapes_size_and_batchnorm_momentum(name, shape, params):
    net = build_backbone(name, (96, 96, 3))
    assert net.output_shape == shape and params[0] < net.count_params() < params[1]
    bns = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.momentum == 0.9 for bn in bns)
    odd = build_backbone(name, (33, 80, 3))  # odd, non-square sizes build too
    assert odd.output_shape[-1] == 256 and odd.output_shape[1] < odd.output_shape[2]


def test_plain_cnn_is_the_reference_cnns_conv_stack():
    net = build_backbone("plain_cnn", (96, 96, 3))
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [24, 24, 48, 48, 96, 96, 160, 160, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in net.layers) == 4


@pytest.mark.parametrize("name", ["plain_cnn", "resnet_small"])
def test_classifier_round_trip_and_it_learns(tmp_path, name):
    model = build_classifier(name, 3, input_size=32, pooling="avgmax", embedding_dim=16)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = np.zeros((16, 3), "float32")
    y[:8, 0] = 1
    x[:8, :, :16] = 255.0  # label 0: a bright left half
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    hist = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(load_classifier(tmp_path / "m.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))
