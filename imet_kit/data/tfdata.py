"""The tf.data path: sharded TFRecords, decoded and augmented in-graph.

For multi-GPU / TPU (``tf.distribute``) and for throughput: :func:`write_tfrecords`
(in :mod:`imet_kit.data.tfrecords`, re-exported here) stores encoded image bytes (already
normalised by :func:`imet_kit.data.images.read_image`: upright, RGB, 8-bit, alpha on white)
with label ids or a multi-hot row; :func:`make_tf_dataset` reads them with parallel
decode and prefetch and yields the same ``(x, y)`` float32 batches as
:class:`imet_kit.data.dataset.ImageDataset`, so the same ``model.fit`` / ``model.predict``
code takes either.

Eval and TTA views reproduce ``imet_kit.data.augment`` geometry exactly (same shapes,
offsets, flips); pixels are identical when no resize is needed, else within 1 grey
level (OpenCV's uint8 bilinear is 11-bit fixed point, TF's is float). Train presets
are in-graph counterparts of the albumentations ones (same kinds and ranges, TF
random streams; the rotation border is REFLECT, not REFLECT_101). TF's CPU
``ImageProjectiveTransformV3`` costs ~4-5 ms per 288 px image (OpenCV: ~0.6 ms), so
on CPU the ``notebook`` / ``strong`` presets decode ~2x slower than ``light``.

`imet-kit train --pipeline tfdata` does not use :func:`make_tf_dataset` (whose shuffle and draws
follow TF's iteration count, not the epoch): it uses :mod:`imet_kit.data.tfdata_train`, built on
the ops here, over the image files (:mod:`imet_kit.data.tfdata_files`) or a TFRecord folder.

Example:
    >>> write_tfrecords(paths, "records/", y=y, image_format="jpeg")  # doctest: +SKIP
    >>> ds = make_tf_dataset("records/", size=288, augment="notebook")  # doctest: +SKIP
    >>> model.fit(ds, epochs=3)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tensorflow as tf

from imet_kit.data import augment as aug
from imet_kit.data.tfrecords import (  # noqa: F401  (the writer lived here: re-exported)
    IMAGE_FORMATS,
    LABEL_FORMATS,
    META_FILE,
    encode_image,
    write_tfrecords,
)
from imet_kit.errors import DataFileError, InputError


# --------------------------------------------------------------------------- reading
def read_metadata(source: str | os.PathLike) -> dict[str, Any]:
    """The ``tfrecords.json`` of a folder written by :func:`write_tfrecords`."""
    path = Path(source) / META_FILE
    if not path.is_file():
        raise DataFileError(
            f"'{source}' has no {META_FILE}. Expected a folder written by "
            f"`imet-kit tfrecords` (or write_tfrecords)."
        )
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- in-graph ops
def decode(data: tf.Tensor, image_format: str | None = None) -> tf.Tensor:
    """Encoded bytes -> ``(H, W, 3)`` uint8.

    JPEG uses TF's default (fast) IDCT: twice the speed of ``INTEGER_ACCURATE`` (OpenCV's
    choice) here, at most a grey level or two apart; PNG decodes bit-exactly.
    """
    if image_format == "jpeg":
        return tf.io.decode_jpeg(data, channels=3)
    if image_format == "png":
        return tf.io.decode_png(data, channels=3)
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def _shorter_side_shape(h: tf.Tensor, w: tf.Tensor, target: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """``imet_kit.data.augment.shorter_side_shape`` in TF integer arithmetic."""
    h, w = tf.cast(h, tf.int64), tf.cast(w, tf.int64)
    t = tf.cast(target, tf.int64)
    wide = h <= w
    nh = tf.where(wide, t, tf.maximum(t, (2 * h * t + w) // (2 * w)))
    nw = tf.where(wide, tf.maximum(t, (2 * w * t + h) // (2 * h)), t)
    return tf.cast(nh, tf.int32), tf.cast(nw, tf.int32)


def _resize_to(img: tf.Tensor, nh: tf.Tensor, nw: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(img)

    def resize():
        out = tf.image.resize(img, tf.stack([nh, nw]), method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    return tf.cond((shape[0] == nh) & (shape[1] == nw), lambda: img, resize)


def eval_view(img: tf.Tensor, size: int, view: str | None = None) -> tf.Tensor:
    """The eval transform (``view=None``) or a TTA view, as in ``imet_kit.data.augment``."""
    view = view or "identity"
    spec = aug.TTA_SPECS[view]
    shape = tf.shape(img)
    nh, nw = _shorter_side_shape(shape[0], shape[1], aug.tta_target(view, size))
    img = _resize_to(img, nh, nw)
    dy, dx = nh - size, nw - size
    y0, x0 = {"center": (dy // 2, dx // 2), "tl": (0, 0), "tr": (0, dx), "bl": (dy, 0),
              "br": (dy, dx)}[spec.position]
    out = img[y0 : y0 + size, x0 : x0 + size]
    out = tf.reverse(out, axis=[1]) if spec.flip else out
    return tf.ensure_shape(out, [size, size, 3])


def _random_affine(img: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """The notebook's shift-scale-rotate (p=0.5, reflected border), in-graph."""
    u = tf.random.stateless_uniform([5], seed)
    angle = (u[1] * 30.0 - 15.0) * (math.pi / 180.0)
    scale = 0.9 + 0.2 * u[2]
    tx, ty = (u[3] - 0.5) * 0.125 * size, (u[4] - 0.5) * 0.125 * size
    c = (size - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # Output pixel -> input pixel: the inverse of rotate/scale about the centre, then shift.
    m = tf.stack([cos, sin, c - cos * (c + tx) - sin * (c + ty),
                  -sin, cos, c + sin * (c + tx) - cos * (c + ty), 0.0, 0.0])

    def warp():  # TF's CPU kernel costs ~5 ms per 288 px image, 6x OpenCV: only when drawn
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=img[None], transforms=m[None], output_shape=tf.constant([size, size]),
            fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="REFLECT")[0]

    return tf.cond(u[0] < 0.5, warp, lambda: img)


def _random_intensity(img: tf.Tensor, size: int, seeds: tf.Tensor) -> tf.Tensor:
    """Brightness/contrast (p=0.5), Gaussian noise (p=0.3), 1-4 black holes (p=0.5)."""
    x = tf.cast(img, tf.float32)
    u = tf.random.stateless_uniform([9], seeds[0])
    alpha = tf.where(u[0] < 0.5, 0.8 + 0.4 * u[1], 1.0)
    x = x * alpha + tf.where(u[0] < 0.5, (u[2] - 0.5) * 0.4 * 255.0, 0.0)
    std = (0.02 + 0.04 * u[4]) * 255.0
    x = tf.cond(u[3] < 0.3, lambda: x + std * tf.random.stateless_normal([size, size, 3], seeds[1]),
                lambda: x)
    holes = tf.random.stateless_uniform([4, 4], seeds[2])
    n_holes = tf.where(u[5] < 0.5, 1 + tf.cast(u[6] * 4, tf.int32), 0)
    hw = tf.cast((0.05 + 0.1 * holes[:, :2]) * size, tf.int32)
    y0 = tf.cast(holes[:, 2] * tf.cast(size - hw[:, 0], tf.float32), tf.int32)
    x0 = tf.cast(holes[:, 3] * tf.cast(size - hw[:, 1], tf.float32), tf.int32)
    r = tf.range(size)[None, :]
    rows = (r >= y0[:, None]) & (r < (y0 + hw[:, 0])[:, None])
    cols = (r >= x0[:, None]) & (r < (x0 + hw[:, 1])[:, None])
    active = tf.range(4) < n_holes
    mask = tf.reduce_any(rows[:, :, None] & cols[:, None, :] & active[:, None, None], axis=0)
    x = tf.where(mask[:, :, None], 0.0, x)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def _fit_and_crop(img: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """``FitShorterSide`` + ``RandomCrop`` of the albumentations presets."""
    shape = tf.shape(img)
    short = tf.minimum(shape[0], shape[1])
    target = tf.where(short < size, size, tf.minimum(short, math.ceil(size * aug.MAX_SCALE)))
    nh, nw = _shorter_side_shape(shape[0], shape[1], target)
    return tf.image.stateless_random_crop(_resize_to(img, nh, nw), [size, size, 3], seed)


def _augment_crop(img: tf.Tensor, preset: str, size: int, seeds: tf.Tensor) -> tf.Tensor:
    img = tf.image.stateless_random_flip_left_right(img, seeds[1])
    if preset in ("notebook", "strong"):
        img = _random_affine(img, size, seeds[2])
    if preset == "strong":
        img = _random_intensity(img, size, seeds[3:6])
    return tf.ensure_shape(img, [size, size, 3])


def train_view(data: tf.Tensor, image_format: str | None, preset: str, size: int,
               seed: tf.Tensor) -> tf.Tensor:
    """Decode + a train preset in-graph (``seed``: int64 ``[2]``, one per element)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    upper = math.ceil(size * aug.MAX_SCALE)
    if image_format == "jpeg":
        # Decode only the crop window when no resize is needed (most iMet-sized images).
        shape = tf.io.extract_jpeg_shape(data)
        short = tf.minimum(shape[0], shape[1])

        def crop_decode():
            off = tf.random.stateless_uniform([2], seeds[0], 0.0, 1.0)
            oy = tf.cast(off[0] * tf.cast(shape[0] - size + 1, tf.float32), tf.int32)
            ox = tf.cast(off[1] * tf.cast(shape[1] - size + 1, tf.float32), tf.int32)
            out = tf.io.decode_and_crop_jpeg(data, tf.stack([oy, ox, size, size]), channels=3)
            return tf.ensure_shape(out, [size, size, 3])

        img = tf.cond((short >= size) & (short <= upper), crop_decode,
                      lambda: _fit_and_crop(decode(data, "jpeg"), size, seeds[0]))
    else:
        img = _fit_and_crop(decode(data, image_format), size, seeds[0])
    return _augment_crop(img, preset, size, seeds)


def train_view_image(img: tf.Tensor, preset: str, size: int, seed: tf.Tensor) -> tf.Tensor:
    """:func:`train_view` of an image already decoded (``(H, W, 3)`` uint8)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    return _augment_crop(_fit_and_crop(img, size, seeds[0]), preset, size, seeds)


def make_tf_dataset(
    source: str | os.PathLike,
    *,
    size: int,
    batch_size: int = 32,
    augment: str | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    tta_view: str | None = None,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    with_labels: bool = True,
    repeat: bool = False,
    drop_remainder: bool = False,
    shuffle_buffer: int = 2048,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)`` (or ``x``) float32 batches from TFRecords.

    Args:
        source: a folder written by :func:`write_tfrecords`.
        size, batch_size, augment, shuffle, seed, tta_view: as ``ImageDataset``.
        preprocess: graph-compatible callable on the float32 0-255 batch (a backbone's
            ``preprocess_input``); default none.
        with_labels: yield ``(x, y)``; False yields ``x`` (to predict, in file order).
        repeat: repeat forever (then pass ``steps_per_epoch`` to fit).
        drop_remainder: static batch shape (TPU).
        shuffle_buffer: records in the shuffle buffer.

    The augmentation draws and the shuffle order change every iteration (epoch) and
    repeat for the same ``seed``. Works under ``tf.distribute`` strategies: pass the
    global batch size; auto-sharding is by file when there are enough shards.
    """
    meta = read_metadata(source)
    size = aug._check_size(size)
    if augment is not None and tta_view is not None:
        raise InputError(f"Pass either augment ('{augment}') or tta_view ('{tta_view}'), not both.")
    if augment is not None:
        aug.build_train_transform(augment, size)  # validates the name
    if augment == "randaugment":
        raise InputError("augment='randaugment' has no in-graph counterpart yet; use "
                         "notebook, light, strong or none here (or ImageDataset).")
    if tta_view is not None:
        aug.tta_target(tta_view, size)
    if with_labels and meta["label_format"] is None:
        raise InputError(f"'{source}' holds no labels; pass with_labels=False to predict.")
    shuffle = (augment is not None) if shuffle is None else bool(shuffle)
    if shuffle and not with_labels:
        raise InputError("shuffle=True with with_labels=False would shuffle predictions; pass shuffle=False.")
    files = [str(Path(source) / f) for f in meta["shards"]]
    autotune = tf.data.AUTOTUNE
    if shuffle:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                           num_parallel_calls=autotune)
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        ds = tf.data.TFRecordDataset(files, buffer_size=8 << 20)
    ds = ds.apply(tf.data.experimental.assert_cardinality(meta["count"]))
    rnd = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    n_classes, label_format = meta["n_classes"], meta["label_format"]
    image_format = meta["image_format"]

    def parse(record, r):
        spec = {"image": tf.io.FixedLenFeature([], tf.string)}
        if with_labels:
            spec["label_ids" if label_format == "ids" else "labels"] = (
                tf.io.VarLenFeature(tf.int64) if label_format == "ids"
                else tf.io.FixedLenFeature([n_classes], tf.float32))
        ex = tf.io.parse_single_example(record, spec)
        if augment is not None and augment != "none":
            img = train_view(ex["image"], image_format, augment, size, tf.stack([r, seed]))
        else:
            img = eval_view(decode(ex["image"], image_format), size, tta_view)
        if not with_labels:
            return img
        if label_format == "ids":
            ids = ex["label_ids"].values
            y = tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.float32), [n_classes])
            return img, tf.minimum(y, 1.0)
        return img, ex["labels"]

    ds = tf.data.Dataset.zip(ds, rnd).map(parse, num_parallel_calls=autotune)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def finish(*batch):
        x = tf.cast(batch[0], tf.float32)
        x = preprocess(x) if preprocess is not None else x
        return (x, batch[1]) if with_labels else x

    ds = ds.map(finish, num_parallel_calls=autotune).prefetch(autotune)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.AUTO if len(files) > 1
        else tf.data.experimental.AutoShardPolicy.DATA)
    return ds.with_options(opts)
