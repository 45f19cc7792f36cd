"""Training in phases (--init-from): fold k starts from the earlier run's fold k, at a new image
size; the refit from the earlier refit; the checks that keep fold k's validation images unseen."""

import json
import shutil

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.config import TrainConfig
from imet_kit.data.demo import make_demo_dataset
from imet_kit.errors import InputError
from imet_kit.models.loading import load_model
from imet_kit.multilabel.phases import load_init_folds
from imet_kit.multilabel.task import MultilabelTask
from imet_kit.training.rundir import RunDir
from imet_kit.training.validate import name_problems

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--batch-size", "8", "--augment", "light"]


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    root = tmp_path_factory.mktemp("phases")
    data = root / "data"
    make_demo_dataset(data, n_train=32, n_test=6, seed=6)
    run = root / "p1"
    assert main(["train", "--data", str(data), "--out", str(run), "--folds", "2", "--epochs", "1",
                 "--image-size", "32", "--lr", "0.003", "--refit", *TINY]) == 0
    return data, run, root


def cfg2(data, run, out, **kw):
    return TrainConfig(data=str(data), out=str(out), backbone="tiny_cnn", weights=None, folds=2,
                       image_size=48, init_from=str(run), **kw)


def test_fold_k_starts_from_the_earlier_fold_k_at_another_size(phase1, tmp_path):
    data, run, _ = phase1
    cfg = cfg2(data, run, tmp_path / "p2")
    task = MultilabelTask()
    d = task.load_data(cfg)
    folds = RunDir(run).load_folds()["fold"].to_numpy()
    np.testing.assert_array_equal(d.extra["init_folds"], folds)
    for k in (0, 1):
        model = task.build_model(cfg, d, np.flatnonzero(folds != k), 48)
        assert model.input_shape == (None, 48, 48, 3)
        src = load_model(run / f"fold{k}" / "best.keras", compile=False)
        for a, b in zip(model.get_weights(), src.get_weights()):
            np.testing.assert_array_equal(a, b)
    full = task.build_model(cfg, d, np.arange(len(folds)), 48)  # the refit: from RUN/full
    src = load_model(run / "full" / "best.keras", compile=False)
    np.testing.assert_array_equal(full.get_weights()[-1], src.get_weights()[-1])


def test_phase_two_trains_and_refits_from_phase_one(phase1, capsys):
    data, run, root = phase1
    out = root / "p2"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1",
                 "--image-size", "48", "--lr", "0.001", "--init-from", str(run), "--refit",
                 *TINY]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_from"] == str(run) and saved["image_size"] == 48
    assert load_model(out / "fold0" / "best.keras", compile=False).input_shape == (None, 48, 48, 3)
    assert (out / "full" / "best.keras").is_file()


def test_checks_keep_the_folds_the_same(phase1, tmp_path):
    data, run, _ = phase1

    def problems(**kw):
        return [p for p in name_problems(cfg2(data, run, tmp_path / "p2", **kw))
                if p.startswith("init_from")]

    assert problems() == []
    assert any("seed" in p and "must equal the earlier run's" in p for p in problems(seed=1))
    fake = tmp_path / "not_a_run"
    fake.mkdir()
    assert "is not a run folder" in name_problems(cfg2(data, fake, tmp_path / "p2"))[0]
    assert "this run's own --out" in name_problems(cfg2(data, run, run))[0]
    partial = tmp_path / "partial"
    shutil.copytree(run, partial, ignore=shutil.ignore_patterns("fold1", "full"))
    msgs = [p for p in name_problems(cfg2(data, partial, tmp_path / "p2", refit=True))
            if p.startswith("init_from")]
    assert any("no fold1/best.keras" in m for m in msgs)
    assert any("full/best.keras', which does not exist" in m for m in msgs)
    # the earlier run's own weights setting is irrelevant: weights are copied, nothing downloads
    assert not name_problems(cfg2(data, run, tmp_path / "p2").replace(weights="imagenet"))


def test_another_dataset_is_refused(phase1, tmp_path):
    data, run, _ = phase1
    other = tmp_path / "other"
    make_demo_dataset(other, n_train=20, n_test=4, seed=9)
    cfg = cfg2(other, run, tmp_path / "p2")
    with pytest.raises(InputError, match="was made on another dataset"):
        load_init_folds(cfg, MultilabelTask().load_data(cfg.replace(init_from=None)))
