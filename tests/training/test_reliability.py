"""The engine under failure: exact resume, a lock per run folder, nothing left by a failed start,
Ctrl-C / SIGTERM that stop cleanly and resume."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.errors import RunLockedError, TrainingInterrupted
from imet_kit.training.checkpoint import RunCheckpoint
from imet_kit.training.engine import train_cv
from imet_kit.training.lock import RunLock
from imet_kit.training.rundir import RunDir

CFG = dict(backbone="tiny_cnn", weights=None, image_size=32, batch_size=8, augment="light",
           lr=0.003, folds=2, epochs=3, seed=3, dropout=0.3)
TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003"]


def _kill_after(monkeypatch, fold: int, epoch: int, exc=TrainingInterrupted):
    orig = RunCheckpoint.on_epoch_end

    def on_epoch_end(self, e, logs=None):
        orig(self, e, logs)
        if self.k == fold and e == epoch:
            raise exc(2) if exc is TrainingInterrupted else exc("boom")

    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", on_epoch_end)


@pytest.mark.slow
def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path, monkeypatch):
    straight = TrainConfig(data=str(data), out=str(tmp_path / "straight"), **CFG)
    train_cv(straight)
    cut = straight.replace(out=str(tmp_path / "cut"))
    _kill_after(monkeypatch, fold=1, epoch=0)
    with pytest.raises(TrainingInterrupted):
        train_cv(cut)
    monkeypatch.undo()
    assert RunDir(cut.out).fold_state(1)["epoch"] == 1
    train_cv(cut, resume=True)
    a, b = np.load(tmp_path / "straight" / "oof.npy"), np.load(tmp_path / "cut" / "oof.npy")
    np.testing.assert_array_equal(a, b)
    ha = RunDir(straight.out).read_history(1)
    hb = RunDir(cut.out).read_history(1)
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb]


def test_a_failure_before_the_first_epoch_leaves_no_run_folder(data, tmp_path, monkeypatch):
    _kill_after(monkeypatch, fold=0, epoch=0, exc=RuntimeError)
    monkeypatch.setattr(RunCheckpoint, "on_epoch_begin",
                        lambda self, e, logs=None: (_ for _ in ()).throw(OSError(28, "No space")))
    out = tmp_path / "new"
    with pytest.raises(OSError):
        train_cv(TrainConfig(data=str(data), out=str(out), **CFG))
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(OSError):
        train_cv(TrainConfig(data=str(data), out=str(existing), **CFG))
    assert sorted(os.listdir(existing)) == ["notes.txt"]


def test_a_failure_after_an_epoch_keeps_the_run_resumable(data, tmp_path, monkeypatch):
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "r"), **{**CFG, "epochs": 2})
    _kill_after(monkeypatch, fold=0, epoch=0, exc=RuntimeError)
    with pytest.raises(RuntimeError):
        train_cv(cfg)
    monkeypatch.undo()
    assert RunDir(cfg.out).fold_state(0)["epoch"] == 1
    (tmp_path / "r" / "fold0" / ".best.tmp999.keras").write_bytes(b"left by a kill")
    summary = train_cv(cfg, resume=True)
    assert summary["oof_images"] == 40
    assert not list((tmp_path / "r").rglob(".*.tmp*"))


def test_a_second_writer_is_refused_and_the_first_keeps_its_lock(data, tmp_path, capsys,
                                                                 monkeypatch):
    """The run-level lock is waited for (it is held briefly: create, finish), then refused."""
    monkeypatch.setattr("imet_kit.training.lock.RUN_LOCK_WAIT_S", 0.5)
    out = tmp_path / "run"
    with RunLock(out):
        code = main(["train", "--data", str(data), "--out", str(out), "--resume", "--folds", "2",
                     "--epochs", "1", *TINY])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert f"PID {os.getpid()}" in err and "in use" in err
        with pytest.raises(RunLockedError):
            RunLock(out).acquire()
    assert sorted(os.listdir(out)) == [".lock"]  # the holder's folder, untouched by the refusal


def _wait_for(pred, proc, timeout=180.0):
    t = time.time()
    while time.time() - t < timeout:
        if pred() or proc.poll() is not None:
            return pred()
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_two_processes_into_one_folder_the_second_exits_2_at_once(data, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "imet_kit", "train", "--data", str(data), "--out", str(out),
            "--resume", "--folds", "2", "--epochs", "2", *TINY]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: (out / "config.json").is_file(), first)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"PID {first.pid}" in second.stderr and second.stderr.count("\n") == 1
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
    assert RunDir(out).fold_done(0) and RunDir(out).fold_done(1)


@pytest.mark.slow
def test_ctrl_c_at_random_moments_exits_130_and_resume_completes(data, tmp_path):
    rng = random.Random(0)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "imet_kit", "train", "--data", str(data), "--out", str(out),
            "--resume", "--folds", "2", "--epochs", "3", *TINY]
    codes = []
    for i in range(10):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(4.0, 9.0))
        sig = signal.SIGTERM if i % 5 == 4 else signal.SIGINT
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"try {i}: did not stop within 60 s of the signal") from None
        err = proc.stderr.read()
        assert "Traceback" not in err and "terminate called" not in err, err
        codes.append(code)
        if code == 0:  # finished before the signal
            break
        assert code == (130 if sig == signal.SIGINT else 143), (i, code, err)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run = RunDir(out)
    assert run.fold_done(0) and run.fold_done(1)
    for k in (0, 1):
        assert [h["epoch"] for h in run.read_history(k)] == [0, 1, 2]
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob("last-e*.keras"))
