"""imet_kit.folds.repair: row moves put every label with >= k positives in every fold, keep fold
sizes (or even them out), never take a fold's last positive of such a label, and never modify
the caller's array. The first test moved from test_maker.py."""

from __future__ import annotations

import doctest
import logging

import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.folds import repair as fp
from imet_kit.folds.maker import make_folds
from imet_kit.folds.repair import repair_folds
from imet_kit.folds.report import fold_label_counts


def test_repair_fills_an_empty_fold_and_keeps_sizes(long_tailed, empty_pairs):
    y = long_tailed(seed=4)
    folds = make_folds(y, 3, seed=0)
    counts = fold_label_counts(y, folds, 3)
    lab = int(np.argmax(counts.sum(axis=0) == counts.sum(axis=0)[counts.sum(axis=0) >= 3].min()))
    broken = folds.copy()
    broken[(y[:, lab].toarray().ravel() > 0) & (folds == 0)] = 1  # fold 0 loses label `lab`
    assert empty_pairs(y, broken, 3) > 0
    fixed = repair_folds(y, broken, 3)
    assert empty_pairs(y, fixed, 3) == 0
    assert np.array_equal(np.bincount(fixed), np.bincount(broken))
    assert repair_folds(y, broken, 3, balance_sizes=True).tolist() != broken.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_naive_split_is_repaired_without_touching_the_input(long_tailed, empty_pairs, seed):
    y = long_tailed(n_rows=200, n_labels=25, seed=seed)
    folds = np.arange(200) % 5  # row order, blind to labels: many empty pairs
    before = folds.copy()
    assert empty_pairs(y, folds, 5) > 0
    fixed = repair_folds(y, folds, 5)
    np.testing.assert_array_equal(folds, before)  # the caller's array is not modified
    assert empty_pairs(y, fixed, 5) == 0
    np.testing.assert_array_equal(np.bincount(fixed, minlength=5), np.bincount(before))


def test_balance_sizes_evens_out_folds_and_keeps_every_label(long_tailed, empty_pairs):
    y = long_tailed(n_rows=150, n_labels=20, seed=7)
    lopsided = np.where(np.arange(150) < 100, 0, np.arange(150) % 3)  # fold 0 holds most rows
    fixed = repair_folds(y, lopsided, 3, balance_sizes=True)
    sizes = np.bincount(fixed, minlength=3)
    assert sizes.max() - sizes.min() <= 1
    assert empty_pairs(y, fixed, 3) == 0


def test_an_empty_fold_gets_rows():
    y = np.eye(4, dtype=int)[np.arange(12) % 4]  # 4 labels, 3 positives each
    folds = np.array([0] * 6 + [1] * 6)  # fold 2 has no row at all
    fixed = repair_folds(y, folds, 3)
    assert set(fixed.tolist()) == {0, 1, 2}
    counts = fold_label_counts(y, fixed, 3)
    assert (counts > 0).all()  # every label has 3 >= k positives: one in every fold


def test_a_labels_last_positive_never_leaves_a_fold(long_tailed):
    y = long_tailed(n_rows=120, n_labels=15, seed=3)
    folds = make_folds(y, 4, seed=1)
    n_pos = fold_label_counts(y, folds, 4).sum(axis=0)
    fixed = repair_folds(y, folds, 4, balance_sizes=True)
    counts = fold_label_counts(y, fixed, 4)
    assert (counts[:, n_pos >= 4] > 0).all()


def test_a_hole_that_cannot_be_filled_is_a_warning(caplog):
    # labels a, c, d have 2 positives each; fold 1 lacks a, but each row with a also holds the
    # only fold-0 positive of c or d: moving it would open a new hole, so nothing moves
    y = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]])  # columns a, c, d
    with caplog.at_level(logging.WARNING, logger="imet_kit.folds.maker"):
        fixed = repair_folds(y, np.array([0, 0, 1, 1]), 2)
    assert fixed.tolist() == [0, 0, 1, 1]
    assert "Fold 1 keeps no positive of label 0" in caplog.text


@pytest.mark.parametrize("folds, match", [
    (np.array([0, 1]), "one integer per row"),
    (np.array([0.0, 1.0, 0.0]), "one integer per row"),
    (np.array([0, 1, 3]), "must be in 0..1"),
])
def test_bad_folds(folds, match):
    with pytest.raises(InputError, match=match):
        repair_folds(np.eye(3), folds, 2)


def test_bad_n_folds():
    with pytest.raises(InputError, match="at least 2"):
        repair_folds(np.eye(3), np.array([0, 0, 0]), 1)


def test_docstring_examples_run():
    result = doctest.testmod(fp)
    assert result.attempted > 0 and result.failed == 0
