"""imet_kit.plots.folds: the fold-quality figure is a whole PNG written atomically, for even and
lopsided splits, with or without label names, and when no label has enough positives."""

import numpy as np

from imet_kit.plots.folds import plot_fold_report


def test_fold_report_figure(tmp_path, check_png):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 30, (5, 80))
    counts[:, :10] = 1  # rare labels, exactly one per fold
    out = plot_fold_report(counts, np.array([200, 201, 199, 200, 200]), tmp_path / "a" / "r.png",
                           label_names=[f"tag::t{i}" for i in range(80)], title="5 folds")
    assert out == tmp_path / "a" / "r.png"
    assert check_png(out) == (950, 1500)  # 15 x 9.5 inches at 100 dpi


def test_no_label_with_n_folds_positives_and_a_fold_with_every_row(tmp_path, check_png):
    # (this raised ValueError from an empty max() and an empty log axis: `imet-kit folds` crashed
    # after writing the CSV whenever no attribute had --folds positives)
    counts = np.array([[1, 0, 2], [0, 1, 0], [0, 0, 0]])
    check_png(plot_fold_report(counts, np.array([10, 0, 0]), tmp_path / "r.png"))
