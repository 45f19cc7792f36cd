"""imet_kit.folds.report: LD, LPD and FZ against the formulas by hand, per-fold label counts, the
rare-label list, the text table and the JSON round trip. Moved from test_maker.py, plus the
count oracle and the input checks."""

from __future__ import annotations

import doctest
import json
from itertools import combinations

import numpy as np
import pytest
import scipy.sparse as sp

from imet_kit.errors import InputError
from imet_kit.folds import report as fr
from imet_kit.folds.report import fold_label_counts, fold_report, label_pair_distribution


def _ld_by_hand(y, folds, items):
    """Sechidis' formula with loops, over ``items`` (lists of label ids a row must all have)."""
    n, k = y.shape[0], folds.max() + 1
    total = []
    for item in items:
        has = y[:, item].all(axis=1)
        d = has.sum()
        for i in range(k):
            s, sj = (folds == i).sum(), has[folds == i].sum()
            total.append(abs(sj / (s - sj) - d / (n - d)))
    return np.mean(total)


def test_ld_lpd_fz_against_the_formula(long_tailed, empty_pairs):
    y = long_tailed(n_rows=60, n_labels=6, seed=9, empty_rows=0).toarray()
    folds = np.arange(60) % 3
    rep = fold_report(y, folds, 3)
    assert rep["ld"] == pytest.approx(_ld_by_hand(y, folds, [[j] for j in range(6)]))
    pairs = [list(p) for p in combinations(range(6), 2) if y[:, list(p)].all(axis=1).any()]
    assert rep["lpd"] == pytest.approx(_ld_by_hand(y, folds, pairs))
    assert label_pair_distribution(y, folds, 3) == rep["lpd"]
    assert rep["fz"] == empty_pairs(y, folds, 3) and rep["fold_sizes"] == [20, 20, 20]
    bad = np.where(y[:, 0] > 0, 0, folds)  # all of label 0 in fold 0: folds 1 and 2 lack it
    assert fold_report(y, bad, 3)["fz"] >= 2


def test_report_lists_rare_labels_and_round_trips(tmp_path):
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]])
    rep = fold_report(y, np.array([0, 1, 0, 1]), 2, label_names=["a", "b", "c"], method="x")
    rare = rep["labels_under_n_folds"]
    assert rare["count"] == 2 and [r["name"] for r in rare["labels"]] == ["b", "c"]
    assert rare["labels"][0]["folds"] == [0] and "cannot be measured" in rare["note"]
    text = fr.format_report(rep)
    assert "FZ   0" in text and "2 label(s) have fewer than 2 positives" in text
    path = fr.save_report_json(rep, tmp_path / "r.json")
    assert json.loads(path.read_text()) == rep
    with pytest.raises(InputError, match="one integer fold per row"):
        fold_report(y, [0, 1], 2)


def test_fold_label_counts_equal_a_loop_over_rows_for_dense_and_sparse(long_tailed):
    y = long_tailed(n_rows=50, n_labels=7, seed=2)
    folds = np.random.default_rng(0).integers(0, 4, 50)
    want = np.zeros((4, 7), np.int64)
    for row, f in zip(y.toarray(), folds):
        want[f] += row
    np.testing.assert_array_equal(fold_label_counts(y, folds, 4), want)
    np.testing.assert_array_equal(fold_label_counts(y.toarray().astype(bool), folds), want)
    # n_folds larger than the folds used: the unused fold is a row of zeros
    assert fold_label_counts(y, folds, 5)[4].sum() == 0


def test_empty_pair_is_named_and_shown_in_the_table():
    y = np.array([[1, 0], [1, 0], [1, 1], [1, 1]])
    rep = fold_report(y, np.array([0, 1, 0, 0]), 2, label_names=["a", "b"], method="m", seed=3)
    # label b has 2 positives, both in fold 0: fold 1 lacks it
    assert rep["fz"] == 1
    assert rep["empty_pairs"] == [{"fold": 1, "label": 1, "name": "b", "positives": 2}]
    assert (rep["method"], rep["seed"]) == ("m", 3)  # extra entries are copied in
    text = fr.format_report(rep)
    assert "fold 1 has no 'b'" in text and "method m" in text and "seed 3" in text


def test_label_pair_distribution_without_pairs_is_zero():
    y = sp.csr_matrix(np.eye(4, dtype=np.uint8))  # no two labels ever together
    assert label_pair_distribution(y, [0, 1, 0, 1], 2) == 0.0


@pytest.mark.parametrize("folds, match", [
    ([0, 1, 2], "one integer fold per row"),  # 3 folds for 4 rows
    ([0.0, 1.0, 0.0, 1.0], "one integer fold per row"),
    ([0, 1, 2, -1], "must be 0..2"),
])
def test_bad_folds(folds, match):
    with pytest.raises(InputError, match=match):
        fold_report(np.eye(4), np.array(folds), 3)


def test_fold_numbers_beyond_n_folds_are_refused():
    with pytest.raises(InputError, match="Fold numbers must be 0..1; received 0..2"):
        fold_label_counts(np.eye(3), [0, 1, 2], 2)


def test_docstring_examples_run():
    assert doctest.testmod(fr).failed == 0
