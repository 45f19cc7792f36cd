"""imet_kit.training.lr_find: the geometric range, smoothing, suggestions, early stop."""

import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.data.demo import make_demo_dataset
from imet_kit.errors import InputError
from imet_kit.training.lr_find import centred_average, lr_find, lr_schedule, smooth_losses, suggest


def test_schedule_is_geometric_from_start_to_end():
    lrs = lr_schedule(1e-6, 1.0, 61)
    np.testing.assert_allclose(lrs[[0, -1]], [1e-6, 1.0])
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** 0.1)  # a constant ratio
    for bad in ((1e-3, 1e-4, 10), (0, 1, 10), (1e-4, 1, 1)):
        with pytest.raises(InputError, match="0 < start_lr < end_lr and steps >= 2"):
            lr_schedule(*bad)


def test_smoothing_is_bias_corrected():
    np.testing.assert_allclose(smooth_losses(np.full(20, 3.0)), 3.0)  # no ramp-up from zero
    s = smooth_losses([1.0, 0.0], beta=0.5)
    assert s[0] == 1.0 and s[1] == pytest.approx(0.5 * 0.5 / (1 - 0.25))


def test_centred_average_does_not_lag():
    ramp = np.arange(100.0)
    np.testing.assert_allclose(centred_average(ramp)[10:-10], ramp[10:-10])  # exact on a line
    assert smooth_losses(ramp)[50] < 30  # the moving average trails ~20 steps behind
    x = centred_average([1.0, np.nan, 3.0, np.inf, 5.0, 7.0])
    assert np.isfinite(x).all()  # bad points are left out of the windows


def test_suggestions_on_a_known_curve_lie_inside_the_range():
    lrs = np.geomspace(1e-6, 1, 121)
    x = np.log10(lrs)
    loss = 2 - np.tanh(x + 3) + np.where(x > -1, 10 * (x + 1) ** 2, 0)  # falls fastest at 1e-3
    found = suggest(lrs, loss)
    assert found["steepest"] == pytest.approx(1e-3, rel=0.13)
    assert found["min10"] == pytest.approx(lrs[np.argmin(loss)] / 10)
    # a minimum at the very start would suggest below the range: clipped into it
    assert suggest(lrs, np.linspace(1, 2, 121))["min10"] == lrs[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lrdata")
    make_demo_dataset(root, n_train=32, n_test=4, seed=3)
    return root


def test_stops_when_the_smoothed_loss_diverges_and_writes_nothing(data, tmp_path):
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), backbone="tiny_cnn", weights=None,
                      image_size=32, batch_size=8, folds=2)
    res = lr_find(cfg, start_lr=1e-5, end_lr=10, steps=40, diverge=1.0001)
    assert res.stopped_early and 2 <= len(res.lrs) < 40
    np.testing.assert_allclose(res.lrs, lr_schedule(1e-5, 10, 40)[:len(res.lrs)])
    assert res.lrs[0] <= res.suggestion <= res.lrs[-1] and res.method == "min10"
    assert not (tmp_path / "run").exists() and not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="Expected one of: min10, steepest"):
        lr_find(cfg, method="valley")
