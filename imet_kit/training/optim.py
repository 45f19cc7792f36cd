"""Optimizers, learning-rate schedules, XLA, and the callbacks an optimizer needs, as the config
names them.

Everything here is Keras' own: weight EMA (``use_ema``, ``ema_momentum``), ``clipnorm``,
decoupled ``weight_decay`` and ``gradient_accumulation_steps`` are optimizer arguments, and
validation on the EMA weights is ``keras.callbacks.SwapEMAWeights``
(:class:`imet_kit.training.ema.EMASwap` adds what a resumable run needs).
"""

from __future__ import annotations

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "onecycle")
ONECYCLE_WARMUP = 0.3  # onecycle without --warmup-epochs: the rise takes 30 % of the run (PyTorch's pct_start)


def make_schedule(config, steps_per_epoch: int):
    """The learning rate the config names: a float, or a schedule over optimizer steps."""
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "cosine":
        from imet_kit.training.schedules import WarmupCosineSchedule

        return WarmupCosineSchedule(peak_lr=config.lr, total_steps=total, warmup_steps=warmup)
    if config.lr_schedule == "onecycle":
        from imet_kit.training.schedules import OneCycleSchedule

        return OneCycleSchedule(max_lr=config.lr, total_steps=total,
                                warmup_steps=min(warmup or round(ONECYCLE_WARMUP * total), total))
    return config.lr


def optimizer_options(config) -> dict:
    """Keras optimizer arguments for the recipe fields that are switched on (issue 12).

    Example:
        >>> from imet_kit.config import TrainConfig
        >>> optimizer_options(TrainConfig(ema=0.999, clipnorm=1.0, grad_accum_steps=4))
        {'use_ema': True, 'ema_momentum': 0.999, 'clipnorm': 1.0, 'gradient_accumulation_steps': 4}
    """
    opts: dict = {}
    if config.ema:
        opts.update(use_ema=True, ema_momentum=float(config.ema))
    if config.clipnorm is not None:
        opts["clipnorm"] = float(config.clipnorm)
    if config.weight_decay is not None:
        opts["weight_decay"] = float(config.weight_decay)
    if config.grad_accum_steps > 1:
        # the schedule still counts every batch (Keras passes the raw step count to it)
        opts["gradient_accumulation_steps"] = int(config.grad_accum_steps)
    return opts


def make_optimizer(config, steps_per_epoch: int):
    """The optimizer (with the learning-rate schedule and the recipe options) the config names."""
    import keras

    lr = make_schedule(config, steps_per_epoch)
    opts = optimizer_options(config)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, **opts)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True, **opts)
    return keras.optimizers.Adam(learning_rate=lr, **opts)


def optimizer_callbacks(config, *, resumed: bool = False) -> list:
    """Callbacks the optimizer needs, to run before the task's validation callbacks.

    Args:
        config: the run's config (``ema`` > 0 adds :class:`EMASwap`).
        resumed: the model came from a ``last.keras`` saved at an epoch's end.
    """
    if not config.ema:
        return []
    from imet_kit.training.ema import EMASwap

    return [EMASwap(resumed=resumed)]


def jit_compile(config) -> bool | str:
    from imet_kit.training.precision import default_jit_compile

    return {"auto": default_jit_compile(), "on": True, "off": False}[config.jit_compile]
