"""imet_kit.multilabel.evaluate: score_labels against sklearn's sample-averaged F2 / precision /
recall, the most-frequent-labels baseline by hand, evaluate() matching rows by id (submission or
probabilities), and the text tables. The first test moved from test_predict.py."""

import doctest

import numpy as np
import pytest

from imet_kit.data.labels import LabelSpace, write_annotations
from imet_kit.errors import InputError
from imet_kit.multilabel import evaluate as ev
from imet_kit.multilabel.evaluate import (
    evaluate,
    format_scores,
    format_table,
    holdout_baseline,
    most_frequent_baseline,
    score_labels,
)
from imet_kit.multilabel.thresholds import binarize


def test_score_labels_matches_sklearn_and_hand_computation():
    from sklearn.metrics import fbeta_score, precision_score, recall_score

    space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y", "tag::z"])
    rng = np.random.default_rng(0)
    t = (rng.random((50, 5)) < 0.4).astype(int)
    t[t.sum(1) == 0, 2] = 1
    p = (rng.random((50, 5)) < 0.4).astype(int)
    s = score_labels(t, p, space)
    kw = {"average": "samples", "zero_division": 0}
    assert s["f2"] == pytest.approx(fbeta_score(t, p, beta=2, **kw))
    assert s["precision"] == pytest.approx(precision_score(t, p, **kw))
    assert s["recall"] == pytest.approx(recall_score(t, p, **kw))
    rows = t[:, 2:].sum(1) > 0
    assert s["groups"]["tag"]["f2"] == pytest.approx(fbeta_score(t[rows, 2:], p[rows, 2:], beta=2, **kw))


def test_score_labels_other_beta_group_counts_and_shape_check():
    from sklearn.metrics import fbeta_score

    space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y"])
    t = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 1]])
    p = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 0]])
    s = score_labels(t, p, space, beta=1.0)
    assert s["f2"] == pytest.approx(fbeta_score(t, p, beta=1, average="samples", zero_division=0))
    # only images that carry a culture attribute are scored for culture: rows 0 and 2
    assert s["images"] == 3 and s["groups"]["culture"]["images"] == 2
    assert s["groups"]["culture"]["recall"] == pytest.approx(1.0)
    assert s["groups"]["culture"]["precision"] == pytest.approx((1 / 2 + 1) / 2)
    with pytest.raises(InputError, match=r"Truth has shape \(3, 4\), prediction \(3, 3\)"):
        score_labels(t, p[:, :3], space)


# 4 train images x 4 labels, counted 4, 3, 1, 0. Sample F2 = 5PR / (4P + R) per image:
#   k=1: each image 1 of 2 true labels, P=1, R=1/2 -> 5/9 each            -> 0.556
#   k=2: three images exact (1), the fourth P=R=1/2 (0.5)                 -> 0.875
#   k=3: every image P=2/3, R=1 -> 10/11                                 -> 0.909  (best)
#   k=4: every image P=1/2, R=1 -> 5/6                                   -> 0.833
Y_TRAIN = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0]])
# With labels {0, 1, 2} predicted: image 0 P=1/3, R=1 -> 5/7; image 1 P=1/3, R=1/2 -> 5/11.
# (On this test set k=4 would score higher, 0.729: k must come from train, not test.)
Y_TEST = np.array([[0, 1, 0, 0], [1, 0, 0, 1]])


def test_most_frequent_baseline_by_hand():
    k, f2 = most_frequent_baseline(Y_TRAIN, Y_TEST)
    assert k == 3
    assert f2 == pytest.approx((5 / 7 + 5 / 11) / 2)


def test_holdout_baseline_reads_the_folder(tmp_path):
    space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y"])
    space.to_frame().to_csv(tmp_path / "labels.csv", index=False)
    write_annotations(tmp_path / "train.csv", ["a", "b", "c", "d"], Y_TRAIN)
    assert holdout_baseline(tmp_path) is None  # no holdout labels: no baseline
    (tmp_path / "holdout").mkdir()
    write_annotations(tmp_path / "holdout" / "test_labels.csv", ["t0", "t1"], Y_TEST)
    out = holdout_baseline(tmp_path)
    assert "3 most frequent" in out["method"]
    assert out["test_f2"] == pytest.approx((5 / 7 + 5 / 11) / 2, abs=1e-4)


@pytest.fixture
def folder(tmp_path):
    """labels.csv, a truth file of 6 images and the probabilities of a model, truth order."""
    space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y", "tag::z"])
    space.to_frame().to_csv(tmp_path / "labels.csv", index=False)
    rng = np.random.default_rng(3)
    y = (rng.random((6, 5)) < 0.4).astype(int)
    y[y.sum(1) == 0, 3] = 1
    ids = [f"im{i}" for i in range(6)]
    write_annotations(tmp_path / "truth.csv", ids, y)
    probs = rng.random((6, 5)).astype(np.float32)
    return tmp_path, space, ids, y, probs


def test_evaluate_matches_submission_rows_by_id(folder):
    root, space, ids, y, probs = folder
    pred = binarize(probs, 0.4)
    order = [4, 1, 5, 0, 3, 2]  # the submission's own order
    write_annotations(root / "sub.csv", [ids[i] for i in order], pred[order])
    got = evaluate(root / "truth.csv", root / "labels.csv", submission=root / "sub.csv")
    assert got == score_labels(y, pred, space)


def test_evaluate_refuses_a_submission_without_every_truth_id(folder):
    root, _, ids, _, probs = folder
    write_annotations(root / "sub.csv", ids[:4], binarize(probs[:4], 0.4))
    with pytest.raises(InputError, match=r"lacks 2 of the 6 ids .*first: im4, im5"):
        evaluate(root / "truth.csv", root / "labels.csv", submission=root / "sub.csv")


def test_evaluate_probs_beside_a_submission_follow_its_rows(folder):
    root, space, ids, y, probs = folder
    order = [5, 3, 1, 0, 2, 4]
    write_annotations(root / "pred.csv", [ids[i] for i in order], binarize(probs[order], 0.3))
    np.save(root / "pred_probs.npy", probs[order])
    got = evaluate(root / "truth.csv", root / "labels.csv", probs=root / "pred_probs.npy",
                   threshold=0.3)
    assert got["f2"] == pytest.approx(score_labels(y, binarize(probs, 0.3), space)["f2"])
    # any other .npy is in the truth file's order
    np.save(root / "plain.npy", probs)
    plain = evaluate(root / "truth.csv", root / "labels.csv", probs=root / "plain.npy",
                     threshold=0.3, min_labels=2, max_labels=3)
    assert plain == score_labels(y, binarize(probs, 0.3, 2, 3), space)


def test_evaluate_refuses_bad_probabilities_and_ambiguous_sources(folder):
    root, _, _, _, probs = folder
    np.save(root / "short.npy", probs[:5])
    with pytest.raises(InputError, match=r"shape \(5, 5\); expected \(6, 5\)"):
        evaluate(root / "truth.csv", root / "labels.csv", probs=root / "short.npy")
    with pytest.raises(InputError, match="exactly one of"):
        evaluate(root / "truth.csv", root / "labels.csv")
    with pytest.raises(InputError, match="exactly one of"):
        evaluate(root / "truth.csv", root / "labels.csv", submission="s.csv", probs="p.npy")


def test_format_scores_and_table():
    space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x"])
    t = np.array([[1, 0, 1], [0, 1, 1]])
    s = score_labels(t, np.array([[1, 0, 1], [1, 0, 1]]), space)
    text = format_scores(s, "scored")
    lines = text.splitlines()
    assert lines[0] == "scored" and lines[2].split()[:3] == ["all", "2", f"{s['f2']:.4f}"]
    assert [ln.split()[0] for ln in lines[3:]] == ["culture", "tag"]
    rows = {"baseline: 1 most frequent labels": {"f2": 0.5}, "sub.csv": s}
    table = format_table(rows, baseline=True).splitlines()
    assert "vs base" in table[0] and "culture F2" in table[0] and "tag F2" in table[0]
    # the baseline row: no precision, recall or group scores, and no gain over itself
    assert table[1].startswith("baseline:") and table[1].split()[-5:] == ["0.5000", "-", "-", "-", "-"]
    assert table[2].startswith("sub.csv") and table[2].split()[-1] == f"{s['f2'] - 0.5:+.4f}"
    assert "vs base" not in format_table({"sub.csv": s})


def test_docstring_examples_run():
    result = doctest.testmod(ev)
    assert result.attempted > 0 and result.failed == 0
