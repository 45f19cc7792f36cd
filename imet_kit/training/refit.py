"""Refit after cross-validation (``refit: true``): one more model on all training images.

When every fold is done, :func:`refit_plan` says how the engine trains ``RUN/full``: the same
config, ``epochs = round(mean best epoch of the folds)`` (halves round up), no early stopping,
and no validation (every image trains), so the model of the last epoch is kept as
``RUN/full/best.keras``. The engine trains it like a fold (``fold_dir`` points at ``RUN/full``),
so it checkpoints every epoch and resumes exactly. Thresholds stay those chosen on the
out-of-fold predictions. ``predict`` averages it with the fold ensemble (see
:mod:`imet_kit.multilabel.predict`).

Example:
    >>> refit_epochs({"0": {"best_epoch": 3}, "1": {"best_epoch": 4}})
    4
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

FULL_DIR = "full"


class FullRun(RunDir):
    """The run folder seen by the engine while it refits: every "fold" folder is ``RUN/full``."""

    def fold_dir(self, k: int) -> Path:
        return self.path / FULL_DIR


def full_model_path(run: str | RunDir) -> Path:
    """``RUN/full/best.keras`` (it may not exist)."""
    return Path(run.path if isinstance(run, RunDir) else run) / FULL_DIR / "best.keras"


def refit_epochs(results: dict) -> int:
    """``round(mean best_epoch)`` over the fold results (halves up), at least 1."""
    best = [int(r["best_epoch"]) for r in results.values() if int(r.get("best_epoch", -1)) >= 1]
    if not best:
        raise InputError("refit: no fold result has a best epoch; train the folds first.")
    return max(1, int(np.floor(np.mean(best) + 0.5)))


@dataclass
class RefitPlan:
    """What the engine needs to train the refit: its config and its run folder view."""

    config: TrainConfig
    run: FullRun
    fold: int  # seeds the refit like a fold number no image has (K)
    result: dict | None = None  # the refit's state when it is already done (nothing to train)


def refit_plan(run: RunDir, config: TrainConfig,
               report: Callable[[str], None] | None = None) -> RefitPlan | None:
    """The refit to train now (``result`` set when it is already done), or None while some
    fold is not trained yet."""
    full = FullRun(run.path)
    k = config.folds
    if full.fold_done(k):
        if report:
            report(f"refit: already trained ({full_model_path(run)}), skipped")
        return RefitPlan(config, full, k, result=full.fold_state(k))
    states = {str(f): run.fold_state(f) for f in range(config.folds)}
    missing = [f for f, s in states.items() if not s.get("done")]
    if missing:
        if report:
            report(f"refit: waits until every fold is trained (missing: {', '.join(missing)})")
        return None
    epochs = refit_epochs(states)
    cfg = config.replace(epochs=epochs, patience=None, train_folds=None,
                         head_warmup_epochs=min(config.head_warmup_epochs, epochs - 1))
    if report:
        mean = np.mean([s["best_epoch"] for s in states.values()])
        report(f"refit: training on all images for {epochs} epochs (mean best epoch {mean:.2f})"
               f" into {full.fold_dir(k)}")
    return RefitPlan(cfg, full, k)
