"""Fold makers for multi-label data that keep every label measurable in every fold.

Two methods, both working on a ``scipy.sparse`` multi-hot matrix (a dense one is
converted to CSR, never the other way round):

``iterative`` (default)
    Iterative stratification (Sechidis et al. 2011, as in iterstrat): take the
    label with the fewest rows still unassigned, deal those rows to the folds
    that lack that label most (ties: the fold lacking the most rows, then a
    seeded random order), repeat. Each label's rows are dealt in one vectorised
    step (the same picks as iterstrat's row-by-row loop), so the cost is about
    ``O(nnz log nnz + n_labels**2)`` instead of iterstrat's ``O(n_rows * n_labels)``
    and the matrix is never densified.
``rare-first``
    The 2019 iMet notebook's greedy: each row, in a seeded random order, goes
    to the fold holding the fewest rows of its globally rarest label.

After either, a repair pass (:mod:`imet_kit.folds.repair`) moves rows (and swaps
one back, keeping fold sizes) so that every label with at least ``n_folds``
positives has a positive in every validation fold; it logs a warning for a pair it
cannot fix (a pair can be impossible: two labels on rows {a, b} and {b, c} and a
third on {a, c}, 2 folds).
For ``iterative`` a last pass moves rows from the largest to the smallest fold until
sizes differ by at most one, choosing the rows that best even out label counts.

Labels with fewer positives than folds cannot reach every fold: their positives
are spread one per fold (almost always: two rarer labels dealt earlier can put
two of its rows in one fold) and the other validation folds have none, so those
labels' threshold and F2 cannot be measured there. The report lists them.

Rows without any label are dealt to the smallest folds. The same ``seed`` gives
the same folds on any machine: all arithmetic is on integers and the random
numbers come from ``numpy.random.default_rng(seed)`` (PCG64).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from imet_kit.errors import InputError
from imet_kit.folds.matrix import _row_labels, as_label_matrix, check_n_folds
from imet_kit.folds.repair import _Mover, repair_folds

__all__ = ["DEFAULT_METHOD", "DEFAULT_SEED", "METHODS", "MultilabelStratifiedFolds",
           "as_label_matrix", "check_n_folds", "make_folds", "repair_folds"]

METHODS = ("iterative", "rare-first")
DEFAULT_METHOD = "iterative"
DEFAULT_SEED = 42






def make_folds(
    y,
    n_folds: int = 5,
    method: str = DEFAULT_METHOD,
    seed: int | None = DEFAULT_SEED,
    *,
    shuffle: bool = True,
    repair: bool = True,
) -> np.ndarray:
    """Assign every row of a multi-hot label matrix to one of ``n_folds`` folds.

    Args:
        y: multi-hot ``(n_rows, n_labels)`` matrix, ``scipy.sparse`` or dense 0/1.
        n_folds: number of folds, ``2 <= n_folds <= n_rows``.
        method: ``"iterative"`` (default) or ``"rare-first"``; see the module docstring.
        seed: seed of every random choice; ``None`` draws fresh entropy (not repeatable).
        shuffle: visit rows in a seeded random order; ``False`` keeps the input order
            (ties are still broken by ``seed``).
        repair: move rows so that every label with ``>= n_folds`` positives is in every
            fold (and, for ``iterative``, so that fold sizes differ by at most one).
            Without it a fold is still never left empty.

    Returns:
        ``int64`` array of shape ``(n_rows,)`` with the fold (``0..n_folds-1``) of each row.

    Example:
        >>> import numpy as np
        >>> y = np.eye(4, dtype=int)[np.arange(20) % 4]
        >>> folds = make_folds(y, n_folds=5, seed=0)
        >>> np.bincount(folds).tolist()
        [4, 4, 4, 4, 4]
    """
    if method not in METHODS:
        raise InputError(f"Unknown fold method {method!r}. Expected one of: {', '.join(METHODS)}.")
    mat = as_label_matrix(y)
    n_rows = mat.shape[0]
    n_folds = check_n_folds(n_folds, n_rows)
    rng = np.random.default_rng(seed)
    # Rows are visited in `order`; `rank` (the inverse) also breaks every tie between rows.
    order = rng.permutation(n_rows) if shuffle else np.arange(n_rows)
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = np.arange(n_rows)
    maker = _iterative if method == "iterative" else _rare_first
    mover = _Mover(mat, maker(mat, n_folds, rng, order, rank), n_folds, rank)
    mover.fill_empty_folds()
    if repair:
        mover.fill_holes()
        if method == "iterative":
            mover.balance_sizes()
    return mover.folds


def _deal(d: np.ndarray, c: np.ndarray, prio: np.ndarray, m: int, step: int) -> np.ndarray:
    """The folds that ``m`` greedy picks take, in pick order.

    Each pick takes the fold with the largest ``d`` (then largest ``c``, then largest
    ``prio``) and lowers its ``d`` and ``c`` by ``step``; computed without a loop
    by water-filling to within ``2 * len(d)`` picks and sorting the rest.
    """
    n_f = len(d)
    if m <= 0:
        return np.empty(0, dtype=np.int64)
    ds = np.sort(d)[::-1].astype(np.float64)
    levels = (np.cumsum(ds) - step * m) / np.arange(1, n_f + 1)
    nxt = np.append(ds[1:], -np.inf)
    level = levels[int(np.argmax(levels >= nxt))]
    base = np.maximum(0, np.floor((d - level) / step).astype(np.int64) - 1)
    if base.sum() > m:  # float rounding safety net; the greedy below stays exact
        base[:] = 0
    r = m - int(base.sum())
    if r:
        kk = base[:, None] + np.arange(r)[None, :]
        v, cc = d[:, None] - step * kk, c[:, None] - step * kk
        pp = np.broadcast_to(prio[:, None], kk.shape)
        top = np.lexsort((-pp.ravel(), -cc.ravel(), -v.ravel()))[:r]
        base = base + np.bincount(top // r, minlength=n_f)
    fold = np.repeat(np.arange(n_f), base)
    k = np.arange(m) - np.repeat(np.cumsum(base) - base, base)
    return fold[np.lexsort((-prio[fold], -(c[fold] - step * k), -(d[fold] - step * k)))]


def _iterative(mat: sp.csr_matrix, n_folds: int, rng: np.random.Generator, order: np.ndarray,
               rank: np.ndarray) -> np.ndarray:
    n_rows, n_labels = mat.shape
    csc = mat.tocsc()
    n_pos = np.diff(csc.indptr).astype(np.int64)
    remaining = n_pos.copy()
    # All bookkeeping is on integers (desired counts scaled by n_folds) so that the
    # same seed gives the same folds whatever the CPU's floating-point kernels.
    fold_label = np.zeros((n_folds, n_labels), dtype=np.int64)
    sizes = np.zeros(n_folds, dtype=np.int64)
    folds = np.full(n_rows, -1, dtype=np.int64)
    label_tie = rng.permutation(n_labels)
    fold_prio = rng.random((n_labels + 1, n_folds))
    for it in range(n_labels):
        key = np.where(remaining > 0, remaining * n_labels + label_tie, np.iinfo(np.int64).max)
        lab = int(np.argmin(key))
        if remaining[lab] == 0:
            break
        rows = csc.indices[csc.indptr[lab] : csc.indptr[lab + 1]]
        rows = rows[folds[rows] < 0]
        rows = rows[np.argsort(rank[rows], kind="stable")]
        d = n_pos[lab] - n_folds * fold_label[:, lab]
        dealt = _deal(d, n_rows - n_folds * sizes, fold_prio[it], len(rows), n_folds)
        folds[rows] = dealt
        labs, lens = _row_labels(mat, rows)
        np.add.at(fold_label, (np.repeat(dealt, lens), labs), 1)
        remaining -= np.bincount(labs, minlength=n_labels)
        sizes += np.bincount(dealt, minlength=n_folds)
    rest = order[folds[order] < 0]
    if len(rest):
        c = n_rows - n_folds * sizes
        folds[rest] = _deal(c, c, fold_prio[-1], len(rest), n_folds)
    return folds


def _rare_first(mat: sp.csr_matrix, n_folds: int, rng: np.random.Generator, order: np.ndarray,
                rank: np.ndarray) -> np.ndarray:
    n_rows, n_labels = mat.shape
    n_pos = np.bincount(mat.indices, minlength=n_labels).astype(np.int64)
    has = np.diff(mat.indptr) > 0
    # Rarest label of each row (ties: the lowest id, as the notebook's min() over sorted ids).
    key = n_pos[mat.indices] * n_labels + mat.indices
    rarest = np.full(n_rows, -1, dtype=np.int64)
    rarest[has] = np.minimum.reduceat(key, mat.indptr[:-1][has]) % n_labels
    counts = [[0] * n_folds for _ in range(n_labels)]
    sizes = [0] * n_folds
    # Compact arrays rather than lists of Python ints: half the memory, same speed.
    idx, ptr = array("q", mat.indices.astype(np.int64)), array("q", mat.indptr.astype(np.int64))
    pick, rarest = array("d", rng.random(n_rows)), array("q", rarest)
    folds = array("q", bytes(8 * n_rows))
    span = range(n_folds)
    for t, i in enumerate(order.tolist()):
        cls = rarest[i]
        per_fold = counts[cls] if cls >= 0 else sizes
        low = min(per_fold)
        ties = [f for f in span if per_fold[f] == low]
        fold = ties[int(pick[t] * len(ties))]
        folds[i] = fold
        sizes[fold] += 1
        for lab in idx[ptr[i] : ptr[i + 1]]:
            counts[lab][fold] += 1
    return np.frombuffer(folds, dtype=np.int64).copy()


def _n_samples(a) -> int:
    return a.shape[0] if hasattr(a, "shape") else len(a)


class MultilabelStratifiedFolds:
    """K-fold cross-validator for multi-label data, shaped like scikit-learn's ``KFold``.

    Args:
        n_splits: number of folds (>= 2).
        method: ``"iterative"`` (default) or ``"rare-first"``.
        shuffle: visit rows in a seeded random order before dealing them to folds.
        random_state: int seed (same seed, same folds), ``None`` or a ``np.random.RandomState``.

    Example:
        >>> import numpy as np
        >>> y = np.eye(3, dtype=int)[np.arange(12) % 3]
        >>> cv = MultilabelStratifiedFolds(n_splits=3, random_state=0)
        >>> [len(val) for _, val in cv.split(np.zeros((12, 1)), y)]
        [4, 4, 4]
    """

    def __init__(self, n_splits: int = 5, *, method: str = DEFAULT_METHOD, shuffle: bool = True,
                 random_state=None) -> None:
        self.n_splits = n_splits
        self.method = method
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of (train, validation) pairs :meth:`split` yields."""
        return self.n_splits

    def folds(self, y) -> np.ndarray:
        """The fold index of every row of ``y`` (see :func:`make_folds`)."""
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(np.iinfo(np.int32).max))
        return make_folds(y, self.n_splits, self.method, seed, shuffle=self.shuffle)

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, validation_index)`` for each fold.

        Args:
            X: features; only its length is used (may be ``None``).
            y: multi-hot ``(n_samples, n_labels)`` matrix, dense or ``scipy.sparse``.
            groups: ignored, accepted for scikit-learn compatibility.
        """
        if y is None:
            raise InputError("MultilabelStratifiedFolds.split needs y, the multi-hot label matrix; "
                             "received y=None. Call split(X, y).")
        if X is not None and _n_samples(X) != _n_samples(y):
            raise InputError(f"X has {_n_samples(X)} rows but y has {_n_samples(y)}; expected "
                             f"the same number (one label row per sample).")
        folds = self.folds(y)
        for k in range(self.n_splits):
            yield np.flatnonzero(folds != k), np.flatnonzero(folds == k)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_splits={self.n_splits}, method={self.method!r}, "
                f"shuffle={self.shuffle}, random_state={self.random_state!r})")
