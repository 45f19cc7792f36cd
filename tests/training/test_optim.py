"""imet_kit.training.optim: the optimizer, learning rate schedule and XLA setting a config names."""

import keras
import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.training.optim import LR_SCHEDULES, OPTIMIZERS, jit_compile, make_optimizer
from imet_kit.training.precision import default_jit_compile
from imet_kit.training.schedules import WarmupCosineSchedule, lr_values


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam),
                                       ("adamw", keras.optimizers.AdamW),
                                       ("sgd", keras.optimizers.SGD)])
def test_each_named_optimizer_with_a_constant_rate(name, cls):
    opt = make_optimizer(TrainConfig(optimizer=name, lr=2e-3), steps_per_epoch=10)
    assert type(opt) is cls
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(2e-3)


def test_sgd_uses_nesterov_momentum():
    opt = make_optimizer(TrainConfig(optimizer="sgd"), steps_per_epoch=1)
    assert (opt.momentum, opt.nesterov) == (0.9, True)


def test_cosine_schedule_spans_the_whole_run():
    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine", epochs=4, warmup_epochs=1.5)
    opt = make_optimizer(cfg, steps_per_epoch=10)
    # the schedule as the optimizer saves it into last.keras (a resume restores this one)
    sched = keras.saving.deserialize_keras_object(opt.get_config()["learning_rate"])
    assert isinstance(sched, WarmupCosineSchedule)
    assert (sched.peak_lr, sched.total_steps, sched.warmup_steps) == (1e-3, 40, 15)
    lr = lr_values(sched, 41)
    assert lr[0] == 0.0 and lr[15] == pytest.approx(1e-3) and lr[40] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(lr[:16]) > 0) and np.all(np.diff(lr[15:]) <= 1e-12)


def test_every_name_the_config_accepts_builds():
    for opt in OPTIMIZERS:
        for sched in LR_SCHEDULES:
            assert make_optimizer(TrainConfig(optimizer=opt, lr_schedule=sched), 5) is not None


def test_jit_compile_setting():
    assert jit_compile(TrainConfig(jit_compile="on")) is True
    assert jit_compile(TrainConfig(jit_compile="off")) is False
    assert jit_compile(TrainConfig(jit_compile="auto")) == default_jit_compile()
