"""Folds as independent jobs (issue 13 item 5): `train --fold k` in several processes into one run
folder at once, each fold locked on its own, the run finished once by the last fold."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.training.finish import finish_cv
from imet_kit.training.lock import RunLock, lock_holder
from imet_kit.training.rundir import RunDir
from imet_kit.training.task import Task

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003", "--folds", "2", "--epochs", "2"]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The same run, both folds trained by one process one after the other."""
    out = tmp_path_factory.mktemp("runs") / "one"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


def _same_outputs(run, reference):
    np.testing.assert_allclose(np.load(run / "oof.npy"), np.load(reference / "oof.npy"), atol=1e-6)
    a, b = (json.loads((r / "thresholds.json").read_text()) for r in (run, reference))
    assert a["global"]["threshold"] == pytest.approx(b["global"]["threshold"], abs=1e-6)
    assert a["global"]["f2"] == pytest.approx(b["global"]["f2"], abs=1e-6)
    np.testing.assert_allclose(a["class"]["thresholds"], b["class"]["thresholds"], atol=1e-6)


def test_a_fold_joins_without_resume_and_the_last_fold_finishes_the_run(data, reference, tmp_path,
                                                                      capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), *TINY]
    assert main([*argv, "--fold", "0"]) == 0
    text = capsys.readouterr().out
    assert "run: folds 1 of 0..1 remain" in text and f"imet-kit finish {out}" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["missing_folds"] == [1]
    assert (out / "thresholds.json").is_file()  # predict works on a partial run, as before

    assert main([*argv, "--fold", "1", "--epochs", "3"]) == 2  # joining needs the run's config
    err = capsys.readouterr().err
    assert "--fold joins the run" in err and "epochs" in err and err.count("\n") == 1
    assert main([*argv, "--fold", "0"]) == 2  # a trained fold is not trained again by accident
    err = capsys.readouterr().err
    assert "fold 0 is trained" in err and "--resume" in err and err.count("\n") == 1

    assert main([*argv, "--fold", "1"]) == 0  # a new fold joins without --resume
    text = capsys.readouterr().out
    assert "run: finished, all 2 folds" in text and "remain" not in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and "missing_folds" not in summary
    assert summary["oof_images"] == 40
    _same_outputs(out, reference)
    assert main(["train", "--out", str(out), "--resume"]) == 0  # finished: nothing redone
    assert "run: already finished" in capsys.readouterr().out
    assert sorted(os.listdir(out / "fold0")) == [".lock", "best.keras", "history.jsonl", "oof.npy",
                                                 "state.json"]


def test_a_busy_fold_is_refused_at_once_naming_the_holder(data, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out / "fold1", what="fold 1 of the run"):
        t = time.monotonic()
        code = main(["train", "--data", str(data), "--out", str(out), *TINY, "--fold", "1"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and time.monotonic() - t < 10
        assert f"fold 1 of the run '{out / 'fold1'}' is in use by PID {os.getpid()}" in err
        assert lock_holder(out / "fold1").startswith(f"PID {os.getpid()} on ")
    assert sorted(os.listdir(out)) == ["fold1"]  # the refusal wrote nothing


class _CountingTask(Task):
    """A task whose finish is slow and counted: two finishers at once must finish once."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def finish(self, run, config, data, folds, results):
        self.calls += 1
        time.sleep(0.5)
        return {"run": str(run.path), "folds": sorted(results)}


def test_two_folds_ending_at_once_finish_the_run_once(tmp_path):
    run = RunDir(tmp_path / "run")
    config = TrainConfig(out=str(run.path), folds=3, weights=None)
    for k in range(3):
        run.fold_dir(k).mkdir(parents=True)
        (run.fold_dir(k) / "best.keras").write_bytes(b"")
        run.write_fold_state(k, {"done": True, "epoch": 1})
    task, lines = _CountingTask(), []
    threads = [threading.Thread(target=finish_cv, args=(task, config, None, run, None),
                                kwargs={"report": lines.append}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert task.calls == 1
    assert sorted(line.split(",")[0].split(" (")[0] for line in lines) == [
        "run: already finished", "run: finished"]
    summary = json.loads(run.summary_path.read_text())
    assert summary == {"run": str(run.path), "folds": ["0", "1", "2"], "complete": True}
    finish_cv(task, config, None, run, None, force=True)  # `imet-kit finish`: again, on purpose
    assert task.calls == 2


def _train_argv(data, out, k, *extra):
    return [sys.executable, "-m", "imet_kit", "train", "--data", str(data), "--out", str(out),
            *TINY, "--fold", str(k), *extra]


def _wait_for(pred, proc, timeout=240):
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return pred()
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_two_processes_train_two_folds_of_one_run_at_once(data, reference, tmp_path):
    out = tmp_path / "run"
    logs = [open(tmp_path / f"fold{k}.log", "w+") for k in (0, 1)]
    procs = [subprocess.Popen(_train_argv(data, out, k), stdout=logs[k], stderr=subprocess.STDOUT,
                              text=True) for k in (0, 1)]
    try:
        # both train at once: each holds its fold's lock at the same moment
        assert _wait_for(lambda: all(lock_holder(out / f"fold{k}") for k in (0, 1)), procs[0])
        os.kill(procs[0].pid, signal.SIGSTOP)  # fold 0 stays in training while a third one starts
        try:
            same = subprocess.run(_train_argv(data, out, 0), capture_output=True, text=True,
                                  timeout=120)
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        assert same.returncode == 2, same.stderr
        assert f"PID {procs[0].pid}" in same.stderr and same.stderr.count("\n") == 1
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()
    texts = [(log.seek(0), log.read())[1] for log in logs]
    assert codes == [0, 0], texts
    assert sum(t.count("run: finished, all 2 folds") for t in texts) == 1, texts
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["oof_images"] == 40
    _same_outputs(out, reference)
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob("last-e*.keras"))


@pytest.mark.slow
def test_kill_9_of_one_fold_then_resume_of_that_fold(data, reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, "--fold", "0"]) == 0
    proc = subprocess.Popen(_train_argv(data, out, 1, "--epochs", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    run = RunDir(out)
    try:
        reached = _wait_for(lambda: run.fold_state(1).get("epoch", 0) >= 1, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert reached and not run.fold_done(1)
    assert lock_holder(out / "fold1") is None  # the kernel let go of the dead process's lock
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(out), *TINY, "--fold", "1"]) == 2
    assert "fold 1 has 1 epochs saved. Pass --resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--fold", "1"]) == 0
    assert "fold 1: resuming from epoch 2/2" in capsys.readouterr().out
    assert [h["epoch"] for h in run.read_history(1)] == [0, 1]
    _same_outputs(out, reference)
