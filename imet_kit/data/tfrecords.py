"""The TFRecord writer: images (+ labels) as sharded TFRecords plus ``tfrecords.json``.

:func:`write_tfrecords` reads each image with :func:`imet_kit.data.images.read_image` (upright,
RGB, 8-bit, alpha on white), optionally shrinks it, re-encodes it with :func:`encode_image`
(JPEG or lossless PNG) and writes it with its id, size and label ids or multi-hot row as
a ``tf.train.Example``, one shard file at a time under a temporary name. Once every shard is
complete, the old metadata and shards are removed, the new shards renamed into place and the
metadata written that :func:`imet_kit.data.tfdata.read_metadata` and
:func:`imet_kit.data.tfdata.make_tf_dataset` read back; a failure or Ctrl-C before that removes
the temporaries and leaves the folder as it was. :mod:`imet_kit.data.tfdata` re-exports these
names.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from imet_kit.atomic import TMP_MARK, atomic_write_json
from imet_kit.data import augment as aug
from imet_kit.data.images import read_image
from imet_kit.errors import ImageReadError, InputError

# The logger name from before the split, so existing log filters still match.
log = logging.getLogger("imet_kit.data.tfdata")

__all__ = ["IMAGE_FORMATS", "LABEL_FORMATS", "META_FILE", "encode_image", "write_tfrecords"]

META_FILE = "tfrecords.json"
IMAGE_FORMATS = ("jpeg", "png")
LABEL_FORMATS = ("ids", "multihot")


def encode_image(img: np.ndarray, image_format: str = "jpeg", quality: int = 95) -> bytes:
    """RGB uint8 -> encoded bytes (JPEG at ``quality``, or lossless PNG)."""
    if image_format not in IMAGE_FORMATS:
        raise InputError(f"Unknown image format '{image_format}'. Expected one of: jpeg, png.")
    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)]) if image_format == "jpeg" \
        else (".png", [cv2.IMWRITE_PNG_COMPRESSION, 1])
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageReadError("<array>", f"OpenCV could not encode it as {image_format}")
    return buf.tobytes()


def _example(image: bytes, shape: tuple[int, ...], image_id: str, labels: np.ndarray | None,
             label_format: str) -> bytes:
    feats = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_id.encode()])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[shape[0]])),
        "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[shape[1]])),
    }
    if labels is not None:
        if label_format == "ids":
            feats["label_ids"] = tf.train.Feature(
                int64_list=tf.train.Int64List(value=np.flatnonzero(labels).tolist()))
        else:
            feats["labels"] = tf.train.Feature(float_list=tf.train.FloatList(value=labels.tolist()))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def write_tfrecords(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    y: np.ndarray | sp.spmatrix | None = None,
    ids: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    image_format: str = "jpeg",
    quality: int = 95,
    label_format: str = "ids",
    shard_size: int = 1024,
    shorter_side: int | None = None,
    skip_corrupt: bool = False,
    workers: int = 2,
    prefix: str = "data",
) -> dict[str, Any]:
    """Write images (+ labels) as TFRecord shards plus ``tfrecords.json`` metadata.

    Args:
        paths: image files; each is read with ``read_image`` (so odd kinds are fixed here).
        out_dir: folder for ``{prefix}-00000-of-0000N.tfrecord`` and the metadata.
        y: multi-hot ``(n, C)`` labels, dense or sparse; None for unlabelled (test) data.
        ids: an id per image (default: the file stem).
        label_names: stored in the metadata for plots and checks.
        image_format: ``jpeg`` (fast to decode, lossy) or ``png`` (lossless).
        quality: JPEG quality.
        label_format: ``ids`` (a variable-length id list) or ``multihot`` (C floats).
        shard_size: records per shard.
        shorter_side: shrink images whose shorter side is larger than this first.
        skip_corrupt: leave unreadable images out (counted in a warning) instead of raising.
        workers: decode / encode threads.

    Returns:
        The metadata written to ``tfrecords.json``.
    """
    from tqdm.auto import tqdm

    paths = [os.fspath(p) for p in paths]
    if image_format not in IMAGE_FORMATS or label_format not in LABEL_FORMATS:
        raise InputError(
            f"image_format must be one of jpeg, png and label_format one of ids, multihot; "
            f"received '{image_format}', '{label_format}'."
        )
    if not paths or shard_size < 1:
        raise InputError(f"Need at least one image and shard_size >= 1; got {len(paths)}, {shard_size}.")
    ids = [Path(p).stem for p in paths] if ids is None else [str(i) for i in ids]
    y = None if y is None else (y if sp.issparse(y) else np.asarray(y))
    if len(ids) != len(paths) or (y is not None and y.shape[0] != len(paths)):
        raise InputError(f"{len(paths)} paths but {len(ids)} ids / "
                         f"{'no' if y is None else y.shape[0]} label rows; expected one per path.")
    ycsr = None if y is None else sp.csr_matrix(y)
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)

    def encode(i: int):
        try:
            img = read_image(paths[i])
        except ImageReadError as exc:
            if not skip_corrupt:
                raise
            return i, None, exc.reason
        if shorter_side and min(img.shape[:2]) > shorter_side:
            img = aug.resize_shorter_side(img, shorter_side)
        return i, (encode_image(img, image_format, quality), img.shape), ""

    n_shards = math.ceil(len(paths) / shard_size)
    shards = [f"{prefix}-{s:05d}-of-{n_shards:05d}.tfrecord" for s in range(n_shards)]
    tmps = [out / f".{name}{TMP_MARK}{os.getpid()}" for name in shards]
    counts, skipped = [], {}
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool, \
                tqdm(total=len(paths), desc="tfrecords", disable=None) as bar:
            for s, tmp in enumerate(tmps):
                count = 0
                with tf.io.TFRecordWriter(str(tmp)) as writer:
                    rows = range(s * shard_size, min(len(paths), (s + 1) * shard_size))
                    for i, enc, reason in pool.map(encode, rows):
                        bar.update()
                        if enc is None:
                            skipped[paths[i]] = reason
                            continue
                        row = None if ycsr is None else ycsr[i].toarray()[0].astype(np.float32)
                        writer.write(_example(enc[0], enc[1], ids[i], row, label_format))
                        count += 1
                counts.append(count)
        # all shards written: the old metadata goes first, then its shards, then the new ones
        (out / META_FILE).unlink(missing_ok=True)
        for old in out.glob(f"{prefix}-*-of-*.tfrecord"):
            if old.name not in shards:
                old.unlink()
        for tmp, name in zip(tmps, shards):
            os.replace(tmp, out / name)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    if skipped:
        log.warning("Skipped %d of %d images that cannot be read (first: '%s': %s).",
                    len(skipped), len(paths), *next(iter(skipped.items())))
    meta = {
        "format_version": 1, "count": int(sum(counts)), "shards": shards, "shard_counts": counts,
        "image_format": image_format, "quality": quality if image_format == "jpeg" else None,
        "label_format": label_format if y is not None else None,
        "n_classes": None if y is None else int(y.shape[1]),
        "label_names": list(label_names) if label_names is not None else None,
        "skipped": skipped,
    }
    atomic_write_json(meta, out / META_FILE, indent=1)
    return meta
