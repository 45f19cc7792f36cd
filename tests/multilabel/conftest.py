"""Oracles shared by the multilabel tests: the 2019 notebook's binarize_prediction, sklearn's
sample-averaged F2 and a random case generator with ties. Fixtures, since tests/ is not a package
that test modules import from."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import fbeta_score


def _make_mask(argsorted, top_n):
    mask = np.zeros(argsorted.shape, dtype=bool)
    if top_n:
        mask[np.arange(len(argsorted))[:, None], argsorted[:, -top_n:]] = True
    return mask


def _reference_binarize(probs, threshold, min_labels=1, max_labels=10):
    """lopuhin/kaggle-imet-2019 binarize_prediction, with a stable argsort for ties."""
    argsorted = probs.argsort(axis=1, kind="stable")
    return (_make_mask(argsorted, max_labels) & (probs > threshold)) | _make_mask(argsorted, min_labels)


def _sk_f2(y, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows with no true and no predicted label
        return fbeta_score(y, pred, beta=2, average="samples", zero_division=0)


def _random_case(seed, n=40, c=25, ties=True):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: ties at every rank and at the thresholds
        probs = rng.integers(0, 8, (n, c)) / 8
    else:
        probs = rng.random((n, c))
    probs = probs.astype(np.float32 if seed % 2 else np.float64)
    y = rng.random((n, c)) < 0.15
    y[:4] = False  # images with no positive label
    return probs, y


@pytest.fixture(scope="session")
def reference_binarize():
    """``reference_binarize(probs, threshold, min_labels=1, max_labels=10) -> bool (n, C)``."""
    return _reference_binarize


@pytest.fixture(scope="session")
def sk_f2():
    """``sk_f2(y, pred)``: sklearn's ``fbeta_score(beta=2, average="samples", zero_division=0)``."""
    return _sk_f2


@pytest.fixture(scope="session")
def random_case():
    """``random_case(seed, n=40, c=25, ties=True) -> (probs, y)``."""
    return _random_case
