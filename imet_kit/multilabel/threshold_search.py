"""Per-group and per-class threshold searches on out-of-fold probabilities (coordinate ascent
from the global threshold, scored in closed form as in :mod:`imet_kit.multilabel.thresholds`)."""

from __future__ import annotations

import logging

import numpy as np

from imet_kit.multilabel._ranking import _order_code, _Scorer, _select
from imet_kit.multilabel.thresholds import (
    _TIE,
    DEFAULT_THRESHOLDS,
    SearchResult,
    _best,
    _check_grid,
    _check_groups,
    _check_pair,
    _limits,
)

logger = logging.getLogger(__name__)


def search_per_group(probs, y_true, group_index, thresholds=DEFAULT_THRESHOLDS, *,
                     min_labels=1, max_labels=10, beta: float = 2.0, n_rounds: int = 5,
                     zero_division: float = 0.0) -> SearchResult:
    """One threshold per attribute group, found by coordinate ascent over the groups.

    Args:
        probs, y_true: (n, C) validation probabilities and multi-hot truth.
        group_index: (C,) group id per class (``LabelSpace.group_index``).
        thresholds: grid each group's threshold is chosen from.
        min_labels, max_labels: per group or one int, as in :func:`binarize_groups`.
        beta, zero_division: as in :func:`sweep_thresholds`.
        n_rounds: at most this many passes over the groups (stops when none moves).

    Returns:
        :class:`SearchResult` with one threshold per group; its ``score`` equals
        ``fbeta_samples(y, binarize_groups(probs, group_index, thresholds, ...))``.

    Example:
        >>> p = np.array([[0.3, 0.1, 0.6, 0.2], [0.1, 0.4, 0.3, 0.5]])
        >>> y = np.array([[1, 0, 1, 0], [0, 1, 0, 1]])
        >>> r = search_per_group(p, y, [0, 0, 1, 1], [0.15, 0.25, 0.35], min_labels=[0, 1])
        >>> r.thresholds.tolist(), r.score
        ([0.15, 0.35], 1.0)
    """
    p, y = _check_pair(probs, y_true)
    gi, n_groups, sizes = _check_groups(group_index, p.shape[1])
    grid = _check_grid(thresholds)
    kmin, kmax = _limits(min_labels, max_labels, sizes)
    s = _Scorer(p, y, gi, grid, kmin, kmax, beta, zero_division)
    t = s.top
    thr = np.full(n_groups, np.inf)  # start from the forced labels only

    def counts(g):
        return s.counts((t.group == g) & _select(t, thr[t.group], kmin, kmax))

    tp, npred = map(list, zip(*[counts(g) for g in range(n_groups)]))
    total = lambda: float(s.f(sum(tp), sum(npred)).mean())  # noqa: E731
    history, scores = [total()], np.full((n_groups, grid.size), np.nan)
    for _ in range(max(1, n_rounds)):
        moved = False
        for g in range(n_groups):
            scores[g] = curve = s.curve(g, sum(tp) - tp[g], sum(npred) - npred[g])
            j = _best(curve)
            now = np.flatnonzero(grid == thr[g])
            if not now.size or curve[j] > curve[now[0]] + _TIE:
                thr[g], moved = grid[j], True
                tp[g], npred[g] = counts(g)
        history.append(total())
        if not moved:
            break
    logger.info("per-group thresholds %s: F%g %.5f", thr.tolist(), beta, history[-1])
    return SearchResult(thr, history[-1], scores, tuple(history), kmin, kmax, grid)


def search_per_class(probs, y_true, thresholds=DEFAULT_THRESHOLDS, *, min_labels: int = 1,
                     max_labels: int | None = 10, beta: float = 2.0, start: float | None = None,
                     min_support: int = 5, n_rounds: int = 2,
                     zero_division: float = 0.0) -> SearchResult:
    """One threshold per class, by coordinate ascent from a common threshold.

    Each class in turn takes the grid value that maximises the overall score with
    the other classes fixed (ties: the value nearest its current one), so the score
    never decreases. Classes with fewer than ``min_support`` positives keep the
    common threshold: a threshold fitted to two examples does not generalise.

    Args:
        probs, y_true: (n, C) validation probabilities and multi-hot truth.
        thresholds: grid each class's threshold is chosen from.
        min_labels, max_labels, beta, zero_division: as in :func:`sweep_thresholds`.
        start: common starting threshold (default: the best of :func:`sweep_thresholds`).
        min_support: classes with fewer positives in ``y_true`` are not searched.
        n_rounds: at most this many passes over the classes.

    Returns:
        :class:`SearchResult` with ``thresholds`` of shape (C,); its ``score`` equals
        ``fbeta_samples(y, binarize(probs, result.thresholds, ...))``.

    Example:
        >>> p = np.array([[0.9, 0.3, 0.2], [0.8, 0.1, 0.35]]); y = np.array([[1, 1, 0], [1, 0, 0]])
        >>> r = search_per_class(p, y, [0.15, 0.25, 0.4], min_support=0)
        >>> r.thresholds.tolist(), r.score
        ([0.25, 0.25, 0.4], 1.0)
    """
    p, y = _check_pair(probs, y_true)
    n, c = p.shape
    grid = _check_grid(thresholds)
    kmin, kmax = _limits(min_labels, max_labels, np.array([c]))
    s = _Scorer(p, y, np.zeros(c, np.int64), grid, kmin, kmax, beta, zero_division)
    t = s.top
    if start is None:
        start = grid[_best(s.curve(0, np.zeros(n), np.zeros(n)))]
    thr = np.full(c, float(start))
    tp, npred = s.counts(_select(t, thr[t.cols], kmin, kmax))
    row_f = s.f(tp, npred)
    history, scores = [float(row_f.mean())], np.full((c, grid.size), np.nan)
    tog = np.flatnonzero((t.rank >= kmin[0]) & (t.rank < kmax[0]))
    tog = tog[np.argsort(t.cols[tog] * 2**32 + _order_code(t.vals[tog]), kind="stable")]
    bounds = np.searchsorted(t.cols[tog], np.arange(c + 1))
    units = []  # per searched class: rows, values (ascending), positives, grid positions
    for k in np.flatnonzero((y.sum(axis=0) >= min_support) & (np.diff(bounds) > 0)):
        e = tog[bounds[k]:bounds[k + 1]]
        units.append((k, t.rows[e], t.vals[e], s.pos[e], np.searchsorted(t.vals[e], grid, side="right")))
    for _ in range(max(1, n_rounds)):
        moved, total = 0, row_f.sum()
        for k, r, v, pos, at_grid in units:
            inc = v > thr[k]
            tp0, np0 = tp[r] - (pos & inc), npred[r] - inc
            f_out, f_in = s.f(tp0, np0, r), s.f(tp0 + pos, np0 + 1, r)
            cum = np.concatenate(([0.0], np.cumsum(f_in - f_out)))
            gain = cum[-1] - cum[at_grid]
            scores[k] = (total - row_f[r].sum() + f_out.sum() + gain) / n
            now = cum[-1] - cum[np.searchsorted(v, thr[k], side="right")]
            best = gain.max()
            if best > now + _TIE * n:
                cand = np.flatnonzero(gain >= best - _TIE * n)
                thr[k] = grid[cand[np.argmin(np.abs(grid[cand] - thr[k]))]]
                inc = v > thr[k]
                tp[r], npred[r] = tp0 + (pos & inc), np0 + inc
                new_f = np.where(inc, f_in, f_out)
                total += new_f.sum() - row_f[r].sum()
                row_f[r] = new_f
                moved += 1
        history.append(float(row_f.mean()))
        logger.info("per-class thresholds: %d classes moved, F%g %.5f", moved, beta, history[-1])
        if not moved:
            break
    score = float(s.f(tp, npred).mean())
    return SearchResult(thr, score, scores, tuple(history), int(kmin[0]), max_labels, grid)
