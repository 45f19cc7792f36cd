"""Every TTA view of each image from one decode, in chunks: what ``predict`` feeds its models.

``ImageDataset(tta_view=v)`` (or ``eval_dataset(tta_view=v)``) decodes every file again for each
view, and a fold ensemble built one such dataset per (model, view): TTA 4 x 5 folds decoded each
image 20 times, and decoding a PNG costs about as much as a small model's forward pass on a CPU.
:func:`iter_views` decodes each file once and cuts all the views from that one array, a chunk of
images at a time (memory stays bounded); the caller runs every model on every view of a chunk.

Pipelines:

* ``pydataset``: :func:`~imet_kit.data.images.read_image` (BGR) then
  :func:`~imet_kit.data.augment.apply_tta` per view, then RGB: the very code ``ImageDataset`` runs
  for a TTA view, so the pixels are identical. Chunks are decoded in threads (OpenCV releases the
  GIL), the next chunk while the caller works on this one.
* ``tfdata``: each file read and decoded once in-graph
  (:func:`~imet_kit.data.tfdata_files.decode_file`), every view cut by
  :func:`~imet_kit.data.tfdata.eval_view` from that tensor: the ops of ``eval_dataset``, so the
  pixels equal that route's (within 1 grey level of pydataset's; crop geometry only).

Example:
    >>> for x in iter_views(paths, ["identity", "flip"], size=288):  # doctest: +SKIP
    ...     x.shape  # (n_chunk, 2, 288, 288, 3) uint8
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from imet_kit.data import augment as aug
from imet_kit.data.images import read_image
from imet_kit.errors import InputError

CHUNK_BYTES = 128 << 20  # uint8 views of one chunk; the next chunk is decoded meanwhile (x2)


def chunk_rows(n_views: int, size: int, multiple: int = 1, budget: int = CHUNK_BYTES) -> int:
    """Images per chunk so that a chunk's uint8 views fit in ``budget`` bytes (at least one, and a
    multiple of ``multiple``, e.g. the batch size, when that fits).

    Example:
        >>> chunk_rows(4, 288, multiple=32)  # 4 views of 288 px: 128 MiB holds 134 images
        128
    """
    n = max(1, budget // (n_views * size * size * 3))
    return n - n % multiple if n >= multiple else n


def image_views(path: str | os.PathLike, views: Sequence[str], size: int,
                resize: str = "crop") -> np.ndarray:
    """``(len(views), size, size, 3)`` uint8 RGB: every view of one file from one decode.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> _ = cv2.imwrite(p, np.arange(31 * 33 * 3, dtype=np.uint8).reshape(31, 33, 3))
        >>> x = image_views(p, ["identity", "flip"], 31)
        >>> x.shape, np.array_equal(x[1], x[0][:, ::-1])
        ((2, 31, 31, 3), True)
    """
    img = read_image(path, bgr=True)  # BGR until after the view, as ImageDataset does
    out = np.empty((len(views), size, size, 3), np.uint8)
    for v, view in enumerate(views):
        cv2.cvtColor(aug.apply_tta(img, view, size, resize=resize), cv2.COLOR_BGR2RGB, dst=out[v])
    return out


def iter_views(paths: Sequence[str | os.PathLike], views: Sequence[str], *, size: int,
               resize: str = "crop", chunk_size: int | None = None, pipeline: str = "pydataset",
               workers: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``(n, len(views), size, size, 3)`` uint8 RGB for consecutive chunks of ``paths``.

    Args:
        views: TTA view names (:data:`imet_kit.data.augment.TTA_VIEWS`), e.g. from ``tta_views``.
        resize: the geometry (``crop``, ``squash``, ``pad``); ``tfdata`` reads with ``crop`` only.
        chunk_size: images per chunk (default :func:`chunk_rows`).
        pipeline: ``pydataset`` (OpenCV, threads) or ``tfdata`` (decoded in-graph).
        workers: decoding threads of ``pydataset`` (default one per core, at most 8).

    Raises:
        ImageReadError: a file cannot be read (the first one met), as ``ImageDataset`` raises.
    """
    size = aug._check_size(size)
    views = list(views)
    if not views:
        raise InputError("iter_views got no view; expected TTA view names such as ['identity'].")
    for view in views:
        aug.tta_target(view, size)  # validates the name
    aug.check_resize(resize)
    if chunk_size is None:
        chunk_size = chunk_rows(len(views), size)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be an integer >= 1 (images per chunk); received {chunk_size!r}.")
    paths = [os.fspath(p) for p in paths]
    if pipeline == "tfdata":
        if resize != "crop":
            raise InputError(f"pipeline 'tfdata' reads with the crop geometry only; received resize "
                             f"{resize!r}. Use pipeline 'pydataset'.")
        yield from _tf_chunks(paths, views, size, chunk_size)
    elif pipeline == "pydataset":
        yield from _cv_chunks(paths, views, size, resize, chunk_size, workers)
    else:
        raise InputError(f"Unknown pipeline {pipeline!r}. Expected one of: pydataset, tfdata.")


def _cv_chunks(paths, views, size, resize, chunk_size, workers) -> Iterator[np.ndarray]:
    workers = workers or min(8, os.cpu_count() or 1)
    starts = range(0, len(paths), chunk_size)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        def submit(s):
            return [pool.submit(image_views, p, views, size, resize) for p in paths[s:s + chunk_size]]

        pending = submit(starts[0]) if starts else []
        for k in range(len(starts)):
            current = pending
            pending = submit(starts[k + 1]) if k + 1 < len(starts) else []  # decoded meanwhile
            try:
                chunk = np.stack([f.result() for f in current])
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
            yield chunk


def _tf_decode(path, kind):
    """One in-graph read + decode of a file (the only one ``tfdata`` chunks make per image)."""
    import tensorflow as tf

    from imet_kit.data.tfdata_files import decode_file

    return decode_file(tf.io.read_file(path), kind)


def _tf_chunks(paths, views, size, chunk_size) -> Iterator[np.ndarray]:
    import tensorflow as tf

    from imet_kit.data.tfdata import eval_view
    from imet_kit.data.tfdata_files import scan_files

    if not paths:
        return
    kinds = scan_files(paths)

    def all_views(path, kind):
        img = _tf_decode(path, kind)
        return tf.stack([eval_view(img, size, view) for view in views])

    ds = tf.data.Dataset.from_tensor_slices((paths, kinds))
    ds = ds.map(all_views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for chunk in ds.batch(chunk_size).prefetch(1):
        yield chunk.numpy()
