"""imet_kit.plots.training: the per-fold training curves, the OOF threshold curve and the learning
rate plot are whole PNGs written atomically, and draw what they are given."""

import numpy as np
import pytest

from imet_kit.plots.training import plot_history, plot_lr_schedule, plot_threshold_curve


def _history(n, seed):
    rng = np.random.default_rng(seed)
    return [{"epoch": e, "loss": 1 / (e + 1), "val_f2": float(rng.random())} for e in range(n)]


def test_history_one_line_per_fold(tmp_path, check_png):
    out = plot_history({0: _history(4, 0), 1: _history(3, 1), 2: []}, tmp_path / "h.png")
    assert out == str(tmp_path / "h.png")
    assert check_png(tmp_path / "h.png") == (440, 1100)  # 10 x 4 inches at 110 dpi


@pytest.mark.filterwarnings("ignore:No artists with labels")  # the empty F2 panel's legend
def test_history_without_val_f2_still_draws_the_loss(tmp_path, check_png):
    rows = [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(3)]  # F2 runs every N epochs
    check_png(plot_history({0: rows}, tmp_path / "h.png"))


def test_threshold_curve_with_and_without_group_and_class(tmp_path, check_png):
    grid = np.round(np.arange(0.05, 0.51, 0.01), 2).tolist()
    th = {"n_images": 40, "min_labels": 1, "max_labels": 10,
          "global": {"threshold": 0.2, "f2": 0.5,
                     "curve": {"thresholds": grid, "f2": [0.5 - abs(t - 0.2) for t in grid]}}}
    check_png(plot_threshold_curve(th, tmp_path / "a" / "t.png"))
    full = {**th, "group": {"f2": 0.52}, "class": {"f2": 0.55}}
    check_png(plot_threshold_curve(full, tmp_path / "b" / "t.png"))


def test_lr_schedule_in_steps_or_epochs(tmp_path, check_png):
    lr = np.r_[np.linspace(0, 1e-3, 20), np.linspace(1e-3, 0, 80)]
    assert check_png(plot_lr_schedule(lr, tmp_path / "a" / "lr.png")) == (350, 700)
    check_png(plot_lr_schedule(lr, tmp_path / "b" / "lr.png", steps_per_epoch=10, title="t"))
    check_png(plot_lr_schedule([3e-4], tmp_path / "c" / "lr.png"))  # a constant rate, one step
