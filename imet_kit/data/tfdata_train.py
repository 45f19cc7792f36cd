"""The tf.data pipelines that `imet-kit train` / `predict` use with ``--pipeline tfdata``.

Rows of a dataset come from one of two sources: :class:`ImageFiles` (the image folder, each file
read and decoded in-graph, see :mod:`imet_kit.data.tfdata_files`) or :class:`RecordFolder` (a
folder written by `imet-kit tfrecords`, checked against the dataset's ids). Labels always come
from the dataset's own multi-hot matrix (``train.csv``), so both pipelines and both sources train
on the same truth.

* :func:`train_data` returns an :class:`EpochData`: what ``model.fit`` takes (a Keras data
  adapter around a ``tf.data.Dataset``) with the engine's interface, a settable ``epoch`` and
  ``len()`` (batches per epoch). Shuffle order and every augmentation draw are a pure function of
  ``(seed, epoch, row)`` (stateless TF random ops; TF's global seed plays no part), and
  :meth:`EpochData.callback` sets ``epoch`` to Keras's epoch number as each epoch begins, so a
  fold resumed at epoch e, or a second ``fit`` after a head warm-up, sees exactly the batches an
  uninterrupted run sees. From files the order is a full permutation; from TFRecords shards are
  permuted, interleaved (8 at a time) and shuffled in blocks of 1024 records.
* :func:`eval_dataset` returns a plain ``tf.data.Dataset`` of the eval transform or a TTA view,
  rows in the given (ascending) order, the last batch kept: what the F2 callback and
  ``predict`` need.

Example:
    >>> train = train_data(ImageFiles(paths), y, tr, size=288, augment="notebook")  # doctest: +SKIP
    >>> train.epoch = 0  # the engine: the epoch a fold starts (or resumes) at  # doctest: +SKIP
    >>> model.fit(train, epochs=8, callbacks=[train.callback()])  # doctest: +SKIP
    >>> probs = model.predict(eval_dataset(ImageFiles(test_paths), size=288))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

# Keras 3 takes a DataAdapter instance as fit's x ("Allow passing a custom data adapter" in
# keras.src.trainers.data_adapters.get_data_adapter); there is no public alias of the class.
from keras.src.trainers.data_adapters.tf_dataset_adapter import TFDatasetAdapter

from imet_kit.data import augment as aug
from imet_kit.data.tfdata import decode, eval_view, read_metadata, train_view, train_view_image
from imet_kit.data.tfdata_files import decode_file, scan_files
from imet_kit.errors import InputError

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BLOCK = 1024  # TFRecords: records shuffled together (about 40 MB of JPEG at 288 px)


def _check_rows(rows, n: int, what: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if not len(rows) or rows.min() < 0 or rows.max() >= n:
        raise InputError(f"{what}: expected a non-empty set of row indices in [0, {n}); received "
                         f"{len(rows)} rows" + (f" from {rows.min()} to {rows.max()}." if len(rows) else "."))
    return rows


class ImageFiles:
    """Rows read from image files in-graph (:func:`~imet_kit.data.tfdata_files.decode_file`).

    Args:
        paths: one PNG / JPEG file per row.
        kinds: their :func:`~imet_kit.data.tfdata_files.scan_files` rows (scanned when None).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], kinds: np.ndarray | None = None) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.kinds = scan_files(self.paths) if kinds is None else np.asarray(kinds, np.int32)
        self.n = len(self.paths)
        self._paths, self._kinds = tf.constant(self.paths), tf.constant(self.kinds)

    def stream(self, rows: tf.Tensor) -> tf.data.Dataset:
        """``(row, path)`` in the order of ``rows``."""
        return tf.data.Dataset.from_tensor_slices(rows).map(lambda i: (i, tf.gather(self._paths, i)))

    def shuffled(self, rows: tf.Tensor, key: tf.Tensor) -> tf.data.Dataset:
        return self.stream(tf.random.experimental.stateless_shuffle(rows, seed=key))

    def image(self, i, payload, size, view=None, preset=None, seed=None) -> tf.Tensor:
        img = decode_file(tf.io.read_file(payload), tf.gather(self._kinds, i))
        return eval_view(img, size, view) if preset is None else train_view_image(img, preset, size, seed)


class RecordFolder:
    """Rows read from a folder written by `imet-kit tfrecords` for the dataset with these ``ids``.

    The records must be the dataset's rows in ``train.csv`` order (as `imet-kit tfrecords DATA
    DIR` writes them): checked now from the metadata and each shard's first record, and again
    for every record read (a differing id stops the pipeline with an error).
    """

    def __init__(self, folder: str | os.PathLike, ids: Sequence[str],
                 label_names: Sequence[str] | None = None) -> None:
        self.folder, self.meta = Path(folder), read_metadata(folder)
        self.ids, self.n = [str(i) for i in ids], len(ids)
        self._check(label_names)
        self.files = [str(self.folder / s) for s in self.meta["shards"]]
        self.offsets = np.concatenate([[0], np.cumsum(self.meta["shard_counts"])[:-1]]).astype(np.int64)
        self.image_format = self.meta["image_format"]
        self._ids = tf.constant(self.ids)

    def _check(self, label_names) -> None:
        m, how = self.meta, (f"Rewrite it with `imet-kit tfrecords DATA {self.folder}` (the "
                             f"train split, no --skip-corrupt), or drop --tfrecords.")
        if m["count"] != self.n or m.get("skipped"):
            raise InputError(f"TFRecord folder '{self.folder}' holds {m['count']} images "
                             f"({len(m.get('skipped') or {})} skipped when written); the dataset "
                             f"has {self.n} train images. {how}")
        names = m.get("label_names")
        if label_names is not None and names is not None and list(names) != list(label_names):
            raise InputError(f"TFRecord folder '{self.folder}' was written with other labels "
                             f"({len(names)} names) than the dataset's ({len(label_names)}). {how}")
        start = 0
        for shard, count in zip(m["shards"], m["shard_counts"]):
            if count:
                rec = next(iter(tf.data.TFRecordDataset(str(self.folder / shard)).take(1)))
                got = tf.io.parse_single_example(
                    rec, {"id": tf.io.FixedLenFeature([], tf.string)})["id"].numpy().decode()
                if got != self.ids[start]:
                    raise InputError(f"TFRecord folder '{self.folder}': record {start} is image "
                                     f"'{got}' but train.csv row {start} is '{self.ids[start]}'. {how}")
            start += count

    def _records(self, files: tf.data.Dataset, parallel: bool) -> tf.data.Dataset:
        def read(f, off):
            return tf.data.TFRecordDataset(f, buffer_size=8 << 20).enumerate(start=off)

        if not parallel:
            return files.flat_map(read)
        return files.interleave(read, cycle_length=min(len(self.files), 8),
                                num_parallel_calls=AUTOTUNE, deterministic=True)

    def stream(self, rows: tf.Tensor) -> tf.data.Dataset:
        """``(row, record)`` in ascending row order (``rows`` must ascend)."""
        keep = tf.scatter_nd(rows[:, None], tf.ones_like(rows, tf.bool), [self.n])
        files = tf.data.Dataset.from_tensor_slices((self.files, self.offsets))
        return self._records(files, parallel=False).filter(lambda i, r: tf.gather(keep, i))

    def shuffled(self, rows: tf.Tensor, key: tf.Tensor) -> tf.data.Dataset:
        keep = tf.scatter_nd(rows[:, None], tf.ones_like(rows, tf.bool), [self.n])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(self.files)), seed=key)
        files = tf.data.Dataset.from_tensor_slices(
            (tf.gather(self.files, order), tf.gather(self.offsets, order)))
        recs = self._records(files, parallel=True).filter(lambda i, r: tf.gather(keep, i))

        def shuffle_block(b, block):
            idx, data = block
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(idx)[0]), seed=tf.random.experimental.stateless_fold_in(key, b))
            return tf.data.Dataset.from_tensor_slices((tf.gather(idx, perm), tf.gather(data, perm)))

        return recs.batch(SHUFFLE_BLOCK).enumerate().flat_map(shuffle_block)

    def image(self, i, payload, size, view=None, preset=None, seed=None) -> tf.Tensor:
        ex = tf.io.parse_single_example(payload, {"image": tf.io.FixedLenFeature([], tf.string),
                                                  "id": tf.io.FixedLenFeature([], tf.string)})
        same = tf.debugging.assert_equal(
            ex["id"], tf.gather(self._ids, i),
            message=f"TFRecord folder '{self.folder}' is not in train.csv order; rewrite it")
        with tf.control_dependencies([same]):
            data = tf.identity(ex["image"])
        if preset is None:
            return eval_view(decode(data, self.image_format), size, view)
        return train_view(data, self.image_format, preset, size, seed)


def _labels(y) -> Callable[[tf.Tensor], tf.Tensor]:
    """Row index -> its float32 multi-hot row, from a compact CSR copy of ``y``."""
    csr = sp.csr_matrix(y)
    csr.eliminate_zeros()
    indptr, indices = tf.constant(csr.indptr, tf.int64), tf.constant(csr.indices, tf.int64)
    n_classes = csr.shape[1]

    def row(i):
        ids = indices[indptr[i]:indptr[i + 1]]
        return tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.float32), [n_classes])

    return row


def _batched(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    def cast(x, *y):
        return (tf.cast(x, tf.float32), *y) if y else tf.cast(x, tf.float32)

    return ds.batch(batch_size).map(cast, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def eval_dataset(source: ImageFiles | RecordFolder, rows=None, *, size: int, batch_size: int = 32,
                 tta_view: str | None = None, y=None) -> tf.data.Dataset:
    """Batches of the eval transform (or TTA view ``tta_view``) of ``rows`` (default all), in order.

    Yields float32 ``x`` (0-255), or ``(x, y)`` when the multi-hot ``y`` of all rows is given.
    """
    size = aug._check_size(size)
    if tta_view is not None:
        aug.tta_target(tta_view, size)  # validates the name
    rows = _check_rows(np.arange(source.n) if rows is None else rows, source.n, "rows")
    if isinstance(source, RecordFolder) and np.any(np.diff(rows) <= 0):
        raise InputError("rows: a TFRecord folder is read in order; pass ascending row indices.")
    label = None if y is None else _labels(y)

    def load(i, payload):
        img = source.image(i, payload, size, tta_view)
        return img if label is None else (img, label(i))

    ds = source.stream(tf.constant(rows)).apply(tf.data.experimental.assert_cardinality(len(rows)))
    return _batched(ds.map(load, num_parallel_calls=AUTOTUNE), batch_size)


class EpochData(TFDatasetAdapter):
    """A training ``tf.data.Dataset`` as ``model.fit`` takes it, whose batches depend on ``epoch``.

    Attributes:
        epoch: the epoch whose shuffle and augmentation the next pass yields (a ``tf.Variable``
            read once when each pass starts). The engine sets it before ``fit``;
            :meth:`callback` keeps it equal to Keras's epoch; without that callback each
            ``on_epoch_end`` advances it, as ``ImageDataset`` does.
    """

    def __init__(self, build: Callable[[tf.Variable], tf.data.Dataset], n_rows: int) -> None:
        self.n_rows = n_rows
        with tf.device("/cpu:0"):  # read by the input pipeline, which runs on the host
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        super().__init__(build(self._epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.numpy())

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.assign(int(value))

    def __len__(self) -> int:
        return int(self.num_batches)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def callback(self) -> keras.callbacks.Callback:
        """A callback that sets ``epoch`` to Keras's epoch number when each epoch begins."""
        return _FollowEpoch(self)


class _FollowEpoch(keras.callbacks.Callback):
    def __init__(self, data: EpochData) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.data.epoch = epoch


def train_data(source: ImageFiles | RecordFolder, y, rows, *, size: int, batch_size: int = 32,
               augment: str = "notebook", seed: int = 0) -> EpochData:
    """Shuffled, augmented ``(x, y)`` batches of ``rows`` for ``model.fit``; see :class:`EpochData`.

    ``augment`` is a train preset of :mod:`imet_kit.data.augment` (``none``: the eval transform);
    the in-graph presets draw the same kinds and ranges (:mod:`imet_kit.data.tfdata`).
    """
    size = aug._check_size(size)
    aug.build_train_transform(augment, size)  # validates the name
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; received {batch_size!r}.")
    rows = _check_rows(rows, source.n, "rows")
    label, preset = _labels(y), None if augment == "none" else augment

    def build(epoch: tf.Variable) -> tf.data.Dataset:
        def one_pass(_):
            key = tf.stack([tf.constant(int(seed), tf.int64), epoch.read_value()])
            return source.shuffled(tf.constant(rows), key).map(lambda i, p: (key, i, p))

        def load(key, i, payload):
            s = tf.random.experimental.stateless_fold_in(key, i)
            return source.image(i, payload, size, preset=preset, seed=s), label(i)

        ds = tf.data.Dataset.from_tensors(0).flat_map(one_pass)
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(rows)))
        return _batched(ds.map(load, num_parallel_calls=AUTOTUNE), batch_size)

    return EpochData(build, len(rows))


def fold_data(paths, ids, y, tr, va, *, size: int, batch_size: int, augment: str, seed: int,
              tfrecords: str | None = None, label_names=None,
              kinds: np.ndarray | None = None) -> tuple[EpochData, tf.data.Dataset]:
    """One fold's train data (rows ``tr``) and validation batches (rows ``va``, in order, no y).

    Reads ``tfrecords`` (a folder of `imet-kit tfrecords`) when given, else the image ``paths``
    (``kinds``: their :func:`~imet_kit.data.tfdata_files.scan_files` rows, scanned when None).
    """
    source = (RecordFolder(tfrecords, ids, label_names) if tfrecords
              else ImageFiles(paths, kinds))
    train = train_data(source, y, tr, size=size, batch_size=batch_size, augment=augment, seed=seed)
    return train, eval_dataset(source, va, size=size, batch_size=batch_size)

