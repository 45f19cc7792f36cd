"""Check a whole config before anything is written: every name against its registry, every
number against its range, all problems reported at once, each with the choices available.

Example:
    >>> from imet_kit.config import TrainConfig
    >>> check_config(TrainConfig(augment="nope", loss="l2", weights=None))
    Traceback (most recent call last):
    ...
    imet_kit.errors.InputError: 2 problems in the config: augment: unknown 'nope', expected one of notebook, light, strong, randaugment, none; loss: unknown 'l2', expected one of asl, bce, focal.
"""

from __future__ import annotations

from pathlib import Path

from imet_kit.config import TrainConfig, raise_problems
from imet_kit.training.optim import LR_SCHEDULES, OPTIMIZERS
from imet_kit.training.task import TASKS, Task, get_task


def _unknown(field: str, value, choices) -> str:
    return f"{field}: unknown {value!r}, expected one of {', '.join(str(c) for c in choices)}"


def _weights_problem(config: TrainConfig, spec) -> str | None:
    w = config.weights
    if w is None:
        return None
    if spec is not None and w in spec.pretrained:
        return None
    if Path(w).suffix == ".h5" or str(w).endswith(".weights.h5") or Path(w).exists():
        if not Path(w).is_file():
            return (f"weights: the file '{w}' does not exist; expected a local *.weights.h5 file, "
                    f"'imagenet' or none")
        return None
    named = ", ".join(spec.pretrained) if spec is not None and spec.pretrained else "none"
    return (f"weights: {w!r} is neither a weights file nor a name this backbone can download "
            f"({named}); expected a *.weights.h5 path, one of those names, or none")


def name_problems(config: TrainConfig) -> list[str]:
    """Problems with the names in ``config`` (backbone, weights, augmentation, loss, ...)."""
    from imet_kit.data.augment import TRAIN_PRESETS
    from imet_kit.folds.maker import METHODS
    from imet_kit.models.backbones import BACKBONES
    from imet_kit.models.heads import POOLINGS
    from imet_kit.models.losses import LOSSES

    out = []
    spec = BACKBONES.get(config.backbone) if isinstance(config.backbone, str) else None
    for field, value, choices in (
        ("task", config.task, TASKS), ("backbone", config.backbone, BACKBONES),
        ("augment", config.augment, TRAIN_PRESETS), ("loss", config.loss, sorted(LOSSES)),
        ("pooling", config.pooling, POOLINGS), ("optimizer", config.optimizer, OPTIMIZERS),
        ("lr_schedule", config.lr_schedule, LR_SCHEDULES),
        ("fold_method", config.fold_method, METHODS),
    ):
        if value not in choices:
            out.append(_unknown(field, value, choices))
    problem = _weights_problem(config, spec)
    if problem and (spec is not None or config.weights is not None):
        out.append(problem)
    return out + recipe_problems(config)


def recipe_problems(config: TrainConfig) -> list[str]:
    """Problems with the recipe choices (issue 12): the resize name, and pairs that do not fit."""
    from imet_kit.data.geometry import RESIZE_MODES

    out = []
    if config.resize not in RESIZE_MODES:
        out.append(_unknown("resize", config.resize, RESIZE_MODES))
    if config.label_smoothing and config.loss != "bce":
        out.append(f"label_smoothing: smooths the targets of loss 'bce' only, received loss "
                   f"{config.loss!r}; use --loss bce or drop --label-smoothing")
    if (config.mixup or config.cutmix) and config.task != "multilabel":
        out.append(f"mixup/cutmix: mix multi-hot targets of task 'multilabel' only, received task "
                   f"{config.task!r}")
    return out


def check_config(config: TrainConfig, task: Task | None = None) -> TrainConfig:
    """Raise one :class:`~imet_kit.errors.InputError` listing every problem; returns the config."""
    problems = config.problems() + name_problems(config)
    if task is None and config.task in TASKS:
        task = get_task(config.task)
    if task is not None:
        problems += task.check_config(config)
    raise_problems(problems)
    return config
