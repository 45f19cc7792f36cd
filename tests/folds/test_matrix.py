"""imet_kit.folds.matrix: any multi-hot input becomes the same canonical CSR (uint8 ones, sorted
indices, no stored zeros) without modifying the caller's matrix; bad matrices and fold counts
are refused with the reason; _row_labels against a loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from imet_kit.errors import InputError
from imet_kit.folds.matrix import _row_labels, as_label_matrix, check_n_folds

Y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("make", [
    lambda: Y, lambda: Y.astype(bool), lambda: Y.astype(np.float32), lambda: Y.tolist(),
    lambda: sp.csr_matrix(Y), lambda: sp.csc_matrix(Y), lambda: sp.coo_array(Y),
])
def test_every_input_form_gives_the_same_canonical_csr(make):
    mat = as_label_matrix(make())
    assert sp.isspmatrix_csr(mat) and mat.dtype == np.uint8
    assert mat.has_canonical_format and (mat.data == 1).all()
    np.testing.assert_array_equal(mat.toarray(), Y)


def test_stored_zeros_and_unsorted_indices_are_cleaned_on_a_copy():
    # row 0 stores column 2 before column 0 and an explicit zero at column 1
    raw = sp.csr_matrix((np.array([1, 0, 1], np.uint8), np.array([2, 1, 0]), np.array([0, 3, 3])),
                        shape=(2, 3))
    raw_copy = (raw.data.copy(), raw.indices.copy(), raw.indptr.copy())
    mat = as_label_matrix(raw)
    assert mat.nnz == 2 and mat.indices.tolist() == [0, 2]
    for a, b in zip(raw_copy, (raw.data, raw.indices, raw.indptr)):
        np.testing.assert_array_equal(a, b)  # the caller's matrix is untouched


def test_duplicate_entries_that_sum_to_two_are_not_binary():
    # row 0 stores column 1 twice: summed, that is a 2
    dup = sp.csr_matrix((np.ones(2, np.uint8), np.array([1, 1]), np.array([0, 2, 2])), shape=(2, 2))
    with pytest.raises(InputError, match="binary"):
        as_label_matrix(dup)


@pytest.mark.parametrize("y, match", [
    (None, "received None"),
    (np.array([1, 0, 1]), "2-D"),
    (np.array([["a", "b"]]), "numeric"),
    (np.zeros((0, 2)), "empty"),
    (np.zeros((2, 2)), "no positive"),
    (np.array([[1, 2]]), "received value 2"),
    (np.array([[1, -1]]), "binary"),
])
def test_bad_label_matrices(y, match):
    with pytest.raises(InputError, match=match):
        as_label_matrix(y)


@pytest.mark.parametrize("k", [2, 5, np.int64(3)])
def test_check_n_folds_accepts_integers_in_range(k):
    out = check_n_folds(k, 5)
    assert out == int(k) and type(out) is int


@pytest.mark.parametrize("k, match", [
    (1, "at least 2"), (True, "integer"), (2.0, "integer"), ("3", "integer"),
    (6, "more than the 5 row"),
])
def test_check_n_folds_refuses(k, match):
    with pytest.raises(InputError, match=match):
        check_n_folds(k, 5)


def test_row_labels_equal_a_loop():
    rng = np.random.default_rng(0)
    mat = as_label_matrix((rng.random((30, 9)) < 0.3).astype(int) | np.eye(30, 9, dtype=int))
    rows = np.array([5, 0, 29, 5, 12])  # any order, repeats allowed
    labs, lens = _row_labels(mat, rows)
    want = [np.flatnonzero(mat[r].toarray()[0]) for r in rows]
    assert lens.tolist() == [len(w) for w in want]
    assert labs.tolist() == np.concatenate(want).tolist()
