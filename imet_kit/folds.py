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

After either, a repair pass moves rows (and swaps one back, keeping fold sizes)
so that every label with at least ``n_folds`` positives has a positive in every
validation fold; it logs a warning for a pair it cannot fix (a pair can be
impossible: two labels on rows {a, b} and {b, c} and a third on {a, c}, 2 folds).
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

import logging
from array import array
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from .errors import InputError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_METHOD", "DEFAULT_SEED", "METHODS", "MultilabelStratifiedFolds",
           "as_label_matrix", "check_n_folds", "make_folds", "repair_folds"]

METHODS = ("iterative", "rare-first")
DEFAULT_METHOD = "iterative"
DEFAULT_SEED = 42


def as_label_matrix(y) -> sp.csr_matrix:
    """Validate a multi-hot ``(n_rows, n_labels)`` matrix and return it as CSR (uint8).

    Args:
        y: a ``scipy.sparse`` matrix / array or an array-like of 0/1 (or bool) values.

    Returns:
        ``csr_matrix`` with sorted indices, no stored zeros and all stored values 1.

    Example:
        >>> as_label_matrix([[1, 0], [0, 1]]).nnz
        2
    """
    if y is None:
        raise InputError("Expected a multi-hot label matrix y (n_rows, n_labels); received None.")
    if not sp.issparse(y):
        arr = np.asarray(y)
        if arr.ndim != 2:
            raise InputError(f"Expected a 2-D multi-hot label matrix (n_rows, n_labels); received "
                             f"shape {arr.shape}. For one label per row, one-hot encode it first.")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"Expected a numeric 0/1 label matrix; received dtype {arr.dtype}.")
        y = arr
    mat = sp.csr_matrix(y)  # no copy for a CSR input, which is never modified
    if 0 in mat.shape:
        raise InputError(f"The label matrix is empty: shape {mat.shape}. Expected at least one "
                         f"row and one label column.")
    if not mat.has_canonical_format or (mat.data == 0).any():
        mat = mat.copy()
        mat.sum_duplicates()
        mat.eliminate_zeros()
    if mat.nnz == 0:
        raise InputError(f"The label matrix {mat.shape} has no positive entry; nothing to "
                         f"stratify. Check that the labels were read (multi-hot 0/1 values).")
    bad = mat.data != 1
    if bad.any():
        raise InputError(f"Expected a binary (0/1) multi-hot label matrix; received value "
                         f"{mat.data[bad][0]!r}. Binarise it first, e.g. (y > 0.5).")
    return sp.csr_matrix((np.ones(mat.nnz, np.uint8), mat.indices, mat.indptr), shape=mat.shape)


def check_n_folds(n_folds, n_rows: int) -> int:
    """Return ``n_folds`` as an int after checking ``2 <= n_folds <= n_rows``."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)):
        raise InputError(f"n_folds must be an integer >= 2; received {n_folds!r}.")
    if n_folds < 2:
        raise InputError(
            f"n_folds must be at least 2 (one validation fold and the rest to train); "
            f"received {n_folds}. Use --folds 5 for the usual 5-fold split."
        )
    if n_folds > n_rows:
        raise InputError(
            f"n_folds={n_folds} is more than the {n_rows} row(s) to split; every fold needs a row. "
            f"Use n_folds <= {n_rows}."
        )
    return int(n_folds)


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


def _row_labels(mat: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of ``rows`` flattened, and how many each row has."""
    starts = mat.indptr[rows]
    lens = mat.indptr[rows + 1] - starts
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
    return mat.indices[offs], lens


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
