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

from imet_kit.config import PIPELINES, TrainConfig, raise_problems
from imet_kit.errors import InputError
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


def _pipeline_problems(config: TrainConfig) -> list[str]:
    """The input pipeline: a known name; a TFRecord folder only for tfdata, and one that exists."""
    out = []
    if config.pipeline not in PIPELINES:
        out.append(_unknown("pipeline", config.pipeline, PIPELINES))
    elif config.pipeline == "tfdata" and config.task != "multilabel":
        out.append(f"pipeline: 'tfdata' feeds the multilabel task only; task {config.task!r} "
                   f"reads images with pydataset")
    if config.tfrecords is not None:
        if config.pipeline != "tfdata":
            out.append(f"tfrecords: {config.tfrecords!r} is read only by pipeline 'tfdata'; "
                       f"add --pipeline tfdata or drop --tfrecords")
        elif not (Path(config.tfrecords) / "tfrecords.json").is_file():
            out.append(f"tfrecords: '{config.tfrecords}' has no tfrecords.json; expected a folder "
                       f"written by `imet-kit tfrecords DATA {config.tfrecords}`")
    return out


def name_problems(config: TrainConfig) -> list[str]:
    """Problems with the names in ``config`` (backbone, weights, augmentation, loss, pipeline, ...)."""
    from imet_kit.data.augment import TRAIN_PRESETS
    from imet_kit.folds.maker import METHODS
    from imet_kit.models.backbones import BACKBONES, backend_problem
    from imet_kit.models.heads import POOLINGS
    from imet_kit.models.losses import LOSSES

    out = []
    spec = BACKBONES.get(config.backbone) if isinstance(config.backbone, str) else None
    hub = _hub_problem(config.backbone)  # hub:<preset> (keras-hub) is not a registry key
    if hub is not None:
        spec = _hub_spec(config.backbone)
        out += [hub] if hub else []
    for field, value, choices in (
        ("task", config.task, TASKS),
        ("backbone", config.backbone, BACKBONES if hub is None else [config.backbone]),
        ("augment", config.augment, TRAIN_PRESETS), ("loss", config.loss, sorted(LOSSES)),
        ("pooling", config.pooling, POOLINGS), ("optimizer", config.optimizer, OPTIMIZERS),
        ("lr_schedule", config.lr_schedule, LR_SCHEDULES),
        ("fold_method", config.fold_method, METHODS),
    ):
        if value not in choices:
            out.append(_unknown(field, value, choices))
    out += _pipeline_problems(config)
    if spec is not None and (mismatch := backend_problem(spec)):
        out.append(mismatch)
    problem = _weights_problem(config, spec)
    if problem and (spec is not None or config.weights is not None) and not config.init_from \
            and not hub:
        out.append(problem)
    return (out + recipe_problems(config) + mixing_problems(config) + _tensorboard_problems(config)
            + _distribution_problems(config))


def _distribution_problems(config: TrainConfig) -> list[str]:
    """The device layout: a known name the Keras backend runs, and a batch the replicas share."""
    from imet_kit.training.devices import distribution_problems

    return distribution_problems(config.distribution, config.batch_size)


def _tensorboard_problems(config: TrainConfig) -> list[str]:
    """tf.summary writes scalars and images only with the tensorboard package installed."""
    import importlib.util

    if not config.tensorboard or importlib.util.find_spec("tensorboard") is not None:
        return []
    return ["tensorboard: the event files need the tensorboard package, which is not installed; "
            "pip install tensorboard, or pass --no-tensorboard"]


# --- recipe power (issue 12): recipes, the long tail, phases ----------------------------------
def _hub_problem(backbone) -> str | None:
    """None: not a hub:<preset> name; "": a usable one; else why it cannot be built here."""
    from imet_kit.models import families

    if not (isinstance(backbone, str) and backbone.startswith(families.HUB_PREFIX)):
        return None
    if not backbone[len(families.HUB_PREFIX):].strip():
        return "backbone: 'hub:' names no preset; expected hub:<preset>, e.g. hub:resnet_50_imagenet"
    missing = families.hub_missing()
    return f"backbone: {missing}" if missing else ""


def _hub_spec(backbone):
    from imet_kit.models.backbones import get_backbone_spec

    try:
        return get_backbone_spec(backbone)
    except InputError:  # "hub:" without a preset: reported by _hub_problem
        return None


def recipe_problems(config: TrainConfig) -> list[str]:
    """Problems with ``recipe``, ``sampling``, ``class_weight``, ``refit`` and ``init_from``."""
    from imet_kit.config import recipe_names
    from imet_kit.data.sampling import SAMPLINGS
    from imet_kit.models.losses import CLASS_WEIGHTS

    out = [_unknown(field, value, choices) for field, value, choices in (
        ("sampling", config.sampling, SAMPLINGS), ("class_weight", config.class_weight, CLASS_WEIGHTS),
    ) if value not in choices]
    if config.recipe is not None and config.recipe not in recipe_names():
        out.append(_unknown("recipe", config.recipe, recipe_names()))
    if config.class_weight != "none" and config.loss != "bce":
        out.append(f"class_weight: {config.class_weight!r} weights the BCE positives; expected "
                   f"loss 'bce', received {config.loss!r} (or class_weight none)")
    if (config.refit or config.sampling != "uniform" or config.class_weight != "none") \
            and config.task != "multilabel":
        out.append(f"refit / sampling / class_weight: expected task 'multilabel', received "
                   f"{config.task!r}")
    return out + _init_from_problems(config)


def _init_from_problems(config: TrainConfig) -> list[str]:
    from imet_kit.training.rundir import RunDir

    if not config.init_from:
        return []
    prev = RunDir(config.init_from)
    if not prev.exists():
        return [f"init_from: '{config.init_from}' is not a run folder (no config.json); expected "
                f"the --out folder of an earlier imet-kit train"]
    if prev.path.resolve() == Path(config.out).resolve():
        return ["init_from: expected an earlier run, received this run's own --out"]
    saved = prev.load_config()
    same = ("task", "backbone", "folds", "fold_method", "seed")  # same folds, same weights' shapes
    diff = [f"{f}={getattr(saved, f)!r}" for f in same if getattr(saved, f) != getattr(config, f)]
    out = []
    if diff:
        out.append(f"init_from: fold k must start from the model that never saw this run's "
                   f"validation fold k, so {', '.join(same)} must equal the earlier run's "
                   f"(it has {', '.join(diff)})")
    todo = config.train_folds if config.train_folds is not None else range(config.folds)
    missing = [k for k in todo if not (prev.fold_dir(k) / "best.keras").is_file()]
    if missing:
        out.append(f"init_from: '{config.init_from}' has no fold{missing[0]}/best.keras "
                   f"(folds without a model: {missing}); train them there first")
    if config.refit and not (prev.path / "full" / "best.keras").is_file():
        out.append(f"init_from + refit: the refit starts from '{config.init_from}/full/best.keras', "
                   f"which does not exist; train the earlier run with --refit, or drop --refit")
    return out


def mixing_problems(config: TrainConfig) -> list[str]:
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
    if config.pipeline == "tfdata":
        unsupported = [f"{name}={value!r}" for name, value, default in (
            ("resize", config.resize, "crop"), ("flip", config.flip, True),
            ("mixup", config.mixup, 0.0), ("cutmix", config.cutmix, 0.0),
            ("sampling", config.sampling, "uniform")) if value != default]
        if unsupported:
            out.append(f"pipeline: 'tfdata' reads with the crop geometry, flips and uniform "
                       f"sampling only; received {', '.join(unsupported)}. Use --pipeline "
                       f"pydataset for these")
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
