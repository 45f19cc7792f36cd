"""imet_kit.data.augment: presets, eval transform, deterministic and distinct TTA views."""

import doctest
import itertools

import numpy as np
import pytest

from imet_kit.data import augment as aug
from imet_kit.errors import InputError

# A dropped or renamed albumentations argument only warns: make it fail here.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

RNG = np.random.default_rng(0)
SHAPES = [(32, 32), (33, 31), (31, 33), (5, 7), (20, 200), (200, 20), (90, 70)]


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("preset", aug.TRAIN_PRESETS)
def test_presets_give_size_square_uint8_for_any_shape(preset):
    t = aug.build_train_transform(preset, 32, seed=0)
    for h, w in SHAPES:
        out = t(image=_img(h, w))["image"]
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8, (preset, h, w)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(InputError, match="notebook, light, strong, none"):
        aug.build_train_transform("heavy", 32, seed=0)
    with pytest.raises(InputError, match="positive integer"):
        aug.build_train_transform("light", 0, seed=0)


@pytest.mark.parametrize("preset", ["notebook", "light", "strong"])
def test_same_seed_same_output_other_seed_differs(preset):
    img = _img(33, 45)
    a = aug.build_train_transform(preset, 32, seed=7)
    b = aug.build_train_transform(preset, 32, seed=7)
    runs_a = [a(image=img)["image"] for _ in range(6)]
    runs_b = [b(image=img)["image"] for _ in range(6)]
    assert all(np.array_equal(x, y) for x, y in zip(runs_a, runs_b))
    assert len({r.tobytes() for r in runs_a}) > 1  # it does augment
    c = aug.build_train_transform(preset, 32, seed=8)
    assert any(not np.array_equal(x, c(image=img)["image"]) for x in runs_a)
    a.set_random_seed(7)  # reseeding replays the stream (the dataset relies on it)
    assert np.array_equal(a(image=img)["image"], runs_a[0])


def test_strong_preset_changes_intensities_not_only_geometry():
    flat = np.full((40, 40, 3), 128, np.uint8)
    t = aug.build_train_transform("strong", 32, seed=0)
    outs = [t(image=flat)["image"] for _ in range(20)]
    assert any((o != 128).any() for o in outs)  # brightness / noise / dropout acted
    light = aug.build_train_transform("light", 32, seed=0)
    assert all((light(image=flat)["image"] == 128).all() for _ in range(5))


def test_fit_shorter_side_rules():
    assert aug.fit_shorter_side(20, 200, 32) == 32  # small: enlarged
    assert aug.fit_shorter_side(300, 451, 288) is None  # iMet-like: crop at native scale
    assert aug.fit_shorter_side(1000, 800, 288) == 360  # huge: shrunk to 1.25 * size


def test_eval_is_resize_then_center_crop_and_identity_view():
    img = _img(33, 31)
    e = aug.build_eval_transform(31)(image=img)["image"]
    np.testing.assert_array_equal(e, img[1:32])  # shorter side already 31: pure centre crop
    for h, w in SHAPES:
        x = _img(h, w)
        ev = aug.build_eval_transform(32)(image=x)["image"]
        np.testing.assert_array_equal(ev, aug.apply_tta(x, "identity", 32))


def test_shorter_side_shape():
    assert aug.shorter_side_shape(300, 451, 288) == (288, 433)
    assert aug.shorter_side_shape(451, 300, 288) == (433, 288)
    assert aug.shorter_side_shape(5, 7, 32) == (32, 45)
    for h, w in itertools.product([1, 5, 31, 33, 300], repeat=2):
        nh, nw = aug.shorter_side_shape(h, w, 32)
        assert min(nh, nw) == 32 and abs(nh / nw - h / w) <= max(h / w, 1) * 0.1


@pytest.mark.parametrize("shape", [(32, 32), (33, 31), (31, 33), (20, 200)])
def test_tta_views_deterministic_and_distinct(shape):
    img = _img(*shape, seed=3)
    views = aug.tta_views(len(aug.TTA_VIEWS))
    assert len(views) >= 8 and views[0] == "identity"
    outs = [aug.apply_tta(img, v, 32) for v in views]
    for v, o in zip(views, outs):
        assert o.shape == (32, 32, 3) and o.dtype == np.uint8
        np.testing.assert_array_equal(o, aug.apply_tta(img, v, 32))  # repeats exactly
        np.testing.assert_array_equal(o, aug.build_tta_transform(v, 32)(image=img)["image"])
    assert len({o.tobytes() for o in outs}) == len(views)  # all distinct


def test_tta_view_count_and_names_are_checked():
    assert aug.tta_views(1) == ["identity"]
    for bad in (0, len(aug.TTA_VIEWS) + 1, 2.5):
        with pytest.raises(InputError, match="TTA count"):
            aug.tta_views(bad)
    with pytest.raises(InputError, match="identity, flip"):
        aug.apply_tta(_img(32, 32), "rotate", 32)


def test_docstring_examples():
    assert doctest.testmod(aug).failed == 0
