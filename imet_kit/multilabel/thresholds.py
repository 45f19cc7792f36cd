"""Probabilities -> label sets, and the searches that pick the thresholds.

The rule is the 2019 iMet one (lopuhin's ``binarize_prediction``): the
``min_labels`` best-scored labels of an image are always predicted, and among its
``max_labels`` best-scored labels those with probability strictly above the
threshold are added. Ties in probability go to the higher column index, exactly
as ``probs.argsort(axis=1, kind="stable")`` orders them.

The searches never binarize a full matrix per threshold. Only the entries that
can change the answer are kept (probability above the lowest threshold of the
grid, rank below ``max_labels``), ranked once; the F-beta of an image as its
predicted set grows one label at a time is known in closed form, so the score of
every threshold follows from one sort of the per-entry score changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from imet_kit.errors import InputError
from imet_kit.multilabel._ranking import _group_cols, _rank_top, _Scorer, _select
from imet_kit.multilabel.metrics import as_dense_bool

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.51, 0.01), 6)
_TIE = 1e-12  # scores closer than this are equal (floating-point summation order)


@dataclass(frozen=True)
class SweepResult:
    """One threshold for all labels, scored on a grid.

    Attributes:
        thresholds: the grid searched.
        scores: sample-averaged F-beta at each threshold.
        best_threshold: the lowest threshold reaching the best score.
        best_score: the best score.
    """

    thresholds: np.ndarray
    scores: np.ndarray
    best_threshold: float
    best_score: float


@dataclass(frozen=True)
class SearchResult:
    """Thresholds per class or per attribute group, found by coordinate ascent.

    Attributes:
        thresholds: one threshold per unit (class or group).
        score: sample-averaged F-beta with these thresholds.
        scores: ``(units, len(grid))``: the overall score with unit ``i`` at
            ``grid[j]`` and the other units as they were when ``i`` was last searched
            (NaN for units left at their start value).
        history: score at the start and after each round.
        min_labels: per unit for groups; one int for classes.
        max_labels: likewise (``None``: no cap).
    """

    thresholds: np.ndarray
    score: float
    scores: np.ndarray
    history: tuple[float, ...]
    min_labels: object = 1
    max_labels: object = 10
    grid: np.ndarray = field(default_factory=lambda: DEFAULT_THRESHOLDS)

    def to_dict(self) -> dict:
        """JSON-ready summary (thresholds as a list)."""
        as_list = lambda v: v.tolist() if isinstance(v, np.ndarray) else v  # noqa: E731
        return {
            "thresholds": self.thresholds.tolist(),
            "score": self.score,
            "history": list(self.history),
            "min_labels": as_list(self.min_labels),
            "max_labels": as_list(self.max_labels),
        }


def _check_probs(probs) -> np.ndarray:
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] == 0:
        raise InputError(f"probs must be a 2-D (n_images, n_classes) array; received shape {p.shape}.")
    if p.dtype.kind not in "fiub":
        raise InputError(f"probs must be numeric; received dtype {p.dtype}.")
    if p.size and np.isnan(np.min(p)):
        raise InputError("probs contains NaN; the model diverged or the input was not normalised.")
    return p


def _check_pair(probs, y_true) -> tuple[np.ndarray, np.ndarray]:
    p, y = _check_probs(probs), as_dense_bool(y_true, "y_true")
    if p.shape != y.shape:
        raise InputError(f"probs and y_true must have the same shape; received {p.shape} and {y.shape}.")
    return p, y


def _check_grid(thresholds) -> np.ndarray:
    grid = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise InputError(f"thresholds must be a non-empty 1-D list of finite numbers; received {thresholds!r}.")
    return grid


def _per_group(value, n_groups: int, sizes: np.ndarray, name: str, *, cap: bool) -> np.ndarray:
    """min/max label counts as one int per group, clipped to the group size."""
    if value is None and cap:
        return sizes.copy()
    arr = np.broadcast_to(np.asarray(value, dtype=object), (n_groups,)) if np.ndim(value) == 0 else np.asarray(value, dtype=object)
    if arr.shape != (n_groups,):
        raise InputError(f"{name} must be an int or one int per group ({n_groups}); received {value!r}.")
    out = np.array([sizes[i] if (v is None and cap) else v for i, v in enumerate(arr)], dtype=object)
    if not all(isinstance(v, (int, np.integer)) and v >= 0 for v in out):
        raise InputError(f"{name} must be non-negative integers (or None for no cap); received {value!r}.")
    return np.minimum(out.astype(np.int64), sizes)


def _limits(min_labels, max_labels, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kmin, kmax) per group."""
    return (_per_group(min_labels, len(sizes), sizes, "min_labels", cap=False),
            _per_group(max_labels, len(sizes), sizes, "max_labels", cap=True))


def _check_groups(group_index, n_classes: int) -> tuple[np.ndarray, int, np.ndarray]:
    gi = np.asarray(group_index)
    if gi.shape != (n_classes,) or gi.dtype.kind not in "iu" or gi.min() < 0:
        raise InputError(
            f"group_index must hold one integer group id >= 0 per class ({n_classes}), e.g. "
            f"LabelSpace.group_index; received shape {gi.shape}, dtype {gi.dtype}."
        )
    gi = gi.astype(np.int64)
    n_groups = int(gi.max()) + 1
    return gi, n_groups, np.bincount(gi, minlength=n_groups)


def binarize_groups(probs, group_index, thresholds, min_labels=1, max_labels=10) -> np.ndarray:
    """Binarize with a threshold and label-count limits per attribute group.

    The rule of :func:`binarize` is applied within each group's columns and the
    results are joined (iMet's winner: culture 0.28 with 0-3 labels, tag 0.1 with 1-8).

    Args:
        probs: (n, C) probabilities.
        group_index: (C,) group id 0..G-1 per class (``LabelSpace.group_index``).
        thresholds: one per group, or a scalar for all.
        min_labels: per group (or one int): labels always predicted in the group.
        max_labels: per group (or one int; ``None`` for no cap).

    Returns:
        (n, C) bool matrix.

    Example:
        >>> p = np.array([[0.5, 0.2, 0.05, 0.3]])
        >>> binarize_groups(p, [0, 0, 1, 1], [0.4, 0.9], [0, 1], [3, 8]).astype(int).tolist()
        [[1, 0, 0, 1]]
    """
    p = _check_probs(probs)
    gi, n_groups, sizes = _check_groups(group_index, p.shape[1])
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_groups,)) if np.ndim(thresholds) == 0 else np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (n_groups,):
        raise InputError(f"thresholds must be a number or one per group ({n_groups}); received shape {thr.shape}.")
    return _binarize(p, gi, thr, thr[gi], *_limits(min_labels, max_labels, sizes))


def _binarize(p, gi, floor, thr_col, kmin, kmax) -> np.ndarray:
    n_groups = len(floor)
    sizes = np.bincount(gi, minlength=n_groups)
    uncapped = kmax >= sizes  # no rank limit: compare the whole group directly
    rank_k = np.where(uncapped, kmin, kmax)
    top = _rank_top(p, gi, floor, kmin, rank_k)
    sel = _select(top, thr_col[top.cols], kmin, rank_k)
    out = np.zeros(p.shape, dtype=bool)
    out[top.rows[sel], top.cols[sel]] = True
    for g, cols in enumerate(_group_cols(gi, n_groups)):
        if uncapped[g]:
            out[:, cols] |= p[:, cols] > thr_col[cols]
    return out


def binarize(probs, threshold=0.2, min_labels: int = 1, max_labels: int | None = 10) -> np.ndarray:
    """Turn probabilities into label sets (the iMet rule).

    Args:
        probs: (n, C) probabilities.
        threshold: a number, or one per class ``(C,)``; a label needs ``p > threshold``.
        min_labels: the best-scored labels always predicted (1: never an empty set).
        max_labels: at most this many labels by threshold (``None``: no cap).

    Returns:
        (n, C) bool matrix; equals lopuhin's ``binarize_prediction`` with a stable argsort.

    Example:
        >>> binarize(np.array([[0.1, 0.3, 0.25], [0.05, 0.01, 0.02]]), 0.2).astype(int).tolist()
        [[0, 1, 1], [1, 0, 0]]
    """
    p = _check_probs(probs)
    c = p.shape[1]
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 0:
        thr = np.full(c, float(thr))
    elif thr.shape != (c,):
        raise InputError(f"threshold must be a number or one per class ({c}); received shape {thr.shape}.")
    return _binarize(p, np.zeros(c, np.int64), thr.min(keepdims=True), thr,
                     *_limits(min_labels, max_labels, np.array([c])))


def _best(scores: np.ndarray) -> int:
    return int(np.flatnonzero(scores >= scores.max() - _TIE)[0])


def sweep_thresholds(probs, y_true, thresholds=DEFAULT_THRESHOLDS, min_labels: int = 1,
                     max_labels: int | None = 10, beta: float = 2.0, *,
                     zero_division: float = 0.0) -> SweepResult:
    """Score one threshold for all labels at every value of a grid.

    Args:
        probs: (n, C) validation probabilities.
        y_true: (n, C) multi-hot truth (numpy or scipy.sparse).
        thresholds: the grid (any order).
        min_labels, max_labels: as in :func:`binarize`.
        beta: 2 for the iMet metric.
        zero_division: score of an image with no true and no predicted label.

    Returns:
        :class:`SweepResult`; each score equals ``fbeta_samples(y, binarize(probs, t))``.

    Example:
        >>> y = np.array([[1, 0, 0], [0, 1, 1]])
        >>> p = np.array([[0.9, 0.3, 0.1], [0.2, 0.6, 0.4]])
        >>> r = sweep_thresholds(p, y, [0.1, 0.25, 0.5])
        >>> r.best_threshold, round(r.best_score, 4)
        (0.25, 0.9167)
    """
    p, y = _check_pair(probs, y_true)
    grid = _check_grid(thresholds)
    kmin, kmax = _limits(min_labels, max_labels, np.array([p.shape[1]]))
    s = _Scorer(p, y, np.zeros(p.shape[1], np.int64), grid, kmin, kmax, beta, zero_division)
    zeros = np.zeros(p.shape[0])
    scores = s.curve(0, zeros, zeros)
    i = _best(scores)
    return SweepResult(grid, scores, float(grid[i]), float(scores[i]))




