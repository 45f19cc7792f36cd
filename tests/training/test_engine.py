"""`imet-kit train` end to end on tiny data: run folder, folds, resume after kill -9, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.data.demo import make_demo_dataset
from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003"]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1",
                 *TINY]) == 0
    return out


def test_run_folder_holds_everything(trained, data):
    run = RunDir(trained)
    cfg = run.load_config()
    assert cfg.folds == 2 and cfg.backbone == "tiny_cnn" and cfg.weights is None
    folds = pd.read_csv(trained / "folds.csv", dtype={"id": str})
    train_ids = pd.read_csv(data / "train.csv", dtype=str)["id"].tolist()
    assert folds["id"].tolist() == train_ids and set(folds["fold"]) == {0, 1}
    for k in (0, 1):
        assert (trained / f"fold{k}" / "best.keras").is_file()
        assert not list((trained / f"fold{k}").glob("last*.keras"))
        hist = run.read_history(k)
        assert [h["epoch"] for h in hist] == [0] and "val_f2" in hist[0] and "loss" in hist[0]
        oof = np.load(trained / f"fold{k}" / "oof.npy")
        assert oof.shape == ((folds["fold"] == k).sum(), 49)
    oof = np.load(trained / "oof.npy")
    assert oof.shape == (40, 49) and np.isfinite(oof).all() and (oof >= 0).all() and (oof <= 1).all()
    th = json.loads((trained / "thresholds.json").read_text())
    assert {"global", "group", "class"} <= set(th)
    assert set(th["group"]["thresholds"]) == {"culture", "tag"}
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["oof_images"] == 40 and set(summary["folds"]) == {"0", "1"}
    for png in ("history.png", "oof_threshold.png"):
        assert (trained / "plots" / png).stat().st_size > 5000
    assert not list(trained.rglob(".*tmp*"))  # no temporary file left behind


def test_oof_thresholds_match_a_sweep_of_the_saved_oof(trained, data):
    """The global threshold is the best of the sweep on the saved OOF probabilities (sklearn F2)."""
    from sklearn.metrics import fbeta_score

    from imet_kit.data.folder import load_dataset
    from imet_kit.multilabel.thresholds import binarize

    y = np.asarray(load_dataset(data).train.y)
    oof = np.load(trained / "oof.npy")
    th = json.loads((trained / "thresholds.json").read_text())
    t = th["global"]["threshold"]
    pred = binarize(oof, t, 1, 10)
    assert th["global"]["f2"] == pytest.approx(fbeta_score(y, pred, beta=2, average="samples",
                                                           zero_division=0))
    for other in np.arange(0.05, 0.51, 0.05):
        assert fbeta_score(y, binarize(oof, other, 1, 10), beta=2, average="samples",
                           zero_division=0) <= th["global"]["f2"] + 1e-9


def test_existing_run_is_refused_without_resume(trained, data, capsys):
    assert main(["train", "--data", str(data), "--out", str(trained), "--folds", "2", "--epochs", "1",
                 *TINY]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and err.count("\n") == 1


def test_resume_of_a_finished_run_retrains_nothing(trained, data, capsys):
    before = {k: (trained / f"fold{k}" / "best.keras").stat().st_mtime_ns for k in (0, 1)}
    assert main(["train", "--out", str(trained), "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("already trained") == 2
    assert before == {k: (trained / f"fold{k}" / "best.keras").stat().st_mtime_ns for k in (0, 1)}


def test_resume_with_a_changed_setting_is_refused(trained, capsys):
    assert main(["train", "--out", str(trained), "--resume", "--epochs", "5"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_run_from_another_dataset_is_refused(trained, tmp_path, capsys):
    other = tmp_path / "other"
    make_demo_dataset(other, n_train=30, n_test=5, seed=9)
    assert main(["train", "--data", str(other), "--out", str(trained), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another dataset" in err and err.count("\n") == 1


@pytest.mark.parametrize("flags, message", [
    (["--folds", "1"], "folds"),
    (["--epochs", "0"], "epochs"),
    (["--backbone", "effnet_b0"], "backbone: unknown 'effnet_b0', expected one of"),
    (["--fold", "7"], "fold: 7 is out of range, folds are 0..1"),
    (["--loss", "hinge"], "loss: unknown 'hinge', expected one of asl, bce, focal"),
    (["--augment", "wild"], "augment: unknown 'wild', expected one of notebook"),
])
def test_bad_flags_are_one_line_exit_2(data, tmp_path, capsys, flags, message):
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--folds", "2", "--epochs", "1",
            *TINY, *flags]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own choices
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # checked before anything is written


def test_missing_data_is_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_config_file_and_flag_precedence(tmp_path):
    from imet_kit.cli.train import resolve_config

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 3, "lr": 0.01, "backbone": "tiny_cnn"}))
    parser_args = ["train", "--config", str(cfg_file), "--lr", "0.002", "--data", "d"]
    from imet_kit.cli.main import build_parser

    cfg = resolve_config(build_parser().parse_args(parser_args))
    assert (cfg.epochs, cfg.lr, cfg.backbone, cfg.batch_size) == (3, 0.002, "tiny_cnn", 32)
    cfg_file.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(InputError, match="unknown field"):
        resolve_config(build_parser().parse_args(parser_args))


def test_notebook_defaults():
    cfg = TrainConfig()
    assert (cfg.backbone, cfg.image_size, cfg.batch_size, cfg.lr, cfg.loss, cfg.epochs, cfg.weights) == \
        ("efficientnet_b3", 288, 32, 3e-4, "bce", 8, "imagenet")


def _wait_for(pred, proc, timeout=240):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_kill_9_mid_fold_then_resume(data, tmp_path):
    """A run killed with SIGKILL inside fold 1 resumes from its last finished epoch; fold 0 is kept."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "imet_kit", "train", "--data", str(data), "--out", str(out),
            "--folds", "2", "--epochs", "4", *TINY]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    run = RunDir(out)
    try:
        reached = _wait_for(lambda: run.fold_state(1).get("epoch", 0) >= 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert reached, "the run ended before fold 1 reached epoch 2"
    folds_before = (out / "folds.csv").read_text()
    fold0_model = (out / "fold0" / "best.keras").stat().st_mtime_ns
    killed_at = run.fold_state(1)["epoch"]
    assert run.fold_done(0) and not run.fold_done(1)
    assert (out / "fold1" / f"last-e{killed_at}.keras").is_file()
    lines = []
    from imet_kit.training.engine import train_cv

    summary = train_cv(run.load_config(), resume=True, report=lines.append)
    assert (out / "folds.csv").read_text() == folds_before
    assert (out / "fold0" / "best.keras").stat().st_mtime_ns == fold0_model
    assert any("fold 0: already trained" in s for s in lines)
    assert any(f"fold 1: resuming from epoch {killed_at + 1}/4" in s for s in lines)
    hist = run.read_history(1)
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]  # every epoch once, none repeated or lost
    assert summary["oof_images"] == 40 and run.fold_done(1)


def test_head_warmup_then_unfreeze_trains_one_fold(data, tmp_path):
    out = tmp_path / "warm"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--fold", "0",
                 "--epochs", "2", "--head-warmup-epochs", "1", *TINY]) == 0
    run = RunDir(out)
    assert [h["epoch"] for h in run.read_history(0)] == [0, 1]
    assert run.fold_done(0) and not run.fold_done(1)
    assert run.trained_folds() == [0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["oof_images"] == int((pd.read_csv(out / "folds.csv")["fold"] == 0).sum())


@pytest.mark.parametrize("flag, bad, good", [
    ("--augment", "nope", "light"), ("--backbone", "effnet_b0", "tiny_cnn"), ("--loss", "l2", "bce"),
    ("--pooling", "median", "avg"), ("--optimizer", "adagrad", "adam"),
    ("--lr-schedule", "step", "cosine"), ("--task", "regression", "multilabel"),
])
def test_a_mistyped_choice_is_refused_then_the_corrected_command_runs_into_the_same_out(
        data, tmp_path, capsys, flag, bad, good):
    out = tmp_path / "r"
    argv = ["train", "--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1", *TINY]
    assert main([*argv, flag, bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"unknown '{bad}', expected one of" in err and good in err
    assert not out.exists()
    assert main([*argv, flag, good]) == 0  # same --out, no --resume


def test_every_problem_is_reported_at_once(data, tmp_path, capsys):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *TINY, "--epochs", "0",
                 "--augment", "nope", "--margin-head", "x", "--task", "embedding"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 problems" in err
    assert "epochs" in err and "augment" in err and "margin_head" in err
