"""imet_kit.multilabel.oof: gathering out-of-fold probabilities from a run folder, choosing global /
per-group / per-class thresholds on them (the global one against a brute-force sweep scored by
sklearn), applying a run's thresholds, and the run's finish step."""

import json

import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.data.folder import ImetDataset
from imet_kit.data.labels import Annotations, LabelSpace
from imet_kit.errors import InputError
from imet_kit.multilabel.oof import (
    apply_thresholds,
    choose_thresholds,
    finish_run,
    gather_oof,
    group_limits,
    load_thresholds,
)
from imet_kit.multilabel.thresholds import DEFAULT_THRESHOLDS, binarize, binarize_groups
from imet_kit.training.rundir import RunDir

SPACE = LabelSpace.from_names([f"culture::c{i}" for i in range(5)] + [f"tag::t{i}" for i in range(7)])


def _case(seed=0, n=70):
    """Probabilities that carry signal (positives higher), every image with a tag."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, SPACE.n_classes)) < 0.2
    tag = SPACE.group_mask("tag")
    y[np.flatnonzero(~y[:, tag].any(1)), 5 + rng.integers(0, 7)] = True
    probs = np.clip(0.25 * y + 0.35 * rng.random(y.shape), 0, 1).astype(np.float32)
    return probs, y.astype(np.uint8)


def _fake_fold(run, k, oof=None, trained=True):
    d = run.fold_dir(k)
    d.mkdir(parents=True, exist_ok=True)
    if trained:
        (d / "best.keras").write_bytes(b"")  # gather_oof asks only whether the fold was trained
    if oof is not None:
        np.save(d / "oof.npy", oof)


def test_gather_oof_places_each_folds_rows_and_marks_the_missing(tmp_path):
    run = RunDir(tmp_path / "run")
    folds = np.array([0, 1, 2, 0, 1, 2, 0])
    p = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) / 21
    _fake_fold(run, 0, p[folds == 0])
    _fake_fold(run, 1, trained=True)                       # trained, but no oof.npy yet
    _fake_fold(run, 2, p[folds == 2], trained=False)       # oof.npy of an unfinished fold
    oof, filled = gather_oof(run, folds, 3)
    assert filled.tolist() == (folds == 0).tolist()
    np.testing.assert_array_equal(oof[filled], p[folds == 0])
    assert np.isnan(oof[~filled]).all() and oof.dtype == np.float32


def _sk_f2(y, pred):
    from sklearn.metrics import fbeta_score

    return fbeta_score(y, pred, beta=2, average="samples", zero_division=0)


def test_global_threshold_is_the_best_of_a_brute_force_sklearn_sweep():
    probs, y = _case(1)
    th = choose_thresholds(probs, y, SPACE, min_labels=1, max_labels=4, per_class=False)
    scores = [_sk_f2(y, binarize(probs, t, 1, 4)) for t in DEFAULT_THRESHOLDS]
    best = int(np.argmax(scores))  # the first (lowest) of equal scores
    assert th["global"]["threshold"] == pytest.approx(DEFAULT_THRESHOLDS[best])
    assert th["global"]["f2"] == pytest.approx(scores[best], abs=1e-12)
    np.testing.assert_allclose(th["global"]["curve"]["f2"], scores, atol=1e-12)
    assert th["global"]["curve"]["thresholds"] == pytest.approx(DEFAULT_THRESHOLDS.tolist())
    assert "class" not in th and th["mode"] == "global"
    assert (th["min_labels"], th["max_labels"], th["n_images"]) == (1, 4, len(y))


def test_each_modes_f2_is_what_its_thresholds_score_and_search_never_loses():
    probs, y = _case(2)
    th = choose_thresholds(probs, y, SPACE)
    assert set(th["group"]["thresholds"]) == {"culture", "tag"}
    assert len(th["class"]["thresholds"]) == SPACE.n_classes
    for mode in ("global", "group", "class"):
        pred = apply_thresholds(probs, th, SPACE, mode)
        assert th[mode]["f2"] == pytest.approx(_sk_f2(y, pred), abs=1e-12), mode
    assert th["class"]["f2"] >= th["global"]["f2"] - 1e-12
    json.dumps(th)  # written to thresholds.json as is


def test_apply_thresholds_uses_the_runs_mode_and_limits():
    probs, y = _case(3)
    th = choose_thresholds(probs, y, SPACE, min_labels=2, max_labels=3)
    np.testing.assert_array_equal(apply_thresholds(probs, th, SPACE),
                                  binarize(probs, th["global"]["threshold"], 2, 3))
    np.testing.assert_array_equal(apply_thresholds(probs, th, SPACE, "class"),
                                  binarize(probs, np.array(th["class"]["thresholds"]), 2, 3))
    g = th["group"]
    want = binarize_groups(probs, SPACE.group_index,
                           [g["thresholds"]["culture"], g["thresholds"]["tag"]],
                           [g["min_labels"]["culture"], g["min_labels"]["tag"]],
                           [g["max_labels"]["culture"], g["max_labels"]["tag"]])
    np.testing.assert_array_equal(apply_thresholds(probs, {**th, "mode": "group"}, SPACE), want)


def test_apply_thresholds_refuses_a_mode_the_run_lacks():
    probs, y = _case(4)
    th = choose_thresholds(probs, y, SPACE, per_class=False)
    with pytest.raises(InputError, match="'class' is not in this run. Expected one of: global, group"):
        apply_thresholds(probs, th, SPACE, "class")
    with pytest.raises(InputError, match="'best' is not in this run"):
        apply_thresholds(probs, th, SPACE, "best")


def test_group_limits_keep_the_rule_for_the_main_group_only():
    y = np.zeros((4, SPACE.n_classes), np.uint8)
    y[:, 5] = 1                 # every image has a tag
    y[0, [0, 1, 2]] = 1         # one image with 3 cultures
    y[1, [6, 7, 8, 9]] = 1      # one image with 5 tags
    kmin, kmax = group_limits(y, SPACE, min_labels=1, max_labels=4)
    assert kmin == [0, 1]       # culture may be empty; tag keeps "at least 1"
    assert kmax == [3, 4]       # culture: most per image; tag: 5 capped at max_labels


def test_load_thresholds(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(InputError, match="no thresholds.json"):
        load_thresholds(run)
    run.thresholds_path.write_text(json.dumps({"mode": "global"}))
    assert load_thresholds(run) == {"mode": "global"}


def test_finish_run_writes_oof_and_thresholds_for_the_finished_folds(tmp_path):
    probs, y = _case(5, n=40)
    ids = [f"im{i}" for i in range(40)]
    folds = np.arange(40) % 2
    run = RunDir(tmp_path / "run")
    cfg = TrainConfig(folds=2, min_labels=1, max_labels=5)
    ds = ImetDataset(tmp_path, SPACE, Annotations(ids, y), [])
    _fake_fold(run, 0, probs[folds == 0])
    run.write_fold_state(0, {"done": True, "best_f2": 0.5})
    run.append_history(0, {"epoch": 0, "loss": 0.7, "val_f2": 0.5})
    summary = finish_run(run, ds, folds, cfg)
    assert summary["oof_images"] == 20 and summary["train_images"] == 40
    assert set(summary["folds"]) == {"0"}
    th = json.loads(run.thresholds_path.read_text())
    want = choose_thresholds(probs[folds == 0], y[folds == 0], SPACE, min_labels=1, max_labels=5)
    assert th["global"]["threshold"] == want["global"]["threshold"]
    assert summary["oof_f2"]["global"] == pytest.approx(want["global"]["f2"])
    saved = np.load(run.path / "oof.npy")
    assert np.isnan(saved[folds == 1]).all()
    np.testing.assert_array_equal(saved[folds == 0], probs[folds == 0])
    assert [p.name for p in sorted(run.plots_dir.iterdir())] == ["history.png", "oof_threshold.png"]
    assert not list(run.path.rglob(".*tmp*"))


def test_finish_run_without_any_oof_writes_nothing(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    ds = ImetDataset(tmp_path, SPACE, Annotations(["a", "b"], np.eye(2, SPACE.n_classes)), [])
    summary = finish_run(run, ds, np.array([0, 1]), TrainConfig(folds=2))
    assert summary["oof_images"] == 0 and "oof_f2" not in summary
    assert not run.thresholds_path.exists() and not (run.path / "oof.npy").exists()
