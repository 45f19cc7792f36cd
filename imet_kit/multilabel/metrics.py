"""Per-image (sample-averaged) multi-label metrics, vectorised in numpy.

The iMet metric is F2 computed for each image and averaged over images, which
Keras' ``FBetaScore`` cannot do (it averages micro / macro / weighted only).
:func:`fbeta_samples` equals ``sklearn.metrics.fbeta_score(average="samples")``
(including its ``zero_division`` rule) at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from imet_kit.errors import InputError


def as_dense_bool(y, name: str = "y") -> np.ndarray:
    """A 2-D multi-hot matrix (numpy or scipy.sparse, any 0/1 dtype) as a bool array.

    Example:
        >>> as_dense_bool([[0, 1], [1, 0]]).tolist()
        [[False, True], [True, False]]
    """
    if sp.issparse(y):
        y = y.toarray()
    y = np.asarray(y)
    if y.ndim != 2:
        raise InputError(f"{name} must be a 2-D (n_images, n_classes) array; received shape {y.shape}.")
    if y.dtype == bool:
        return y
    return y != 0


def _check_pair(y_true, y_pred, what: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    t = as_dense_bool(y_true, "y_true")
    p = as_dense_bool(y_pred, what)
    if t.shape != p.shape:
        raise InputError(
            f"y_true and {what} must have the same shape; received {t.shape} and {p.shape}."
        )
    return t, p


def fbeta_from_counts(
    tp: np.ndarray,
    n_true: np.ndarray,
    n_pred: np.ndarray,
    beta: float = 2.0,
    zero_division: float = 0.0,
) -> np.ndarray:
    """Per-image F-beta from counts: ``(1 + b^2) tp / (b^2 |true| + |pred|)``.

    Args:
        tp: true positives per image.
        n_true: number of true labels per image.
        n_pred: number of predicted labels per image.
        beta: recall weight (2 for iMet).
        zero_division: value for an image with no true and no predicted label
            (sklearn's default, ``"warn"``, also gives 0).

    Returns:
        float64 array of per-image scores.

    Example:
        >>> fbeta_from_counts(np.array([1, 0]), np.array([2, 0]), np.array([1, 0])).tolist()
        [0.5555555555555556, 0.0]
    """
    b2 = float(beta) ** 2
    num = (1.0 + b2) * np.asarray(tp, dtype=np.float64)
    den = b2 * np.asarray(n_true, dtype=np.float64) + np.asarray(n_pred, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den == 0, float(zero_division), out)


def fbeta_per_sample(y_true, y_pred, beta: float = 2.0, *, zero_division: float = 0.0) -> np.ndarray:
    """F-beta of each image (row) of two multi-hot matrices.

    Example:
        >>> fbeta_per_sample([[1, 1, 0]], [[1, 0, 0]]).round(4).tolist()
        [0.5556]
    """
    t, p = _check_pair(y_true, y_pred)
    tp = np.count_nonzero(t & p, axis=1)
    return fbeta_from_counts(tp, t.sum(axis=1), p.sum(axis=1), beta, zero_division)


def fbeta_samples(y_true, y_pred, beta: float = 2.0, *, zero_division: float = 0.0) -> float:
    """Sample-averaged F-beta; equals sklearn ``fbeta_score(average="samples")``.

    Args:
        y_true: (n, C) multi-hot ground truth (numpy or scipy.sparse).
        y_pred: (n, C) multi-hot predictions, e.g. from :func:`imet_kit.multilabel.thresholds.binarize`.
        beta: 2 for the iMet metric.
        zero_division: score of an image with no true and no predicted label.

    Returns:
        The mean over images of the per-image F-beta.

    Example:
        >>> fbeta_samples([[1, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 0, 1]])
        0.7777777777777778
    """
    return float(np.mean(fbeta_per_sample(y_true, y_pred, beta, zero_division=zero_division)))


def precision_recall_samples(y_true, y_pred, *, zero_division: float = 0.0) -> tuple[float, float]:
    """Sample-averaged precision and recall (sklearn ``average="samples"``).

    Args:
        y_true: (n, C) multi-hot ground truth.
        y_pred: (n, C) multi-hot predictions.
        zero_division: precision of an image with no prediction / recall of an
            image with no true label.

    Returns:
        ``(precision, recall)``.

    Example:
        >>> precision_recall_samples([[1, 1, 0]], [[1, 0, 1]])
        (0.5, 0.5)
    """
    t, p = _check_pair(y_true, y_pred)
    tp = np.count_nonzero(t & p, axis=1).astype(np.float64)
    n_pred, n_true = p.sum(axis=1), t.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(n_pred == 0, float(zero_division), tp / n_pred)
        rec = np.where(n_true == 0, float(zero_division), tp / n_true)
    return float(prec.mean()), float(rec.mean())


def top_k_accuracy(y_true, probs, k: int = 1) -> float:
    """Share of images whose ``k`` highest-scored labels include a true label.

    Args:
        y_true: (n, C) multi-hot ground truth.
        probs: (n, C) scores.
        k: how many top-scored labels count; ties go to the higher column index,
            as in a stable ``argsort``.

    Returns:
        Hit rate in [0, 1].

    Example:
        >>> top_k_accuracy([[0, 1, 0], [1, 0, 0]], [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1]], k=1)
        0.5
    """
    t = as_dense_bool(y_true, "y_true")
    s = np.asarray(probs)
    if s.shape != t.shape:
        raise InputError(f"y_true and probs must have the same shape; received {t.shape} and {s.shape}.")
    if not 1 <= int(k) <= s.shape[1]:
        raise InputError(f"top_k_accuracy: k must be in 1..{s.shape[1]}; received k={k}.")
    top = np.argsort(s, axis=1, kind="stable")[:, -int(k):]
    return float(np.take_along_axis(t, top, axis=1).any(axis=1).mean())
