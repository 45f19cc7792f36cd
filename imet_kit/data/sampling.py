"""Class-frequency-aware sampling for the long tail (``sampling: logfreq``).

The iMet 2019 winners drew rare-label images more often. Here an image's weight comes from its
rarest label: with ``n_c`` the number of training images that carry label ``c``,

    w_i = 1 / ln(1 + min_{c in labels(i)} n_c)

(an image without labels counts as if its rarest label were carried by every image). An epoch
draws as many rows as the fold has, **with replacement**, each with probability
``w_i / sum_j w_j``: the number of steps per epoch is unchanged, rare-label images repeat,
frequent-only images are sometimes left out. The draw is a pure function of
``(seed, epoch)``, so a resumed fold continues exactly. ``uniform`` is the plain reshuffle.

Example:
    >>> import numpy as np
    >>> y = np.array([[1, 0], [1, 0], [1, 1]])
    >>> image_weights(y, "logfreq").round(3).tolist()  # label 0: 3 images, label 1: 1 image
    [0.721, 0.721, 1.443]
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from imet_kit.data.dataset import ImageDataset
from imet_kit.errors import InputError, describe_choices

SAMPLINGS = ("uniform", "logfreq")
_STREAM = 0x5A3  # keeps the weighted draw's random stream apart from the shuffle's


def image_weights(y, method: str = "logfreq") -> np.ndarray:
    """One sampling weight per row of the multi-hot ``y`` (dense or scipy sparse).

    Args:
        y: ``(n, C)`` multi-hot labels of the training rows.
        method: ``"uniform"`` (all ones) or ``"logfreq"`` (see the module docstring).

    Returns:
        float64 ``(n,)`` weights, all positive.
    """
    if method not in SAMPLINGS:
        raise InputError(f"Unknown sampling {method!r}. Expected one of: {describe_choices(SAMPLINGS)}.")
    y = sp.csr_matrix(y) if sp.issparse(y) else sp.csr_matrix(np.asarray(y) > 0)
    n = y.shape[0]
    if method == "uniform":
        return np.ones(n)
    counts = np.asarray((y > 0).sum(0)).ravel().astype(np.float64)
    rarest = np.full(n, float(n))
    coo = (y > 0).tocoo()
    np.minimum.at(rarest, coo.row, counts[coo.col])
    return 1.0 / np.log1p(np.maximum(rarest, 1.0))


def weighted_order(weights: np.ndarray, rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """``len(rows)`` rows drawn with replacement, ``P(row) ∝ weights[row]``, from (seed, epoch).

    Example:
        >>> order = weighted_order(np.array([1.0, 0.0, 1.0]), np.arange(3), seed=0, epoch=0)
        >>> len(order), 1 in order  # as many rows as given; a zero weight is never drawn
        (3, False)
    """
    rows = np.asarray(rows)
    p = np.asarray(weights, np.float64)[rows]
    if not len(rows) or p.sum() <= 0:
        return rows
    rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch, _STREAM])
    return rows[rng.choice(len(rows), size=len(rows), replace=True, p=p / p.sum())]


class WeightedImageDataset(ImageDataset):
    """An :class:`~imet_kit.data.dataset.ImageDataset` whose epoch order is a weighted draw.

    Args:
        *args, **kwargs: as for ``ImageDataset`` (``y`` is required).
        sampling: ``"uniform"`` (the parent's reshuffle) or ``"logfreq"``.

    Example:
        >>> ds = WeightedImageDataset(paths, y, size=128, augment="light", sampling="logfreq")  # doctest: +SKIP
    """

    def __init__(self, *args, sampling: str = "logfreq", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.y is None:
            raise InputError("Weighted sampling needs the labels y; received y=None.")
        self.sampling = sampling
        self.weights = image_weights(self.y, sampling)

    def order(self, epoch: int | None = None) -> np.ndarray:
        if self.sampling == "uniform":
            return super().order(epoch)
        epoch = self.epoch if epoch is None else epoch
        cache = self._order_cache
        if cache is not None and cache[0] == epoch:
            return cache[1]
        rows = weighted_order(self.weights, self.kept_indices, self.seed, epoch)
        self._order_cache = (epoch, rows)
        return rows
