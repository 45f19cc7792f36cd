"""Fold repair: row moves that put every measurable label in every fold and even out sizes.

:func:`repair_folds` (also run by :func:`imet_kit.folds.maker.make_folds` unless ``repair=False``)
moves rows between folds so that every label with at least ``n_folds`` positives has a
positive in every validation fold, swapping a row back to keep fold sizes, and can then
move rows from the largest to the smallest fold until sizes differ by at most one. Each
move is the allowed row that brings label counts closest to an equal share (``_Mover``);
a label with ``>= n_folds`` positives never loses its last positive in a fold.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from imet_kit.errors import InputError
from imet_kit.folds.matrix import _row_labels, as_label_matrix, check_n_folds

# The logger name of these warnings from before the split, so existing log filters still match.
log = logging.getLogger("imet_kit.folds.maker")

__all__ = ["repair_folds"]




def repair_folds(y, folds, n_folds: int, *, balance_sizes: bool = False) -> np.ndarray:
    """Move rows so that every label with ``>= n_folds`` positives is in every fold.

    For each missing (fold, label) a row with that label moves in from the fold with
    the most of it, and a row moves back, keeping sizes; rows are chosen to bring the
    label counts closest to an equal share, and never so that a label with
    ``>= n_folds`` positives loses its last positive in a fold. A pair that cannot be
    fixed this way is logged as a warning (and shows in the report's FZ).

    Args:
        y: multi-hot ``(n_rows, n_labels)`` matrix.
        folds: fold of each row (not modified).
        n_folds: number of folds.
        balance_sizes: also move rows until fold sizes differ by at most one.

    Returns:
        The repaired fold array (a copy).

    Example:
        >>> import numpy as np
        >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
        >>> repair_folds(y, np.array([0, 0, 1, 1]), 2).tolist()
        [1, 0, 0, 1]
    """

    mat = as_label_matrix(y)
    folds = np.asarray(folds)
    if folds.shape != (mat.shape[0],) or not np.issubdtype(folds.dtype, np.integer):
        raise InputError(f"folds must hold one integer per row of y ({mat.shape[0]}); "
                         f"received shape {folds.shape}, dtype {folds.dtype}.")
    n_folds = check_n_folds(n_folds, mat.shape[0])
    if folds.min() < 0 or folds.max() >= n_folds:
        raise InputError(f"folds must be in 0..{n_folds - 1}; received {folds.min()}..{folds.max()}.")
    mover = _Mover(mat, folds.astype(np.int64), n_folds, np.arange(mat.shape[0]))
    mover.fill_empty_folds()
    mover.fill_holes()
    if balance_sizes:
        mover.balance_sizes()
    return mover.folds


class _Mover:
    """Row moves between folds, scored by how much closer they bring label counts to n_pos/k."""

    def __init__(self, mat: sp.csr_matrix, folds: np.ndarray, n_folds: int,
                 rank: np.ndarray) -> None:
        self.mat, self.folds, self.k, self.rank = mat, folds, n_folds, rank
        n_labels, lens = mat.shape[1], np.diff(mat.indptr)
        self.n_pos = np.bincount(mat.indices, minlength=n_labels).astype(np.int64)
        self.counts = np.stack([  # fold by fold: a few nnz-sized temporaries at most
            np.bincount(mat.indices[np.repeat(folds == f, lens)], minlength=n_labels)
            for f in range(n_folds)]).astype(np.int64)
        self.eligible = self.n_pos >= n_folds
        self.guard = np.where(self.eligible, 0, 2)  # labels under k positives never block

    def gains(self, rows: np.ndarray, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the drop in sum |k * count - n_pos| if it moves, and whether it may."""
        if len(rows) > 8192:  # in chunks, to keep the temporaries small
            parts = [self.gains(rows[i : i + 8192], src, dst) for i in range(0, len(rows), 8192)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        labs, lens = _row_labels(self.mat, rows)
        k, pos = self.k, self.n_pos[labs]
        a = k * self.counts[src, labs] - pos
        b = k * self.counts[dst, labs] - pos
        g = np.abs(a) - np.abs(a - k) + np.abs(b) - np.abs(b + k)
        safe = (self.counts[src, labs] + self.guard[labs] >= 2).astype(np.int64)
        gain, ok = np.zeros(len(rows), np.int64), np.ones(len(rows), np.int64)
        has = lens > 0
        starts = (np.cumsum(lens) - lens)[has]
        gain[has] = np.add.reduceat(g, starts)
        ok[has] = np.minimum.reduceat(safe, starts)
        return gain, ok.astype(bool)

    def shift(self, rows: np.ndarray, src: int, dst: int) -> None:
        labs, _ = _row_labels(self.mat, rows)
        np.add.at(self.counts[src], labs, -1)
        np.add.at(self.counts[dst], labs, 1)
        self.folds[rows] = dst

    def best(self, rows: np.ndarray, src: int, dst: int, force: bool = False) -> np.ndarray:
        """The allowed row (any row if ``force`` and none is) with the largest gain."""
        gain, ok = self.gains(rows, src, dst)
        ok = ok | (force and not ok.any())
        if not ok.any():
            return rows[:0]
        rows, gain = rows[ok], gain[ok]
        top = rows[gain == gain.max()]
        return top[np.argmin(self.rank[top])][None]

    def fill_empty_folds(self) -> None:
        """Give every empty fold a row (the 2019 greedy can leave one empty on tiny data)."""
        for _ in range(self.k):
            sizes = np.bincount(self.folds, minlength=self.k)
            src, dst = int(np.argmax(sizes)), int(np.argmin(sizes))
            if sizes[dst]:
                return
            self.shift(self.best(np.flatnonzero(self.folds == src), src, dst, force=True), src, dst)

    def fill_holes(self) -> None:
        holes = np.argwhere((self.counts == 0) & self.eligible[None, :]).tolist()
        col = self.mat.tocsc() if holes else None
        for g, lab in sorted(holes, key=lambda h: (self.n_pos[h[1]], h[1], h[0])):
            if self.counts[g, lab]:
                continue
            rows = col.indices[col.indptr[lab] : col.indptr[lab + 1]]
            for h in np.argsort(-self.counts[:, lab], kind="stable").tolist():
                row = self.best(rows[self.folds[rows] == h], h, g)
                if self.counts[h, lab] < 2 or len(row):
                    break
            if not len(row):
                log.warning("Fold %d keeps no positive of label %d (%d positives): no row could "
                            "move there without emptying another fold.", g, lab, self.n_pos[lab])
                continue
            self.shift(row, h, g)
            self.shift(self.best(np.flatnonzero(self.folds == g), g, h), g, h)

    def balance_sizes(self, max_rounds: int = 1000) -> None:
        """Move the best rows from the largest to the smallest fold until sizes differ by <= 1."""
        ind, ptr, k = self.mat.indices, self.mat.indptr, self.k
        for _ in range(max_rounds):
            sizes = np.bincount(self.folds, minlength=k)
            src, dst = int(np.argmax(sizes)), int(np.argmin(sizes))
            want = (sizes[src] - sizes[dst]) // 2
            if want == 0:
                return
            rows = np.flatnonzero(self.folds == src)
            gain, ok = self.gains(rows, src, dst)
            rows, gain = rows[ok], gain[ok]
            # Gains hold for one move; a label may take part in as many moves as keep improving
            # it (at least one): the batch stays good and never empties a label's fold.
            dev_src = k * self.counts[src] - self.n_pos
            left = np.maximum(1, np.minimum(dev_src, -(k * self.counts[dst] - self.n_pos)) // k)
            picked = []
            for r in rows[np.lexsort((self.rank[rows], -gain))[: 4 * want + 16]].tolist():
                labs = ind[ptr[r] : ptr[r + 1]]
                if (left[labs] > 0).all():
                    picked.append(r)
                    left[labs] -= 1
                    if len(picked) == want:
                        break
            if not picked:
                break
            self.shift(np.asarray(picked), src, dst)
        sizes = np.bincount(self.folds, minlength=k)
        if sizes.max() - sizes.min() > 1:
            log.warning("Fold sizes stay uneven %s: no row can move.", sizes.tolist())
