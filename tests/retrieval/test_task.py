"""`imet-kit train --task embedding` on the demo's scene identities: run folder, retrieval, resume."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset, write_identity_csv
from imet_kit.models.loading import load_model
from imet_kit.training.rundir import RunDir

TINY = ["--folds", "2", "--epochs", "3", "--backbone", "tiny_cnn", "--weights", "none",
        "--image-size", "48", "--batch-size", "16", "--augment", "none", "--lr", "0.001"]


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, "small", seed=0)
    return write_identity_csv(root)


@pytest.fixture(scope="module")
def trained(identities, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "emb"
    assert main(["train", "--task", "embedding", "--data", str(identities), "--out", str(out),
                 *TINY]) == 0
    return out


def _val_fold(run_dir, data_dir, k):
    table = pd.read_csv(data_dir / "train.csv", dtype=str)
    folds = RunDir(run_dir).load_folds()["fold"].to_numpy()
    va = np.flatnonzero(folds == k)
    paths = [str(data_dir / "train" / f"{i}.png") for i in table["id"].to_numpy()[va]]
    return paths, table["label"].to_numpy()[va]


def _map10(embeddings, labels):
    from imet_kit.retrieval.metrics import map_at_k
    from imet_kit.retrieval.search import search

    nb = search(embeddings, embeddings, k=10, exclude_self=True, progress=False)
    return map_at_k(nb.indices, labels, labels, 10, exclude_self=True)


def _embed(model, paths):
    from imet_kit.data.dataset import ImageDataset

    return model.predict(ImageDataset(paths, None, size=48, batch_size=16), verbose=0)


def test_identity_csv_keeps_single_scene_images(identities):
    table = pd.read_csv(identities / "train.csv", dtype=str)
    assert list(table.columns) == ["id", "label"] and 100 < len(table) < 160
    assert table["id"].is_unique and table["label"].nunique() >= 10
    assert all((identities / "train" / f"{i}.png").is_file() for i in table["id"])
    assert not any(p.is_symlink() for p in (identities / "train").iterdir())


def test_run_folder_classes_folds_and_history(trained, identities):
    run = RunDir(trained)
    table = pd.read_csv(identities / "train.csv", dtype=str)
    classes = sorted(table["label"].unique())
    assert pd.read_csv(trained / "classes.csv", dtype={"label": str})["label"].tolist() == classes
    assert run.load_space().names == tuple(f"identity::{c}" for c in classes)
    folds = run.load_folds()
    assert folds["id"].tolist() == table["id"].tolist() and set(folds["fold"]) == {0, 1}
    for label, n in table["label"].value_counts().items():  # an identity with 2+ images is in both
        if n >= 2:
            assert set(folds["fold"][table["label"] == label]) == {0, 1}, label
    assert run.load_config().task == "embedding"
    summary = json.loads((trained / "summary.json").read_text())
    for k in (0, 1):
        hist = run.read_history(k)
        assert [h["epoch"] for h in hist] == [0, 1, 2]
        assert all({"val_map@10", "val_recall@1", "top1", "top5", "val_top1"} <= set(h) for h in hist)
        best = max(h["val_map@10"] for h in hist)
        assert summary["folds"][str(k)]["best_map@10"] == pytest.approx(best)
        assert hist[-1]["loss"] < hist[0]["loss"]
        for name in ("best.keras", "embedding.keras", "state.json"):
            assert (trained / f"fold{k}" / name).is_file()
        assert not list((trained / f"fold{k}").glob("last*.keras"))
    assert not list(trained.rglob(".*tmp*"))


def test_embedding_is_unit_norm_best_epoch_and_beats_random(trained, identities):
    import keras

    from imet_kit.retrieval.embed import export_embedding_model
    from imet_kit.retrieval.metrics import map_at_k
    from imet_kit.retrieval.task import _build, load_identities

    run, rng = RunDir(trained), np.random.default_rng(0)
    cfg, data = run.load_config(), load_identities(identities)
    scores = {"trained": [], "untrained": [], "random": []}
    for k in (0, 1):
        paths, labels = _val_fold(trained, identities, k)
        model = load_model(trained / f"fold{k}" / "embedding.keras", compile=False)
        emb = _embed(model, paths)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        scores["trained"].append(_map10(emb, labels))
        # embedding.keras is the best epoch's model: it scores what the history logged for it
        best = max(h["val_map@10"] for h in run.read_history(k))
        assert scores["trained"][-1] == pytest.approx(best, abs=1e-6)
        keras.utils.set_random_seed(cfg.seed * 1000 + k)  # the same initial weights as fold k
        fresh = export_embedding_model(_build(cfg, len(data.classes), 48, np.ones(len(data.classes))))
        scores["untrained"].append(_map10(_embed(fresh, paths), labels))
        n = len(labels)  # a random ranking: each query lists 10 of the other images at random
        scores["random"].append(np.mean([map_at_k(
            np.array([rng.permutation(np.delete(np.arange(n), i))[:10] for i in range(n)]),
            labels, labels, 10, exclude_self=True) for _ in range(50)]))
    mean = {name: float(np.mean(v)) for name, v in scores.items()}
    print("mAP@10 on the validation folds:", {n: round(v, 4) for n, v in mean.items()})
    assert mean["trained"] > mean["random"] + 0.3
    assert mean["trained"] > mean["untrained"]


def test_resume_finished_run_retrains_nothing(trained, identities, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in trained.rglob("*.keras")}
    history = (trained / "fold1" / "history.jsonl").read_text()
    assert main(["train", "--task", "embedding", "--data", str(identities), "--out", str(trained),
                 "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("already trained") == 2 and "Epoch" not in out
    assert {p: p.stat().st_mtime_ns for p in trained.rglob("*.keras")} == stamps
    assert (trained / "fold1" / "history.jsonl").read_text() == history


def test_resume_continues_a_fold_from_its_last_epoch(trained, identities, tmp_path, capsys):
    run_dir = tmp_path / "killed"
    shutil.copytree(trained, run_dir)
    fold = run_dir / "fold1"
    # as if killed after epoch 2 of fold 1: its checkpoint + state, no embedding yet
    shutil.copy(fold / "best.keras", fold / "last-e2.keras")
    (fold / "embedding.keras").unlink()
    hist = RunDir(run_dir).read_history(1)[:2]
    (fold / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    best = max(h["val_map@10"] for h in hist)
    RunDir(run_dir).write_fold_state(1, {"epoch": 2, "best_map@10": best, "last": "last-e2.keras",
                                         "done": False})
    assert main(["train", "--data", str(identities), "--out", str(run_dir), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "fold 0: already trained" in out and "fold 1: resuming from epoch 3/3" in out
    assert [h["epoch"] for h in RunDir(run_dir).read_history(1)] == [0, 1, 2]
    assert (fold / "embedding.keras").is_file() and RunDir(run_dir).fold_done(1)


def test_train_csv_without_label_column_is_a_one_line_error(identities, tmp_path, capsys):
    data = tmp_path / "multilabel"
    (data / "train").mkdir(parents=True)
    (data / "train.csv").write_text("id,attribute_ids\na,1 2\n")
    code = main(["train", "--task", "embedding", "--data", str(data), "--out",
                 str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "label" in err and "Expected columns id, label" in err and "--task multilabel" in err
    assert not (tmp_path / "run").exists()


def test_an_existing_run_is_refused_without_resume(trained, identities, capsys):
    code = main(["train", "--task", "embedding", "--data", str(identities), "--out", str(trained),
                 *TINY])
    assert code == 2 and "--resume" in capsys.readouterr().err


def test_docstring_examples_run():
    import doctest

    import imet_kit.retrieval.task as module

    assert doctest.testmod(module).failed == 0
