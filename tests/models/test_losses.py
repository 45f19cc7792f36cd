"""Losses: oracles (Keras BCE, the ASL paper's formula), neutral settings, serialisation."""

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models.losses import AsymmetricLoss, BinaryCrossentropyLoss, BinaryFocalLoss, get_loss

RNG = np.random.default_rng(0)
Y = (RNG.random((16, 11)) < 0.3).astype("float32")
P = RNG.uniform(0.001, 0.999, (16, 11)).astype("float32")
LOGITS = RNG.normal(0, 3, (16, 11)).astype("float32")


def value(loss, y=Y, p=P):
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def test_bce_equals_keras_bce_on_probabilities_and_logits():
    assert value(BinaryCrossentropyLoss()) == pytest.approx(value(keras.losses.BinaryCrossentropy()), rel=1e-6)
    ours = value(BinaryCrossentropyLoss(from_logits=True), p=LOGITS)
    assert ours == pytest.approx(value(keras.losses.BinaryCrossentropy(from_logits=True), p=LOGITS), rel=1e-6)
    smooth = value(BinaryCrossentropyLoss(label_smoothing=0.1))
    assert smooth == pytest.approx(value(keras.losses.BinaryCrossentropy(label_smoothing=0.1)), rel=1e-6)


@pytest.mark.parametrize("from_logits", [False, True])
def test_focal_and_asl_reduce_to_bce_at_neutral_settings(from_logits):
    p = LOGITS if from_logits else P
    bce = value(BinaryCrossentropyLoss(from_logits=from_logits), p=p)
    focal = value(BinaryFocalLoss(gamma=0.0, alpha=None, from_logits=from_logits), p=p)
    asl = value(AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0, from_logits=from_logits), p=p)
    assert focal == pytest.approx(bce, rel=1e-6)
    assert asl == pytest.approx(bce, rel=1e-6)
    # and they are not BCE away from neutral
    assert value(BinaryFocalLoss(gamma=2.0, from_logits=from_logits), p=p) < bce
    assert value(AsymmetricLoss(from_logits=from_logits), p=p) < bce


def test_asl_matches_the_papers_formula():
    """Ridnik et al.: L+ = (1-p)^g+ log p, L- = p_m^g- log(1-p_m), p_m = max(p - m, 0)."""
    gn, gp, m = 4.0, 1.0, 0.05
    p = P.astype(np.float64)
    p_m = np.maximum(p - m, 0)
    per = Y * (1 - p) ** gp * np.log(p) + (1 - Y) * p_m**gn * np.log(1 - p_m)
    expected = -per.mean(axis=1).mean()
    assert value(AsymmetricLoss(gamma_neg=gn, gamma_pos=gp, clip=m)) == pytest.approx(expected, rel=1e-5)


def test_focal_matches_its_formula_with_alpha():
    g, a = 2.0, 0.25
    p = P.astype(np.float64)
    per = a * Y * (1 - p) ** g * np.log(p) + (1 - a) * (1 - Y) * p**g * np.log(1 - p)
    assert value(BinaryFocalLoss(gamma=g, alpha=a)) == pytest.approx(-per.mean(), rel=1e-5)


@pytest.mark.parametrize("loss", [
    BinaryCrossentropyLoss(label_smoothing=0.05),
    BinaryFocalLoss(gamma=1.5, alpha=0.3),
    AsymmetricLoss(gamma_neg=3, gamma_pos=1, clip=0.02),
    AsymmetricLoss(from_logits=True),
])
def test_loss_serialisation_round_trip(loss):
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    p = LOGITS if loss.from_logits else P
    assert value(again, p=p) == value(loss, p=p)


@pytest.mark.parametrize("name", ["bce", "focal", "asl"])
def test_compiled_model_with_each_loss_survives_save_load(tmp_path, name):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(11, activation="sigmoid")])
    model.compile(optimizer="adam", loss=get_loss(name))
    x = RNG.random((16, 4)).astype("float32")
    model.fit(x, Y, epochs=1, verbose=0)  # builds the optimizer state that is saved too
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(model.loss) and loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, Y, verbose=0) == model.evaluate(x, Y, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_asl_trains_and_gradients_are_finite():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(11, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=AsymmetricLoss())
    hist = model.fit(RNG.random((16, 4)).astype("float32"), Y, epochs=3, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_get_loss_errors_name_the_choices():
    with pytest.raises(InputError, match="Unknown loss 'ce'. Expected one of: asl, bce, focal"):
        get_loss("ce")
    with pytest.raises(InputError, match="gamma_neg"):
        get_loss("asl", gamma_neg=-1)
    with pytest.raises(InputError, match="get_loss"):
        get_loss("focal", gama=2)


@pytest.mark.parametrize("module", ["imet_kit.models.losses"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- class_weight: per-class positive weights in BCE (issue 12, the long tail) ---------------
def test_pos_weight_scales_only_the_positive_term():
    from imet_kit.models.losses import class_positive_weights

    w = RNG.uniform(0.5, 2.0, 11).astype("float32")
    p = np.clip(P, 1e-7, 1 - 1e-7).astype(np.float64)
    manual = -np.mean(w * Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=-1).mean()
    assert value(BinaryCrossentropyLoss(pos_weight=w)) == pytest.approx(manual, rel=1e-5)
    assert value(BinaryCrossentropyLoss(pos_weight=np.ones(11))) == pytest.approx(
        value(BinaryCrossentropyLoss()), rel=1e-6)
    back = BinaryCrossentropyLoss.from_config(BinaryCrossentropyLoss(pos_weight=w).get_config())
    assert value(back) == pytest.approx(value(BinaryCrossentropyLoss(pos_weight=w)), rel=1e-6)
    assert class_positive_weights(Y, "none") is None


def test_inverse_log_weights_favour_rare_labels_and_keep_the_positive_mass():
    from imet_kit.models.losses import class_positive_weights

    y = np.zeros((100, 4))
    y[:80, 0], y[:20, 1], y[:3, 2] = 1, 1, 1  # label 3 never occurs
    w = class_positive_weights(y, "inverse_log")
    n = y.sum(0)
    raw = 1 / np.log1p(np.maximum(n, 1))
    np.testing.assert_allclose(w / w[0], raw / raw[0])  # proportional to 1 / ln(1 + n_c)
    assert (n * w).sum() == pytest.approx(n.sum())  # the positives weigh as much in total
    assert w[2] > w[1] > w[0] and np.isfinite(w).all()
    with pytest.raises(InputError, match="Expected one of: none, inverse_log"):
        class_positive_weights(y, "inverse")


def test_class_weight_is_checked_with_the_config():
    from imet_kit.config import TrainConfig
    from imet_kit.training.validate import name_problems

    assert not name_problems(TrainConfig(weights=None, class_weight="inverse_log"))
    problems = name_problems(TrainConfig(weights=None, class_weight="inverse_log", loss="focal"))
    assert any("class_weight: 'inverse_log' weights the BCE positives; expected loss 'bce'" in p
               for p in problems)
    assert any("class_weight: unknown 'x'" in p
               for p in name_problems(TrainConfig(weights=None, class_weight="x")))


def test_compiled_model_with_class_weights_survives_save_load(tmp_path):
    """last.keras keeps the weighted loss, so a resumed fold trains on the same objective."""
    from imet_kit.models.losses import class_positive_weights

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(11, activation="sigmoid")])
    model.compile(optimizer="adam",
                  loss=get_loss("bce", pos_weight=class_positive_weights(Y).tolist()))
    x = RNG.random((16, 4)).astype("float32")
    model.fit(x, Y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.loss.pos_weight == model.loss.pos_weight
    assert loaded.evaluate(x, Y, verbose=0) == model.evaluate(x, Y, verbose=0)
