"""imet_kit.multilabel.thresholds against the 2019 notebook's binarize_prediction and sklearn's F2."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import fbeta_score

from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.multilabel.metrics import fbeta_samples
from imet_kit.multilabel.threshold_search import search_per_class, search_per_group
from imet_kit.multilabel.thresholds import (
    DEFAULT_THRESHOLDS,
    binarize,
    binarize_groups,
    sweep_thresholds,
)


def _make_mask(argsorted, top_n):
    mask = np.zeros(argsorted.shape, dtype=bool)
    if top_n:
        mask[np.arange(len(argsorted))[:, None], argsorted[:, -top_n:]] = True
    return mask


def reference_binarize(probs, threshold, min_labels=1, max_labels=10):
    """lopuhin/kaggle-imet-2019 binarize_prediction, with a stable argsort for ties."""
    argsorted = probs.argsort(axis=1, kind="stable")
    return (_make_mask(argsorted, max_labels) & (probs > threshold)) | _make_mask(argsorted, min_labels)


def sk_f2(y, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with no true and no predicted label
        return fbeta_score(y, pred, beta=2, average="samples", zero_division=0)


def random_case(seed, n=40, c=25, ties=True):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: ties at every rank and at the thresholds
        probs = rng.integers(0, 8, (n, c)) / 8
    else:
        probs = rng.random((n, c))
    probs = probs.astype(np.float32 if seed % 2 else np.float64)
    y = rng.random((n, c)) < 0.15
    y[:4] = False  # images with no positive label
    return probs, y


@pytest.mark.parametrize("seed", range(12))
def test_binarize_equals_reference_with_ties(seed):
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


def test_binarize_dense_probs_and_no_cap():
    rng = np.random.default_rng(0)
    probs = rng.random((30, 300)).astype(np.float32)  # nearly every entry above the threshold
    for max_labels in (10, None):
        np.testing.assert_array_equal(binarize(probs, 0.01, 1, max_labels),
                                      reference_binarize(probs, 0.01, 1, max_labels or 300))


@pytest.mark.parametrize("seed", range(8))
def test_sweep_scores_equal_sklearn_on_reference_binarization(seed):
    probs, y = random_case(seed, ties=seed % 2 == 0)
    grid = np.unique(np.r_[np.unique(probs)[:6], [0.05, 0.33, 0.5]])
    for min_labels, max_labels in [(1, 10), (0, 4), (2, 3)]:
        res = sweep_thresholds(probs, y, grid, min_labels, max_labels)
        expected = [sk_f2(y, reference_binarize(probs, t, min_labels, max_labels)) for t in grid]
        np.testing.assert_allclose(res.scores, expected, rtol=0, atol=1e-12)
        best = int(np.argmax(expected))
        assert res.best_threshold == grid[best] and res.best_score == pytest.approx(expected[best], abs=1e-12)


def test_sweep_accepts_sparse_truth_and_float64_grid_default():
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


@pytest.mark.parametrize("seed", range(4))
def test_per_class_search_scores_its_own_thresholds_and_never_loses(seed):
    probs, y = random_case(seed, n=120, c=15, ties=seed % 2 == 0)
    grid = np.round(np.arange(0.05, 0.95, 0.05), 2)
    base = sweep_thresholds(probs, y, grid)
    res = search_per_class(probs, y, grid, min_support=0, n_rounds=20)
    assert res.thresholds.shape == (15,)
    assert res.score == pytest.approx(sk_f2(y, reference_binarize(probs, res.thresholds)), abs=1e-12)
    assert res.score >= base.best_score - 1e-12
    assert res.history[0] == pytest.approx(base.best_score) and np.all(np.diff(res.history) >= -1e-12)
    # converged (a round moved nothing): every searched class sits at the top of its curve
    assert len(res.history) < 21 and res.history[-1] == res.history[-2]
    searched = ~np.isnan(res.scores).all(axis=1)
    assert searched.any()
    np.testing.assert_allclose(res.scores[searched].max(axis=1), res.score, atol=1e-12)


def test_per_class_search_keeps_rare_classes_at_the_common_threshold():
    probs, y = random_case(5, n=200, c=12, ties=False)
    y[:, 3] = False
    y[:2, 3] = True  # two positives
    res = search_per_class(probs, y, min_support=3, start=0.3)
    assert res.thresholds[3] == 0.3
    assert np.isnan(res.scores[3]).all()


@pytest.mark.parametrize("seed", range(4))
def test_per_group_search_matches_binarize_groups_and_brute_force(seed):
    probs, y = random_case(seed, n=60, c=14, ties=seed % 2 == 1)
    group_index = np.r_[np.zeros(6, int), np.ones(8, int)]
    grid = [0.1, 0.2, 0.3, 0.45, 0.6]
    mins, maxs = [0, 1], [3, 8]
    res = search_per_group(probs, y, group_index, grid, min_labels=mins, max_labels=maxs)
    pred = binarize_groups(probs, group_index, res.thresholds, mins, maxs)
    assert res.score == pytest.approx(sk_f2(y, pred), abs=1e-12)
    brute = max(fbeta_samples(y, binarize_groups(probs, group_index, list(t), mins, maxs))
                for t in itertools.product(grid, repeat=2))
    assert res.score == pytest.approx(brute, abs=1e-12)
    assert res.scores.shape == (2, len(grid))


def test_binarize_groups_is_the_reference_within_each_group():
    probs, _ = random_case(7, n=50, c=20)
    space = LabelSpace.from_names([f"culture::{i}" for i in range(8)] + [f"tag::{i}" for i in range(12)])
    gi = space.group_index
    got = binarize_groups(probs, gi, [0.28, 0.1], [0, 1], [3, 8])
    culture, tag = space.group_mask("culture"), space.group_mask("tag")
    np.testing.assert_array_equal(got[:, culture], reference_binarize(probs[:, culture], 0.28, 0, 3))
    np.testing.assert_array_equal(got[:, tag], reference_binarize(probs[:, tag], 0.1, 1, 8))
    assert got[:, culture].sum(axis=1).max() <= 3 and got[:, tag].sum(axis=1).min() >= 1


def test_bad_inputs_raise_input_error_naming_the_problem():
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
