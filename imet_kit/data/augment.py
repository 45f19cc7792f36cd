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
* TTA: the deterministic views of :mod:`imet_kit.data.tta` (re-exported here), wrapped as
  albumentations transforms by :func:`build_tta_transform`.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
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
from imet_kit.data.tta import (  # noqa: E402, F401  (the TTA views, re-exported)
    CROP_VIEWS,
    FIT_VIEW_SPECS,
    FIT_VIEWS,
    TTA_SCALE,
    TTA_SHIFT,
    TTA_SPECS,
    TTA_VIEWS,
    TTASpec,
    _border,
    _check_size,
    _spec,
    apply_tta,
    available_views,
    tta_geometry,
    tta_target,
    tta_views,
)
from imet_kit.errors import InputError, describe_choices  # noqa: E402

TRAIN_PRESETS = ("notebook", "light", "strong", "randaugment", "none")
JITTER = 0.1  # squash / pad train: random shift (fraction of the side) and zoom (1 +- JITTER)


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


def build_tta_transform(view: str, size: int, *, resize: str = "crop") -> A.Compose:
    """A ``Compose`` wrapping one TTA view, interchangeable with the other transforms."""
    _spec(view)
    return A.Compose([TTAView(view, _check_size(size), check_resize(resize))], seed=0)
