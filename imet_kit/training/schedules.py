"""Learning-rate schedules: linear warm-up, sustain, cosine decay; and one-cycle.

:class:`WarmupCosineSchedule` has the shape of the 2019-2020 Kaggle TPU notebooks (ramp up from
a small rate, hold the peak, then decay to a floor), with the decay cosine rather than
exponential so it reaches ``min_lr`` exactly at ``total_steps``. :class:`OneCycleSchedule` is
fastai's / PyTorch's one-cycle policy.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from imet_kit.errors import InputError


@keras.saving.register_keras_serializable(package="imet_kit")
class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up from ``start_lr`` to ``peak_lr``, hold, cosine-decay to ``min_lr``.

    Steps are optimizer iterations. After ``total_steps`` the rate stays at ``min_lr``.

    Args:
        peak_lr: the rate after warm-up (scale with the number of replicas).
        total_steps: steps until the decay reaches ``min_lr``.
        warmup_steps: linear ramp length.
        sustain_steps: steps held at ``peak_lr`` after the ramp.
        start_lr: rate at step 0.
        min_lr: floor of the decay.
        name: for the config.

    Example:
        >>> s = WarmupCosineSchedule(1e-3, total_steps=100, warmup_steps=10, start_lr=1e-4)
        >>> [round(float(s(i)), 6) for i in (0, 5, 10, 55, 100)]
        [0.0001, 0.00055, 0.001, 0.0005, 0.0]
    """

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                 sustain_steps: int = 0, start_lr: float = 0.0, min_lr: float = 0.0,
                 name: str = "warmup_cosine"):
        super().__init__()
        if total_steps < 1 or warmup_steps < 0 or sustain_steps < 0 or warmup_steps + sustain_steps > total_steps:
            raise InputError(
                f"Need total_steps >= 1 and 0 <= warmup_steps + sustain_steps <= total_steps; received "
                f"total_steps={total_steps}, warmup_steps={warmup_steps}, sustain_steps={sustain_steps}."
            )
        if min(peak_lr, start_lr, min_lr) < 0 or min_lr > peak_lr:
            raise InputError(f"Rates must be >= 0 with min_lr <= peak_lr; received peak_lr={peak_lr}, "
                             f"start_lr={start_lr}, min_lr={min_lr}.")
        self.peak_lr = float(peak_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.sustain_steps = int(sustain_steps)
        self.start_lr = float(start_lr)
        self.min_lr = float(min_lr)
        self.name = name

    @classmethod
    def from_epochs(cls, peak_lr: float, epochs: int, steps_per_epoch: int, *, warmup_epochs: float = 0,
                    sustain_epochs: float = 0, **kwargs) -> WarmupCosineSchedule:
        """The same schedule with its phases in epochs.

        Example:
            >>> WarmupCosineSchedule.from_epochs(1e-3, 10, 50, warmup_epochs=2).warmup_steps
            100
        """
        return cls(peak_lr, int(epochs * steps_per_epoch), warmup_steps=int(warmup_epochs * steps_per_epoch),
                   sustain_steps=int(sustain_epochs * steps_per_epoch), **kwargs)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        ramp = self.start_lr + (self.peak_lr - self.start_lr) * step / warm
        decay_start = float(self.warmup_steps + self.sustain_steps)
        decay_len = float(max(self.total_steps - self.warmup_steps - self.sustain_steps, 1))
        progress = ops.clip((step - decay_start) / decay_len, 0.0, 1.0)
        cosine = self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < float(self.warmup_steps), ramp, cosine)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "sustain_steps": self.sustain_steps,
                "start_lr": self.start_lr, "min_lr": self.min_lr, "name": self.name}


@keras.saving.register_keras_serializable(package="imet_kit")
class OneCycleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle (Smith & Topin 2019), as PyTorch's ``OneCycleLR(anneal_strategy="cos")``.

    Cosine rise from ``max_lr / div_factor`` to ``max_lr`` over ``warmup_steps``, then cosine
    fall to ``max_lr / (div_factor * final_div_factor)`` at ``total_steps``, where it stays.
    The learning rate only: Keras' Adam takes a fixed ``beta_1``, so momentum does not cycle.

    Args:
        max_lr: the peak rate.
        total_steps: optimizer steps of the whole run.
        warmup_steps: length of the rise (PyTorch's ``pct_start * total_steps``).
        div_factor: ``max_lr / div_factor`` is the starting rate.
        final_div_factor: the final rate is the starting rate divided by this.
        name: for the config.

    Example:
        >>> s = OneCycleSchedule(1e-2, total_steps=100, warmup_steps=30, div_factor=10.0,
        ...                      final_div_factor=100.0)
        >>> [round(float(s(i)), 6) for i in (0, 15, 30, 65, 100)]
        [0.001, 0.0055, 0.01, 0.005005, 1e-05]
    """

    def __init__(self, max_lr: float, total_steps: int, warmup_steps: int = 0,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, name: str = "one_cycle"):
        super().__init__()
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise InputError(f"Need total_steps >= 1 and 0 <= warmup_steps <= total_steps; received "
                             f"total_steps={total_steps}, warmup_steps={warmup_steps}.")
        if max_lr <= 0 or div_factor < 1 or final_div_factor < 1:
            raise InputError(f"Need max_lr > 0, div_factor >= 1 and final_div_factor >= 1; received "
                             f"{max_lr}, {div_factor}, {final_div_factor}.")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = self.max_lr / self.div_factor
        end = start / self.final_div_factor
        up = ops.clip(step / float(max(self.warmup_steps, 1)), 0.0, 1.0)
        down = ops.clip((step - self.warmup_steps) / float(max(self.total_steps - self.warmup_steps, 1)),
                        0.0, 1.0)
        rise = start + 0.5 * (self.max_lr - start) * (1.0 - ops.cos(math.pi * up))
        fall = end + 0.5 * (self.max_lr - end) * (1.0 + ops.cos(math.pi * down))
        return ops.where(step < float(self.warmup_steps), rise, fall)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor, "name": self.name}


def lr_values(schedule, steps: int) -> np.ndarray:
    """The rate at steps ``0 .. steps - 1`` as a float64 array."""
    if callable(schedule):
        vals = schedule(ops.arange(int(steps)))
        return np.asarray(ops.convert_to_numpy(vals), dtype=np.float64).reshape(-1)
    return np.full(int(steps), float(schedule))


