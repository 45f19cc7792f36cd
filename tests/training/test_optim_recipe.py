"""imet_kit.training.optim: the recipe's optimizer options reach Keras, and survive save/load."""

import doctest

import keras
import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.training import optim
from imet_kit.training.schedules import OneCycleSchedule, WarmupCosineSchedule

BASE = TrainConfig(backbone="tiny_cnn", weights=None, epochs=10)


def test_defaults_are_the_optimizers_own():
    adam = optim.make_optimizer(BASE, 20)
    assert isinstance(adam, keras.optimizers.Adam) and not adam.use_ema
    assert adam.clipnorm is None and adam.weight_decay is None and not adam.gradient_accumulation_steps
    assert optim.make_optimizer(BASE.replace(optimizer="adamw"), 20).weight_decay == 0.004
    assert optim.optimizer_callbacks(BASE) == []


def test_every_recipe_option_reaches_the_keras_optimizer():
    cfg = BASE.replace(ema=0.99, clipnorm=2.0, weight_decay=0.05, grad_accum_steps=3)
    for name, cls in (("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
                      ("sgd", keras.optimizers.SGD)):
        opt = optim.make_optimizer(cfg.replace(optimizer=name), 20)
        assert isinstance(opt, cls)
        assert (opt.use_ema, opt.ema_momentum, opt.clipnorm, opt.weight_decay,
                opt.gradient_accumulation_steps) == (True, 0.99, 2.0, 0.05, 3)
    (swap,) = optim.optimizer_callbacks(cfg, resumed=True)
    assert isinstance(swap, keras.callbacks.SwapEMAWeights) and swap.swap_on_epoch and swap.resumed


def test_schedules_by_name():
    cos = optim.make_schedule(BASE.replace(lr_schedule="cosine", warmup_epochs=1), 20)
    assert isinstance(cos, WarmupCosineSchedule) and (cos.total_steps, cos.warmup_steps) == (200, 20)
    one = optim.make_schedule(BASE.replace(lr_schedule="onecycle", lr=0.01), 20)
    assert isinstance(one, OneCycleSchedule) and (one.max_lr, one.total_steps, one.warmup_steps) == \
        (0.01, 200, 60)  # 30 % of the run without --warmup-epochs
    one = optim.make_schedule(BASE.replace(lr_schedule="onecycle", warmup_epochs=2), 20)
    assert one.warmup_steps == 40
    assert optim.make_schedule(BASE, 20) == BASE.lr


def test_gradient_accumulation_updates_every_n_batches_and_schedule_counts_batches():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    cfg = BASE.replace(grad_accum_steps=2, lr=0.1, optimizer="sgd", lr_schedule="onecycle")
    opt = optim.make_optimizer(cfg, 4)
    model.compile(optimizer=opt, loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
    w0 = model.get_weights()[0].copy()
    model.train_on_batch(x[:2], y[:2])
    np.testing.assert_array_equal(model.get_weights()[0], w0)  # first batch only accumulates
    model.train_on_batch(x[:2], y[:2])
    assert not np.array_equal(model.get_weights()[0], w0)
    assert int(opt.iterations) == 1 and int(opt._iterations) == 2
    assert float(opt.learning_rate) == pytest.approx(float(opt._learning_rate(2)))


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_optimizer_with_every_option_round_trips_in_a_saved_model(tmp_path, schedule):
    cfg = BASE.replace(ema=0.9, clipnorm=1.0, weight_decay=0.01, grad_accum_steps=2,
                       lr_schedule=schedule, optimizer="adamw")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optim.make_optimizer(cfg, 4), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    a, b = model.optimizer, loaded.optimizer
    assert (b.use_ema, b.ema_momentum, b.clipnorm, b.weight_decay, b.gradient_accumulation_steps) == \
        (True, 0.9, 1.0, 0.01, 2)
    assert type(b._learning_rate) is type(a._learning_rate)
    assert b._learning_rate.get_config() == a._learning_rate.get_config()
    for va, vb in zip(a.variables, b.variables):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))  # EMA slots and accumulators too


def test_docstring_examples():
    assert doctest.testmod(optim).failed == 0
