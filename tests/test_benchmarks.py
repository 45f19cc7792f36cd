"""benchmarks/ scripts that compare the toolkit with something else still run (smoke runs)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reference_cnn_scores_the_holdout(tmp_path):
    from imet_kit.data.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "d", n_train=30, n_test=8, seed=0, variant="hard")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_reference_cnn.py"),
                          str(tmp_path / "d"), "--epochs", "1", "--size", "32", "--batch-size", "8",
                          "--json", "--submission", str(tmp_path / "ref.csv")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout[out.stdout.index("{"):])
    assert (res["n_train"], res["n_val"], res["n_test"], res["epochs"], res["size"]) == (24, 6, 8, 1, 32)
    assert 0.0 <= res["test_f2"] <= 1.0 and 1.0 <= res["labels_per_image"] <= 10.0
    assert set(res["groups"]) <= {"culture", "tag"}
    from imet_kit.multilabel.evaluate import evaluate

    scored = evaluate(tmp_path / "d" / "holdout" / "test_labels.csv", tmp_path / "d" / "labels.csv",
                      submission=tmp_path / "ref.csv")
    assert scored["f2"] == pytest.approx(res["test_f2"])  # the file written is the one scored


def _load_benchmark(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_f2_scores_each_image_and_finds_a_real_loss(tmp_path, monkeypatch, capsys):
    import pandas as pd
    from sklearn.metrics import fbeta_score

    from imet_kit.data.demo import make_demo_dataset

    data = tmp_path / "d"
    make_demo_dataset(data, n_train=20, n_test=40, seed=0)
    truth = pd.read_csv(data / "holdout" / "test_labels.csv", dtype=str)
    perfect = tmp_path / "a.csv"
    truth.to_csv(perfect, index=False)
    worse = truth.copy()  # every image keeps only its first label: recall drops on the multi-label ones
    worse["attribute_ids"] = worse["attribute_ids"].str.split().str[0]
    (tmp_path / "b.csv").write_text(worse.iloc[::-1].to_csv(index=False))  # order must not matter
    paired = _load_benchmark("paired_f2")
    fb = paired.per_image_f2(str(data), str(tmp_path / "b.csv"))
    n = int(pd.read_csv(data / "labels.csv")["attribute_id"].max()) + 1
    def onehot(col):
        m = np.zeros((len(col), n), int)
        for r, ids in enumerate(col):
            m[r, [int(i) for i in ids.split()]] = 1
        return m
    expected = fbeta_score(onehot(truth["attribute_ids"]), onehot(worse["attribute_ids"]), beta=2,
                           average="samples")
    assert fb.mean() == pytest.approx(expected)
    assert paired.per_image_f2(str(data), str(perfect)).tolist() == [1.0] * len(truth)
    monkeypatch.setattr(sys, "argv", ["paired_f2.py", str(data), str(perfect), str(tmp_path / "b.csv"),
                                      "--resamples", "500"])
    paired.main()
    out = capsys.readouterr().out
    assert f"F2 A 1.0000, B {expected:.4f}" in out and "B < A" in out
    assert f"lower on {int((fb < 1).sum())}" in out and "higher on 0" in out
    # per label: B keeps only each image's first label, so every other label loses exactly the
    # images where it is not first, and B has no false positives
    y = onehot(truth["attribute_ids"])
    first = onehot(worse["attribute_ids"])
    lost = (y & ~first).sum(0)
    space, y_read, pa = paired.load(str(data), str(perfect))
    rows = paired.label_changes(space, y_read, pa, paired.load(str(data), str(tmp_path / "b.csv"))[2], top=3)
    names = pd.read_csv(data / "labels.csv").set_index("attribute_id")["attribute_name"]
    assert [r["tp_a"] - r["tp_b"] for r in rows] == sorted(lost[lost > 0], reverse=True)[:3]
    for r in rows:
        c = int(names.index[names == r["label"]][0])
        assert (r["positives"], r["tp_a"], r["tp_b"], r["fp_a"], r["fp_b"]) == (
            y[:, c].sum(), y[:, c].sum(), first[:, c].sum(), 0, 0)
    monkeypatch.setattr(sys, "argv", ["paired_f2.py", str(data), str(perfect), str(tmp_path / "b.csv"),
                                      "--resamples", "50", "--labels", "2"])
    paired.main()
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["label", "images", "TP", "A", "TP", "B", "FP", "A", "FP", "B"]
    assert table[2].split()[0] == rows[0]["label"] and len(table) == 4
