"""Margin heads: logits against the formulas computed by hand from known angles."""

import math

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models.margins import (
    ArcFace,
    CosFace,
    SubCenterArcFace,
    adaptive_margins,
    build_embedding_model,
    topk_metrics,
)

ANGLES = np.array([0.3, 1.2, 1.8, 2.9])  # class centres at these angles from the embedding
S, M = 10.0, 0.5


def _head_with_angles(head, angles=ANGLES):
    """Embedding (1, 0); class c's centre at angle angles[c] in the plane, so cos(theta_c) is known."""
    x = np.array([[2.0, 0.0]], "float32")  # not unit length: the head must normalise
    head.build([(None, 2), (None,)])
    kernel = np.stack([np.cos(angles), np.sin(angles)]).astype("float32") * 3.0
    head.kernel.assign(kernel)
    return x


def _arc(theta, m):
    """The ArcFace target by hand: cos(theta + m), or cos(theta) - sin(pi - m) m past pi - m."""
    return math.cos(theta + m) if math.cos(theta) > math.cos(math.pi - m) else math.cos(theta) - math.sin(math.pi - m) * m


@pytest.mark.parametrize("target", [0, 1, 2, 3])
def test_arcface_logits_match_formula(target):
    head = ArcFace(4, scale=S, margin_radians=M)
    x = _head_with_angles(head)
    got = keras.ops.convert_to_numpy(head([x, np.array([target])]))[0]
    want = S * np.cos(ANGLES)
    want[target] = S * _arc(ANGLES[target], M)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_arcface_fallback_branch_is_taken_past_pi_minus_m():
    assert math.cos(2.9) <= math.cos(math.pi - M)  # so target 3 above exercised the fallback
    head = ArcFace(4, scale=S, margin_radians=M)
    x = _head_with_angles(head)
    got = keras.ops.convert_to_numpy(head([x, np.array([3])]))[0, 3]
    assert got == pytest.approx(S * (math.cos(2.9) - math.sin(math.pi - M) * M), abs=1e-4)
    assert got != pytest.approx(S * math.cos(2.9 + M), abs=1e-2)


def test_easy_margin_keeps_cosine_when_negative():
    head = ArcFace(4, scale=S, margin_radians=M, easy_margin=True)
    x = _head_with_angles(head)
    got = keras.ops.convert_to_numpy(head([x, np.array([2])]))[0, 2]  # theta 1.8: cos < 0
    assert got == pytest.approx(S * math.cos(1.8), abs=1e-4)
    got = keras.ops.convert_to_numpy(head([x, np.array([0])]))[0, 0]
    assert got == pytest.approx(S * math.cos(0.3 + M), abs=1e-4)


def test_label_smoothing_mixes_margin_into_every_class():
    eps = 0.2
    head = ArcFace(4, scale=S, margin_radians=M, label_smoothing=eps)
    x = _head_with_angles(head)
    got = keras.ops.convert_to_numpy(head([x, np.array([1])]))[0]
    phi = np.array([_arc(t, M) for t in ANGLES])
    onehot = np.full(4, eps / 4)
    onehot[1] += 1 - eps
    np.testing.assert_allclose(got, S * (onehot * phi + (1 - onehot) * np.cos(ANGLES)), atol=1e-4)


def test_no_margin_in_inference_or_without_labels():
    head = ArcFace(4, scale=S, margin_radians=M)
    x = _head_with_angles(head)
    plain = S * np.cos(ANGLES)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head([x, np.array([0])], training=False))[0], plain, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(x))[0], plain, atol=1e-4)


def test_cosface_logits_match_formula():
    head = CosFace(4, scale=S, margin_cosine=0.35)
    x = _head_with_angles(head)
    got = keras.ops.convert_to_numpy(head([x, np.array([1])]))[0]
    want = S * np.cos(ANGLES)
    want[1] = S * (math.cos(1.2) - 0.35)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_subcenter_with_one_subcenter_is_arcface():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 5, size=16)
    arc = ArcFace(5, scale=S, margin_radians=M)
    sub = SubCenterArcFace(5, n_subcenters=1, scale=S, margin_radians=M)
    arc.build([(None, 6), (None,)])
    sub.build([(None, 6), (None,)])
    sub.kernel.assign(arc.kernel)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sub([x, y])),
                               keras.ops.convert_to_numpy(arc([x, y])), atol=1e-5)


def test_subcenter_uses_closest_subcenter():
    # Class 0 has sub-centres at 1.2 and 0.3 rad; class 1 at 2.9 and 1.8 rad.
    head = SubCenterArcFace(2, n_subcenters=2, scale=S, margin_radians=M)
    x = _head_with_angles(head, np.array([1.2, 0.3, 2.9, 1.8]))
    got = keras.ops.convert_to_numpy(head([x, np.array([0])]))[0]
    np.testing.assert_allclose(got, [S * math.cos(0.3 + M), S * math.cos(1.8)], atol=1e-4)


def test_adaptive_margins_larger_for_rare_classes():
    m = adaptive_margins([1000, 10, 1, 100], margin_min_radians=0.1, margin_max_radians=0.4)
    assert m[2] == pytest.approx(0.4) and m[0] == pytest.approx(0.1)
    assert m[2] > m[1] > m[3] > m[0]
    assert np.all(adaptive_margins([5, 5]) == pytest.approx(0.5))
    head = SubCenterArcFace(4, n_subcenters=1, scale=S, class_counts=[1000, 10, 1, 100],
                            margin_min_radians=0.1, margin_max_radians=0.4)
    x = _head_with_angles(head)
    for target in (0, 2):
        got = keras.ops.convert_to_numpy(head([x, np.array([target])]))[0, target]
        assert got == pytest.approx(S * _arc(ANGLES[target], m[target]), abs=1e-4)


@pytest.mark.parametrize("head", [
    ArcFace(5, scale=12.0, margin_radians=0.3, easy_margin=True, label_smoothing=0.1),
    CosFace(5, scale=12.0, margin_cosine=0.2),
    SubCenterArcFace(5, n_subcenters=3, class_counts=[1, 2, 3, 40, 50], margin_max_radians=0.45),
], ids=["arcface", "cosface", "subcenter"])
def test_heads_round_trip_through_save_and_load(head, tmp_path):
    emb, lab = keras.Input((6,)), keras.Input((), dtype="int32")
    model = keras.Model([emb, lab], head([emb, lab]))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 6)).astype("float32"), np.array([0, 3, 4, 1])
    model.save(tmp_path / "head.keras")
    loaded = keras.saving.load_model(tmp_path / "head.keras")
    assert type(loaded.layers[-1]) is type(head)
    assert loaded.layers[-1].get_config() == head.get_config()
    for training in (True, False):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded([x, y], training=training)),
                                   keras.ops.convert_to_numpy(model([x, y], training=training)), atol=1e-6)


def test_build_embedding_model_trains_and_gives_unit_embeddings():
    backbone = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3)])
    models = build_embedding_model(backbone, 3, head="arcface", embedding_dim=8, scale=8.0,
                                   preprocess=keras.layers.Rescaling(1 / 255.0),
                                   pooling=keras.layers.GlobalMaxPooling2D())
    models.train_model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                               metrics=topk_metrics(3))
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 12, 12, 3)).astype("float32"), np.arange(8) % 3
    hist = models.train_model.fit({"image": x, "label": y}, y, epochs=1, batch_size=4, verbose=0)
    assert {"loss", "top1", "top5", "top10"} <= set(hist.history)
    emb = models.embedding_model.predict(x, verbose=0)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_bad_arguments_are_input_errors():
    backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(InputError, match="Unknown margin head 'arc'. Expected one of: arcface"):
        build_embedding_model(backbone, 3, head="arc")
    with pytest.raises(InputError, match="margin_radians"):
        ArcFace(3, margin_radians=2.0)
    with pytest.raises(InputError, match="one per class"):
        SubCenterArcFace(3, class_counts=[1, 2])
