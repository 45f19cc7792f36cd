"""Train augmentation presets, the eval transform and deterministic TTA views.

The only module that imports albumentations (2.0.8). Every transform works on one
``(H, W, 3)`` uint8 RGB image of any size and aspect ratio and returns
``(size, size, 3)`` uint8.

* Train presets (:data:`TRAIN_PRESETS`): ``notebook`` (the 2019 notebook's flip,
  shift-scale-rotate as ``Affine``, random crop), ``light`` (flip + random crop),
  ``strong`` (notebook + brightness/contrast, Gaussian noise, coarse dropout) and
  ``none`` (the eval transform). Before the crop, an image whose shorter side is
  below ``size`` is enlarged to it, and one above ``1.25 * size`` is shrunk to that,
  so tiny, huge and very long images all work.
* Eval: resize the shorter side to ``size``, centre crop.
* TTA (:data:`TTA_VIEWS`): identity, flip, then corner / centre crops of the image
  resized to ``8/7 * size`` and their flips; each a fixed transform, so a
  prediction repeats exactly.

The geometry helpers (:func:`shorter_side_shape`, :func:`tta_geometry`) are plain
integer arithmetic so the tf.data path (``imet_kit.data.tfdata``) reproduces them.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from imet_kit.errors import InputError, describe_choices  # noqa: E402

TRAIN_PRESETS = ("notebook", "light", "strong", "none")
MAX_SCALE = 1.25  # train: shrink images whose shorter side exceeds MAX_SCALE * size
TTA_SCALE = 8 / 7  # TTA crops come from the image resized to TTA_SCALE * size


class TTASpec(NamedTuple):
    """A deterministic view: resize the shorter side to ``scale * size``, crop, flip."""

    scale: float
    position: str  # "center", "tl", "tr", "bl", "br"
    flip: bool


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
TTA_VIEWS = tuple(TTA_SPECS)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError(f"Image size must be a positive integer such as 288; received {size!r}.")
    return int(size)


def shorter_side_shape(height: int, width: int, target: int) -> tuple[int, int]:
    """``(h, w)`` after resizing so the shorter side is ``target`` (aspect kept, half up).

    Example:
        >>> shorter_side_shape(300, 451, 288)
        (288, 433)
    """
    if height <= width:
        return target, max(target, (2 * width * target + height) // (2 * height))
    return max(target, (2 * height * target + width) // (2 * width)), target


def resize_shorter_side(image: np.ndarray, target: int) -> np.ndarray:
    """Resize (bilinear) so the shorter side is ``target``; a no-op if it already is."""
    h, w = image.shape[:2]
    nh, nw = shorter_side_shape(h, w, target)
    if (nh, nw) == (h, w):
        return image
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)


def fit_shorter_side(height: int, width: int, size: int) -> int | None:
    """The shorter-side target a train image is resized to, or None to keep it."""
    short = min(height, width)
    if short < size:
        return size
    upper = math.ceil(size * MAX_SCALE)
    return upper if short > upper else None


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


class ResizeShorterSide(A.ImageOnlyTransform):
    """Deterministic: resize so the shorter side is exactly ``target``."""

    def __init__(self, target: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.target = target

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return resize_shorter_side(img, self.target)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("target",)


class TTAView(A.ImageOnlyTransform):
    """One fixed TTA view (see :data:`TTA_SPECS`)."""

    def __init__(self, view: str, size: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.view = view
        self.size = size

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return apply_tta(img, self.view, self.size)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("view", "size")


def _affine() -> A.Affine:
    # The notebook's ShiftScaleRotate (shift 0.0625, scale 0.1, reflected border) as Affine.
    return A.Affine(
        translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-15, 15),
        border_mode=cv2.BORDER_REFLECT_101, p=0.5,
    )


def build_train_transform(preset: str, size: int, seed: int = 0) -> A.Compose:
    """One seeded albumentations ``Compose`` for a train preset.

    Args:
        preset: one of :data:`TRAIN_PRESETS`.
        size: output side in pixels.
        seed: the Compose's own seed (``compose.set_random_seed`` reseeds it).

    Returns:
        ``A.Compose``; call as ``t(image=img)["image"]`` -> ``(size, size, 3)`` uint8.

    Example:
        >>> t = build_train_transform("notebook", 32, seed=1)
        >>> t(image=np.zeros((31, 45, 3), np.uint8))["image"].shape
        (32, 32, 3)
    """
    size = _check_size(size)
    if preset not in TRAIN_PRESETS:
        raise InputError(
            f"Unknown augmentation preset '{preset}'. Expected one of: "
            f"{describe_choices(TRAIN_PRESETS)}."
        )
    if preset == "none":
        return build_eval_transform(size, seed=seed)
    steps: list[A.BasicTransform] = [
        FitShorterSide(size),
        A.RandomCrop(size, size, pad_if_needed=True),
        A.HorizontalFlip(p=0.5),
    ]
    if preset in ("notebook", "strong"):
        steps.append(_affine())
    if preset == "strong":
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.GaussNoise(std_range=(0.02, 0.06), noise_scale_factor=0.5, p=0.3),
            A.CoarseDropout(
                num_holes_range=(1, 4), hole_height_range=(0.05, 0.15),
                hole_width_range=(0.05, 0.15), fill=0, p=0.5,
            ),
        ]
    return A.Compose(steps, seed=seed)


def build_eval_transform(size: int, seed: int = 0) -> A.Compose:
    """Resize the shorter side to ``size`` and centre crop (deterministic).

    Example:
        >>> build_eval_transform(32)(image=np.zeros((33, 31, 3), np.uint8))["image"].shape
        (32, 32, 3)
    """
    size = _check_size(size)
    return A.Compose([ResizeShorterSide(size), A.CenterCrop(size, size)], seed=seed)


def tta_views(n: int) -> list[str]:
    """The first ``n`` TTA view names, most useful first (``identity`` is always first).

    Example:
        >>> tta_views(3)
        ['identity', 'flip', 'crop_tl']
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= len(TTA_VIEWS):
        raise InputError(
            f"TTA count must be between 1 and {len(TTA_VIEWS)}; received {n!r}. "
            f"Views available: {describe_choices(TTA_VIEWS)}."
        )
    return list(TTA_VIEWS[: int(n)])


def _spec(view: str) -> TTASpec:
    spec = TTA_SPECS.get(view)
    if spec is None:
        raise InputError(
            f"Unknown TTA view '{view}'. Expected one of: {describe_choices(TTA_VIEWS)}."
        )
    return spec


def tta_target(view: str, size: int) -> int:
    """The shorter side a view resizes to before cropping."""
    return size if _spec(view).scale == 1.0 else round(size * _spec(view).scale)


def tta_geometry(view: str, height: int, width: int, size: int) -> tuple[int, int, int, int, bool]:
    """``(resized_h, resized_w, y0, x0, flip)`` of a view on an ``height x width`` image."""
    spec = _spec(view)
    rh, rw = shorter_side_shape(height, width, tta_target(view, size))
    dy, dx = rh - size, rw - size
    y0, x0 = {
        "center": (dy // 2, dx // 2), "tl": (0, 0), "tr": (0, dx), "bl": (dy, 0), "br": (dy, dx),
    }[spec.position]
    return rh, rw, y0, x0, spec.flip


def apply_tta(image: np.ndarray, view: str, size: int) -> np.ndarray:
    """Apply one deterministic TTA view; returns a ``(size, size, 3)`` uint8 array.

    Example:
        >>> img = np.arange(31 * 33 * 3, dtype=np.uint8).reshape(31, 33, 3)
        >>> np.array_equal(apply_tta(img, "flip", 31), apply_tta(img, "identity", 31)[:, ::-1])
        True
    """
    size = _check_size(size)
    rh, rw, y0, x0, flip = tta_geometry(view, image.shape[0], image.shape[1], size)
    img = resize_shorter_side(image, tta_target(view, size))
    out = img[y0 : y0 + size, x0 : x0 + size]
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


def build_tta_transform(view: str, size: int) -> A.Compose:
    """A ``Compose`` wrapping one TTA view, interchangeable with the other transforms."""
    _spec(view)
    return A.Compose([TTAView(view, _check_size(size))], seed=0)
