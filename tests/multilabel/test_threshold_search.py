"""imet_kit.multilabel.threshold_search: per-class and per-group threshold searches score their own
thresholds exactly (sklearn's F2 on the notebook's binarisation), never lose to the global sweep,
match a brute-force search over the grid, and refuse malformed groups. The first three tests moved
from test_thresholds.py; the oracles are in tests/multilabel/conftest.py."""

import doctest
import itertools

import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.multilabel import threshold_search as ts
from imet_kit.multilabel.metrics import fbeta_samples
from imet_kit.multilabel.threshold_search import search_per_class, search_per_group
from imet_kit.multilabel.thresholds import binarize, binarize_groups, sweep_thresholds


@pytest.mark.parametrize("seed", range(4))
def test_per_class_search_scores_its_own_thresholds_and_never_loses(seed, random_case,
                                                                    reference_binarize, sk_f2):
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


def test_per_class_search_keeps_rare_classes_at_the_common_threshold(random_case):
    probs, y = random_case(5, n=200, c=12, ties=False)
    y[:, 3] = False
    y[:2, 3] = True  # two positives
    res = search_per_class(probs, y, min_support=3, start=0.3)
    assert res.thresholds[3] == 0.3
    assert np.isnan(res.scores[3]).all()


@pytest.mark.parametrize("seed", range(4))
def test_per_group_search_matches_binarize_groups_and_brute_force(seed, random_case, sk_f2):
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


@pytest.mark.parametrize("min_labels, max_labels", [(0, 3), (2, 5), (1, None)])
def test_per_class_search_honours_the_label_limits(random_case, sk_f2, min_labels, max_labels):
    probs, y = random_case(2, n=80, c=10, ties=False)
    res = search_per_class(probs, y, min_labels=min_labels, max_labels=max_labels, min_support=0)
    pred = binarize(probs, res.thresholds, min_labels, max_labels)
    assert res.score == pytest.approx(sk_f2(y, pred), abs=1e-12)
    counts = pred.sum(axis=1)
    assert counts.min() >= min_labels and counts.max() <= (max_labels or 10)


def test_per_class_search_from_the_best_global_threshold_by_default(random_case):
    probs, y = random_case(4, n=90, c=10, ties=False)
    best = sweep_thresholds(probs, y).best_threshold
    res = search_per_class(probs, y, min_support=10**6)  # no class searched: all keep the start
    np.testing.assert_array_equal(res.thresholds, np.full(10, best))


def test_per_group_search_with_three_groups_equals_brute_force(random_case):
    probs, y = random_case(8, n=40, c=9, ties=True)
    gi = np.repeat([0, 1, 2], 3)
    grid = [0.125, 0.375, 0.625]
    res = search_per_group(probs, y, gi, grid, min_labels=1, max_labels=3, n_rounds=10)
    brute = max(fbeta_samples(y, binarize_groups(probs, gi, list(t), 1, 3))
                for t in itertools.product(grid, repeat=3))
    # coordinate ascent may stop at a local optimum; it must never claim more than exists
    assert res.score <= brute + 1e-12
    assert res.score == pytest.approx(
        fbeta_samples(y, binarize_groups(probs, gi, res.thresholds, 1, 3)), abs=1e-12)


def test_per_group_search_refuses_bad_groups(random_case):
    probs, y = random_case(0, n=10, c=6)
    with pytest.raises(InputError, match="group_index"):
        search_per_group(probs, y, [0, 1])
    with pytest.raises(InputError, match=r"min_labels .* one int per group \(3\)"):
        search_per_group(probs, y, [0, 0, 1, 1, 2, 2], min_labels=[0, 1])


def test_docstring_examples_run():
    result = doctest.testmod(ts, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
