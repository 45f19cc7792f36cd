"""imet_kit.multilabel.stack: a label that is the AND of two others is learned from their OOF
probabilities; cross-validated OOF, thresholds, a pickle-free model file, the CLI."""

import json

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.data.labels import LabelSpace, write_annotations
from imet_kit.errors import InputError
from imet_kit.multilabel.oof import choose_thresholds
from imet_kit.multilabel.stack import StackModel, fit_stack, load_stack, stack_run
from imet_kit.training.rundir import RunDir

SPACE = LabelSpace.from_names(["tag::a", "tag::b", "tag::a_and_b", "tag::d"])


def synthetic(n=600, seed=0):
    """Labels a, b, d independent; c = a AND b. The base model sees a, b, d well and c barely."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < [0.5, 0.5, 0.0, 0.3]).astype(np.uint8)
    y[:, 2] = y[:, 0] & y[:, 1]
    y[y.sum(1) == 0, 3] = 1  # every image carries a label, as in train.csv

    def prob(signal):
        return 1 / (1 + np.exp(-signal))

    oof = np.empty((n, 4), np.float32)
    for j in (0, 1, 3):
        oof[:, j] = prob(2.5 * (2 * y[:, j] - 1) + rng.normal(0, 1.2, n))
    oof[:, 2] = prob(-1.0 + 0.3 * (2 * y[:, 2] - 1) + rng.normal(0, 1.2, n))  # weak for c
    folds = rng.permutation(np.arange(n) % 5)
    return oof, y, folds


@pytest.mark.parametrize("method", ["logreg", "mlp"])
def test_stacker_learns_the_and_label_and_beats_the_base_oof_f2(method):
    oof, y, folds = synthetic()
    model, stacked = fit_stack(oof, y, folds, method=method)
    base = choose_thresholds(oof, y, SPACE)
    ours = choose_thresholds(stacked, y, SPACE)
    assert ours["global"]["f2"] > base["global"]["f2"] + 0.02, (base["global"], ours["global"])
    # the AND label itself: its stacked probability separates it, the base one barely
    c = y[:, 2].astype(bool)
    assert stacked[c, 2].mean() - stacked[~c, 2].mean() > 0.4
    assert oof[c, 2].mean() - oof[~c, 2].mean() < 0.2
    assert stacked.shape == oof.shape and model.method == method


def test_stacker_oof_is_out_of_fold():
    """Row i's stacked value comes from a stacker that never saw row i: changing fold 0's labels
    leaves fold 0's stacked OOF unchanged."""
    oof, y, folds = synthetic(n=300)
    _, a = fit_stack(oof, y, folds)
    y2 = y.copy()
    y2[folds == 0] = 1 - y2[folds == 0]
    _, b = fit_stack(oof, y2, folds)
    np.testing.assert_allclose(a[folds == 0], b[folds == 0], atol=1e-6)
    assert not np.allclose(a[folds == 1], b[folds == 1])


def test_model_file_is_plain_arrays_and_round_trips(tmp_path):
    oof, y, folds = synthetic(n=200)
    for method in ("logreg", "mlp"):
        model, _ = fit_stack(oof, y, folds, method=method, hidden=8)
        path = model.save(tmp_path / f"{method}.npz")
        with np.load(path, allow_pickle=False) as z:  # nothing needs unpickling
            assert all(z[k].dtype != object for k in z.files)
        back = StackModel.load(path)
        np.testing.assert_allclose(back.predict(oof), model.predict(oof), rtol=1e-6)
    with pytest.raises(InputError, match="Expected one of: logreg, mlp"):
        fit_stack(oof, y, folds, method="lightgbm")


@pytest.fixture
def fake_run(tmp_path):
    """A finished run folder without any model: config, labels, folds, oof.npy, thresholds."""
    oof, y, folds = synthetic()
    ids = [f"im{i}" for i in range(len(y))]
    data = tmp_path / "data"
    data.mkdir()
    write_annotations(data / "train.csv", ids, y)
    run = RunDir(tmp_path / "run")
    run.create(TrainConfig(data=str(data), out=str(run.path), backbone="tiny_cnn", weights=None),
               SPACE, ids, folds)
    np.save(run.path / "oof.npy", oof)
    (run.path / "thresholds.json").write_text(json.dumps(choose_thresholds(oof, y, SPACE)))
    return run


def test_stack_run_writes_the_stack_folder_and_the_cli_reports(fake_run, capsys):
    assert load_stack(fake_run) is None
    assert main(["stack", str(fake_run.path)]) == 0
    out = capsys.readouterr().out
    assert "OOF F2 (global thresholds): base" in out and "-> stacked" in out
    d = fake_run.path / "stack"
    assert {p.name for p in d.iterdir()} == {"model.npz", "thresholds.json", "oof.npy",
                                              "summary.json"}
    summary = json.loads((d / "summary.json").read_text())
    assert summary["stack_oof_f2"]["global"] > summary["base_oof_f2"]["global"]
    model, th = load_stack(fake_run)
    assert th["mode"] == "global" and 0 < th["global"]["threshold"] < 1
    np.testing.assert_allclose(np.load(d / "oof.npy"), fit_stack(*synthetic())[1], rtol=1e-5)
    assert not list(fake_run.path.rglob(".*tmp*"))


def test_stack_refuses_a_run_without_oof_or_with_other_data(fake_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_annotations(other / "train.csv", ["x", "y"], np.eye(2, 4, dtype=np.uint8))
    with pytest.raises(InputError, match="does not list the run's training images"):
        stack_run(fake_run.path, other)
    (fake_run.path / "oof.npy").unlink()
    with pytest.raises(InputError, match="has no oof.npy"):
        stack_run(fake_run.path)
