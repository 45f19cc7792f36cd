"""Reading image files into ``H x W x 3`` uint8 RGB arrays.

Real folders hold more than 8-bit RGB: grayscale, RGBA and palette PNGs, 16-bit
PNGs, camera JPEGs with an EXIF rotation, CMYK JPEGs, files truncated by a failed
copy. :func:`read_image` turns each readable kind into the same ``(H, W, 3)``
uint8 RGB array and raises :class:`ImageReadError` naming a file it cannot read;
never a silent zero image.

Rules:
    * JPEG / TIFF decode through OpenCV's colour path, which applies the EXIF
      orientation (so a portrait phone photo comes out upright).
    * Other formats decode unchanged, then: grayscale -> 3 channels; 16-bit -> the
      high byte (as OpenCV and ``tf.io.decode_png`` do); an alpha channel (RGBA,
      LA, palette with transparency) is composited on white, because museum
      object photos use transparency for the background.
    * A file OpenCV cannot read falls back to Pillow (with ``exif_transpose``).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from imet_kit.errors import DataFileError, ImageReadError

log = logging.getLogger(__name__)

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8"
_TIFF = (b"II*\x00", b"MM\x00*")
_TAIL = 1024  # bytes at the end of a file searched for its end marker


def sniff_format(head: bytes) -> str:
    """Name the container from a file's first bytes: png, jpeg, tiff, webp, bmp, gif or ''."""
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_JPEG):
        return "jpeg"
    if head.startswith(_TIFF):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return ""


def _truncation_reason(data: bytes | np.ndarray, fmt: str) -> str:
    """Why ``data`` looks cut short ('' if it does not); OpenCV decodes a cut PNG/JPEG
    partly and only warns, so check the end marker first."""
    tail = bytes(data[-_TAIL:])
    if fmt == "png":
        # IEND is the last chunk; a few bytes of padding after it are harmless.
        return "" if b"IEND" in tail else "the file is truncated (no PNG IEND chunk)"
    if fmt == "jpeg":
        if tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
            return ""
        buf = bytes(data)
        # Cameras append data after the end-of-image marker; accept an EOI after the
        # last start-of-scan (0xFF is byte-stuffed inside scans, so FFD9 is a real marker).
        sos = buf.rfind(b"\xff\xda")
        if sos >= 0 and buf.find(b"\xff\xd9", sos) >= 0:
            return ""
        return "the file is truncated (no JPEG end-of-image marker)"
    return ""


def _png_damage(data: bytes | np.ndarray) -> str:
    """Why a PNG's chunks are damaged ('' if every chunk up to IEND is whole and its CRC
    matches). Checked before decoding: libpng prints "libpng error: ..." on stderr for a
    damaged chunk, a second line next to the one-line error. About 0.1 ms per 300 KB."""
    buf = memoryview(data if isinstance(data, bytes | bytearray) else data.tobytes())
    pos, end = len(_PNG), len(buf)
    while pos + 12 <= end:
        length = int.from_bytes(buf[pos:pos + 4], "big")
        kind = bytes(buf[pos + 4:pos + 8])
        if pos + 12 + length > end:
            return "the file is truncated (a PNG chunk runs past its end)"
        crc = int.from_bytes(buf[pos + 8 + length:pos + 12 + length], "big")
        if zlib.crc32(buf[pos + 4:pos + 8 + length]) != crc:
            return f"the PNG data is damaged (checksum error in its {kind.decode('latin-1')} chunk)"
        if kind == b"IEND":
            return ""
        pos += 12 + length
    return "the file is truncated (no PNG IEND chunk)"


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(img, initial=0.0)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(img) * scale, 0, 255).round().astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def _composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``color * a + 255 * (1 - a)`` in integer arithmetic (uint8 in, uint8 out)."""
    a = alpha.astype(np.uint16)[..., None]
    out = (color.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _normalize_unchanged(img: np.ndarray) -> np.ndarray:
    """An OpenCV ``IMREAD_UNCHANGED`` array (gray / BGR / BGRA, any depth) -> BGR uint8."""
    img = _to_uint8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        gray = _composite_on_white(img[..., :1], img[..., 1])[..., 0]
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        if img[..., 3].min() == 255:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        return _composite_on_white(cv2.cvtColor(img, cv2.COLOR_BGRA2BGR), img[..., 3])
    return img[..., :3] if channels != 3 else img


def _decode_with_pillow(buf: bytes) -> np.ndarray | None:
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(buf)) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"))
                rgb = _composite_on_white(rgba[..., :3], rgba[..., 3])
            elif im.mode in ("I;16", "I;16B", "I"):
                return _normalize_unchanged(np.asarray(im).astype(np.uint16))
            else:
                rgb = np.asarray(im.convert("RGB"))
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    except (OSError, ValueError, SyntaxError):
        return None


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>", *, bgr: bool = False) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) to ``(H, W, 3)`` uint8 RGB.

    Args:
        data: the file's bytes.
        name: the file name used in error messages.
        bgr: return OpenCV's BGR order instead (saves a full-size conversion when the
            caller converts a smaller crop later).

    Raises:
        ImageReadError: empty, truncated, or not a decodable image.
    """
    arr = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    if arr.size == 0:
        raise ImageReadError(name, "the file is empty")
    head = arr[:16].tobytes()
    fmt = sniff_format(head)
    reason = _truncation_reason(arr, fmt) or (_png_damage(arr) if fmt == "png" else "")
    if reason:
        raise ImageReadError(name, reason)
    if fmt in ("jpeg", "tiff"):
        img = cv2.imdecode(arr, cv2.IMREAD_COLOR)  # applies the EXIF orientation
    else:
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
        img = _normalize_unchanged(img) if img is not None and img.size else None
    if img is None:
        img = _decode_with_pillow(arr.tobytes())
    if img is None:
        raise ImageReadError(name, f"the {fmt.upper()} data is damaged" if fmt else
                             "the file is not an image (no PNG, JPEG, BMP, TIFF, WebP or GIF header)")
    return img if bgr else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, *, bgr: bool = False) -> np.ndarray:
    """Read an image file as RGB ``uint8`` of shape ``(H, W, 3)`` (BGR if ``bgr``).

    Grayscale is replicated to 3 channels, 16-bit keeps the high byte, alpha is
    composited on white and a JPEG's EXIF rotation is applied (see the module notes).

    Raises:
        DataFileError: the file does not exist.
        ImageReadError: the file is empty, truncated, corrupt or not an image.

    Example:
        >>> import tempfile, os, cv2, numpy as np
        >>> p = os.path.join(tempfile.mkdtemp(), "gray.png")
        >>> _ = cv2.imwrite(p, np.zeros((31, 33), np.uint8))
        >>> read_image(p).shape, read_image(p).dtype
        ((31, 33, 3), dtype('uint8'))
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        if os.path.isdir(path):
            raise ImageReadError(path, "it is a folder, not a file")
        if os.path.islink(path):
            raise ImageReadError(path, f"it is a link to '{os.readlink(path)}', which does not exist")
        raise DataFileError(
            f"Image file '{path}' does not exist. Expected an image file at that path; "
            f"check the image folder and the ids in the CSV."
        )
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(path, f"the file cannot be read ({exc.strerror or exc})") from exc
    return decode_image(data, path, bgr=bgr)


def check_image_file(path: str | os.PathLike, *, decode: bool = False) -> str:
    """Check one file: cheaply (first and last bytes) or, with ``decode``, by decoding it.

    The cheap check reads the first and last bytes only (the whole file only for a JPEG with
    data after its end marker); a file that passes it can still fail to decode.

    Returns:
        '' if the file looks readable (decodes, with ``decode``), else the reason (missing,
        empty, not an image, truncated, damaged).
    """
    path = os.fspath(path)
    if decode:
        try:
            read_image(path, bgr=True)
        except ImageReadError as exc:
            return exc.reason
        except DataFileError:
            return "the file does not exist"
        return ""
    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            return "it is a folder, not a file"
        if size == 0:
            return "the file is empty"
        with open(path, "rb") as fh:
            head = fh.read(16)
            fmt = sniff_format(head)
            if fmt not in ("png", "jpeg"):
                return "" if fmt else "the file is not an image (no PNG, JPEG, BMP, TIFF, WebP or GIF header)"
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
            if not _truncation_reason(tail, fmt):
                return ""
            fh.seek(0)
            return _truncation_reason(fh.read(), fmt)
    except FileNotFoundError:
        return "the file does not exist"
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror or exc})"


def scan_images(paths: Sequence[str | os.PathLike], *, workers: int = 4,
                decode: bool = False) -> dict[int, str]:
    """Run :func:`check_image_file` over many files in threads (OpenCV decodes without the GIL).

    Returns:
        ``{index: reason}`` for every file that failed the check (empty if all passed).
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(lambda p: check_image_file(p, decode=decode), paths))
    bad = {i: r for i, r in enumerate(reasons) if r}
    if bad:
        log.debug("scan_images: %d of %d files failed the check", len(bad), len(paths))
    return bad


def check_images(paths: Sequence[str | os.PathLike], *, decode: bool = False,
                 workers: int | None = None) -> None:
    """Raise one :class:`ImageReadError` naming the unreadable files among ``paths``, if any.

    Args:
        decode: decode every file (slow: about 2 ms per image per core) instead of the cheap
            header and end-marker check.
        workers: threads (default: one per CPU core).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "e.png")
        >>> open(p, "wb").close()
        >>> check_images([p])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imet_kit.errors.ImageReadError: Cannot read image '...e.png': the file is empty. ...
    """
    bad = scan_images(paths, workers=workers or os.cpu_count() or 2, decode=decode)
    if bad:
        (first, reason), *others = sorted(bad.items())
        raise ImageReadError(os.fspath(paths[first]), reason,
                             others=[(os.fspath(paths[i]), r) for i, r in others])
