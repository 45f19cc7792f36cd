"""imet_kit.plots.data: the label-frequency chart and the batch grid are whole PNGs written
atomically; the grid takes uint8, 0-255 or normalised batches and refuses what is not a batch."""

import numpy as np
import pytest

from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.plots.data import _as_display_images, plot_batch_grid, plot_label_frequency


def test_label_frequency_chart_widens_with_the_labels(tmp_path, check_png):
    few = LabelSpace.from_names(["culture::a", "tag::x", "tag::y"])
    y = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0]])
    out = plot_label_frequency(y, few, tmp_path / "a" / "f.png")
    assert out == str(tmp_path / "a" / "f.png")
    h, w = check_png(out)
    assert (h, w) == (440, 660)  # at least 6 x 4 inches at 110 dpi
    many = LabelSpace.from_names([f"tag::t{i}" for i in range(60)])
    ym = (np.random.default_rng(0).random((30, 60)) < 0.3).astype(int)
    assert check_png(plot_label_frequency(ym, many, tmp_path / "b" / "f.png"))[1] > w


def test_batch_grid_from_arrays(tmp_path, check_png):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 33, 31, 3), dtype=np.uint8)
    y = np.eye(4)[[0, 1, 2, 3, 0]]
    y[0, 1:] = 1  # 4 labels, more than max_names: "+1 more"
    out = plot_batch_grid((x, y), ["a", "b", "c", "d"], tmp_path / "a" / "g.png", ncols=2)
    check_png(out)
    check_png(plot_batch_grid(x[:1], [], tmp_path / "b" / "g.png"))  # images alone, no labels
    gray = rng.random((3, 16, 16, 1)).astype(np.float32)  # one channel, 0-1 floats
    check_png(plot_batch_grid(gray, [], tmp_path / "c" / "g.png"), min_side=100)


def test_display_conversion_of_each_input_range():
    u8 = np.full((1, 2, 2, 3), 200, np.uint8)
    assert _as_display_images(u8) is u8
    np.testing.assert_array_equal(_as_display_images(u8.astype(np.float32)), u8)  # 0-255 floats
    unit = np.array([0.0, 0.5, 1.0], np.float32).reshape(1, 1, 3, 1)
    assert _as_display_images(unit).ravel().tolist() == [0, 128, 255]  # 0-1: stretched
    centred = np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 1, 3, 1)
    assert _as_display_images(centred).ravel().tolist() == [0, 128, 255]  # -1..1: stretched


@pytest.mark.parametrize("x, match", [
    (np.zeros((4, 4)), r"\(B, H, W, 3\); received shape \(4, 4\)"),
    (np.zeros((2, 8, 8, 4)), r"received shape \(2, 8, 8, 4\)"),
    (np.zeros((0, 8, 8, 3)), "empty batch"),
])
def test_batch_grid_refuses_what_is_not_a_batch(tmp_path, x, match):
    with pytest.raises(InputError, match=match):
        plot_batch_grid(x, [], tmp_path / "g.png")
    assert not list(tmp_path.iterdir())
