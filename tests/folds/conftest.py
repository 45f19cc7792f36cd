"""Label matrices shared by the fold tests (maker, repair, report): a long-tailed generator and
the FZ count by hand. Fixtures, since tests/ is not a package that test modules import from."""

import numpy as np
import pytest
import scipy.sparse as sp

from imet_kit.folds.report import fold_label_counts


def _long_tailed(n_rows=400, n_labels=30, seed=0, empty_rows=5) -> sp.csr_matrix:
    """Long-tailed, topic-correlated multi-hot labels (120 positives down to 2)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(2, (0.3 * n_rows / np.arange(1, n_labels + 1) ** 1.1).astype(int))
    topic = rng.integers(0, 4, n_rows)
    topic[:empty_rows] = -1  # rows that get no label
    rows, cols = [], []
    for j, size in enumerate(sizes):
        w = np.where(topic == j % 4, 4.0, 1.0) * (topic >= 0)
        picked = rng.choice(n_rows, size=size, replace=False, p=w / w.sum())
        rows += picked.tolist()
        cols += [j] * size
    return sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(n_rows, n_labels))


def _empty_pairs(y, folds, k) -> int:
    counts = fold_label_counts(y, folds, k)
    return int(((counts == 0) & (counts.sum(axis=0) >= k)[None, :]).sum())


@pytest.fixture(scope="session")
def long_tailed():
    """``long_tailed(n_rows=400, n_labels=30, seed=0, empty_rows=5) -> csr_matrix``."""
    return _long_tailed


@pytest.fixture(scope="session")
def empty_pairs():
    """``empty_pairs(y, folds, k) -> int``: (fold, label) pairs with no positive among labels
    with at least k positives (the report's FZ, counted independently)."""
    return _empty_pairs
