"""Refit after CV (training/refit.py): RUN/full/best.keras on all images, round(mean best epoch)
epochs, added on --resume, skipped when done, waiting for missing folds; predict averages it in."""

import json

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.data.demo import make_demo_dataset
from imet_kit.multilabel.predict import predict
from imet_kit.training.refit import FullRun, full_model_path, refit_epochs, refit_plan
from imet_kit.training.rundir import RunDir
from imet_kit.training.validate import name_problems

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003"]


def test_refit_epochs_is_the_rounded_mean_best_epoch():
    assert refit_epochs({"0": {"best_epoch": 1}, "1": {"best_epoch": 2}}) == 2  # 1.5 rounds up
    assert refit_epochs({"0": {"best_epoch": 3}, "1": {"best_epoch": 3}, "2": {"best_epoch": 4}}) == 3
    assert refit_epochs({"0": {"best_epoch": 5}, "1": {"best_epoch": -1}}) == 5  # unknown ignored


def test_refit_waits_for_every_fold(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = TrainConfig(out=str(run.path), folds=3, refit=True, epochs=6, head_warmup_epochs=4)
    for k, best in ((0, 1), (1, 2)):
        run.write_fold_state(k, {"done": True, "best_epoch": best})
    lines = []
    assert refit_plan(run, cfg, lines.append) is None and "missing: 2" in lines[-1]
    run.write_fold_state(2, {"done": True, "best_epoch": 2})
    plan = refit_plan(run, cfg, lines.append)
    assert plan.config.epochs == 2 and plan.config.head_warmup_epochs == 1  # < epochs
    assert plan.config.patience is None and plan.fold == 3
    assert plan.run.fold_dir(0) == plan.run.fold_dir(7) == run.path / "full"
    assert "all images for 2 epochs (mean best epoch 1.67)" in lines[-1]


def test_refit_is_for_the_multilabel_task():
    problems = name_problems(TrainConfig(weights=None, task="embedding", refit=True))
    assert any("expected task 'multilabel'" in p for p in problems)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("refit")
    data = root / "data"
    make_demo_dataset(data, n_train=40, n_test=8, seed=5)
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--folds", "2", "--epochs", "2",
                 "--sampling", "logfreq", "--class-weight", "inverse_log", *TINY]) == 0
    return data, run


def test_resume_adds_the_refit_then_skips_it(trained, capsys):
    data, run = trained
    assert not full_model_path(run).exists()
    thresholds = (run / "thresholds.json").read_text()
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(run), "--resume", "--refit"]) == 0
    out = capsys.readouterr().out
    states = [RunDir(run).fold_state(k) for k in (0, 1)]
    epochs = int(np.floor(np.mean([s["best_epoch"] for s in states]) + 0.5))
    assert f"refit: training on all images for {epochs} epochs" in out
    full = FullRun(run)
    state = full.fold_state(0)
    assert state["done"] and state["epochs"] == epochs and state["n_train"] == 40
    assert state["n_val"] == 0
    assert full_model_path(run).is_file() and not list((run / "full").glob("last*.keras"))
    assert [r["epoch"] for r in full.read_history(0)] == list(range(epochs))
    # its TensorBoard events sit beside the folds' (training/tensorboard.py), not in RUN/full
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == ["fold0", "fold1", "full"]
    assert list((run / "tensorboard" / "full" / "train").glob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["refit"]["refit"] is True
    assert (run / "thresholds.json").read_text() == thresholds  # thresholds stay the OOF ones
    assert RunDir(run).trained_folds() == [0, 1]  # RUN/full is not a fold
    assert main(["train", "--data", str(data), "--out", str(run), "--resume", "--refit"]) == 0
    assert "refit: already trained" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["refit"] == state  # kept in the summary


def test_predict_averages_the_refit_with_the_fold_ensemble(trained, tmp_path, capsys):
    data, run = trained
    if not full_model_path(run).exists():
        pytest.skip("needs the refit of test_resume_adds_the_refit_then_skips_it")
    both = predict(run, data, progress=False)
    folds_only = predict(run, data, refit=False, progress=False)
    full_only = predict(run, data, folds=[], progress=False)
    assert both.refit and not folds_only.refit and full_only.folds == []
    np.testing.assert_allclose(both.probs, 0.5 * folds_only.probs + 0.5 * full_only.probs,
                               rtol=1e-5, atol=1e-6)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out),
                 "--no-gallery"]) == 0
    assert "+ refit model" in capsys.readouterr().out
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out),
                 "--no-gallery", "--no-refit"]) == 0
    assert "+ refit model" not in capsys.readouterr().out
