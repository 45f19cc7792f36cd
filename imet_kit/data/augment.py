"""Train augmentation presets, the eval transform and deterministic TTA views.

The only module that imports albumentations (2.0.8). Every transform works on one
``(H, W, 3)`` uint8 image of any size and aspect ratio and returns ``(size, size, 3)`` uint8,
with the geometry of a resize mode (:mod:`imet_kit.data.geometry`: ``crop``, ``squash``, ``pad``).

* Train presets (:data:`TRAIN_PRESETS`): ``notebook`` (the 2019 notebook's flip,
  shift-scale-rotate as ``Affine``, random crop), ``light`` (flip + random crop),
  ``strong`` (notebook + brightness/contrast, Gaussian noise, coarse dropout),
  ``randaugment`` (RandAugment: 2 of 13 operations per image, no flips among them) and
  ``none`` (the eval transform). In ``crop`` mode an image whose shorter side is below
  ``size`` is first enlarged to it and one above ``1.25 * size`` shrunk to that, then
  randomly cropped; in ``squash`` / ``pad`` mode the whole image is fitted to the square and
  a random shift and zoom (up to 10 %) stand in for the random crop.
  ``flip=False`` leaves out every mirror (for data where a mirrored glyph is another glyph).
* Eval: ``crop``: resize the shorter side to ``size``, centre crop; ``squash`` / ``pad``: the
  whole image.
* TTA (:data:`TTA_VIEWS`), each a fixed transform, so a prediction repeats exactly; which
  views and in which order depends on the resize mode (:func:`tta_views`). ``crop``: identity,
  flip, then corner / centre crops of the image fitted to ``8/7 * size`` and their flips.
  ``squash`` / ``pad``: identity, flip, then the whole image shifted by 5 % of the side
  (left, right, up, down) and zoomed by 10 % (in, out), with the train jitter's border: views
  that keep every object in the frame, like the training images did (a corner crop cuts off
  the ends of the image, where a squashed wide photo keeps objects). With ``flip=False`` the
  mirrored views are left out.

The crop-mode geometry is plain integer arithmetic so the tf.data path
(``imet_kit.data.tfdata``, crop mode only) reproduces it.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from imet_kit.data.geometry import (  # noqa: E402, F401  (shorter_side_shape & co. re-exported)
    MAX_SCALE,
    PAD_VALUE,
    RESIZE_MODES,
    check_resize,
    crop_offsets,
    fit_image,
    fit_shorter_side,
    resize_shorter_side,
    shorter_side_shape,
)
from imet_kit.errors import InputError, describe_choices  # noqa: E402

TRAIN_PRESETS = ("notebook", "light", "strong", "randaugment", "none")
TTA_SCALE = 8 / 7  # TTA crops come from the image fitted to TTA_SCALE * size
JITTER = 0.1  # squash / pad train: random shift (fraction of the side) and zoom (1 +- JITTER)


class TTASpec(NamedTuple):
    """A deterministic view: fit the image to ``scale * size`` (by the resize mode), crop, flip;
    then (the whole-image views) shift by ``(dx, dy)`` of the side and zoom by ``zoom``."""

    scale: float
    position: str  # "center", "tl", "tr", "bl", "br"
    flip: bool
    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0


TTA_SPECS: dict[str, TTASpec] = {
    "identity": TTASpec(1.0, "center", False),
    "flip": TTASpec(1.0, "center", True),
    "crop_tl": TTASpec(TTA_SCALE, "tl", False),
    "crop_br": TTASpec(TTA_SCALE, "br", False),
    "crop_tr": TTASpec(TTA_SCALE, "tr", False),
    "crop_bl": TTASpec(TTA_SCALE, "bl", False),
    "crop_tl_flip": TTASpec(TTA_SCALE, "tl", True),
    "crop_br_flip": TTASpec(TTA_SCALE, "br", True),
    "crop_tr_flip": TTASpec(TTA_SCALE, "tr", True),
    "crop_bl_flip": TTASpec(TTA_SCALE, "bl", True),
    "crop_c": TTASpec(TTA_SCALE, "center", False),
    "crop_c_flip": TTASpec(TTA_SCALE, "center", True),
}
TTA_SHIFT = 0.05  # whole-image TTA views: shift by 5 % of the side, zoom by 1 +- 2 * TTA_SHIFT
FIT_VIEW_SPECS: dict[str, TTASpec] = {
    "shift_l": TTASpec(1.0, "center", False, dx=-TTA_SHIFT),
    "shift_r": TTASpec(1.0, "center", False, dx=TTA_SHIFT),
    "shift_u": TTASpec(1.0, "center", False, dy=-TTA_SHIFT),
    "shift_d": TTASpec(1.0, "center", False, dy=TTA_SHIFT),
    "zoom_in": TTASpec(1.0, "center", False, zoom=1 + 2 * TTA_SHIFT),
    "zoom_out": TTASpec(1.0, "center", False, zoom=1 - 2 * TTA_SHIFT),
    "shift_l_flip": TTASpec(1.0, "center", True, dx=-TTA_SHIFT),
    "shift_r_flip": TTASpec(1.0, "center", True, dx=TTA_SHIFT),
}
CROP_VIEWS = tuple(TTA_SPECS)  # the crop mode's views, in order
FIT_VIEWS = ("identity", "flip", *FIT_VIEW_SPECS)  # squash / pad, in order
TTA_SPECS.update(FIT_VIEW_SPECS)
TTA_VIEWS = tuple(TTA_SPECS)  # every view name (any view works in any mode)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError(f"Image size must be a positive integer such as 288; received {size!r}.")
    return int(size)


class FitShorterSide(A.ImageOnlyTransform):
    """Deterministic: enlarge an image smaller than ``size`` to it, shrink one over
    ``ceil(1.25 * size)`` to that; otherwise leave it (so a random crop keeps detail)."""

    def __init__(self, size: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.size = size

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        target = fit_shorter_side(img.shape[0], img.shape[1], self.size)
        return img if target is None else resize_shorter_side(img, target)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size",)


class FitImage(A.ImageOnlyTransform):
    """Deterministic: :func:`imet_kit.data.geometry.fit_image` (``crop``: shorter side to
    ``size``; ``squash`` / ``pad``: the whole image on a ``size`` square)."""

    def __init__(self, size: int, mode: str = "crop", p: float = 1.0) -> None:
        super().__init__(p=p)
        self.size = size
        self.mode = check_resize(mode)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return fit_image(img, self.mode, self.size)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "mode")


class TTAView(A.ImageOnlyTransform):
    """One fixed TTA view (see :data:`TTA_SPECS`)."""

    def __init__(self, view: str, size: int, resize: str = "crop", p: float = 1.0) -> None:
        super().__init__(p=p)
        self.view = view
        self.size = size
        self.resize = resize

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return apply_tta(img, self.view, self.size, resize=self.resize)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("view", "size", "resize")


def _border(resize: str) -> dict[str, Any]:
    # pad: fill with the letterbox value, so shifted content meets the same bars as at eval time
    if resize == "pad":
        return {"border_mode": cv2.BORDER_CONSTANT, "fill": PAD_VALUE}
    return {"border_mode": cv2.BORDER_REFLECT_101}


def _affine(resize: str = "crop") -> A.Affine:
    # The notebook's ShiftScaleRotate (shift 0.0625, scale 0.1, reflected border) as Affine.
    return A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-15, 15),
                    p=0.5, **_border(resize))


def _rand_augment(resize: str, n: int = 2) -> A.SomeOf:
    """RandAugment (Cubuk et al. 2020) per image: ``n`` of its operations at about magnitude 9/30.

    Built from albumentations rather than ``keras.layers.RandAugment``, which draws its
    operations once per batch (every image of a batch gets the same two) and would leave the
    seeded per-image pipeline. Its list has no flip, so it keeps orientation.
    """
    b = _border(resize)
    ops = [
        A.Affine(rotate=(-15, 15), p=1.0, **b),
        A.Affine(shear={"x": (-15, 15), "y": (0, 0)}, p=1.0, **b),
        A.Affine(shear={"x": (0, 0), "y": (-15, 15)}, p=1.0, **b),
        A.Affine(translate_percent={"x": (-0.15, 0.15), "y": (0, 0)}, p=1.0, **b),
        A.Affine(translate_percent={"x": (0, 0), "y": (-0.15, 0.15)}, p=1.0, **b),
        A.AutoContrast(p=1.0),
        A.Equalize(p=1.0),
        A.Solarize(threshold_range=(0.6, 1.0), p=1.0),
        A.Posterize(num_bits=(4, 6), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.3, p=1.0),
        A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.3, hue=0.0, p=1.0),
        A.Sharpen(alpha=(0.1, 0.4), p=1.0),
    ]
    return A.SomeOf(ops, n=n, replace=False, p=1.0)


def build_train_transform(preset: str, size: int, seed: int = 0, *, resize: str = "crop",
                          flip: bool = True) -> A.Compose:
    """One seeded albumentations ``Compose`` for a train preset.

    Args:
        preset: one of :data:`TRAIN_PRESETS`.
        size: output side in pixels.
        seed: the Compose's own seed (``compose.set_random_seed`` reseeds it).
        resize: the geometry, one of :data:`~imet_kit.data.geometry.RESIZE_MODES`.
        flip: mirror half the images; False where mirroring changes the label.

    Returns:
        ``A.Compose``; call as ``t(image=img)["image"]`` -> ``(size, size, 3)`` uint8.

    Example:
        >>> t = build_train_transform("notebook", 32, seed=1)
        >>> t(image=np.zeros((31, 45, 3), np.uint8))["image"].shape
        (32, 32, 3)
    """
    size = _check_size(size)
    check_resize(resize)
    if preset not in TRAIN_PRESETS:
        raise InputError(
            f"Unknown augmentation preset '{preset}'. Expected one of: "
            f"{describe_choices(TRAIN_PRESETS)}."
        )
    if preset == "none":
        return build_eval_transform(size, seed=seed, resize=resize)
    if resize == "crop":
        steps: list[A.BasicTransform] = [FitShorterSide(size), A.RandomCrop(size, size, pad_if_needed=True)]
    else:
        steps = [FitImage(size, resize), A.Affine(translate_percent=(-JITTER, JITTER),
                                                  scale=(1 - JITTER, 1 + JITTER), p=1.0, **_border(resize))]
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if preset in ("notebook", "strong"):
        steps.append(_affine(resize))
    if preset == "strong":
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.GaussNoise(std_range=(0.02, 0.06), noise_scale_factor=0.5, p=0.3),
            A.CoarseDropout(
                num_holes_range=(1, 4), hole_height_range=(0.05, 0.15),
                hole_width_range=(0.05, 0.15), fill=0, p=0.5,
            ),
        ]
    if preset == "randaugment":
        steps.append(_rand_augment(resize))
    return A.Compose(steps, seed=seed)


def build_eval_transform(size: int, seed: int = 0, *, resize: str = "crop") -> A.Compose:
    """The deterministic eval geometry: ``crop``: resize the shorter side to ``size`` and centre
    crop; ``squash`` / ``pad``: the whole image on the square.

    Example:
        >>> build_eval_transform(32)(image=np.zeros((33, 31, 3), np.uint8))["image"].shape
        (32, 32, 3)
    """
    size = _check_size(size)
    if check_resize(resize) != "crop":
        return A.Compose([FitImage(size, resize)], seed=seed)
    return A.Compose([FitImage(size, "crop"), A.CenterCrop(size, size)], seed=seed)


def available_views(flip: bool = True, resize: str = "crop") -> tuple[str, ...]:
    """A resize mode's TTA views in order, without the mirrored ones when ``flip`` is False."""
    views = CROP_VIEWS if check_resize(resize) == "crop" else FIT_VIEWS
    return views if flip else tuple(v for v in views if not TTA_SPECS[v].flip)


def tta_views(n: int, *, flip: bool = True, resize: str = "crop") -> list[str]:
    """The first ``n`` TTA view names of a resize mode, most useful first (``identity`` first).

    Example:
        >>> tta_views(3), tta_views(3, flip=False)
        (['identity', 'flip', 'crop_tl'], ['identity', 'crop_tl', 'crop_br'])
        >>> tta_views(4, flip=False, resize="squash")
        ['identity', 'shift_l', 'shift_r', 'shift_u']
    """
    views = available_views(flip, resize)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= len(views):
        note = " (flips are off, so the mirrored views are left out)" if not flip else ""
        raise InputError(
            f"TTA count must be between 1 and {len(views)}{note}; received {n!r}. "
            f"Views available: {describe_choices(views)}."
        )
    return list(views[: int(n)])


def _spec(view: str) -> TTASpec:
    spec = TTA_SPECS.get(view)
    if spec is None:
        raise InputError(
            f"Unknown TTA view '{view}'. Expected one of: {describe_choices(TTA_VIEWS)}."
        )
    return spec


def tta_target(view: str, size: int) -> int:
    """The side a view fits the image to before cropping (the shorter side in ``crop`` mode)."""
    return size if _spec(view).scale == 1.0 else round(size * _spec(view).scale)


def tta_geometry(view: str, height: int, width: int, size: int,
                 resize: str = "crop") -> tuple[int, int, int, int, bool]:
    """``(resized_h, resized_w, y0, x0, flip)`` of a view on an ``height x width`` image."""
    spec = _spec(view)
    target = tta_target(view, size)
    if check_resize(resize) == "crop":
        rh, rw = shorter_side_shape(height, width, target)
    else:
        rh = rw = target
    y0, x0 = crop_offsets(rh, rw, size, spec.position)
    return rh, rw, y0, x0, spec.flip


def apply_tta(image: np.ndarray, view: str, size: int, *, resize: str = "crop") -> np.ndarray:
    """Apply one deterministic TTA view; returns a ``(size, size, 3)`` uint8 array.

    Example:
        >>> img = np.arange(31 * 33 * 3, dtype=np.uint8).reshape(31, 33, 3)
        >>> np.array_equal(apply_tta(img, "flip", 31), apply_tta(img, "identity", 31)[:, ::-1])
        True
    """
    size = _check_size(size)
    rh, rw, y0, x0, flip = tta_geometry(view, image.shape[0], image.shape[1], size, resize)
    img = fit_image(image, resize, tta_target(view, size))
    out = img[y0 : y0 + size, x0 : x0 + size]
    out = out[:, ::-1] if flip else out
    spec = _spec(view)
    if spec.dx or spec.dy or spec.zoom != 1.0:
        out = _shift_zoom(out, spec.dx, spec.dy, spec.zoom, resize)
    return np.ascontiguousarray(out)


def _shift_zoom(img: np.ndarray, dx: float, dy: float, zoom: float, resize: str) -> np.ndarray:
    """Zoom about the centre, then shift by ``(dx, dy)`` of the side; the train jitter's border."""
    h, w = img.shape[:2]
    m = np.float32([[zoom, 0, (1 - zoom) * w / 2 + dx * w], [0, zoom, (1 - zoom) * h / 2 + dy * h]])
    b = _border(resize)
    value = b.get("fill", 0)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=b["border_mode"], borderValue=(value, value, value))


def build_tta_transform(view: str, size: int, *, resize: str = "crop") -> A.Compose:
    """A ``Compose`` wrapping one TTA view, interchangeable with the other transforms."""
    _spec(view)
    return A.Compose([TTAView(view, _check_size(size), check_resize(resize))], seed=0)
