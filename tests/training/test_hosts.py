"""Many hosts under JAX (issue 13 item 4): the job's processes from flags or the standard
variables, refusals in one line, and two processes on localhost training one fold into one run
folder with the OOF of one process."""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.training.hosts import ENV, Hosts, hosts_from

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_processes_come_from_flags_else_the_keras_variables():
    assert hosts_from(env={}) == Hosts()
    env = {ENV["coordinator"]: "node0:1234,node1:1234", ENV["num_processes"]: "2",
           ENV["process_id"]: "1"}
    assert hosts_from(env=env) == Hosts("node0:1234,node1:1234", 2, 1)
    assert hosts_from(process_id=0, env=env) == Hosts("node0:1234,node1:1234", 2, 0)  # flag wins
    assert not hosts_from(num_processes=1, env={}).many
    assert hosts_from("a:1", 4, 3, env={}).writer is False and Hosts("a:1", 4, 0).writer


@pytest.mark.parametrize("kwargs, env, message", [
    ({"num_processes": 2, "process_id": 0}, {}, r"2 processes need the coordinator's address .* "
                                                r"--coordinator HOST:PORT or set KERAS_DISTRIBUTION_JOB_ADDRESSES"),
    ({"coordinator": "a:1", "num_processes": 2}, {}, r"--process-id 0\.\.1 .*KERAS_DISTRIBUTION_PROCESS_ID"),
    ({"coordinator": "a:1", "num_processes": 2, "process_id": 2}, {}, r"--process-id must be in 0\.\.1 "
                                                                      r"for 2 processes; received 2"),
    ({}, {ENV["num_processes"]: "two"}, r"KERAS_DISTRIBUTION_NUM_PROCESSES must be a whole number"),
    ({"process_id": 1}, {}, r"--process-id is set but the number of processes is not"),
    ({"num_processes": 0}, {}, r"--num-processes must be >= 1; received 0"),
])
def test_an_incomplete_job_description_is_refused_naming_the_fix(kwargs, env, message):
    with pytest.raises(InputError, match=message):
        hosts_from(**kwargs, env=env)


@pytest.mark.tf_only(reason="under TensorFlow several processes are refused")
def test_the_cli_refuses_several_processes_under_tensorflow_before_writing(tmp_path, capsys):
    from imet_kit.cli.main import main

    out = tmp_path / "run"
    rc = main(["train", "--data", str(tmp_path), "--out", str(out), "--backbone", "tiny_cnn",
               "--weights", "none", "--coordinator", "localhost:1", "--num-processes", "2",
               "--process-id", "0"])
    assert rc == 2 and not out.exists()
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "2 processes train one model under KERAS_BACKEND=jax only" in err
    assert "keras-team/keras#20585" in err


def test_the_cli_refuses_ray_with_several_processes_before_writing(tmp_path, capsys):
    from imet_kit.cli.main import main

    out = tmp_path / "run"
    rc = main(["train", "--data", str(tmp_path), "--out", str(out), "--backbone", "tiny_cnn",
               "--weights", "none", "--executor", "ray", "--num-processes", "2", "--coordinator",
               "localhost:1", "--process-id", "1"])
    assert rc == 2 and not out.exists()
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.endswith("--executor ray runs folds as separate jobs; 2 processes train one model "
                        "together: drop one of them.")


def test_a_process_that_cannot_join_says_what_to_check(monkeypatch):
    import keras

    from imet_kit.errors import ImetKitError
    from imet_kit.training.hosts import initialize

    def refuse(*args):
        raise RuntimeError("DEADLINE_EXCEEDED: Barrier timed out\nmore detail")

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(keras.distribution, "initialize", refuse)
    initialize(Hosts())  # one process: nothing to join, initialize is not called
    with pytest.raises(ImetKitError, match=r"^Process 1 of 2 could not join the job at node0:1234 "
                                           r"\(DEADLINE_EXCEEDED: Barrier timed out\)\. Start process "
                                           r"0 with the same --coordinator"):
        initialize(Hosts("node0:1234", 2, 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _jax_env(**extra: str) -> dict:
    """A JAX process with one CPU device (no XLA_FLAGS from the caller)."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.pop("XLA_FLAGS", None)
    return env


def _start_pair(args: list[str], env: dict) -> list[subprocess.Popen]:
    """`imet-kit train ARGS` as processes 0 and 1 of one job on localhost."""
    port = _free_port()
    return [subprocess.Popen([sys.executable, "-m", "imet_kit", "train", *args, "--coordinator",
                              f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             cwd=ROOT) for i in (0, 1)]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra")
def test_two_jax_processes_on_localhost_train_one_fold_into_one_run_folder(tmp_path):
    """The same `imet-kit train` started twice with --process-id 0 and 1 (one CPU device each:
    DataParallel over 2 devices, each process decoding 4 of the 8 rows of a batch): process 0
    alone writes the run folder, validation and OOF gather both processes' rows (17 validation
    images: the last batch padded), and the OOF is one process's on one device. Augmentation is
    off: each process seeds its share of a batch (same distribution, other draws than one process's)."""
    from imet_kit.data.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "data", n_train=33, n_test=2, seed=1)
    common = ["--data", str(tmp_path / "data"), "--backbone", "tiny_cnn", "--weights", "none",
              "--image-size", "32", "--batch-size", "8", "--augment", "none", "--lr", "0.003",
              "--folds", "2", "--fold", "1", "--epochs", "2", "--no-tensorboard"]
    env = _jax_env(TMPDIR=str(tmp_path / "tmp"))  # where process 1 keeps its private copy
    (tmp_path / "tmp").mkdir()
    procs = _start_pair([*common, "--out", str(tmp_path / "two")], env)
    one = subprocess.run([sys.executable, "-m", "imet_kit", "train", *common, "--out",
                          str(tmp_path / "one"), "--distribution", "none"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]
    log0, log1 = outs[0][0], outs[1][0]
    assert "DataParallel over 2 replicas, global batch 8 = 4 per replica" in log0
    assert "validating on 17" in log0 and "OOF F2" in log0
    assert log1.strip().splitlines()[-1] == (f"process 1 of 2: done; process 0 wrote the run "
                                             f"folder {tmp_path / 'two'}")
    assert "val_f2" not in log1 and "fold 1" not in log1  # (JAX's Gloo may print a line)
    assert sorted(os.listdir(tmp_path)) == ["data", "one", "tmp", "two"]
    assert os.listdir(tmp_path / "tmp") == []  # process 1's copy is gone
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["complete"] is False and list(summary["folds"]) == ["1"]
    two = np.load(tmp_path / "two" / "fold1" / "oof.npy")
    assert two.shape == (17, 49)
    # measured 6e-8: the same global batches (BatchNorm's statistics too: XLA computes them over
    # both hosts' rows), summed in another order
    np.testing.assert_allclose(two, np.load(tmp_path / "one" / "fold1" / "oof.npy"), atol=1e-5)
    from imet_kit.cli.main import main  # the run folder predicts like any other (one process)

    assert main(["predict", "--run", str(tmp_path / "two"), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "sub.csv"), "--no-gallery"]) == 0
    assert len((tmp_path / "sub.csv").read_text().strip().splitlines()) == 1 + 2  # 2 test images


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra")
def test_two_jax_processes_killed_mid_fold_resume_from_the_last_epoch(tmp_path):
    """kill -9 both processes after the first epoch's checkpoint; the same two commands with
    --resume continue from epoch 2 (process 1 copies the run folder process 0 resumes from)."""
    import time

    from imet_kit.data.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "data", n_train=150, n_test=2, seed=1)
    run = tmp_path / "run"
    args = ["--data", str(tmp_path / "data"), "--out", str(run), "--backbone", "tiny_cnn",
            "--weights", "none", "--image-size", "48", "--batch-size", "8", "--folds", "2",
            "--fold", "0", "--epochs", "4", "--no-tensorboard"]
    procs = _start_pair(args, _jax_env())
    state = run / "fold0" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if state.is_file() and json.loads(state.read_text()).get("epoch", 0) >= 1:
            break
        time.sleep(0.05)
    for p in procs:
        p.kill()
        p.communicate()
    killed = json.loads(state.read_text())
    assert not killed.get("done") and 1 <= killed["epoch"] < 4, killed
    procs = _start_pair([*args, "--resume"], _jax_env())
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert f"fold 0: resuming from epoch {killed['epoch'] + 1}/4" in outs[0][0]
    history = [json.loads(line) for line in (run / "fold0" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert json.loads(state.read_text())["done"] and (run / "fold0" / "oof.npy").is_file()
