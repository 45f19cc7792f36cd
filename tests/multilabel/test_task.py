"""The multi-label task with the recipe switched on (issue 12): it trains end to end, best.keras
holds the (EMA) weights that were validated, and prediction keeps the run's geometry and flips."""

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.data.folder import load_dataset
from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

RECIPE = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
          "--lr", "0.003", "--resize", "pad", "--no-flip", "--augment", "randaugment", "--mixup", "0.2",
          "--cutmix", "1", "--ema", "0.9", "--clipnorm", "1", "--weight-decay", "0.01",
          "--label-smoothing", "0.05", "--grad-accum-steps", "2", "--lr-schedule", "onecycle",
          "--pooling", "avgmax"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    make_demo_dataset(data, n_train=40, n_test=10, seed=1)
    out = tmp_path_factory.mktemp("runs") / "recipe"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--fold", "0",
                 "--epochs", "3", *RECIPE]) == 0
    return data, out


def test_best_model_holds_the_validated_ema_weights(run):
    from imet_kit.models.loading import load_model
    from imet_kit.multilabel.thresholds import sweep_thresholds

    data, out = run
    rd = RunDir(out)
    cfg = rd.load_config()
    assert (cfg.resize, cfg.flip, cfg.ema, cfg.grad_accum_steps, cfg.pooling) == ("pad", False, 0.9, 2, "avgmax")
    hist = rd.read_history(0)
    assert [h["epoch"] for h in hist] == [0, 1, 2] and all(np.isfinite(h["loss"]) for h in hist)
    folds = rd.load_folds()["fold"].to_numpy()
    y_val = np.asarray(load_dataset(data).train.y)[folds == 0]
    oof = np.load(out / "fold0" / "oof.npy")  # predicted by best.keras after training
    best = max(h["val_f2"] for h in hist)
    assert sweep_thresholds(oof, y_val, min_labels=1, max_labels=10).best_score == pytest.approx(best, abs=1e-9)
    model = load_model(out / "fold0" / "best.keras")
    opt = model.optimizer
    assert opt.use_ema and opt.gradient_accumulation_steps == 2 and opt.clipnorm == 1.0
    assert model.loss.label_smoothing == 0.05
    assert model.get_layer("pool").__class__.__name__ == "AvgMaxPooling2D"


def test_prediction_keeps_the_runs_geometry_and_never_flips(run, tmp_path):
    from imet_kit.multilabel.predict import predict

    data, out = run
    # a pad run without flips: identity and the six whole-image shifts / zooms, no mirror
    with pytest.raises(InputError, match="between 1 and 7 .flips are off"):
        predict(out, data, tta=8, progress=False)
    pred = predict(out, data, tta=7, out=tmp_path / "sub.csv", progress=False)
    assert pred.probs.shape == (10, 49) and pred.tta == 7 and np.isfinite(pred.probs).all()
