"""imet_kit.data.sampling: log-frequency weights, the weighted epoch draw, its dataset."""

import cv2
import numpy as np
import pytest
import scipy.sparse as sp

from imet_kit.config import TrainConfig
from imet_kit.data.sampling import (
    SAMPLINGS,
    WeightedImageDataset,
    image_weights,
    weighted_order,
)
from imet_kit.errors import InputError
from imet_kit.training.validate import name_problems


def test_logfreq_weight_is_the_rarest_labels_inverse_log_count():
    # label counts: 0 -> 4 images, 1 -> 2, 2 -> 1; row 4 has no label (counts as n = 5 images)
    y = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0]])
    w = image_weights(y, "logfreq")
    expected = 1 / np.log1p([4, 2, 1, 4, 5])
    np.testing.assert_allclose(w, expected)
    np.testing.assert_allclose(image_weights(sp.csr_matrix(y), "logfreq"), expected)
    np.testing.assert_array_equal(image_weights(y, "uniform"), np.ones(5))
    with pytest.raises(InputError, match="Expected one of: uniform, logfreq"):
        image_weights(y, "sqrt")


def test_draw_frequencies_follow_the_weights_over_many_epochs():
    """Property: each row is drawn with probability w_i / sum(w) (chi-square, many epochs)."""
    rng = np.random.default_rng(3)
    y = (rng.random((40, 12)) < np.geomspace(0.6, 0.03, 12)).astype(int)
    w = image_weights(y, "logfreq")
    rows = np.arange(40)
    epochs = 2000
    counts = np.zeros(40)
    for e in range(epochs):
        order = weighted_order(w, rows, seed=7, epoch=e)
        assert len(order) == 40  # as many steps as uniform sampling
        counts += np.bincount(order, minlength=40)
    expected = epochs * 40 * w / w.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 80, chi2  # 39 degrees of freedom: p(chi2 > 80) < 1e-4
    # and the rare-label rows really are drawn more than the frequent-only ones
    rare = w > np.median(w)
    assert counts[rare].mean() > counts[~rare].mean() * 1.2


def test_draw_is_a_pure_function_of_seed_and_epoch():
    w = np.linspace(0.2, 1.0, 30)
    rows = np.arange(30)
    a = weighted_order(w, rows, seed=1, epoch=4)
    np.testing.assert_array_equal(a, weighted_order(w, rows, seed=1, epoch=4))
    assert not np.array_equal(a, weighted_order(w, rows, seed=1, epoch=5))
    assert not np.array_equal(a, weighted_order(w, rows, seed=2, epoch=4))
    sub = weighted_order(w, rows[::2], seed=1, epoch=4)  # only the rows given are drawn
    assert set(sub.tolist()) <= set(rows[::2].tolist())


def test_weighted_dataset_batches_follow_the_draw(tmp_path):
    paths = []
    for i in range(12):
        p = tmp_path / f"im{i}.png"
        cv2.imwrite(str(p), np.full((33, 31, 3), i * 20, np.uint8))
        paths.append(str(p))
    y = np.zeros((12, 3), np.uint8)
    y[:, 0] = 1
    y[:2, 2] = 1  # two rare-label images
    ds = WeightedImageDataset(paths, y, size=16, batch_size=5, augment="light", seed=4)
    assert len(ds) == 3  # steps per epoch unchanged
    for epoch in (0, 1):
        ds.epoch = epoch
        order = weighted_order(ds.weights, np.arange(12), 4, epoch)
        np.testing.assert_array_equal(ds.order(), order)
        _, yb, rows = ds.load_batch(0)
        np.testing.assert_array_equal(rows, order[:5])
        np.testing.assert_array_equal(yb, y[order[:5]])
    uniform = WeightedImageDataset(paths, y, size=16, batch_size=5, augment="light", seed=4,
                                   sampling="uniform")
    assert sorted(uniform.order().tolist()) == list(range(12))  # a plain reshuffle
    with pytest.raises(InputError, match="needs the labels"):
        WeightedImageDataset(paths, None, size=16, shuffle=False)


def test_config_names_are_checked():
    assert "sampling" in TrainConfig.__dataclass_fields__ and SAMPLINGS == ("uniform", "logfreq")
    problems = name_problems(TrainConfig(weights=None, sampling="rare"))
    assert any("sampling: unknown 'rare', expected one of uniform, logfreq" in p for p in problems)
    assert not name_problems(TrainConfig(weights=None, sampling="logfreq"))
