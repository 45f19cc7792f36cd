"""imet_kit.multilabel.metrics against sklearn (the oracle) on random data, empty rows included."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import fbeta_score, precision_score, recall_score

from imet_kit.errors import InputError
from imet_kit.multilabel.metrics import (
    fbeta_from_counts,
    fbeta_per_sample,
    fbeta_samples,
    precision_recall_samples,
    top_k_accuracy,
)


def _random_pair(seed, n=60, c=12):
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < 0.2
    p = rng.random((n, c)) < 0.25
    y[:5] = False  # rows with no true label
    p[3:8] = False  # rows with no prediction (3, 4 have neither)
    return y, p


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_fbeta_samples_equals_sklearn(seed, beta, zero_division):
    y, p = _random_pair(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fbeta_score(y, p, beta=beta, average="samples", zero_division=zero_division)
    assert fbeta_samples(y, p, beta, zero_division=zero_division) == pytest.approx(expected, abs=1e-12)


def test_default_zero_division_matches_sklearn_warn_default():
    y, p = _random_pair(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fbeta_score(y, p, beta=2, average="samples")
    assert fbeta_samples(y, p) == pytest.approx(expected, abs=1e-12)


def test_sparse_and_uint8_inputs_give_the_same_score():
    y, p = _random_pair(1)
    dense = fbeta_samples(y, p)
    assert fbeta_samples(sp.csr_matrix(y.astype(np.uint8)), p.astype(np.uint8)) == dense


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_precision_recall_samples_equal_sklearn(zero_division):
    y, p = _random_pair(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prec = precision_score(y, p, average="samples", zero_division=zero_division)
        rec = recall_score(y, p, average="samples", zero_division=zero_division)
    got = precision_recall_samples(y, p, zero_division=zero_division)
    assert got == pytest.approx((prec, rec), abs=1e-12)


def test_fbeta_from_counts_by_hand():
    # tp=1, |true|=2, |pred|=3: 5 * 1 / (4 * 2 + 3) = 5/11
    assert fbeta_from_counts(np.array([1]), np.array([2]), np.array([3]))[0] == pytest.approx(5 / 11)
    assert fbeta_per_sample([[1, 0]], [[0, 1]]).tolist() == [0.0]


def test_top_k_accuracy_by_brute_force():
    rng = np.random.default_rng(3)
    y = rng.random((50, 9)) < 0.15
    s = rng.integers(0, 4, (50, 9)).astype(float)  # many ties
    for k in (1, 2, 5):
        top = np.argsort(s, axis=1, kind="stable")[:, -k:]
        hits = [y[i, top[i]].any() for i in range(50)]
        assert top_k_accuracy(y, s, k) == pytest.approx(np.mean(hits))


def test_shape_mismatch_and_bad_k_raise_input_error():
    with pytest.raises(InputError, match="same shape"):
        fbeta_samples(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(InputError, match="k must be in 1..3"):
        top_k_accuracy(np.zeros((2, 3)), np.zeros((2, 3)), k=4)
    with pytest.raises(InputError, match="2-D"):
        fbeta_samples(np.zeros(3), np.zeros(3))


@pytest.mark.parametrize("module", ["imet_kit.multilabel.metrics"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
