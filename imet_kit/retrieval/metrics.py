"""Retrieval and recognition metrics: mAP@k, recall@k, GAP; a Keras callback that logs them.

* mAP@k (Google Landmark Retrieval's mAP@100): per query
  ``AP@k = 1 / min(n_relevant, k) * sum_{i<=k} P(i) rel(i)``, averaged over queries that have
  at least one relevant gallery image.
* recall@k (the metric-learning papers'): share of queries with a relevant image in the top k.
* GAP (Google Landmark Recognition's global average precision, micro-AP): one
  (label, confidence) prediction per query, all queries ranked together by confidence,
  ``GAP = 1/M sum_i P(i) rel(i)`` with M the number of queries that have a true label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from imet_kit.errors import InputError

log = logging.getLogger(__name__)


def _missing(values) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool)


def relevance(indices: np.ndarray, query_labels: Sequence, gallery_labels: Sequence) -> np.ndarray:
    """``(n, k)`` bool: does neighbour j of query i share its label (padding -1 never does)."""
    indices = np.asarray(indices)
    gallery = np.asarray(gallery_labels, dtype=object)
    query = np.asarray(query_labels, dtype=object)
    if len(query) != len(indices):
        raise InputError(f"{len(indices)} neighbour rows but {len(query)} query labels.")
    rel = gallery[np.where(indices >= 0, indices, 0)] == query[:, None]
    return rel & (indices >= 0)


def average_precision_at_k(relevant: np.ndarray, n_relevant: Sequence[int], k: int) -> np.ndarray:
    """AP@k per query from a ranked relevance matrix; NaN where ``n_relevant`` is 0.

    Example:
        >>> average_precision_at_k(np.array([[1, 0, 1]], bool), [2], k=3).round(4).tolist()
        [0.8333]
    """
    rel = np.asarray(relevant, dtype=bool)[:, :k].astype(np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision * rel).sum(axis=1) / np.minimum(n_rel, k)
    return np.where(n_rel > 0, ap, np.nan)


def count_relevant(query_labels: Sequence, gallery_labels: Sequence, *, exclude_self: bool = False) -> np.ndarray:
    """Per query, the number of gallery images with its label (minus itself if leave-one-out)."""
    counts = pd.Series(np.asarray(gallery_labels, dtype=object)).value_counts()
    n = pd.Series(np.asarray(query_labels, dtype=object)).map(counts).fillna(0).to_numpy(np.int64)
    return np.maximum(n - int(exclude_self), 0)


def map_at_k(indices: np.ndarray, query_labels: Sequence, gallery_labels: Sequence, k: int = 100, *,
             exclude_self: bool = False) -> float:
    """Mean AP@k over queries with at least one relevant gallery image (NaN if none has).

    Example:
        >>> map_at_k(np.array([[0, 1], [1, 0]]), ["a", "b"], ["a", "a"], k=2)
        1.0
    """
    rel = relevance(np.asarray(indices)[:, :k], query_labels, gallery_labels)
    ap = average_precision_at_k(rel, count_relevant(query_labels, gallery_labels,
                                                    exclude_self=exclude_self), k)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def recall_at_k(indices: np.ndarray, query_labels: Sequence, gallery_labels: Sequence, k: int = 1, *,
                exclude_self: bool = False) -> float:
    """Share of queries (with a relevant gallery image) that find one in their top ``k``."""
    rel = relevance(np.asarray(indices)[:, :k], query_labels, gallery_labels)
    has = count_relevant(query_labels, gallery_labels, exclude_self=exclude_self) > 0
    return float(rel[has].any(axis=1).mean()) if has.any() else float("nan")


def gap(predicted: Sequence, confidence: Sequence[float], true: Sequence) -> float:
    """Global average precision (Google Landmark Recognition).

    Args:
        predicted: one label per query; None / NaN for "no prediction".
        confidence: the prediction's score (higher = surer).
        true: the query's label; None / NaN for a query with no landmark (it counts only
            as a wrong prediction if one was made).

    Example:
        >>> round(gap(["a", "b", "c"], [0.9, 0.8, 0.7], ["a", "x", "c"]), 4)  # (1 + 2/3) / 3
        0.5556
    """
    pred, conf = np.asarray(predicted, dtype=object), np.asarray(confidence, dtype=np.float64)
    true = np.asarray(true, dtype=object)
    if not len(pred) == len(conf) == len(true):
        raise InputError(f"gap: {len(pred)} predictions, {len(conf)} confidences, {len(true)} "
                         "true labels; expected one of each per query.")
    has_true = ~_missing(true)
    m = int(has_true.sum())
    if m == 0:
        return float("nan")
    made = ~_missing(pred)
    order = np.argsort(-conf[made], kind="stable")
    rel = ((pred == true) & has_true)[made][order].astype(np.float64)
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float((precision * rel).sum() / m)


def __getattr__(name: str):
    # The callback subclasses keras.callbacks.Callback; building it on first use keeps
    # `import imet_kit.retrieval.metrics` (and `imet-kit search`) free of TensorFlow.
    if name == "RetrievalMetricsCallback":
        import keras

        cls = type(name, (_RetrievalMetrics, keras.callbacks.Callback), {"__module__": __name__, "__doc__": _RetrievalMetrics.__doc__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _RetrievalMetrics:
    """Each epoch: embed a validation set, search it, add ``{prefix}map@k`` and recall to logs.

    Without a gallery the validation images search each other (leave-one-out). Put it
    before ``ModelCheckpoint`` / ``EarlyStopping`` in the callback list so that they can
    monitor ``val_map@10``.

    Args:
        embedding_model: image -> embedding (shares weights with the trained model).
        images: anything ``embedding_model.predict`` accepts (array, PyDataset of images).
        labels: identity per image.
        gallery_images, gallery_labels: an optional separate gallery.
        k: the mAP / recall cut-off.
    """

    def __init__(self, embedding_model, images, labels: Sequence, *, gallery_images=None,
                 gallery_labels: Sequence | None = None, k: int = 10, prefix: str = "val_",
                 every_n_epochs: int = 1) -> None:
        super().__init__()  # keras.callbacks.Callback in the built class
        if (gallery_images is None) != (gallery_labels is None):
            raise InputError("Pass both gallery_images and gallery_labels, or neither.")
        self.embedding_model = embedding_model
        self.images, self.labels = images, np.asarray(labels, dtype=object)
        self.gallery_images = gallery_images
        self.gallery_labels = None if gallery_labels is None else np.asarray(gallery_labels, dtype=object)
        self.k, self.prefix, self.every_n_epochs = int(k), prefix, int(every_n_epochs)

    def compute(self) -> dict[str, float]:
        """Embed, search and score now; returns the metrics without the prefix."""
        from imet_kit.retrieval.search import search
        from imet_kit.training.hosts import predict_all  # every host's rows, no repeats

        q = predict_all(self.embedding_model, self.images, verbose=0)
        loo = self.gallery_images is None
        g = q if loo else predict_all(self.embedding_model, self.gallery_images, verbose=0)
        g_labels = self.labels if loo else self.gallery_labels
        nb = search(q, g, k=self.k, exclude_self=loo, progress=False)
        return {f"map@{self.k}": map_at_k(nb.indices, self.labels, g_labels, self.k, exclude_self=loo),
                "recall@1": recall_at_k(nb.indices, self.labels, g_labels, 1, exclude_self=loo),
                f"recall@{self.k}": recall_at_k(nb.indices, self.labels, g_labels, self.k,
                                                exclude_self=loo)}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        metrics = self.compute()
        log.info("epoch %d retrieval: %s", epoch + 1, metrics)
        if logs is not None:
            logs.update({self.prefix + name: value for name, value in metrics.items()})
