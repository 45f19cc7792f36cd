"""imet_kit.plots.gallery: the prediction gallery is a whole PNG written atomically, with or without
the true labels, and grows a row per `cols` images."""

import numpy as np

from imet_kit.plots.gallery import plot_gallery

NAMES = ("culture::a", "tag::x", "tag::y", "tag::z")


def _case(n, seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (33, 31, 3), dtype=np.uint8) for _ in range(n)]
    pred = rng.random((n, 4)) < 0.5
    truth = rng.random((n, 4)) < 0.5
    return images, [f"im{i}" for i in range(n)], pred, truth


def test_gallery_with_truth_and_a_row_per_cols_images(tmp_path, check_png):
    images, ids, pred, truth = _case(8)
    out = plot_gallery(images, ids, pred, NAMES, tmp_path / "a" / "g.png", truth=truth, cols=4)
    assert out == str(tmp_path / "a" / "g.png")
    two_rows = check_png(out)
    one_row = check_png(plot_gallery(images[:4], ids, pred, NAMES, tmp_path / "b" / "g.png", cols=4))
    assert two_rows[1] == one_row[1] and two_rows[0] == 2 * one_row[0]


def test_gallery_shows_at_most_n(tmp_path, check_png):
    images, ids, pred, _ = _case(20)
    capped = check_png(plot_gallery(images, ids, pred, NAMES, tmp_path / "a" / "g.png", n=4, cols=4))
    four = check_png(plot_gallery(images[:4], ids, pred, NAMES, tmp_path / "b" / "g.png", cols=4))
    assert capped == four
