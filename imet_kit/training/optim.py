"""Optimizers, learning-rate schedules and XLA as the config names them."""

from __future__ import annotations

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")


def make_optimizer(config, steps_per_epoch: int):
    """The optimizer (with the learning-rate schedule) the config names."""
    import keras

    lr = config.lr
    if config.lr_schedule == "cosine":
        from imet_kit.training.schedules import WarmupCosineSchedule

        lr = WarmupCosineSchedule(peak_lr=config.lr, total_steps=steps_per_epoch * config.epochs,
                                  warmup_steps=int(config.warmup_epochs * steps_per_epoch))
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(learning_rate=lr)


def jit_compile(config) -> bool | str:
    from imet_kit.training.devices import default_jit_compile

    return {"auto": default_jit_compile(), "on": True, "off": False}[config.jit_compile]
