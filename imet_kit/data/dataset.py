"""A ``keras.utils.PyDataset`` of image files and multi-hot labels.

Batches stay uint8 until the whole batch is built; then the backbone's own
preprocessing (a callable) or a plain float32 cast (Keras EfficientNets take
0-255 input) turns them into the model's input.

Randomness is a pure function of ``(seed, epoch, batch index)``: the shuffle order
comes from ``(seed, epoch)`` and each batch reseeds its albumentations ``Compose``
from ``(seed, epoch, index)``. Keras re-forks multiprocessing workers every epoch
without reseeding them, so a shared RNG would repeat the same crops; with this
scheme a batch is the same whichever thread or process builds it, and different
in every epoch.

Example:
    >>> ds = ImageDataset(paths, y, size=288, augment="notebook", workers=2)  # doctest: +SKIP
    >>> model.fit(ds, epochs=3)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import keras
import numpy as np
import scipy.sparse as sp

from imet_kit.data import augment as aug
from imet_kit.data.images import read_image, scan_images
from imet_kit.data.mix import BatchMix
from imet_kit.errors import ImageReadError, InputError

log = logging.getLogger(__name__)

Preprocess = Callable[[np.ndarray], Any]


def batch_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 32-bit seed for one batch, a pure function of ``(seed, epoch, index)``; another
    ``stream`` (1: MixUp / CutMix) gives an independent one for the same batch."""
    key = [seed & 0xFFFFFFFF, epoch, index] + ([stream] if stream else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


class ImageDataset(keras.utils.PyDataset):
    """Batches of ``(x, y)`` (or ``x`` alone when ``y`` is None) from image files.

    Args:
        paths: one image file per row.
        y: multi-hot labels ``(n, C)``, dense or scipy sparse; None to predict.
        size: output side in pixels (square crops).
        batch_size: rows per batch; the last batch may be short (no row is dropped), except
            with ``replicas > 1``.
        augment: a train preset from ``imet_kit.data.augment.TRAIN_PRESETS``, or None for
            the deterministic eval transform.
        resize: the geometry (``imet_kit.data.geometry.RESIZE_MODES``): ``crop`` (shorter side
            to ``size``, then a random / centre square), ``squash`` (the whole image to the
            square) or ``pad`` (the whole image letterboxed); the same for train, eval and TTA.
        flip: train presets mirror half the images; False where mirroring changes the label.
        mixup, cutmix: Beta alphas of MixUp / CutMix on each training batch (0 = off;
            :class:`imet_kit.data.mix.BatchMix`); need ``augment`` and labels.
        shuffle: reshuffle the rows every epoch; default: True when ``augment`` is set.
        seed: seeds the shuffle order and the augmentation of every batch.
        tta_view: a deterministic TTA view name (``imet_kit.data.augment.TTA_VIEWS``);
            excludes ``augment``.
        preprocess: callable mapping the uint8 batch ``(B, size, size, 3)`` (float32 0-255
            when mixed) to the model's float input (e.g. a backbone's ``preprocess_input``); default a
            float32 cast, values 0-255.
        skip_corrupt: check every file up front (header and end marker, no decode),
            leave out those that fail and log one warning counting them; a file that
            passes the check but fails to decode is dropped from its batch with a
            warning (predict mode raises instead, since outputs must align with rows).
            Off: a bad file raises :class:`ImageReadError` naming it.
        workers, use_multiprocessing, max_queue_size: passed to ``PyDataset``.
            Threads (``workers=2``) scale well: OpenCV releases the GIL while decoding;
            processes must pickle every float32 batch back (4 bytes per pixel), which
            costs more than it saves on a few cores.
        opencv_threads: OpenCV's own thread count, set (process-wide, with
            ``cv2.setNumThreads``) when the first batch is built. Default: 1 when
            ``workers > 1`` (the workers already fill the cores; nested threads only add
            switching), else left alone.

    Attributes:
        kept_indices: rows of ``paths`` that the batches cover, in order when not shuffled.
        skipped: ``{path: reason}`` of the files left out.
        epoch: the epoch used for shuffling and seeding; advanced by ``on_epoch_end``.
        replicas: devices that split each batch (set by the engine, default 1). Above 1, a
            training loader (``augment`` set) drops its last short batch, and an evaluation
            loader folds a last batch smaller than ``replicas`` into the one before it, so every
            row is kept and no device gets an empty batch (TF's CPU convolution breaks on one).
        even: every batch must split evenly over ``replicas`` (JAX's DataParallel shards the batch
            axis; set by the engine). A training batch is cut to a multiple of ``replicas``; an
            evaluation loader keeps its short last batch and pads it to a multiple by repeating its
            last image: predictions then have :attr:`padding` extra rows at the end, which
            :func:`imet_kit.training.hosts.unpad` removes.
        process_index, process_count: with ``even``, this process decodes only its share of each
            (global) batch: ``batch_size / process_count`` rows, the ``process_index``-th share
            (several JAX hosts: :mod:`imet_kit.training.hosts`).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        y: np.ndarray | sp.spmatrix | None = None,
        *,
        size: int,
        batch_size: int = 32,
        augment: str | None = None,
        resize: str = "crop",
        flip: bool = True,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        shuffle: bool | None = None,
        seed: int = 0,
        tta_view: str | None = None,
        preprocess: Preprocess | None = None,
        skip_corrupt: bool = False,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        opencv_threads: int | None = None,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise InputError("ImageDataset got no image paths; expected at least one file.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer; received {batch_size!r}.")
        self.y = self._check_labels(y, len(self.paths))
        self.size = aug._check_size(size)
        self.batch_size = batch_size
        if augment is not None and tta_view is not None:
            raise InputError(
                f"Pass either augment ('{augment}') or tta_view ('{tta_view}'), not both: "
                f"a TTA view is a fixed eval transform."
            )
        self.resize = aug.check_resize(resize)
        self.flip = bool(flip)
        if augment is not None and augment not in aug.TRAIN_PRESETS:
            aug.build_train_transform(augment, self.size)  # raises the listing error
        if tta_view is not None:
            aug.build_tta_transform(tta_view, self.size)  # validates the name
        self.augment = augment
        self.tta_view = tta_view
        self.mix = BatchMix(mixup, cutmix)
        if self.mix.active and (augment is None or self.y is None):
            raise InputError(f"mixup={mixup} / cutmix={cutmix} mix training batches: they need "
                             f"labels and an augment preset (received augment={augment!r}).")
        self.shuffle = (augment is not None) if shuffle is None else bool(shuffle)
        if self.shuffle and self.y is None:
            raise InputError(
                "shuffle=True with y=None would return predictions in a shuffled order; "
                "pass shuffle=False (the default without augment) to predict."
            )
        self.seed = int(seed)
        self.preprocess = preprocess
        self.skip_corrupt = bool(skip_corrupt)
        self.opencv_threads = (1 if workers > 1 else None) if opencv_threads is None else opencv_threads
        self.epoch = 0
        self.replicas = 1
        self.even = False
        self.process_index, self.process_count = 0, 1
        self.skipped: dict[str, str] = {}
        self.kept_indices = np.arange(len(self.paths))
        if self.skip_corrupt:
            self._scan(max(1, workers) * 2)
        self._order_cache: tuple[int, np.ndarray] | None = None
        self._local = threading.local()

    @staticmethod
    def _check_labels(y: Any, n: int) -> np.ndarray | sp.csr_matrix | None:
        if y is None:
            return None
        y = sp.csr_matrix(y) if sp.issparse(y) else np.asarray(y)
        if y.ndim != 2 or y.shape[0] != n:
            raise InputError(
                f"Labels must be a multi-hot (n_images, n_classes) array with one row per "
                f"path; received shape {tuple(y.shape)} for {n} paths."
            )
        return y

    def _scan(self, threads: int) -> None:
        bad = scan_images(self.paths, workers=threads)
        if not bad:
            return
        self.skipped = {self.paths[i]: r for i, r in bad.items()}
        self.kept_indices = np.array([i for i in range(len(self.paths)) if i not in bad])
        first = next(iter(self.skipped.items()))
        log.warning(
            "Skipping %d of %d images that cannot be read (first: '%s': %s). "
            "Re-export or remove them; kept_indices lists the rows used.",
            len(bad), len(self.paths), *first,
        )
        if not len(self.kept_indices):
            raise InputError(f"None of the {len(self.paths)} images can be read (first: {first[0]}).")

    # -- state shared with worker processes ---------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local", None)  # thread-local transforms are rebuilt in each process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # -- PyDataset API -----------------------------------------------------------------
    def __len__(self) -> int:
        full, rest = divmod(len(self.kept_indices), self.batch_size)
        if rest and full and self.replicas > 1 and (self.augment is not None or
                                                    (rest < self.replicas and not self.even)):
            return full  # training: the short batch is dropped; evaluation: the last batch takes it
        return full + bool(rest)

    @property
    def _split_evenly(self) -> bool:
        return self.even and self.replicas > 1

    def _share(self, rows: np.ndarray) -> np.ndarray:
        """A batch's rows cut (training) or padded by repeating the last (evaluation) to a
        multiple of ``replicas``, then this process's share of them."""
        if self.augment is None:
            rows = np.concatenate([rows, np.repeat(rows[-1:], -len(rows) % self.replicas)])
        else:
            rows = rows[: len(rows) // self.replicas * self.replicas]
        share = len(rows) // self.process_count
        return rows[self.process_index * share : (self.process_index + 1) * share]

    @property
    def padding(self) -> int:
        """Rows repeated at the end of an evaluation epoch so that its last batch splits evenly
        over the replicas (``even``); 0 otherwise."""
        if not self._split_evenly or self.augment is not None or not len(self):
            return 0
        last = len(self.kept_indices) - (len(self) - 1) * self.batch_size
        return -last % self.replicas

    @property
    def n_classes(self) -> int | None:
        return None if self.y is None else int(self.y.shape[1])

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The rows of ``paths`` in the order the batches of ``epoch`` visit them."""
        epoch = self.epoch if epoch is None else epoch
        cache = self._order_cache
        if cache is not None and cache[0] == epoch:
            return cache[1]
        rows = self.kept_indices
        if self.shuffle:
            rows = rows[np.random.default_rng([self.seed & 0xFFFFFFFF, epoch]).permutation(len(rows))]
        self._order_cache = (epoch, rows)
        return rows

    def _transform(self):
        # One Compose per thread: reseeding a shared one from two threads would mix streams.
        t = getattr(self._local, "transform", None)
        if t is None:
            if self.opencv_threads is not None and cv2.getNumThreads() != self.opencv_threads:
                cv2.setNumThreads(self.opencv_threads)
            if self.tta_view is not None:
                t = aug.build_tta_transform(self.tta_view, self.size, resize=self.resize)
            elif self.augment is not None:
                t = aug.build_train_transform(self.augment, self.size, self.seed,
                                              resize=self.resize, flip=self.flip)
            else:
                t = aug.build_eval_transform(self.size, resize=self.resize)
            self._local.transform = t
        return t

    def load_batch(self, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Build batch ``index`` of the current epoch before preprocessing.

        Returns:
            ``(x uint8 (B, size, size, 3), y float32 (B, C) or None, rows)`` where
            ``rows`` are the indices into ``paths``.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        epoch = self.epoch
        stop = (index + 1) * self.batch_size
        if self.augment is None and index == len(self) - 1:
            stop = None  # evaluation keeps every row (see ``replicas``)
        rows = self.order(epoch)[index * self.batch_size : stop]
        if self._split_evenly:
            rows = self._share(rows)
        transform = self._transform()
        transform.set_random_seed(batch_seed(self.seed, epoch, index))
        x = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        kept = []
        for r in rows:
            try:
                # BGR until after the transform (every preset is colour-order blind):
                # converting the small crop is cheaper than the full decoded image.
                img = read_image(self.paths[r], bgr=True)
            except ImageReadError as exc:
                if not self.skip_corrupt or self.y is None:
                    raise
                self.skipped[self.paths[r]] = exc.reason
                log.warning("Skipped unreadable image '%s' (%s); %d skipped so far.",
                            self.paths[r], exc.reason, len(self.skipped))
                continue
            cv2.cvtColor(transform(image=img)["image"], cv2.COLOR_BGR2RGB, dst=x[len(kept)])
            kept.append(r)
        if self._split_evenly and kept and len(kept) < len(rows):
            take = np.resize(np.arange(len(kept)), len(rows))  # the batch keeps its share's size
            x[: len(rows)], kept = x[take], [kept[i] for i in take]
        rows = np.asarray(kept, dtype=np.int64)
        x = x[: len(rows)]
        if self.y is None:
            return x, None, rows
        y = self.y[rows]
        y = y.toarray() if sp.issparse(y) else y
        return x, np.asarray(y, dtype=np.float32), rows

    def __getitem__(self, index: int):
        epoch = self.epoch
        x, y, _ = self.load_batch(index)
        if self.mix.active and len(x):
            x, y = self.mix(x, y, batch_seed(self.seed, epoch, index, stream=1))
        x = np.asarray(self.preprocess(x), dtype=np.float32) if self.preprocess else x.astype(np.float32)
        return x if y is None else (x, y)
