"""Learning-rate range test (fastai's ``lr_find``, after Smith 2017).

Train the config's model on the training images of fold 0 for up to ``steps`` batches while the
learning rate grows geometrically from ``start_lr`` to ``end_lr``; record each batch's loss,
smooth it (exponential moving average with bias correction, ``beta = 0.98``, as fastai) and stop
once the smoothed loss exceeds ``diverge`` times its minimum (or turns NaN). Nothing is written
to a run folder: the model is thrown away.

The moving average lags (at 200 steps over 8 decades, by about two decades of learning rate),
which would push suggestions too high; so the suggestions read a *centred* moving average
(window 5 % of the steps, at least 5) of the raw losses, which does not lag. Two come back;
``suggestion`` is the one ``method`` names:

* ``"min10"`` (default): the learning rate at the centred loss' minimum, divided by 10;
* ``"steepest"``: where the centred loss falls fastest against ``log(lr)`` (the most negative
  ``np.gradient``), ignoring the first 10 % and the last 5 % of the points.

Both are clipped into the range that was tested.

Example:
    >>> lr_schedule(1e-4, 1.0, 5).round(6).tolist()
    [0.0001, 0.001, 0.01, 0.1, 1.0]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError, describe_choices

log = logging.getLogger(__name__)

SUGGESTIONS = ("min10", "steepest")


@dataclass
class LRFindResult:
    """The range test's record.

    Attributes:
        lrs, losses, smoothed: one entry per batch trained (the rates actually used);
            ``smoothed`` is the moving average of the stop rule.
        centred: the centred moving average the suggestions read.
        suggestion: the learning rate ``method`` suggests.
        method: ``"min10"`` or ``"steepest"``.
        suggestions: both suggestions by name.
        stopped_early: the loss diverged before ``steps`` batches.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    centred: np.ndarray
    suggestion: float
    method: str
    suggestions: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """``steps`` learning rates from ``start_lr`` to ``end_lr``, a constant ratio apart."""
    if not 0 < start_lr < end_lr or steps < 2:
        raise InputError(f"lr-find needs 0 < start_lr < end_lr and steps >= 2; received "
                         f"start_lr={start_lr}, end_lr={end_lr}, steps={steps}.")
    return np.geomspace(start_lr, end_lr, int(steps))


def smooth_losses(losses, beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (fastai's smoothing)."""
    out, avg = [], 0.0
    for i, loss in enumerate(np.asarray(losses, np.float64)):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return np.asarray(out)


def centred_average(losses, frac: float = 0.05) -> np.ndarray:
    """A centred moving average over ``max(5, frac * n)`` points (shorter at the ends); NaN and
    infinite losses are left out of every window."""
    x = np.asarray(losses, np.float64)
    half = max(5, int(round(frac * len(x)))) // 2
    ok = np.isfinite(x)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(len(x))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(x))
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / count, np.nan)


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict[str, float]:
    """Both suggestions (see the module docstring), clipped into ``[lrs[0], lrs[-1]]``."""
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    if not len(lrs):
        raise InputError("lr-find: every loss was NaN or infinite; lower start_lr.")
    lo, hi = float(lrs[0]), float(lrs[-1])
    out = {"min10": float(np.clip(lrs[int(np.argmin(smoothed))] / 10, lo, hi))}
    a, b = int(len(lrs) * 0.10), len(lrs) - int(len(lrs) * 0.05)
    if b - a >= 3:
        grad = np.gradient(smoothed[a:b], np.log(lrs[a:b]))
        out["steepest"] = float(lrs[a + int(np.argmin(grad))])
    else:
        out["steepest"] = out["min10"]
    return out


def lr_find(config: TrainConfig, *, start_lr: float = 1e-7, end_lr: float = 10.0,
            steps: int = 200, diverge: float = 4.0, method: str = "min10",
            report: Callable[[str], None] | None = None) -> LRFindResult:
    """Run the range test for ``config`` (task, backbone, loss, optimizer, augmentation).

    Args:
        config: the training config; its folds, fold_method and seed pick fold 0's training rows.
        start_lr, end_lr: the range, geometric.
        steps: batches at most (the training images are cycled through as often as needed).
        diverge: stop when the smoothed loss exceeds this many times its minimum.
        method: which suggestion to return as ``suggestion``: ``"min10"`` or ``"steepest"``.
        report: called with one line when the test ends.

    Returns:
        An :class:`LRFindResult`.
    """
    import keras

    from imet_kit.folds.maker import make_folds
    from imet_kit.training.checkpoint import seed_model
    from imet_kit.training.engine import resolve_size
    from imet_kit.training.optim import jit_compile, make_optimizer
    from imet_kit.training.precision import set_precision
    from imet_kit.training.task import get_task
    from imet_kit.training.validate import check_config

    if method not in SUGGESTIONS:
        raise InputError(f"Unknown lr-find suggestion {method!r}. Expected one of: "
                         f"{describe_choices(SUGGESTIONS)}.")
    if not diverge > 1:
        raise InputError(f"lr-find needs diverge > 1; received {diverge}.")
    lrs = lr_schedule(start_lr, end_lr, steps)
    task = get_task(config.task)
    config = check_config(config.replace(lr=float(lrs[0]), lr_schedule="constant",
                                         refit=False), task)
    data = task.load_data(config)
    folds = make_folds(data.y, n_folds=config.folds, method=config.fold_method, seed=config.seed)
    tr, va = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    size = resolve_size(config)
    setup = task.setup_fold(config, data, tr, va, size)
    set_precision("float32" if config.mixed_precision == "off" else config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    model = task.build_model(config, data, tr, size)
    task.compile_model(model, config, data, make_optimizer(config, len(setup.train)),
                       jit_compile(config))
    seed_model(model, config.seed)
    ds = setup.train
    losses, best, stopped = [], math.inf, False
    for i, lr in enumerate(lrs):
        if i and i % len(ds) == 0:
            ds.on_epoch_end()
        model.optimizer.learning_rate = float(lr)  # a constant rate is a variable: assigned
        model.reset_metrics()  # the logged loss is then this batch's, not a running mean
        batch = ds[i % len(ds)]
        logs = model.train_on_batch(*batch, return_dict=True) if isinstance(batch, tuple) else \
            model.train_on_batch(batch, return_dict=True)
        losses.append(float(logs["loss"]))
        smoothed = smooth_losses(losses)[-1]
        if not np.isfinite(smoothed) or smoothed > diverge * best:
            stopped = True
            break
        best = min(best, smoothed)
    keras.backend.clear_session()
    n = len(losses)
    centred = centred_average(losses)
    found = suggest(lrs[:n], centred)
    result = LRFindResult(lrs[:n], np.asarray(losses), smooth_losses(losses), centred,
                          found[method], method, found, stopped)
    if report:
        report(f"lr-find: {n} steps from {lrs[0]:.2g} to {lrs[n - 1]:.2g}"
               f"{' (loss diverged)' if stopped else ''}; suggested lr {result.suggestion:.3g} "
               f"({method}; min10 {found['min10']:.3g}, steepest {found['steepest']:.3g})")
    return result
