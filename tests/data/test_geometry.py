"""imet_kit.data.geometry: the crop / squash / pad resize modes."""

import doctest

import numpy as np
import pytest

from imet_kit.data import geometry as geo
from imet_kit.errors import InputError


def test_pad_letterboxes_with_bars_of_the_pad_value():
    img = np.full((50, 100, 3), 200, np.uint8)  # aspect 2: content 16 rows high at 32 px
    assert geo.letterbox_geometry(50, 100, 32) == (16, 32, 8, 0)
    out = geo.letterbox(img, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:8] == geo.PAD_VALUE).all() and (out[24:] == geo.PAD_VALUE).all()
    assert (out[8:24] == 200).all()
    tall = geo.letterbox(img.transpose(1, 0, 2), 32)
    assert (tall[:, :8] == geo.PAD_VALUE).all() and (tall[:, 8:24] == 200).all()
    assert geo.letterbox_geometry(3, 400, 32) == (1, 32, 15, 0)  # a sliver keeps one row


@pytest.mark.parametrize("shape", [(33, 31), (31, 33), (5, 7), (20, 200), (300, 451)])
def test_fit_image_shapes_for_each_mode(shape):
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert geo.fit_image(img, "crop", 32).shape[:2] == geo.shorter_side_shape(*shape, 32)
    assert geo.fit_image(img, "squash", 32).shape == (32, 32, 3)
    assert geo.fit_image(img, "pad", 32).shape == (32, 32, 3)


def test_squash_shrinks_by_area_averaging_so_thin_lines_survive():
    img = np.zeros((96, 96, 3), np.uint8)
    img[:, 1::3] = 255  # one-pixel lines every 3 columns: bilinear at 1/3 can land between them
    out = geo.squash(img, 32)
    np.testing.assert_allclose(out.astype(float).mean(), 255 / 3, atol=2)
    assert out.std() < 5  # evenly grey, no aliasing stripes


def test_unknown_mode_lists_the_choices():
    with pytest.raises(InputError, match="Expected one of: crop, squash, pad"):
        geo.fit_image(np.zeros((4, 4, 3), np.uint8), "stretch", 8)


def test_docstring_examples():
    assert doctest.testmod(geo).failed == 0
