"""imet_kit.training.rundir: a run folder is created with its config, labels and folds, read back,
checked against the data it is resumed with, and keeps a history that survives resumes and kills."""

import json

import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

SPACE = LabelSpace.from_names(["culture::a", "culture::b", "tag::x"])
IDS = ["0001", "b2", "c3", "d4"]  # a leading zero must survive the CSV round trip


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(TrainConfig(data="d", folds=2, backbone="tiny_cnn", weights=None, train_folds=(1,)),
               SPACE, IDS, np.array([0, 1, 1, 0]))
    return run


def test_create_then_read_back(run):
    assert run.exists()
    cfg = run.load_config()
    assert (cfg.folds, cfg.backbone, cfg.weights, cfg.train_folds) == (2, "tiny_cnn", None, (1,))
    assert run.load_space() == SPACE
    folds = run.load_folds()
    assert folds["id"].tolist() == IDS and folds["fold"].tolist() == [0, 1, 1, 0]
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "folds.csv", "labels.csv"]


def test_a_folder_without_config_is_not_a_run(tmp_path):
    run = RunDir(tmp_path)
    assert not run.exists()
    for read in (run.load_config, run.load_space, run.require):
        with pytest.raises(InputError, match="is not a run folder .*--out folder of `imet-kit train`"):
            read()


def test_a_run_with_a_damaged_config_names_the_file(run):
    cfg = json.loads(run.config_path.read_text())
    run.config_path.write_text(json.dumps({**cfg, "epochz": 3}))
    with pytest.raises(InputError, match=r"config\.json: unknown field\(s\) epochz"):
        run.load_config()


def test_check_same_labels(run):
    run.check_same_labels(LabelSpace.from_names(SPACE.names), "data")  # equal: no error
    other = LabelSpace.from_names(["culture::a", "culture::B", "tag::x"])
    with pytest.raises(InputError, match="labels.csv in 'data2' differs .* first difference at id 1"):
        run.check_same_labels(other, "data2")
    longer = LabelSpace.from_names([*SPACE.names, "tag::y"])
    with pytest.raises(InputError, match="4 vs 3 attributes, first difference at id 3"):
        run.check_same_labels(longer, "data3")


def test_check_same_train_ids(run):
    run.check_same_train_ids(IDS, "data")
    for ids in (IDS[::-1], IDS[:3], [*IDS, "e5"]):
        with pytest.raises(InputError, match="made on another dataset"):
            run.check_same_train_ids(ids, "other")


def test_append_history_keeps_only_the_epochs_before_the_new_row(run):
    run.fold_dir(0).mkdir()
    for e in range(3):
        run.append_history(0, {"epoch": e, "loss": 1.0 - e / 10, "val_f2": np.float32(0.1 * e)})
    # resumed after epoch 0 (the state said so): epochs 1 and 2 are trained again
    run.append_history(0, {"epoch": 1, "loss": 0.5})
    rows = run.read_history(0)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[1]["loss"] == 0.5
    assert isinstance(rows[0]["val_f2"], float)  # numpy scalars are written as numbers
    assert [p.name for p in run.fold_dir(0).iterdir()] == ["history.jsonl"]


def test_a_line_cut_by_a_kill_is_dropped(run):
    run.fold_dir(1).mkdir()
    run.append_history(1, {"epoch": 0, "loss": 0.9})
    path = run.fold_dir(1) / "history.jsonl"
    path.write_text(path.read_text() + '{"epoch": 1, "lo')  # killed while appending
    assert [r["epoch"] for r in run.read_history(1)] == [0]
    run.append_history(1, {"epoch": 1, "loss": 0.8})  # the rerun rewrites a clean file
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [0, 1]
    assert run.read_history(7) == []  # a fold that never started


def test_fold_state_done_and_trained_folds(run):
    assert run.fold_state(0) == {} and not run.fold_done(0)
    run.write_fold_state(0, {"epoch": 2, "best_f2": 0.4, "done": True})
    assert run.fold_state(0) == {"epoch": 2, "best_f2": 0.4, "done": True}
    assert not run.fold_done(0)  # done, but its best model is missing
    for k in (0, 2, 10):
        run.fold_dir(k).mkdir(exist_ok=True)
        (run.fold_dir(k) / "best.keras").write_bytes(b"")
    run.fold_dir(1).mkdir()  # started, no model yet
    (run.path / "foldx").mkdir()
    assert run.fold_done(0)
    assert run.trained_folds() == [0, 2, 10]  # numeric order, only folds with a model
