"""`imet-kit export`: the command writes a whole folder or nothing, refuses bad input in one line
(exit 2), and the README's serving example runs against what it writes."""

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.multilabel.serving import binarize_exported, run_artefact
from imet_kit.multilabel.thresholds import binarize

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8"]
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_export")
    make_demo_dataset(root / "data", n_train=30, n_test=4, seed=3)
    out = root / "run"
    assert main(["train", "--data", str(root / "data"), "--out", str(out), "--folds", "2",
                 "--epochs", "1", *TINY]) == 0
    return out


def _readme_serving_block():
    section = README.read_text().split("## Export for serving", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def test_export_onnx_then_the_readme_example_serves_it(run, tmp_path, monkeypatch, capsys):
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "export"),
                 "--tta", "2"]) == 0
    printed = capsys.readouterr().out
    assert "model.onnx (onnx: folds [0, 1], TTA 2; input uint8 (N, 32, 32, 3)" in printed
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == \
        ["export.json", "labels.json", "model.onnx", "thresholds.json"]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(_readme_serving_block(), "README.md", "exec"), scope)
    np.testing.assert_allclose(scope["probs"], run_artefact(tmp_path / "export" / "model.onnx", "onnx",
                                                            scope["images"]), atol=1e-6)
    np.testing.assert_array_equal(scope["labels"], binarize_exported(scope["probs"], tmp_path / "export"))
    # the README's numpy rule is the toolkit's, ties and per-class thresholds included
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 6, (50, 12)) / 6
    for rule in ({"mode": "global", "global": {"threshold": 0.4}, "min_labels": 1, "max_labels": 3},
                 {"mode": "class", "class": {"thresholds": list(rng.random(12))}, "min_labels": 2,
                  "max_labels": None}):
        thr = rule["global"]["threshold"] if rule["mode"] == "global" else np.array(rule["class"]["thresholds"])
        np.testing.assert_array_equal(scope["binarize"](probs, rule),
                                      binarize(probs, thr, rule["min_labels"], rule["max_labels"]))


def test_force_replaces_and_a_stacked_run_warns(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "stack").mkdir()
    (copy / "stack" / "model.npz").write_bytes(b"")
    (copy / "stack" / "thresholds.json").write_text("{}")
    out = tmp_path / "exp"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["export", str(copy), "--format", "savedmodel", "--out", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "warning: RUN/stack" in err and "first-level probabilities" in err
    assert not (out / "old.txt").exists() and (out / "saved_model" / "saved_model.pb").is_file()
    assert json.loads((out / "export.json").read_text())["stack"].startswith("RUN/stack")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "run"]  # nothing left aside


@pytest.mark.parametrize("case, message", [
    ("format", "Unknown export format 'pt'. Expected one of: savedmodel, onnx, tflite."),
    ("missing_run", "nope' does not exist; expected the run folder of `imet-kit train`"),
    ("untrained", "has no trained fold (no fold*/best.keras). Train it first."),
    ("out_exists", "exists; pass --force to replace it"),
    ("out_is_run", "is the run folder or holds it; choose a new folder"),
    ("tta", "--tta 3 needs the view 'crop_tl'"),
    ("fold", "Fold 5 has no model"),
    ("no_tf2onnx", "--format onnx needs tf2onnx: pip install 'imet_kit[export]'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run, tmp_path, monkeypatch, capsys,
                                                         case, message):
    target, fmt, extra = run, "onnx", []
    out = tmp_path / "exp"
    if case == "format":
        fmt = "pt"
    elif case == "missing_run":
        target = tmp_path / "nope"
    elif case == "untrained":
        target = tmp_path / "untrained"
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.keras"))
    elif case == "out_exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "out_is_run":
        out, extra = run.parent, ["--force"]  # --force must not remove the run with the old folder
    elif case == "tta":
        extra = ["--tta", "3"]
    elif case == "fold":
        extra = ["--fold", "5"]
    elif case == "no_tf2onnx":
        monkeypatch.setitem(sys.modules, "tf2onnx", None)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(target), "--format", fmt, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if case == "out_exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
