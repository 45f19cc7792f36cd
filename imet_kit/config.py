"""Frozen configuration for training and prediction; every field says what it does.

A config is resolved once (defaults < config file < flags), written to the run folder
before training starts, and read back by ``--resume`` and ``predict``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imet_kit.errors import InputError

MIXED_PRECISION = ("auto", "off", "mixed_float16", "mixed_bfloat16")
PIPELINES = ("pydataset", "tfdata")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `imet-kit train` needs. Defaults are the 2019 notebook's.

    Example:
        >>> cfg = TrainConfig(data="demo_data", out="runs/demo", backbone="tiny_cnn", weights=None)
        >>> cfg.replace(epochs=2).epochs
        2
    """

    data: str = ""                       # dataset folder (labels.csv, train.csv, train/)
    out: str = "runs/run"                # run folder: config, folds, models, OOF, thresholds, plots
    task: str = "multilabel"             # "multilabel" (sigmoid + F2) or "embedding" (margin head)
    folds: int = 5                       # K for K-fold cross-validation
    fold_method: str = "iterative"       # fold maker (imet_kit.folds.maker): "iterative" or "rare-first"
    train_folds: tuple[int, ...] | None = None  # train only these folds (`--fold k`); None = all
    backbone: str = "efficientnet_b3"    # imet_kit.models.backbones name
    weights: str | None = "imagenet"     # "imagenet", None (random init) or a local *.weights.h5
    image_size: int | None = 288         # square input side; None = the backbone's default
    batch_size: int = 32                 # images per step: the global batch, split evenly over the devices
    epochs: int = 8                      # epochs per fold
    optimizer: str = "adam"              # "adam", "adamw" or "sgd"
    lr: float = 3e-4                     # peak learning rate
    lr_schedule: str = "constant"        # "constant" or "cosine" (warmup + sustain + cosine decay)
    warmup_epochs: float = 0.0           # linear warmup length for "cosine"
    loss: str = "bce"                    # "bce", "focal" or "asl"
    augment: str = "notebook"            # train augmentation preset (imet_kit.data.augment)
    pooling: str = "avg"                 # head pooling: "avg", "max" or "gem"
    embedding_dim: int = 512             # width of the named "embedding" Dense layer (multilabel: 0 = none)
    dropout: float = 0.2                 # dropout before the classifier
    head_warmup_epochs: int = 0          # epochs with the backbone frozen before unfreezing
    mixed_precision: str = "auto"        # "auto" (fp16 on GPU, off on CPU), "off", "mixed_float16", "mixed_bfloat16"
    jit_compile: str = "auto"            # XLA: "auto" (off on CPU: ~10x slower there), "on", "off"
    distribution: str = "auto"           # devices: "auto", "none" (one), "data-parallel" (all devices: TF mirrored, JAX DataParallel), "mirrored" (TF)
    workers: int = 1                     # PyDataset worker threads / processes
    use_multiprocessing: bool = False    # processes instead of threads for the workers
    pipeline: str = "pydataset"          # input: "pydataset" (OpenCV + albumentations in Python
                                         # workers) or "tfdata" (decode + augment in the tf.data graph)
    tfrecords: str | None = None         # with "tfdata": a folder of `imet-kit tfrecords DATA DIR`
                                         # to read instead of the image files; None = the files
    min_labels: int = 1                  # at least this many labels per image when binarising
    max_labels: int = 10                 # at most this many labels per image
    f2_interval: int = 1                 # run the validation F2 sweep every N epochs
    patience: int | None = None          # early stopping on val_f2 after N epochs without gain
    seed: int = 0                        # seeds folds, shuffling, augmentation and weights
    margin_head: str = "arcface"         # embedding task: "arcface", "subcenter", "cosface"
    margin_radians: float = 0.3          # embedding task: angular margin
    margin_scale: float = 30.0           # embedding task: logit scale s
    # --- recipe power (issue 12): named recipes, the long tail, training in phases ---
    recipe: str | None = None            # shipped recipe these settings started from (imet-kit recipes); a record
    sampling: str = "uniform"            # train order: "uniform" (shuffle) or "logfreq" (rare labels drawn more; data/sampling.py)
    class_weight: str = "none"           # BCE positive weight per class: "none" or "inverse_log" (models/losses.py)
    refit: bool = False                  # after CV, train RUN/full/best.keras on all images for round(mean best epoch) epochs
    init_from: str | None = None         # earlier run: fold k starts from its fold{k}/best.keras (progressive resizing)
    # -- recipe (issue 12): geometry, batch mixing, optimisation extras --------------------------
    resize: str = "crop"                 # train/eval/TTA geometry: "crop" (shorter side + crop), "squash", "pad" (letterbox)
    flip: bool = True                    # mirror in train presets and TTA; False where a mirror is another label
    mixup: float = 0.0                   # MixUp Beta(alpha, alpha) alpha on training batches; 0 = off
    cutmix: float = 0.0                  # CutMix alpha in (0, 1], area-weighted labels; 0 = off (both on: one per batch)
    ema: float = 0.0                     # weight EMA momentum (e.g. 0.999); validation and best.keras use EMA weights; 0 = off
    clipnorm: float | None = None        # clip each weight's gradient to this L2 norm (Keras clipnorm); None = off
    weight_decay: float | None = None    # decoupled weight decay; None = the optimizer's default (adamw 0.004, else 0)
    label_smoothing: float = 0.0         # BCE targets y * (1 - s) + s / 2 (loss "bce" only)
    grad_accum_steps: int = 1            # average gradients over N batches per update; 1 = off
    tensorboard: bool = True             # event files per fold in RUN/tensorboard/ (loss, val F2, LR, a batch)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run

    @classmethod
    def from_recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        """A shipped recipe (``imet-kit recipes``) with ``overrides`` on top.

        Example:
            >>> TrainConfig.from_recipe("cpu", epochs=3).backbone
            'plain_cnn'
        """
        return cls.from_dict({**load_recipe(name), **overrides}, source=f"recipe {name}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train_folds"] = list(self.train_folds) if self.train_folds is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"{source}: unknown field(s) {', '.join(unknown)}. Expected some of: "
                f"{', '.join(sorted(known))}."
            )
        d = dict(d)
        raise_problems([f"{source}: {m}" for m in _type_problems(d)])
        if d.get("train_folds") is not None:
            d["train_folds"] = tuple(int(k) for k in d["train_folds"])
        return cls(**d)

    def problems(self) -> list[str]:
        """Every number and range that cannot work, one message each (empty when all is well).

        Names (backbone, loss, augmentation, ...) are checked against their registries by
        :func:`imet_kit.training.validate.check_config`, which includes these problems.
        """
        checks = [
            (self.folds >= 2, "folds", "an integer >= 2"),
            (self.epochs >= 1, "epochs", "an integer >= 1"),
            (self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (self.lr > 0, "lr", "a positive number"),
            (self.image_size is None or self.image_size >= 16, "image_size", "an integer >= 16"),
            (self.warmup_epochs >= 0, "warmup_epochs", "a number >= 0"),
            (self.mixed_precision in MIXED_PRECISION, "mixed_precision",
             "one of " + ", ".join(MIXED_PRECISION)),
            (self.jit_compile in ("auto", "on", "off"), "jit_compile", "one of auto, on, off"),
            (1 <= self.min_labels <= self.max_labels, "min_labels/max_labels", "1 <= min <= max"),
            (self.epochs < 1 or 0 <= self.head_warmup_epochs < self.epochs, "head_warmup_epochs",
             "0 <= n < epochs"),
            (self.workers >= 1, "workers", "an integer >= 1"),
            (0 <= self.dropout < 1, "dropout", "a number in [0, 1)"),
            (self.f2_interval >= 1, "f2_interval", "an integer >= 1"),
            (self.patience is None or self.patience >= 1, "patience", "an integer >= 1"),
            (self.embedding_dim >= (1 if self.task == "embedding" else 0), "embedding_dim",
             "an integer >= 1 (--task embedding) or >= 0 (multilabel: 0 = no embedding layer)"),
            (self.seed >= 0, "seed", "an integer >= 0"),
            *self._recipe_checks(),
        ]
        out = [f"{name}: expected {expected}, received {getattr(self, name.split('/')[0], '?')!r}"
               for ok, name, expected in checks if not ok]
        if self.train_folds is not None:
            bad = [k for k in self.train_folds if not 0 <= k < self.folds]
            if bad:
                out.append(f"fold: {bad[0]} is out of range, folds are 0..{self.folds - 1}")
        return out

    def _recipe_checks(self) -> list[tuple[bool, str, str]]:
        """Ranges of the recipe fields (issue 12)."""
        return [
            (0 <= self.mixup <= 10, "mixup", "a Beta alpha in [0, 10] (0 = off; 0.2-0.4 is usual)"),
            (0 <= self.cutmix <= 1, "cutmix", "a Beta alpha in [0, 1] (0 = off; 1 = uniform area)"),
            (self.ema == 0 or 0.5 <= self.ema < 1, "ema", "0 (off) or a momentum in [0.5, 1), e.g. 0.999"),
            (self.clipnorm is None or self.clipnorm > 0, "clipnorm", "a positive number or none"),
            (self.weight_decay is None or 0 <= self.weight_decay < 1, "weight_decay",
             "a number in [0, 1) or none"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)"),
            (self.grad_accum_steps >= 1, "grad_accum_steps", "an integer >= 1"),
        ]

    def validated(self) -> TrainConfig:
        """Raise one InputError listing every problem of :meth:`problems`; returns self."""
        raise_problems(self.problems())
        return self


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "dict[str, Any]": (dict,), "tuple[int, ...]": (list, tuple)}


def _type_problems(d: dict[str, Any]) -> list[str]:
    """Fields whose JSON value has the wrong type (``"epochs": "ten"``), one message each."""
    out = []
    for f in fields(TrainConfig):
        if f.name not in d:
            continue
        value, kinds = d[f.name], [k.strip() for k in str(f.type).split("|")]
        if value is None and "None" in kinds:
            continue
        allowed = tuple(t for k in kinds for t in _TYPES.get(k, ()))
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if ok and f.name == "train_folds":
            ok = all(isinstance(k, int) and not isinstance(k, bool) for k in value)
        if not ok:
            want = " or ".join("null" if k == "None" else k for k in kinds)
            out.append(f"{f.name}: expected {want}, received {value!r} ({type(value).__name__})")
    return out


def raise_problems(problems: list[str]) -> None:
    """Raise one InputError that lists every problem (nothing when the list is empty)."""
    if len(problems) == 1:
        raise InputError(f"Invalid {problems[0]}.")
    if problems:
        raise InputError(f"{len(problems)} problems in the config: " + "; ".join(problems) + ".")


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config file (a partial TrainConfig) as a dict."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Config file '{p}' does not exist; expected a JSON file of TrainConfig fields.")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"Config file '{p}' is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise InputError(f"Config file '{p}' must hold a JSON object of TrainConfig fields.")
    return data


# --- named recipes: imet_kit/recipes/NAME.json, shipped as package data ----------------------
def _recipe_files() -> dict[str, Any]:
    from importlib.resources import files

    folder = files("imet_kit") / "recipes"
    return {f.name[:-5]: f for f in folder.iterdir() if f.name.endswith(".json")}


def recipe_names() -> list[str]:
    """The shipped recipes, sorted (``notebook``, ``cpu``, ...)."""
    return sorted(_recipe_files())


def load_recipe(name: str) -> dict[str, Any]:
    """A shipped recipe's TrainConfig fields plus ``recipe=name`` (keys starting with ``_`` are
    notes and dropped). Precedence in ``imet-kit train``: defaults < recipe < --config < flags.

    Example:
        >>> load_recipe("notebook")["backbone"]
        'efficientnet_b3'
    """
    found = _recipe_files()
    if name not in found:
        raise InputError(f"Unknown recipe {name!r}. Expected one of: {', '.join(sorted(found))}.")
    try:
        data = json.loads(found[name].read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"Recipe {name!r} is not valid JSON: {exc}.") from exc
    fields_ = {k: v for k, v in data.items() if not k.startswith("_")}
    TrainConfig.from_dict(fields_, source=f"recipe {name}")  # field names and types
    return {**fields_, "recipe": name}


def recipe_about(name: str) -> str:
    """The one-line description (``_about``) of a shipped recipe."""
    found = _recipe_files()
    return str(json.loads(found[name].read_text()).get("_about", "")) if name in found else ""

