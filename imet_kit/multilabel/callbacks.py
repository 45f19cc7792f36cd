"""The threshold-sweep F2 callback: ``val_f2`` and ``val_threshold`` in the epoch logs.

:class:`F2Callback` writes ``val_f2`` and ``val_threshold`` into the epoch logs.
Put it *before* ``ModelCheckpoint`` / ``EarlyStopping`` / ``ReduceLROnPlateau``
in the callback list (Keras calls them in order on one shared logs dict) and give
those ``mode="max"``: with ``mode="auto"`` Keras minimises a key named ``val_f2``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import keras
import numpy as np

from imet_kit.errors import InputError
from imet_kit.multilabel.metrics import as_dense_bool
from imet_kit.multilabel.thresholds import DEFAULT_THRESHOLDS, sweep_thresholds

logger = logging.getLogger(__name__)


def _split(data, y, what: str):
    """(inputs for ``predict``, multi-hot truth) from ``(x, y)`` or a dataset plus ``y``."""
    if isinstance(data, tuple) and len(data) == 2:
        data, y = data[0], data[1] if y is None else y
    elif y is None:
        raise InputError(f"{what}: pass (x, y) arrays, or a dataset together with its y "
                         f"(the multi-hot truth, in the dataset's order).")
    return data, as_dense_bool(y, f"{what} y")


class F2Callback(keras.callbacks.Callback):
    """Every ``interval`` epochs: predict the validation data once, sweep thresholds,
    log ``val_f2`` / ``val_threshold``, keep the best weights.

    Args:
        val_data: ``(x, y)`` arrays, or anything ``model.predict`` takes (a
            ``keras.utils.PyDataset`` yielding ``(x, y)`` batches in a fixed order).
        y_val: the (n, C) truth when ``val_data`` is not an ``(x, y)`` tuple.
        interval: evaluate every this many epochs (others log nothing).
        thresholds: the sweep grid.
        min_labels, max_labels, beta: the binarization rule and metric.
        best_weights_path: save the best weights here (``*.weights.h5``) on each improvement.
        restore_best_weights: load the best weights into the model when training ends.
        train_subset: optional ``(x, y)`` (or ``(dataset, y)``) also scored, as ``train_f2``.
        batch_size: for ``predict`` on arrays.

    Attributes:
        best_score, best_threshold, best_epoch (0-based), best_weights, history
        (one dict per evaluated epoch). They persist across ``fit`` calls, so one
        callback spans a head warm-up and the fine-tuning that follows.

    Example:
        >>> cb = F2Callback((np.zeros((4, 32, 32, 3)), np.eye(4, 3)), interval=2)
        >>> cb.interval, cb.best_epoch
        (2, None)
    """

    def __init__(self, val_data, y_val=None, *, interval: int = 1, thresholds=DEFAULT_THRESHOLDS,
                 min_labels: int = 1, max_labels: int | None = 10, beta: float = 2.0,
                 best_weights_path: str | os.PathLike | None = None,
                 restore_best_weights: bool = False, train_subset=None,
                 batch_size: int | None = 32, verbose: int = 0):
        super().__init__()
        if int(interval) < 1:
            raise InputError(f"interval must be >= 1 epoch; received {interval}.")
        if best_weights_path is not None and not str(best_weights_path).endswith(".weights.h5"):
            raise InputError(f"best_weights_path must end in '.weights.h5' (Keras 3); received "
                             f"'{best_weights_path}'.")
        self.val_x, self.y_val = _split(val_data, y_val, "val_data")
        self.train_x, self.y_train = (None, None) if train_subset is None else _split(train_subset, None, "train_subset")
        self.interval = int(interval)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.min_labels, self.max_labels, self.beta = min_labels, max_labels, float(beta)
        self.best_weights_path = None if best_weights_path is None else Path(best_weights_path)
        self.restore_best_weights = bool(restore_best_weights)
        self.batch_size, self.verbose = batch_size, verbose
        self._reset()

    def _reset(self):
        self.best_score, self.best_threshold, self.best_epoch = -math.inf, None, None
        self.best_weights, self.history = None, []

    def _score(self, x, y, what: str):
        from imet_kit.training.hosts import predict_all  # every host's rows, no repeats

        kw = {"batch_size": self.batch_size} if isinstance(x, (np.ndarray, list, dict)) else {}
        probs = predict_all(self.model, x, verbose=self.verbose, **kw)
        if probs.shape != y.shape:
            raise InputError(f"{what}: the model predicted {probs.shape} but y has shape {y.shape}; "
                             f"the dataset must yield every image once, in y's order (no shuffling).")
        return sweep_thresholds(probs, y, self.thresholds, self.min_labels, self.max_labels, self.beta)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.interval:
            return
        logs = logs if logs is not None else {}
        res = self._score(self.val_x, self.y_val, "val_data")
        logs["val_f2"], logs["val_threshold"] = res.best_score, res.best_threshold
        row = {"epoch": epoch, "val_f2": res.best_score, "val_threshold": res.best_threshold}
        if self.train_x is not None:
            tr = self._score(self.train_x, self.y_train, "train_subset")
            logs["train_f2"] = row["train_f2"] = tr.best_score
        self.history.append(row)
        if res.best_score > self.best_score:
            self.best_score, self.best_threshold, self.best_epoch = res.best_score, res.best_threshold, epoch
            self.best_weights = self.model.get_weights()
            if self.best_weights_path is not None:
                self.best_weights_path.parent.mkdir(parents=True, exist_ok=True)
                self.model.save_weights(self.best_weights_path)
        logger.info("epoch %d: val_f2 %.5f at threshold %.3f (best %.5f, epoch %d)", epoch + 1,
                    res.best_score, res.best_threshold, self.best_score, self.best_epoch + 1)

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            logger.info("restored the weights of epoch %d (val_f2 %.5f)", self.best_epoch + 1, self.best_score)
