"""Warm-up + sustain + cosine schedule: shape, serialisation inside an optimizer, plot."""

import math

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.plots.training import plot_lr_schedule
from imet_kit.training.schedules import OneCycleSchedule, WarmupCosineSchedule, lr_values


def test_schedule_shape_by_hand():
    s = WarmupCosineSchedule(1e-3, total_steps=100, warmup_steps=10, sustain_steps=20, start_lr=1e-5, min_lr=1e-6)
    lr = lr_values(s, 130)
    np.testing.assert_allclose(lr[:11], np.linspace(1e-5, 1e-3, 11), rtol=1e-5)  # linear ramp
    np.testing.assert_allclose(lr[10:31], 1e-3, rtol=1e-6)  # sustain
    t = (np.arange(30, 101) - 30) / 70
    np.testing.assert_allclose(lr[30:101], 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + np.cos(math.pi * t)), rtol=1e-4)
    np.testing.assert_allclose(lr[100:], 1e-6, rtol=1e-5)  # floor after total_steps
    assert np.all(np.diff(lr[30:]) <= 1e-12)


def test_from_epochs_and_validation():
    s = WarmupCosineSchedule.from_epochs(2e-3, epochs=10, steps_per_epoch=50, warmup_epochs=1, sustain_epochs=0.5)
    assert (s.total_steps, s.warmup_steps, s.sustain_steps) == (500, 50, 25)
    with pytest.raises(InputError, match="warmup_steps"):
        WarmupCosineSchedule(1e-3, total_steps=10, warmup_steps=11)
    with pytest.raises(InputError, match="min_lr <= peak_lr"):
        WarmupCosineSchedule(1e-3, total_steps=10, min_lr=1e-2)


def test_schedule_round_trips_inside_a_saved_model(tmp_path):
    s = WarmupCosineSchedule(1e-2, total_steps=40, warmup_steps=4, start_lr=1e-4, min_lr=1e-5)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, WarmupCosineSchedule) and again.get_config() == s.get_config()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=s), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 2 steps
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    sched = loaded.optimizer._learning_rate
    assert isinstance(sched, WarmupCosineSchedule) and sched.get_config() == s.get_config()
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(s(2)))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_one_cycle_matches_pytorch_formula_by_hand():
    """PyTorch OneCycleLR(anneal_strategy='cos'): _annealing_cos(start, end, pct)."""
    s = OneCycleSchedule(0.02, total_steps=200, warmup_steps=50, div_factor=20.0, final_div_factor=50.0)
    lr = lr_values(s, 240)
    start, end = 0.02 / 20, 0.02 / 20 / 50

    def cos(a, b, pct):
        return b + (a - b) / 2 * (1 + np.cos(math.pi * pct))

    np.testing.assert_allclose(lr[:51], cos(start, 0.02, np.arange(51) / 50), rtol=1e-5)
    np.testing.assert_allclose(lr[50:201], cos(0.02, end, np.arange(151) / 150), rtol=1e-4)
    np.testing.assert_allclose(lr[200:], end, rtol=1e-5)  # floor after total_steps
    assert lr.argmax() == 50 and np.all(np.diff(lr[:51]) > 0) and np.all(np.diff(lr[50:201]) < 0)
    with pytest.raises(InputError, match="warmup_steps <= total_steps"):
        OneCycleSchedule(1e-3, total_steps=10, warmup_steps=11)
    with pytest.raises(InputError, match="div_factor >= 1"):
        OneCycleSchedule(1e-3, total_steps=10, div_factor=0.5)


def test_one_cycle_round_trips_inside_a_saved_model(tmp_path):
    s = OneCycleSchedule(1e-2, total_steps=40, warmup_steps=12, div_factor=10.0)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, OneCycleSchedule) and again.get_config() == s.get_config()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=s), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    sched = loaded.optimizer._learning_rate
    assert isinstance(sched, OneCycleSchedule) and sched.get_config() == s.get_config()
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(s(2)))


def test_plot_writes_a_png(tmp_path):
    s = WarmupCosineSchedule.from_epochs(1e-3, 12, 100, warmup_epochs=2, sustain_epochs=1, start_lr=1e-5, min_lr=1e-5)
    out = plot_lr_schedule(lr_values(s, 1300), tmp_path / "plots" / "lr.png", steps_per_epoch=100)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000


@pytest.mark.parametrize("module", ["imet_kit.training.schedules"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
