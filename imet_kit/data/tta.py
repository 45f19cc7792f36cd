"""Deterministic test-time views (no albumentations: plain OpenCV and NumPy).

Each view is a fixed transform, so a prediction repeats exactly; which views, in which order,
depends on the resize mode (:func:`tta_views`):

* ``crop``: identity, flip, then corner / centre crops of the image fitted to ``8/7 * size``
  and their flips.
* ``squash`` / ``pad``: identity, flip, then the whole image shifted by 5 % of the side (left,
  right, up, down) and zoomed by 10 % (in, out), with the train jitter's border: views that
  keep every object in the frame, like the training images did (a corner crop cuts off the
  ends of the image, where a squashed wide photo keeps objects).

With ``flip=False`` the mirrored views are left out. Any view name works in any mode. The
crop-mode geometry is plain integer arithmetic so the tf.data path (``imet_kit.data.tfdata``,
crop mode only) reproduces it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np

from imet_kit.data.geometry import (
    PAD_VALUE,
    check_resize,
    crop_offsets,
    fit_image,
    shorter_side_shape,
)
from imet_kit.errors import InputError, describe_choices

TTA_SCALE = 8 / 7  # TTA crops come from the image fitted to TTA_SCALE * size


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


def _border(resize: str) -> dict[str, Any]:
    # pad: fill with the letterbox value, so shifted content meets the same bars as at eval time
    if resize == "pad":
        return {"border_mode": cv2.BORDER_CONSTANT, "fill": PAD_VALUE}
    return {"border_mode": cv2.BORDER_REFLECT_101}


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
