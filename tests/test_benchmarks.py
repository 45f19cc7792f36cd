"""benchmarks/ scripts that compare the toolkit with something else still run (smoke runs)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reference_cnn_scores_the_holdout(tmp_path):
    from imet_kit.data.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "d", n_train=30, n_test=8, seed=0, variant="hard")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_reference_cnn.py"),
                          str(tmp_path / "d"), "--epochs", "1", "--size", "32", "--batch-size", "8",
                          "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout[out.stdout.index("{"):])
    assert (res["n_train"], res["n_val"], res["n_test"], res["epochs"], res["size"]) == (24, 6, 8, 1, 32)
    assert 0.0 <= res["test_f2"] <= 1.0 and 1.0 <= res["labels_per_image"] <= 10.0
    assert set(res["groups"]) <= {"culture", "tag"}
