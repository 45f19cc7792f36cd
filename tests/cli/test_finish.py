"""`imet-kit finish RUN`: finishes a run whose folds are all trained; refuses, naming the missing
folds, a run with folds still to train."""

import json
import os
import shutil

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.training.lock import RunLock

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "none", "--folds", "3", "--epochs", "1"]
OUTPUTS = ("oof.npy", "oof_ids.csv", "thresholds.json", "summary.json", "plots")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("finish")
    data = root / "data"
    make_demo_dataset(data, n_train=30, n_test=4, seed=2)
    out = root / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return data, out


def _unfinished(run, dest):
    """A copy of the run as its last fold's process leaves it when killed before finishing."""
    shutil.copytree(run, dest)
    for name in OUTPUTS:
        path = dest / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return dest


def test_finish_writes_what_the_last_fold_would_have(trained, tmp_path, capsys):
    _, run = trained
    copy = _unfinished(run, tmp_path / "copy")
    capsys.readouterr()
    assert main(["finish", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "run: finished, all 3 folds" in out and "OOF F2: global thresholds" in out
    np.testing.assert_array_equal(np.load(copy / "oof.npy"), np.load(run / "oof.npy"))
    mine, theirs = (json.loads((r / "thresholds.json").read_text()) for r in (copy, run))
    assert mine == theirs
    summary = json.loads((copy / "summary.json").read_text())
    assert summary["complete"] is True and summary["oof_images"] == 30
    assert (copy / "plots" / "oof_threshold.png").is_file()


def test_finish_refuses_a_run_with_folds_to_train_and_names_them(trained, tmp_path, capsys):
    _, run = trained
    copy = _unfinished(run, tmp_path / "partial")
    for k in (0, 2):
        shutil.rmtree(copy / f"fold{k}")
    before = sorted(os.listdir(copy))
    capsys.readouterr()
    assert main(["finish", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "folds 0, 2 of 0..2 are not trained yet" in err
    assert "--fold 0 --fold 2" in err
    assert sorted(os.listdir(copy)) == before  # nothing written
    with RunLock(copy / "fold2"):  # a fold in training is named with its holder
        assert main(["finish", str(copy)]) == 2
        err = capsys.readouterr().err
        assert f"2 (being trained by PID {os.getpid()}" in err and "--fold 0" in err
        assert "--fold 2" not in err


def test_finish_needs_a_run_folder(tmp_path, capsys):
    assert main(["finish", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run folder" in err


def test_predict_works_on_the_finished_run(trained, tmp_path):
    data, run = trained
    copy = _unfinished(run, tmp_path / "copy")
    assert main(["finish", str(copy)]) == 0
    sub = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(copy), "--data", str(data), "--out", str(sub),
                 "--no-gallery", "--tta", "1"]) == 0
    assert len(sub.read_text().splitlines()) == 5
