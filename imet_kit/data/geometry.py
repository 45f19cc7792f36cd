"""Image geometry shared by training, evaluation and TTA: how an image of any size and aspect
ratio becomes a square input (plain integer arithmetic and OpenCV; no albumentations).

Resize modes (:data:`RESIZE_MODES`):

* ``crop``: resize the shorter side to the input side, then crop a square (train: a random one,
  eval: the centre). Keeps detail; on a wide image (aspect 2.4) the centre crop drops the ends,
  and objects there are never seen at test time.
* ``squash``: resize the whole image to the square, aspect ratio not kept. Keeps all content.
* ``pad``: letterbox: resize the longer side to the input side (aspect kept), centre it on a
  square of :data:`PAD_VALUE`. Keeps all content and shapes, at a lower resolution for wide images.

Example:
    >>> img = np.zeros((100, 240, 3), np.uint8)
    >>> [fit_image(img, mode, 96).shape for mode in RESIZE_MODES]
    [(96, 230, 3), (96, 96, 3), (96, 96, 3)]
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from imet_kit.errors import InputError, describe_choices

RESIZE_MODES = ("crop", "squash", "pad")
PAD_VALUE = 0  # letterbox bars: black, a constant the network learns to ignore
MAX_SCALE = 1.25  # train (crop): shrink images whose shorter side exceeds MAX_SCALE * size


def check_resize(mode: str) -> str:
    """``mode`` if it is one of :data:`RESIZE_MODES`, else an InputError listing them."""
    if mode not in RESIZE_MODES:
        raise InputError(f"Unknown resize mode {mode!r}. Expected one of: {describe_choices(RESIZE_MODES)}.")
    return mode


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
    """The shorter-side target a train image is resized to (``crop`` mode), or None to keep it."""
    short = min(height, width)
    if short < size:
        return size
    upper = math.ceil(size * MAX_SCALE)
    return upper if short > upper else None


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    # area averaging when shrinking keeps thin strokes (glyphs, digits) that bilinear would alias
    shrink = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def squash(image: np.ndarray, side: int) -> np.ndarray:
    """The whole image resized to ``side x side`` (aspect ratio not kept)."""
    return _resize(image, side, side)


def letterbox_geometry(height: int, width: int, side: int) -> tuple[int, int, int, int]:
    """``(resized_h, resized_w, y0, x0)``: the content's size and offset on the ``side`` square.

    Example:
        >>> letterbox_geometry(100, 240, 96)
        (40, 96, 28, 0)
    """
    scale = side / max(height, width)
    nh = min(side, max(1, round(height * scale)))
    nw = min(side, max(1, round(width * scale)))
    return nh, nw, (side - nh) // 2, (side - nw) // 2


def letterbox(image: np.ndarray, side: int, value: int = PAD_VALUE) -> np.ndarray:
    """The whole image, aspect kept, centred on a ``side x side`` square of ``value``."""
    nh, nw, y0, x0 = letterbox_geometry(image.shape[0], image.shape[1], side)
    out = np.full((side, side) + image.shape[2:], value, dtype=image.dtype)
    out[y0 : y0 + nh, x0 : x0 + nw] = _resize(image, nh, nw)
    return out


def fit_image(image: np.ndarray, mode: str, side: int) -> np.ndarray:
    """Resize for ``mode``: ``crop`` -> shorter side ``side`` (crop afterwards); ``squash`` and
    ``pad`` -> exactly ``side x side`` with all the content."""
    if mode == "crop":
        return resize_shorter_side(image, side)
    if mode == "squash":
        return squash(image, side)
    return letterbox(image, side) if check_resize(mode) == "pad" else image


def crop_offsets(height: int, width: int, size: int, position: str) -> tuple[int, int]:
    """``(y0, x0)`` of a ``size`` square at ``position`` (center, tl, tr, bl, br)."""
    dy, dx = height - size, width - size
    return {"center": (dy // 2, dx // 2), "tl": (0, 0), "tr": (0, dx), "bl": (dy, 0),
            "br": (dy, dx)}[position]
