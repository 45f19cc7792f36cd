"""`imet-kit evaluate` (imet_kit.cli.evaluate) on a folder with hand-made truth, no model: one
submission prints its scores, several a comparison table, --baseline adds the most-frequent-labels
row and each row's gain, --json prints what it scored, --probs takes a threshold."""

import json

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.labels import LabelSpace, write_annotations
from imet_kit.multilabel.evaluate import most_frequent_baseline, score_labels
from imet_kit.multilabel.thresholds import binarize

SPACE = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y"])
Y_TRAIN = np.array([[1, 0, 1, 0], [1, 0, 1, 1], [0, 1, 1, 0], [1, 0, 0, 1]])
Y_TRUE = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1]])
IDS = ["t0", "t1", "t2"]


@pytest.fixture
def data(tmp_path):
    SPACE.to_frame().to_csv(tmp_path / "labels.csv", index=False)
    write_annotations(tmp_path / "train.csv", ["a", "b", "c", "d"], Y_TRAIN)
    (tmp_path / "holdout").mkdir()
    write_annotations(tmp_path / "holdout" / "test_labels.csv", IDS, Y_TRUE)  # the default truth
    good, bad = Y_TRUE.copy(), np.ones_like(Y_TRUE)
    good[0, 3] = 1
    write_annotations(tmp_path / "good.csv", IDS, good)
    write_annotations(tmp_path / "bad.csv", IDS, bad)
    return tmp_path, good, bad


def test_json_scores_every_submission_and_the_baseline(data, capsys):
    root, good, bad = data
    argv = ["evaluate", "--data", str(root), "--submission", str(root / "good.csv"),
            "--submission", str(root / "bad.csv"), "--baseline", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    k, f2 = most_frequent_baseline(Y_TRAIN, Y_TRUE)
    assert list(rows) == [f"baseline: {k} most frequent labels", str(root / "good.csv"),
                          str(root / "bad.csv")]
    assert rows[f"baseline: {k} most frequent labels"]["f2"] == pytest.approx(f2)
    assert rows[str(root / "good.csv")] == score_labels(Y_TRUE, good, SPACE)  # JSON floats are exact
    assert rows[str(root / "bad.csv")]["f2"] == pytest.approx(score_labels(Y_TRUE, bad, SPACE)["f2"])


def test_table_with_the_gain_over_the_baseline(data, capsys):
    root, good, _ = data
    assert main(["evaluate", "--data", str(root), "--submission", str(root / "good.csv"),
                 "--baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "vs base" in lines[0] and lines[1].startswith("baseline:")
    _, f2 = most_frequent_baseline(Y_TRAIN, Y_TRUE)
    gain = score_labels(Y_TRUE, good, SPACE)["f2"] - f2
    assert lines[2].startswith(str(root / "good.csv")) and lines[2].split()[-1] == f"{gain:+.4f}"


def test_one_submission_prints_its_scores_per_group(data, capsys):
    root, good, _ = data
    assert main(["evaluate", "--data", str(root), "--submission", str(root / "good.csv")]) == 0
    out = capsys.readouterr().out
    f2 = score_labels(Y_TRUE, good, SPACE)["f2"]
    assert f"all              3 {f2:7.4f}" in out and "culture" in out and "tag" in out


def test_probs_with_a_threshold_and_an_explicit_truth(data, tmp_path, capsys):
    root, _, _ = data
    probs = np.array([[0.9, 0.1, 0.6, 0.3], [0.2, 0.7, 0.1, 0.5], [0.6, 0.2, 0.25, 0.4]])
    np.save(root / "p.npy", probs)
    truth = root / "holdout" / "test_labels.csv"
    assert main(["evaluate", "--data", str(root), "--truth", str(truth), "--probs",
                 str(root / "p.npy"), "--threshold", "0.35", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert list(got.values())[0]["f2"] == pytest.approx(
        score_labels(Y_TRUE, binarize(probs, 0.35), SPACE)["f2"])


def test_submission_and_probs_are_exclusive(data, capsys):
    root, _, _ = data
    try:
        code = main(["evaluate", "--data", str(root), "--submission", "a.csv", "--probs", "p.npy"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and "not allowed with argument" in capsys.readouterr().err
