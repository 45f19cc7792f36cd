"""GAP, mAP@k and recall@k against small hand-worked examples; the per-epoch callback."""

import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.retrieval.metrics import (
    average_precision_at_k,
    count_relevant,
    gap,
    map_at_k,
    recall_at_k,
)

GALLERY = ["a", "b", "a", "c", "a"]
NEIGHBOURS = np.array([[2, 1, 0], [0, 3, 1], [1, 0, 4]])
QUERIES = ["a", "c", "z"]  # "z" has no relevant gallery image: left out of the mean


def test_average_precision_by_hand():
    rel = np.array([[1, 0, 1, 0, 1]], bool)
    # P(1) = 1, P(3) = 2/3, P(5) = 3/5; 4 relevant in all -> divide by min(4, 5)
    assert average_precision_at_k(rel, [4], k=5)[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    # cut at k = 3: divide by min(4, 3)
    assert average_precision_at_k(rel, [4], k=3)[0] == pytest.approx((1 + 2 / 3) / 3)
    assert np.isnan(average_precision_at_k(rel, [0], k=3)[0])


def test_map_at_k_by_hand():
    # q0 'a': [a, b, a] -> (1 + 2/3) / min(3, 3); q1 'c': [a, c, b] -> (1/2) / 1
    want = ((1 + 2 / 3) / 3 + 0.5) / 2
    assert map_at_k(NEIGHBOURS, QUERIES, GALLERY, k=3) == pytest.approx(want)
    assert map_at_k(NEIGHBOURS[:, :1], QUERIES, GALLERY, k=1) == pytest.approx(0.5)
    assert np.isnan(map_at_k(NEIGHBOURS[2:], QUERIES[2:], GALLERY, k=3))


def test_leave_one_out_counts_exclude_the_query():
    assert count_relevant(["a", "b"], GALLERY).tolist() == [3, 1]
    assert count_relevant(["a", "b"], GALLERY, exclude_self=True).tolist() == [2, 0]
    # gallery = queries, self excluded from the neighbours: each 'a' finds the other two
    idx = np.array([[2, 4], [3, 0], [0, 4], [1, 0], [0, 2]])
    assert map_at_k(idx, GALLERY, GALLERY, k=2, exclude_self=True) == pytest.approx(1.0)


def test_recall_at_k_by_hand():
    assert recall_at_k(NEIGHBOURS, QUERIES, GALLERY, k=1) == pytest.approx(0.5)
    assert recall_at_k(NEIGHBOURS, QUERIES, GALLERY, k=2) == pytest.approx(1.0)
    padded = np.array([[-1, 2, 0]])  # padding never counts as a match
    assert recall_at_k(padded, ["b"], GALLERY, k=3) == 0.0


def test_gap_by_hand():
    true = ["a", "b", None, "d", "e"]
    pred = ["a", "c", "a", None, "e"]
    conf = [0.5, 0.9, 0.8, 0.0, 0.3]
    # ranked: b->c (wrong), None->a (wrong), a (right, P=1/3), e (right, P=2/4); M = 4
    assert gap(pred, conf, true) == pytest.approx((1 / 3 + 2 / 4) / 4)
    assert gap(["x", "y"], [0.2, 0.1], ["x", "y"]) == pytest.approx(1.0)
    # the same right answers with the wrong one ranked last score higher
    assert gap(pred, [0.5, 0.1, 0.05, 0.0, 0.3], true) > gap(pred, conf, true)
    assert np.isnan(gap(["a"], [1.0], [np.nan]))
    with pytest.raises(InputError, match="one of each per query"):
        gap(["a"], [1.0, 2.0], ["a"])


def test_callback_adds_retrieval_metrics_to_logs():
    import keras

    from imet_kit.retrieval.metrics import RetrievalMetricsCallback

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    x = (np.eye(4)[labels] * 5 + rng.normal(scale=0.1, size=(20, 4))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, kernel_initializer="identity")])
    cb = RetrievalMetricsCallback(model, x, labels, k=4)
    assert isinstance(cb, keras.callbacks.Callback)
    logs = {"loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert logs["val_map@4"] == pytest.approx(1.0)
    assert logs["val_recall@1"] == pytest.approx(1.0) and "val_recall@4" in logs
