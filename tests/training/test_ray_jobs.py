"""`imet-kit train --executor ray`: the folds as tasks of a local Ray instance, finished once."""

import json
import sys

import numpy as np
import pytest

from imet_kit.cli.main import main

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003", "--folds", "2", "--epochs", "2"]


def test_without_ray_the_error_names_the_install(monkeypatch):
    from imet_kit.training.ray_jobs import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "imet_kit\[ray\]"'):
        import_ray()


@pytest.mark.slow
def test_two_folds_as_ray_tasks_equal_one_local_process(data, tmp_path, capsys):
    pytest.importorskip("ray")
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["train", "--data", str(data), "--out", str(local), *TINY]) == 0
    assert main(["train", "--data", str(data), "--out", str(remote), *TINY, "--executor", "ray",
                 "--cpus-per-fold", "1"]) == 0
    out = capsys.readouterr().out
    assert "ray: fold 0 done" in out and "ray: fold 1 done" in out
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["complete"] is True and summary["oof_images"] == 40
    np.testing.assert_allclose(np.load(remote / "oof.npy"), np.load(local / "oof.npy"), atol=1e-6)
    a, b = (json.loads((r / "thresholds.json").read_text()) for r in (remote, local))
    assert a["global"]["threshold"] == pytest.approx(b["global"]["threshold"], abs=1e-6)
    # an existing run without --resume is refused before Ray starts, as a local call is
    assert main(["train", "--data", str(data), "--out", str(remote), *TINY,
                 "--executor", "ray"]) == 2
    assert "already holds a run" in capsys.readouterr().err
