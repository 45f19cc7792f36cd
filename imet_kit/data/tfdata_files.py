"""Image files read and decoded in-graph exactly as :func:`imet_kit.data.images.read_image` reads them.

``--pipeline tfdata`` without TFRecords reads a dataset's PNG / JPEG files with
``tf.io.read_file`` and decodes them inside the tf.data graph. TF's decoders differ from the
OpenCV path of ``read_image`` in three ways; :func:`scan_files` finds, from each file's header
(Pillow reads the header only, ~0.1 ms a file), what :func:`decode_file` must then do:

* alpha (RGBA, LA, a palette with transparency): composited on white, as ``read_image`` does;
* a JPEG's EXIF orientation: TF ignores it; it is applied here as OpenCV applies it;
* JPEG IDCT: ``INTEGER_ACCURATE`` (OpenCV's), since TF's default fast IDCT is up to 5 grey
  levels off.

Measured on TF 2.21 / OpenCV 5.0: RGB, gray, 16-bit, RGBA, LA and palette-with-transparency
PNGs and JPEGs in all 8 EXIF orientations decode bit-identically to ``read_image``; a CMYK JPEG
within 2 grey levels. Other formats (BMP, TIFF, WebP, GIF) are refused up front with the way
out (`imet-kit tfrecords` re-encodes every image as ``read_image`` reads it).

Example:
    >>> import tempfile, os, cv2, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> _ = cv2.imwrite(p, np.zeros((31, 33, 4), np.uint8))
    >>> scan_files([p]).tolist()  # [is_png, has_alpha, EXIF orientation]
    [[1, 1, 1]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from imet_kit.data.images import check_image_file
from imet_kit.errors import ImageReadError, InputError

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def file_kind(path: str) -> tuple[int, int, int] | str:
    """``(is_png, has_alpha, orientation)`` of one image file, or why it cannot be read in-graph."""
    from PIL import Image, UnidentifiedImageError

    reason = check_image_file(path)
    if reason:
        return reason
    try:
        with Image.open(path) as im:
            fmt, mode = im.format, im.mode
            if fmt == "PNG":
                alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
                return 1, int(alpha), 1
            if fmt in ("JPEG", "MPO"):
                orientation = int(im.getexif().get(0x0112, 1) or 1)
                return 0, 0, orientation if 1 <= orientation <= 8 else 1
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return f"Pillow cannot read its header ({exc})"
    return f"unsupported:{fmt}"


def scan_files(paths: Sequence[str | os.PathLike], *, workers: int = 4) -> np.ndarray:
    """``(n, 3)`` int32 rows ``[is_png, has_alpha, orientation]``, one per file, for :func:`decode_file`.

    Raises:
        ImageReadError: a file is missing, empty, truncated or not an image (the first named,
            all counted), as ``ImageDataset`` would raise when it reached it.
        InputError: files in a format other than PNG / JPEG.
    """
    paths = [os.fspath(p) for p in paths]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        kinds = list(pool.map(file_kind, paths))
    bad = [(p, k) for p, k in zip(paths, kinds) if isinstance(k, str)]
    other = [(p, k.split(":", 1)[1]) for p, k in bad if k.startswith("unsupported:")]
    unreadable = [(p, k) for p, k in bad if not k.startswith("unsupported:")]
    if unreadable:
        path, reason = unreadable[0]
        raise ImageReadError(path, f"{reason}; {len(unreadable)} of {len(paths)} files fail this "
                                   f"check (--pipeline tfdata reads every file up front)")
    if other:
        raise InputError(
            f"--pipeline tfdata decodes PNG and JPEG files in-graph; {len(other)} of {len(paths)} "
            f"files are another format (first: '{other[0][0]}', {other[0][1]}). Convert the folder "
            f"with `imet-kit tfrecords DATA DIR` and pass --tfrecords DIR, or use --pipeline pydataset."
        )
    return np.asarray(kinds, dtype=np.int32).reshape(len(paths), 3)


def _on_white(rgba: tf.Tensor) -> tf.Tensor:
    """``color * a + 255 * (1 - a)`` in the integer arithmetic of ``images._composite_on_white``."""
    a = tf.cast(rgba[..., 3:], tf.int32)
    out = (tf.cast(rgba[..., :3], tf.int32) * a + 255 * (255 - a) + 127) // 255
    return tf.cast(out, tf.uint8)


def _orient(img: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Apply an EXIF orientation (1-8) as OpenCV's ``imdecode`` does."""
    def t(x):
        return tf.transpose(x, [1, 0, 2])

    branches = [lambda: img, lambda: img[:, ::-1], lambda: img[::-1, ::-1], lambda: img[::-1],
                lambda: t(img), lambda: tf.image.rot90(img, 3), lambda: t(img)[::-1, ::-1],
                lambda: tf.image.rot90(img, 1)]
    return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), branches)


def decode_file(data: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Encoded PNG / JPEG bytes + its :func:`scan_files` row -> ``(H, W, 3)`` uint8 RGB."""
    def png():
        return tf.cond(kind[1] > 0, lambda: _on_white(tf.io.decode_png(data, channels=4)),
                       lambda: tf.io.decode_png(data, channels=3))

    def jpeg():
        img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
        return _orient(img, kind[2])

    return tf.ensure_shape(tf.cond(kind[0] > 0, png, jpeg), [None, None, 3])
