"""Reading image files into ``H x W x 3`` uint8 RGB arrays.

A file that exists but cannot be decoded raises :class:`ImageReadError` naming it;
never a silent zero image.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from .errors import DataFileError, ImageReadError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as RGB ``uint8`` of shape ``(H, W, 3)``.

    Raises:
        DataFileError: the file does not exist.
        ImageReadError: the file is corrupt, truncated or not an image.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileError(f"Image file '{path}' does not exist.")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(path, "the file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(path, "OpenCV could not decode it")
    if _is_truncated(data, path):
        raise ImageReadError(path, "the file is truncated")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_truncated(data: np.ndarray, path: str) -> bool:
    """OpenCV decodes a truncated PNG/JPEG partly and only warns: check the end marker."""
    head = data[:8].tobytes()
    tail = data[-16:].tobytes()
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    if head.startswith(b"\xff\xd8"):
        return not tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return False
