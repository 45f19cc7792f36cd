"""The ranking / scoring engine behind :mod:`imet_kit.multilabel.thresholds` (private).

:func:`_rank_top` keeps only the entries of a probability matrix that a threshold rule
can predict (above the group's lowest threshold, or among the ``min_labels`` best of
their row and group), ranks them once within (row, group), ties to the higher column,
and drops those ranked at or past the label-count cap: a :class:`_Top`. :func:`_select`
applies the rule to those entries, and :class:`_Scorer` turns them into the
sample-averaged F-beta at every grid threshold of one group in closed form, the other
groups' counts held fixed, which is what the sweeps and coordinate-ascent searches call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Top:
    """Entries that can be predicted, sorted by (row, group, rank)."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    rank: np.ndarray
    group: np.ndarray


def _group_cols(group_of_col: np.ndarray, n_groups: int) -> list:
    if n_groups == 1:
        return [slice(None)]
    return [np.flatnonzero(group_of_col == g) for g in range(n_groups)]


def _order_code(v: np.ndarray) -> np.ndarray:
    """Integers in [0, 2**32) ordered like ``v``, equal for equal values."""
    if v.dtype in (np.float32, np.float16):
        b = v.astype(np.float32).view(np.int32).astype(np.int64)
        return np.where(b >= 0, b, -(2**31) - b) + 2**31  # IEEE bits, negatives flipped
    return np.unique(v, return_inverse=True)[1].astype(np.int64).ravel()


def _rank_top(p, group_of_col, floor, kmin, keep) -> _Top:
    """Rank, within (row, group), every entry above ``floor[g]`` or among the top ``kmin[g]``."""
    n, c = p.shape
    n_groups = len(floor)
    gcols = _group_cols(group_of_col, n_groups)
    sizes = np.bincount(group_of_col, minlength=n_groups)
    mask = np.greater(p, floor[0] if n_groups == 1 else floor[group_of_col], order="C")
    # Sorting M candidates beats np.partition over the matrix unless they are dense.
    if np.count_nonzero(mask) > n * max(c // 4, 4 * int(keep.sum()) + 1):
        for g, cols in enumerate(gcols):
            sub, k = p[:, cols], int(keep[g])
            m = np.zeros_like(mask[:, cols]) if k == 0 else mask[:, cols]
            if 0 < k < sizes[g]:
                m &= sub >= np.partition(sub, sizes[g] - k, axis=1)[:, sizes[g] - k][:, None]
            mask[:, cols] = m
    r, col = np.divmod(np.flatnonzero(mask), c)  # row-major: columns ascend within a row
    g_of = group_of_col[col]
    count = np.bincount(r * n_groups + g_of, minlength=n * n_groups).reshape(n, n_groups)
    extra_r, extra_c, drop = [], [], np.zeros(len(r), dtype=bool)
    for g, cols in enumerate(gcols):
        k = int(kmin[g])
        short = np.flatnonzero(count[:, g] < k) if k else np.empty(0, np.int64)
        if not short.size:
            continue
        idx = np.arange(c)[cols]
        sub = p[short][:, idx]
        if k == 1:  # argmax of the reversed row: the highest column among ties
            top = (sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1))[:, None]
        else:
            top = np.argsort(sub, axis=1, kind="stable")[:, -k:]
        extra_r.append(np.repeat(short, k))
        extra_c.append(np.sort(idx[top], axis=1).ravel())
        drop |= np.isin(r * n_groups + g_of, short * n_groups + g)
    if extra_r:
        r = np.concatenate([r[~drop], *extra_r])
        col = np.concatenate([col[~drop], *extra_c])
        g_of = group_of_col[col]
    v = p[r, col]
    # One int64 key (segment, then value descending); a stable sort of the reversed
    # arrays puts equal values in descending column order.
    key = (r * n_groups + g_of) * 2**32 + (2**32 - 1 - _order_code(v))
    order = len(r) - 1 - np.argsort(key[::-1], kind="stable")
    r, col, v, g_of = r[order], col[order], v[order], g_of[order]
    seg = r * n_groups + g_of
    pos = np.arange(len(r))
    start = np.maximum.accumulate(np.where(np.r_[True, seg[1:] != seg[:-1]], pos, 0)) if len(r) else pos
    rank = pos - start
    ok = rank < np.maximum(keep, kmin)[g_of]
    return _Top(r[ok], col[ok], v[ok], rank[ok], g_of[ok])


def _select(top: _Top, thr_entry, kmin, kmax) -> np.ndarray:
    return (top.rank < kmin[top.group]) | ((top.rank < kmax[top.group]) & (top.vals > thr_entry))


class _Scorer:
    """Score curves of one group's threshold, the other groups' counts held fixed."""

    def __init__(self, p, y, gi, grid, kmin, kmax, beta, zero_division):
        self.n, self.grid, self.kmin, self.kmax = p.shape[0], grid, kmin, kmax
        self.top = _rank_top(p, gi, np.full(len(kmin), grid.min()), kmin, kmax)
        self.pos = y[self.top.rows, self.top.cols]
        self.n_true = np.count_nonzero(y, axis=1).astype(np.float64)
        self.b2, self.zd = float(beta) ** 2, float(zero_division)

    def f(self, tp, n_pred, rows=slice(None)):
        # fbeta_from_counts without its errstate context: this runs thousands of times.
        den = self.b2 * self.n_true[rows] + n_pred
        out = np.full(np.shape(den), self.zd)
        np.divide((1.0 + self.b2) * tp, den, out=out, where=den > 0)
        return out

    def counts(self, sel) -> tuple[np.ndarray, np.ndarray]:
        t = self.top
        return (np.bincount(t.rows, weights=sel & self.pos, minlength=self.n),
                np.bincount(t.rows, weights=sel, minlength=self.n))

    def curve(self, g: int, tp_other, np_other) -> np.ndarray:
        t = self.top
        idx = np.flatnonzero(t.group == g) if len(self.kmin) > 1 else slice(None)
        r, v, rank, pos = t.rows[idx], t.vals[idx], t.rank[idx], self.pos[idx]
        cs = np.cumsum(pos)
        start = np.maximum.accumulate(np.where(rank == 0, np.arange(len(r)), 0)) if len(r) else r
        tp_upto = cs - cs[start] + pos[start] if len(r) else cs
        forced = rank < self.kmin[g]
        base = self.f(tp_other + np.bincount(r[forced], weights=pos[forced], minlength=self.n),
                      np_other + np.bincount(r[forced], minlength=self.n)).sum()
        tog = ~forced & (rank < self.kmax[g])
        rt, tpu, rk = r[tog], tp_upto[tog], rank[tog]
        delta = self.f(tp_other[rt] + tpu, np_other[rt] + rk + 1, rt) - self.f(
            tp_other[rt] + tpu - pos[tog], np_other[rt] + rk, rt)
        # An entry adds its delta at every threshold below its value: bin by grid position.
        grid_order = np.argsort(self.grid, kind="stable")
        below = np.searchsorted(self.grid[grid_order], v[tog], side="left")
        per_bin = np.bincount(below, weights=delta, minlength=len(self.grid) + 1)
        above = np.empty(len(self.grid))
        above[grid_order] = np.cumsum(per_bin[::-1])[::-1][1:]
        return (base + above) / self.n
