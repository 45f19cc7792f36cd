"""Label matrices for the fold makers: any multi-hot input as CSR, and the fold-count check."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from imet_kit.errors import InputError


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
                         f"{mat.data[bad][0].item()!r}. Binarise it first, e.g. (y > 0.5).")
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


def _row_labels(mat: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of ``rows`` flattened, and how many each row has."""
    starts = mat.indptr[rows]
    lens = mat.indptr[rows + 1] - starts
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
    return mat.indices[offs], lens
