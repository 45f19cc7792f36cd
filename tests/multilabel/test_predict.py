"""`imet-kit predict` / `evaluate`: TTA x folds, submission order and format, refusals (score_labels
itself: test_evaluate.py)."""

import numpy as np
import pandas as pd
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.data.labels import read_annotations, read_labels
from imet_kit.multilabel.evaluate import evaluate, score_labels
from imet_kit.multilabel.predict import predict

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("p")
    data = root / "data"
    make_demo_dataset(data, n_train=30, n_test=12, seed=2)
    # the sample submission's order is the contract, not the file system's: shuffle it
    sub = pd.read_csv(data / "sample_submission.csv", dtype=str, keep_default_na=False)
    sub.sample(frac=1, random_state=0).to_csv(data / "sample_submission.csv", index=False)
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--folds", "2", "--epochs", "1",
                 *TINY]) == 0
    return data, run, root


def test_cli_predict_tta2_writes_submission_in_sample_order(setup, capsys):
    data, run, root = setup
    out = root / "submission.csv"
    assert main(["predict", "--run", str(run), "--data", str(data), "--tta", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "folds [0, 1], TTA 2" in printed and "scored against" in printed
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["id", "attribute_ids"]
    assert sub["id"].tolist() == sample["id"].tolist()
    space = read_labels(data / "labels.csv")
    y = np.asarray(read_annotations(out, space).y)  # validates ids in range, no empty rows
    assert (y.sum(1) >= 1).all() and (y.sum(1) <= 10).all()
    probs = np.load(root / "submission_probs.npy")
    assert probs.shape == (12, space.n_classes)


def test_tta_and_fold_averaging_is_the_mean_of_single_predictions(setup):
    data, run, _ = setup
    both = predict(run, data, tta=2, progress=False)
    singles = [predict(run, data, tta=2, folds=[k], progress=False).probs for k in (0, 1)]
    np.testing.assert_allclose(both.probs, (singles[0] + singles[1]) / 2, rtol=1e-5, atol=1e-6)
    again = predict(run, data, tta=2, progress=False)
    np.testing.assert_array_equal(again.probs, both.probs)  # deterministic views: exact repeat
    one = predict(run, data, tta=1, progress=False)
    assert not np.allclose(one.probs, both.probs)  # the second view really adds something


def test_explicit_threshold(setup):
    data, run, _ = setup
    low = predict(run, data, threshold=0.01, progress=False).labels.sum()
    high = predict(run, data, threshold=0.9, progress=False).labels.sum()
    assert low > high >= 12  # at least one label per image even at 0.9


def test_predict_refuses_other_labels(setup, tmp_path, capsys):
    data, run, _ = setup
    other = tmp_path / "other"
    make_demo_dataset(other, n_train=5, n_test=3, seed=3)
    (other / "labels.csv").write_text("attribute_id,attribute_name\n0,culture::x\n1,tag::y\n")
    (other / "sample_submission.csv").write_text("id,attribute_ids\n")
    assert main(["predict", "--run", str(run), "--data", str(other), "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "differs from the run's" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--tta", "99"], "TTA count must be between 1 and 12; received 99"),
    (["--threshold", "1.5"], "--threshold must be in (0, 1)"),
    (["--fold", "5"], "Fold 5 has no model"),
])
def test_bad_predict_flags(setup, tmp_path, capsys, argv, message):
    data, run, _ = setup
    code = main(["predict", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "s.csv"), *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_fold_subsets_by_list_and_by_repeated_flag(setup, tmp_path, capsys):
    data, run, _ = setup
    out = tmp_path / "s.csv"
    base = ["predict", "--run", str(run), "--data", str(data), "--out", str(out), "--no-gallery"]
    assert main([*base, "--folds", "1"]) == 0
    assert "folds [1]" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "s_probs.npy"),
                                  predict(run, data, folds=[1], progress=False).probs)
    assert main([*base, "--folds", "1,0"]) == 0 and "folds [0, 1]" in capsys.readouterr().out
    assert main([*base, "--fold", "0", "--folds", "1"]) == 0
    assert "folds [0, 1]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*base, "--folds", "one"])
    assert "expected fold numbers like 0,2" in capsys.readouterr().err


def test_predict_applies_the_stacker_and_its_thresholds(setup, tmp_path, capsys):
    import json
    import shutil

    from imet_kit.multilabel.oof import apply_thresholds
    from imet_kit.multilabel.stack import load_stack, stack_run

    data, run, _ = setup
    try:
        stack_run(run)
        model, th = load_stack(run)
        plain = predict(run, data, stack=False, progress=False)
        stacked = predict(run, data, progress=False)
        assert stacked.stacked and not plain.stacked
        np.testing.assert_allclose(stacked.probs, model.predict(plain.probs), rtol=1e-5, atol=1e-7)
        space = read_labels(data / "labels.csv")
        np.testing.assert_array_equal(stacked.labels, apply_thresholds(stacked.probs, th, space))
        assert json.loads((run / "stack" / "thresholds.json").read_text()) == th
        out = tmp_path / "s.csv"
        assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out),
                     "--no-gallery"]) == 0
        assert ", stacked)" in capsys.readouterr().out
        assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out),
                     "--no-gallery", "--no-stack"]) == 0
        assert "stacked" not in capsys.readouterr().out
    finally:
        shutil.rmtree(run / "stack", ignore_errors=True)  # the other tests predict without it


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["predict", "--run", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_evaluate_cli_submission_and_probs(setup, capsys):
    data, run, root = setup
    out = root / "submission.csv"
    if not out.exists():
        predict(run, data, out=out, progress=False)
    assert main(["evaluate", "--data", str(data), "--submission", str(out)]) == 0
    assert "culture" in capsys.readouterr().out
    bad = root / "bad.csv"
    bad.write_text("id,attribute_ids\nnope,1\n")
    assert main(["evaluate", "--data", str(data), "--submission", str(bad)]) == 2
    assert "lacks 12 of the 12 ids" in capsys.readouterr().err
    # probabilities are re-ordered to the truth file by the ids of the submission beside them
    from imet_kit.multilabel.thresholds import binarize

    truth = data / "holdout" / "test_labels.csv"
    space = read_labels(data / "labels.csv")
    true = read_annotations(truth, space)
    sub_ids = pd.read_csv(out, dtype=str, keep_default_na=False)["id"].tolist()
    probs = np.load(root / "submission_probs.npy")
    aligned = probs[[sub_ids.index(i) for i in true.ids]]
    expected = score_labels(true.y, binarize(aligned, 0.3, 1, 10), space)["f2"]
    assert evaluate(truth, data / "labels.csv", probs=root / "submission_probs.npy", threshold=0.3)["f2"] \
        == pytest.approx(expected)


# --- one decode per image (issue 14 item 5) -----------------------------------------------------
def _old_route(run, paths, folds, tta, refit=False, pipeline="pydataset"):
    """predict_probs as it was: one ImageDataset / eval_dataset per (model, view), every image
    decoded again for each."""
    from imet_kit.data.augment import tta_views
    from imet_kit.data.dataset import ImageDataset
    from imet_kit.data.tfdata_train import ImageFiles, eval_dataset
    from imet_kit.models.loading import load_model
    from imet_kit.training.rundir import RunDir

    run = RunDir(run)
    config = run.load_config()
    files = [run.fold_dir(k) / "best.keras" for k in folds] + ([run.path / "full" / "best.keras"]
                                                               if refit else [])
    each = []
    for f in files:
        model = load_model(f, compile=False)
        per_view = []
        for view in tta_views(tta, flip=config.flip, resize=config.resize):
            ds = (eval_dataset(ImageFiles(paths), size=32, batch_size=8, tta_view=view)
                  if pipeline == "tfdata" else
                  ImageDataset(paths, None, size=32, batch_size=8, tta_view=view, resize=config.resize))
            per_view.append(model.predict(ds, verbose=0).astype(np.float64))
        each.append(np.mean(per_view, axis=0))
    folds_mean = np.mean(each[:len(folds)], axis=0)
    return 0.5 * folds_mean + 0.5 * each[-1] if refit else folds_mean


def _test_paths(data):
    from imet_kit.data.folder import find_images

    space = read_labels(data / "labels.csv")
    ids = read_annotations(data / "sample_submission.csv", space, allow_empty=True).ids
    return [str(p) for p in find_images(data / "test", ids, what="test images")]


@pytest.fixture(scope="module")
def run3(setup, tmp_path_factory):
    """The 2-fold run with a third fold and a refit model copied in (predict only reads them)."""
    import shutil

    _, run, _ = setup
    out = tmp_path_factory.mktemp("r3") / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("stack"))
    shutil.copytree(out / "fold0", out / "fold2")
    (out / "full").mkdir(exist_ok=True)
    shutil.copy(out / "fold1" / "best.keras", out / "full" / "best.keras")
    return out


@pytest.mark.parametrize("pipeline", ["pydataset", "tfdata"])
def test_each_test_image_is_decoded_once_at_tta4_x_3_folds_plus_refit(setup, run3, monkeypatch,
                                                                      pipeline):
    import tensorflow as tf

    from imet_kit.data import images, views

    data = setup[0]
    cv_calls, tf_calls = [], []
    real_cv, real_tf = images.decode_image, views._tf_decode
    monkeypatch.setattr(images, "decode_image", lambda buf, name="", **kw: cv_calls.append(name)
                        or real_cv(buf, name, **kw))

    def counted_tf(path, kind):
        tick = tf.py_function(lambda p: tf_calls.append(p.numpy().decode()) or 0, [path], tf.int32)
        with tf.control_dependencies([tick]):
            return tf.identity(real_tf(path, kind))

    monkeypatch.setattr(views, "_tf_decode", counted_tf)
    pred = predict(run3, data, tta=4, pipeline=pipeline, progress=False)
    assert pred.folds == [0, 1, 2] and pred.refit and pred.tta == 4
    paths = _test_paths(data)
    counted = cv_calls if pipeline == "pydataset" else tf_calls
    assert sorted(counted) == sorted(paths)  # 16 models x views, each image read once
    assert not (tf_calls if pipeline == "pydataset" else cv_calls)


@pytest.mark.parametrize("pipeline, folds, tta, refit", [("pydataset", [0, 1, 2], 3, True),
                                                       ("tfdata", [1], 2, False)])
def test_probabilities_equal_the_per_view_route(setup, run3, pipeline, folds, tta, refit):
    from imet_kit.multilabel.predict import predict_probs
    from imet_kit.training.rundir import RunDir

    data = setup[0]
    paths = _test_paths(data)
    old = _old_route(run3, paths, folds, tta=tta, refit=refit, pipeline=pipeline)
    new, used = predict_probs(RunDir(run3), paths, tta=tta, folds=folds, refit=refit,
                              pipeline=pipeline, progress=False)
    assert used == folds and new.shape == old.shape
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)
    if refit:  # the refit model weighs in (the oracle is not blind to it)
        assert np.abs(new - _old_route(run3, paths, folds[:2], tta=tta)).max() > 1e-4


def test_smaller_chunks_give_the_same_probabilities_silently(setup, capsys, monkeypatch):
    from imet_kit.data import views

    data, run, _ = setup
    whole = predict(run, data, tta=2, progress=False)
    shapes = []
    real = views.iter_views

    def spy(*args, **kwargs):
        for x in real(*args, **kwargs):
            shapes.append(x.shape[:2])
            yield x

    monkeypatch.setattr(views, "iter_views", spy)
    capsys.readouterr()
    chunked = predict(run, data, tta=2, chunk_size=5, progress=False)
    assert shapes == [(5, 2), (5, 2), (2, 2)]  # 12 test images, 2 views
    np.testing.assert_allclose(chunked.probs, whole.probs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    assert capsys.readouterr().err == ""  # progress=False: no bar
    with pytest.raises(Exception, match="chunk_size"):
        predict(run, data, chunk_size=0, progress=False)
