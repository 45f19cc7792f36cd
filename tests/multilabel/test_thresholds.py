"""imet_kit.multilabel.thresholds against the 2019 notebook's binarize_prediction and sklearn's F2
(oracles in tests/multilabel/conftest.py). The per-class and per-group searches are in
test_threshold_search.py."""

import numpy as np
import pytest
import scipy.sparse as sp

from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.multilabel.thresholds import (
    DEFAULT_THRESHOLDS,
    binarize,
    binarize_groups,
    sweep_thresholds,
)


@pytest.mark.parametrize("seed", range(12))
def test_binarize_equals_reference_with_ties(seed, random_case, reference_binarize):
    probs, _ = random_case(seed, ties=seed % 3 != 0)
    rng = np.random.default_rng(seed)
    for min_labels, max_labels in [(1, 10), (0, 3), (2, 2), (3, 1), (1, 0), (0, 25)]:
        for threshold in (0.0, 0.25, 0.5, rng.choice([0.125, 0.3, 0.5, 0.9], probs.shape[1])):
            got = binarize(probs, threshold, min_labels, max_labels)
            np.testing.assert_array_equal(got, reference_binarize(probs, threshold, min_labels, max_labels))


def test_ties_go_to_the_higher_column_like_a_stable_argsort():
    probs = np.array([[0.5, 0.5, 0.1], [0.2, 0.2, 0.2]])
    assert binarize(probs, 0.9, 1, 10).astype(int).tolist() == [[0, 1, 0], [0, 0, 1]]
    # strict '>': a probability equal to the threshold is not enough
    assert binarize(np.array([[0.9, 0.3, 0.3]]), 0.3).astype(int).tolist() == [[1, 0, 0]]
    # max_labels caps the labels added by threshold, the tie broken the same way
    assert binarize(np.array([[0.9, 0.6, 0.6]]), 0.5, 1, 2).astype(int).tolist() == [[1, 0, 1]]


def test_binarize_dense_probs_and_no_cap(reference_binarize):
    rng = np.random.default_rng(0)
    probs = rng.random((30, 300)).astype(np.float32)  # nearly every entry above the threshold
    for max_labels in (10, None):
        np.testing.assert_array_equal(binarize(probs, 0.01, 1, max_labels),
                                      reference_binarize(probs, 0.01, 1, max_labels or 300))


@pytest.mark.parametrize("seed", range(8))
def test_sweep_scores_equal_sklearn_on_reference_binarization(seed, random_case, reference_binarize,
                                                              sk_f2):
    probs, y = random_case(seed, ties=seed % 2 == 0)
    grid = np.unique(np.r_[np.unique(probs)[:6], [0.05, 0.33, 0.5]])
    for min_labels, max_labels in [(1, 10), (0, 4), (2, 3)]:
        res = sweep_thresholds(probs, y, grid, min_labels, max_labels)
        expected = [sk_f2(y, reference_binarize(probs, t, min_labels, max_labels)) for t in grid]
        np.testing.assert_allclose(res.scores, expected, rtol=0, atol=1e-12)
        best = int(np.argmax(expected))
        assert res.best_threshold == grid[best] and res.best_score == pytest.approx(expected[best], abs=1e-12)


def test_sweep_accepts_sparse_truth_and_float64_grid_default(random_case):
    probs, y = random_case(3, n=80, ties=False)
    a = sweep_thresholds(probs, y)
    b = sweep_thresholds(probs, sp.csr_matrix(y.astype(np.uint8)))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.thresholds, DEFAULT_THRESHOLDS)
    assert DEFAULT_THRESHOLDS[0] == 0.05 and DEFAULT_THRESHOLDS[-1] == 0.5


def test_sweep_best_is_the_lowest_of_equal_scores():
    probs = np.array([[0.9, 0.2, 0.1]])
    y = np.array([[1, 0, 0]])
    res = sweep_thresholds(probs, y, [0.3, 0.4, 0.5])  # identical predictions
    assert res.best_threshold == 0.3 and res.best_score == 1.0


def test_binarize_groups_is_the_reference_within_each_group(random_case, reference_binarize):
    probs, _ = random_case(7, n=50, c=20)
    space = LabelSpace.from_names([f"culture::{i}" for i in range(8)] + [f"tag::{i}" for i in range(12)])
    gi = space.group_index
    got = binarize_groups(probs, gi, [0.28, 0.1], [0, 1], [3, 8])
    culture, tag = space.group_mask("culture"), space.group_mask("tag")
    np.testing.assert_array_equal(got[:, culture], reference_binarize(probs[:, culture], 0.28, 0, 3))
    np.testing.assert_array_equal(got[:, tag], reference_binarize(probs[:, tag], 0.1, 1, 8))
    assert got[:, culture].sum(axis=1).max() <= 3 and got[:, tag].sum(axis=1).min() >= 1


def test_bad_inputs_raise_input_error_naming_the_problem(random_case):
    probs, y = random_case(0)
    with pytest.raises(InputError, match="NaN"):
        binarize(np.full((2, 3), np.nan), 0.2)
    with pytest.raises(InputError, match="same shape"):
        sweep_thresholds(probs, y[:, :5])
    with pytest.raises(InputError, match="one per class"):
        binarize(probs, np.zeros(3))
    with pytest.raises(InputError, match="group_index"):
        binarize_groups(probs, np.zeros(3, int), 0.2)
    with pytest.raises(InputError, match="one per group"):
        binarize_groups(probs, np.zeros(probs.shape[1], int), [0.1, 0.2])
    with pytest.raises(InputError, match="non-negative"):
        binarize(probs, 0.2, min_labels=-1)
    with pytest.raises(InputError, match="thresholds"):
        sweep_thresholds(probs, y, [])


@pytest.mark.parametrize("module", ["imet_kit.multilabel.thresholds"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
