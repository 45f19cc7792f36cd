"""imet_kit.data.augment: presets, eval transform, deterministic and distinct TTA views."""

import doctest
import itertools

import albumentations as A
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
@pytest.mark.parametrize("resize", aug.RESIZE_MODES)
def test_presets_give_size_square_uint8_for_any_shape(preset, resize):
    for flip in (True, False):
        t = aug.build_train_transform(preset, 32, seed=0, resize=resize, flip=flip)
        for h, w in SHAPES:
            out = t(image=_img(h, w))["image"]
            assert out.shape == (32, 32, 3) and out.dtype == np.uint8, (preset, resize, h, w)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(InputError, match="notebook, light, strong, randaugment, none"):
        aug.build_train_transform("heavy", 32, seed=0)
    with pytest.raises(InputError, match="positive integer"):
        aug.build_train_transform("light", 0, seed=0)


@pytest.mark.parametrize("preset", ["notebook", "light", "strong", "randaugment"])
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
    views = aug.tta_views(len(aug.CROP_VIEWS))
    assert len(views) == 12 and views[0] == "identity"
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


def _markers(h=60, w=150, size=10):
    """A grey wide image with a red, green, blue and white square in its four corners."""
    img = np.full((h, w, 3), 128, np.uint8)
    for (y, x), colour in zip([(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)],
                              [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]):
        img[y : y + size, x : x + size] = colour
    return img


def _corner_colours(out):
    """Which corner markers survive, as a set of colour names (quadrant by quadrant)."""
    h, w = out.shape[:2]
    seen = set()
    for name, colour, (ys, xs) in [("red", (255, 0, 0), (slice(0, h // 2), slice(0, w // 2))),
                                   ("green", (0, 255, 0), (slice(0, h // 2), slice(w // 2, w))),
                                   ("blue", (0, 0, 255), (slice(h // 2, h), slice(0, w // 2))),
                                   ("white", (255, 255, 255), (slice(h // 2, h), slice(w // 2, w)))]:
        if (np.abs(out[ys, xs].astype(int) - colour).max(axis=-1) < 40).any():
            seen.add(name)
    return seen


def test_squash_and_pad_keep_the_whole_image_crop_cuts_the_ends():
    img = _markers()
    everything = {"red", "green", "blue", "white"}
    for resize in ("squash", "pad"):
        out = aug.build_eval_transform(32, resize=resize)(image=img)["image"]
        assert _corner_colours(out) == everything, resize
        np.testing.assert_array_equal(out, aug.apply_tta(img, "identity", 32, resize=resize))
        assert _corner_colours(aug.build_train_transform("none", 32, resize=resize)(image=img)["image"]) \
            == everything
    crop = aug.build_eval_transform(32)(image=img)["image"]  # as before: the centre square only
    assert _corner_colours(crop) == set()
    np.testing.assert_array_equal(crop, aug.resize_shorter_side(img, 32)[:, 24:56])  # 32 x 80 -> centre


def _walk(compose):
    for t in compose.transforms:
        yield t
        if hasattr(t, "transforms"):
            yield from _walk(t)


def _left_is_busy(out):
    """Is the left half the textured one? (colour operations keep a flat half flat)"""
    left, right = out[:, : out.shape[1] // 2].astype(float), out[:, out.shape[1] // 2 :].astype(float)
    return np.abs(np.diff(left, axis=1)).mean() > np.abs(np.diff(right, axis=1)).mean()


@pytest.mark.parametrize("resize", aug.RESIZE_MODES)
def test_flip_off_no_train_preset_or_tta_view_mirrors(resize):
    img = np.full((40, 60, 3), 120, np.uint8)
    img[:, :30] = _img(40, 30, seed=6)  # noise on the left, flat grey on the right
    for preset in ("light", "notebook", "randaugment"):  # strong's noise and holes blur the measure
        t = aug.build_train_transform(preset, 32, seed=1, resize=resize, flip=False)
        assert all(_left_is_busy(t(image=img)["image"]) for _ in range(25)), preset
    mirrors = (A.HorizontalFlip, A.VerticalFlip, A.Transpose, A.D4, A.RandomRotate90)
    for preset in aug.TRAIN_PRESETS:
        kinds = _walk(aug.build_train_transform(preset, 32, resize=resize, flip=False))
        assert not any(isinstance(k, mirrors) for k in kinds), preset
        with_flip = _walk(aug.build_train_transform(preset, 32, resize=resize, flip=True))
        assert any(isinstance(k, A.HorizontalFlip) for k in with_flip) == (preset != "none")
    flipping = aug.build_train_transform("light", 32, seed=1, resize=resize, flip=True)
    assert not all(_left_is_busy(flipping(image=img)["image"]) for _ in range(25))
    n = len(aug.available_views(flip=False, resize=resize))
    views = aug.tta_views(n, flip=False, resize=resize)
    every = aug.CROP_VIEWS if resize == "crop" else aug.FIT_VIEWS
    assert views == [v for v in every if "flip" not in v] and n == (6 if resize == "crop" else 7)
    assert all(_left_is_busy(aug.apply_tta(img, v, 32, resize=resize)) for v in views)
    with pytest.raises(InputError, match=f"between 1 and {n} .flips are off"):
        aug.tta_views(n + 1, flip=False, resize=resize)


def test_whole_image_views_order_and_count():
    assert aug.tta_views(4, resize="squash") == ["identity", "flip", "shift_l", "shift_r"]
    assert aug.tta_views(4, flip=False, resize="pad") == ["identity", "shift_l", "shift_r", "shift_u"]
    assert len(aug.available_views(resize="squash")) == 10
    with pytest.raises(InputError, match="between 1 and 10"):
        aug.tta_views(11, resize="squash")


@pytest.mark.parametrize("resize", ["squash", "pad"])
def test_shift_views_move_the_whole_image_by_five_percent(resize):
    img = _img(40, 60, seed=7)  # size 40: a 5 % shift is exactly 2 pixels, copied without blur
    ident = aug.apply_tta(img, "identity", 40, resize=resize)
    np.testing.assert_array_equal(aug.apply_tta(img, "shift_l", 40, resize=resize)[:, :-2], ident[:, 2:])
    np.testing.assert_array_equal(aug.apply_tta(img, "shift_r", 40, resize=resize)[:, 2:], ident[:, :-2])
    np.testing.assert_array_equal(aug.apply_tta(img, "shift_u", 40, resize=resize)[:-2], ident[2:])
    np.testing.assert_array_equal(aug.apply_tta(img, "shift_d", 40, resize=resize)[2:], ident[:-2])
    flipped = aug.apply_tta(img, "shift_l_flip", 40, resize=resize)
    np.testing.assert_array_equal(flipped[:, :-2], ident[:, ::-1][:, 2:])


def test_zoom_out_keeps_the_whole_image_and_pads_with_the_letterbox_value():
    img = _img(40, 40, seed=8)
    out = aug.apply_tta(img, "zoom_out", 40, resize="pad")  # 0.9 x: a 2-pixel frame of bars
    assert (out[0] == aug.PAD_VALUE).all() and (out[:, -1] == aug.PAD_VALUE).all()
    inner = out[2:-2, 2:-2].astype(float)
    assert abs(inner.mean() - img.astype(float).mean()) < 3  # the whole image, only smaller
    zin = aug.apply_tta(img, "zoom_in", 40, resize="squash")
    assert zin.shape == (40, 40, 3) and not np.array_equal(zin, aug.apply_tta(img, "identity", 40, resize="squash"))


@pytest.mark.parametrize("resize", ["squash", "pad"])
@pytest.mark.parametrize("shape", [(32, 32), (33, 31), (20, 200)])
def test_tta_views_in_squash_and_pad_modes_deterministic_and_distinct(resize, shape):
    img = _img(*shape, seed=4)
    outs = [aug.apply_tta(img, v, 32, resize=resize) for v in aug.TTA_VIEWS]
    for v, o in zip(aug.TTA_VIEWS, outs):
        assert o.shape == (32, 32, 3) and o.dtype == np.uint8
        np.testing.assert_array_equal(o, aug.build_tta_transform(v, 32, resize=resize)(image=img)["image"])
    assert len({o.tobytes() for o in outs}) == len(outs)


def test_randaugment_draws_different_operations_per_image():
    img = _img(40, 40, seed=5)
    t = aug.build_train_transform("randaugment", 32, seed=3)
    outs = {t(image=img)["image"].tobytes() for _ in range(12)}
    assert len(outs) == 12
    with pytest.raises(InputError, match="resize mode 'stretch'. Expected one of: crop, squash, pad"):
        aug.build_train_transform("light", 32, resize="stretch")


def test_docstring_examples():
    assert doctest.testmod(aug).failed == 0
