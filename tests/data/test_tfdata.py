"""imet_kit.data.tfdata: TFRecord writing, the in-graph reader, parity with ImageDataset."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data import augment as aug
from imet_kit.data.dataset import ImageDataset
from imet_kit.data.tfdata import make_tf_dataset, read_metadata, write_tfrecords
from imet_kit.errors import ImageReadError, InputError

pytestmark = pytest.mark.filterwarnings("error::UserWarning")

N, C = 9, 4
SHAPES = [(33, 31), (31, 33), (31, 31)]  # size 31: eval needs no resize, only crops


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        h, w = SHAPES[i % 3]
        p = d / f"im{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(str(p))
    y = np.zeros((N, C), np.uint8)
    y[np.arange(N), np.arange(N) % C] = 1
    y[0, 3] = 1
    return paths, y


@pytest.fixture(scope="module")
def records(files, tmp_path_factory):
    paths, y = files
    out = tmp_path_factory.mktemp("rec")
    write_tfrecords(paths, out, y=y, image_format="png", shard_size=4, label_names=list("abcd"))
    return str(out)


def _batches(ds):
    return [tuple(t.numpy() for t in b) if isinstance(b, tuple) else b.numpy() for b in ds]


def test_metadata_and_shards(records):
    meta = read_metadata(records)
    assert meta["count"] == N and meta["shard_counts"] == [4, 4, 1]
    assert meta["n_classes"] == C and meta["label_format"] == "ids"
    assert all(os.path.isfile(os.path.join(records, s)) for s in meta["shards"])
    assert not [f for f in os.listdir(records) if f.startswith(".")]  # no temp files left


def test_eval_batches_equal_pydataset(files, records):
    paths, y = files
    for view in (None, "flip"):
        tfb = _batches(make_tf_dataset(records, size=31, batch_size=4, tta_view=view))
        ds = ImageDataset(paths, y, size=31, batch_size=4, tta_view=view)
        assert len(tfb) == len(ds) == 3
        for (tx, ty), (px, py) in zip(tfb, (ds[i] for i in range(len(ds)))):
            assert tx.dtype == np.float32 and tx.shape == px.shape
            np.testing.assert_array_equal(tx, px)
            np.testing.assert_array_equal(ty, py)


def test_resized_views_match_within_one_grey_level(files, records):
    # OpenCV's uint8 bilinear uses 11-bit fixed point, TF float: the same geometry,
    # values within 1 (about 87 % of pixels identical).
    paths, _ = files
    for view in ("crop_tl", "crop_br_flip", None):
        size = 28 if view is None else 31
        tfx = np.concatenate(_batches(make_tf_dataset(
            records, size=size, batch_size=4, tta_view=view, with_labels=False)))
        px = np.concatenate(list(ImageDataset(paths, size=size, batch_size=4, tta_view=view)))
        assert tfx.shape == px.shape == (N, size, size, 3)
        diff = np.abs(tfx - px)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.8, view


def test_predict_mode_keeps_file_order(files, records):
    paths, _ = files
    xs = np.concatenate(_batches(make_tf_dataset(records, size=31, with_labels=False)))
    want = np.stack([aug.apply_tta(cv2.imread(p)[..., ::-1], "identity", 31) for p in paths])
    np.testing.assert_array_equal(xs, want)
    with pytest.raises(InputError, match="shuffle"):
        make_tf_dataset(records, size=31, with_labels=False, shuffle=True)
    with pytest.raises(InputError, match="randaugment' has no in-graph counterpart"):
        make_tf_dataset(records, size=31, augment="randaugment")  # never silently plain crops


@pytest.mark.parametrize("preset", ["notebook", "strong"])
def test_train_presets_seeded_and_changing_each_epoch(records, preset):
    def run(seed):
        ds = make_tf_dataset(records, size=32, batch_size=4, augment=preset, seed=seed)
        return _batches(ds), _batches(ds)  # two epochs of one dataset

    (e1, e2), (f1, _) = run(5), run(5)
    assert e1[0][0].shape == (4, 32, 32, 3) and e1[0][0].dtype == np.float32
    assert e1[0][1].shape == (4, C) and len(e1) == 3
    for a, b in zip(e1, f1):  # same seed: same batches
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(e1[0][0], e2[0][0])  # next epoch: new order and draws
    assert sorted(np.concatenate([b[1] for b in e1]).sum(0)) == sorted(
        np.concatenate([b[1] for b in e2]).sum(0))


def test_jpeg_multihot_and_preprocess(files, tmp_path):
    paths, y = files
    write_tfrecords(paths, tmp_path, y=y, image_format="jpeg", label_format="multihot")
    ds = make_tf_dataset(tmp_path, size=32, batch_size=5, augment="light",
                         preprocess=lambda x: x / 127.5 - 1.0, drop_remainder=True)
    (x, yb), = _batches(ds)
    assert x.shape == (5, 32, 32, 3) and -1.0 <= x.min() and x.max() <= 1.0
    assert yb.shape == (5, C) and set(np.unique(yb)) <= {0.0, 1.0}


def test_writer_corrupt_files(files, tmp_path, caplog):
    paths, y = files
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ImageReadError, match="bad.png"):
        write_tfrecords([*paths, str(bad)], tmp_path / "a", y=np.vstack([y, y[:1]]))
    with caplog.at_level(logging.WARNING, logger="imet_kit.data.tfdata"):
        meta = write_tfrecords([*paths, str(bad)], tmp_path / "b", y=np.vstack([y, y[:1]]),
                               skip_corrupt=True)
    assert meta["count"] == N and list(meta["skipped"]) == [str(bad)]
    assert "Skipped 1 of 10" in caplog.text


def test_cli_tfrecords(files, tmp_path, capsys):
    paths, y = files
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    for i, p in enumerate(paths):
        os.link(p, data / "train" / f"id{i}.png")
    (data / "labels.csv").write_text(
        "attribute_id,attribute_name\n" + "".join(f"{c},tag::t{c}\n" for c in range(C)))
    rows = [" ".join(map(str, np.flatnonzero(r))) for r in y]
    (data / "train.csv").write_text("id,attribute_ids\n" + "".join(
        f"id{i},{r}\n" for i, r in enumerate(rows)))
    assert main(["tfrecords", str(data), str(tmp_path / "out"), "--shard-size", "5"]) == 0
    meta = json.loads((tmp_path / "out" / "tfrecords.json").read_text())
    assert meta["count"] == N and meta["label_names"][0] == "tag::t0"
    assert meta["shards"][0].startswith("train-00000-of-00002")
    assert main(["tfrecords", str(data), str(tmp_path / "o2"), "--quality", "0"]) == 2
    assert "--quality" in capsys.readouterr().err


def test_fit_under_mirrored_strategy(files, records, tmp_path):
    """tf.distribute: two logical CPUs must be configured before TF starts: a subprocess.
    Both make_tf_dataset and the train pipeline of --pipeline tfdata (a Keras data adapter)."""
    ids = [os.path.basename(p)[:-4] for p in files[0]]
    y = files[1]
    code = textwrap.dedent(f"""
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from imet_kit.data.tfdata import make_tf_dataset
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                                      keras.layers.Dense({C}, activation="sigmoid")])
            model.compile("adam", "binary_crossentropy")
        ds = make_tf_dataset({records!r}, size=32, batch_size=4, augment="notebook")
        hist = model.fit(ds, epochs=1, verbose=0)
        print("LOSS", hist.history["loss"][0], strategy.num_replicas_in_sync)
        import numpy as np
        from imet_kit.data.tfdata_train import RecordFolder, train_data
        data = train_data(RecordFolder({records!r}, {ids!r}), np.array({y.tolist()!r}), range({N}),
                          size=32, batch_size=4, seed=0)
        data.epoch = 1
        seen = []
        spy = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: seen.append(data.epoch))
        hist = model.fit(data, epochs=3, initial_epoch=1, callbacks=[data.callback(), spy], verbose=0)
        print("EPOCHS", len(hist.history["loss"]), seen)
        print("LOSS", hist.history["loss"][0], strategy.num_replicas_in_sync)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LOSS" in res.stdout and res.stdout.strip().endswith(" 2")
    assert "EPOCHS 2 [1, 1, 1, 2, 2, 2]" in res.stdout  # Keras's epoch, batch by batch


# --------------------------------------------------------------------------- --pipeline tfdata
def _kinds_fixture(tmp_path):
    """Files of every kind read_image normalises, and what scan_files must say of each."""
    from PIL import Image

    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (31, 45, 3), dtype=np.uint8), (5, 5), 0)
    out = {}
    for name, img in {"rgb.png": rgb, "gray.png": rgb[..., 0],
                      "deep.png": rgb.astype(np.uint16) * 257 + 3,
                      "rgba.png": np.dstack([rgb, rng.integers(0, 256, rgb.shape[:2], np.uint8)])}.items():
        cv2.imwrite(str(tmp_path / name), img)
        out[name] = [1, int(name == "rgba.png"), 1]
    Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(tmp_path / "la.png")
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette.png", transparency=3)
    out.update({"la.png": [1, 1, 1], "palette.png": [1, 1, 1]})
    for o in range(1, 9):
        im = Image.fromarray(rgb)
        exif = im.getexif()
        exif[0x0112] = o
        im.save(tmp_path / f"exif{o}.jpg", exif=exif.tobytes(), quality=95)
        out[f"exif{o}.jpg"] = [0, 0, o]
    return {str(tmp_path / k): v for k, v in out.items()}


def test_files_decode_in_graph_exactly_as_read_image(tmp_path):
    import tensorflow as tf

    from imet_kit.data.images import read_image
    from imet_kit.data.tfdata_files import decode_file, scan_files

    files = _kinds_fixture(tmp_path)
    kinds = scan_files(list(files))
    assert kinds.tolist() == list(files.values())
    for (path, _), kind in zip(files.items(), kinds):
        got = decode_file(tf.io.read_file(path), tf.constant(kind)).numpy()
        np.testing.assert_array_equal(got, read_image(path), err_msg=path)  # alpha, EXIF, 16-bit
    cv2.imwrite(str(tmp_path / "x.bmp"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match=r"1 of 2 files are another format .*imet-kit tfrecords"):
        scan_files([str(tmp_path / "rgb.png"), str(tmp_path / "x.bmp")])
    (tmp_path / "cut.png").write_bytes((tmp_path / "rgb.png").read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cut.png.*truncated"):
        scan_files([str(tmp_path / "cut.png")])


def test_both_pipelines_same_labels_shapes_and_eval_pixels(files, records):
    """Eval / TTA: no resize -> identical pixels; resized views within 1 grey level (TF's float
    bilinear vs OpenCV's 11-bit fixed point). Measured on the 30 demo photos, every view at 32,
    128 and 288 px: max 1, 88.5-89.4 % of values identical, mean |diff| 0.11; these noise
    images: > 75 % identical."""
    from imet_kit.data.tfdata_train import ImageFiles, RecordFolder, eval_dataset, train_data

    paths, y = files
    rows = np.array([0, 2, 3, 5, 7, 8])
    for source in (ImageFiles(paths), RecordFolder(records, [os.path.basename(p)[:-4] for p in paths])):
        for size, view in ((31, None), (31, "flip"), (28, None), (31, "crop_tl"), (31, "crop_br_flip"),
                           (31, "crop_c")):
            tfb = _batches(eval_dataset(source, rows, size=size, batch_size=4, tta_view=view, y=y))
            ds = ImageDataset([paths[r] for r in rows], y[rows], size=size, batch_size=4, tta_view=view)
            assert [b[0].shape for b in tfb] == [ds[i][0].shape for i in range(len(ds))]
            np.testing.assert_array_equal(np.concatenate([b[1] for b in tfb]), y[rows])
            diff = np.abs(np.concatenate([b[0] for b in tfb]) - np.concatenate([ds[i][0] for i in range(2)]))
            if size == 31 and view in (None, "flip"):
                assert diff.max() == 0, (type(source).__name__, view)
            else:
                assert diff.max() <= 1 and (diff == 0).mean() > 0.75, (type(source).__name__, view)
        train = train_data(source, y, rows, size=32, batch_size=4, augment="notebook", seed=3)
        pyd = ImageDataset([paths[r] for r in rows], y[rows], size=32, batch_size=4, augment="notebook")
        tfb = _batches(train.get_tf_dataset())
        assert len(train) == len(pyd) == 2 and train.n_rows == 6
        assert [b[0].shape for b in tfb] == [pyd[i][0].shape for i in range(2)] == [(4, 32, 32, 3), (2, 32, 32, 3)]
        assert tfb[0][0].dtype == np.float32 and 0 <= tfb[0][0].min() and tfb[0][0].max() <= 255
        # a shuffled epoch: every row once, with its own labels
        got = np.concatenate([b[1] for b in tfb])
        assert sorted(map(tuple, got)) == sorted(map(tuple, y[rows]))


@pytest.mark.slow
def test_train_data_follows_seed_and_epoch_so_resume_is_exact(files):
    """A fit resumed at epoch 1 (a new pipeline whose epoch the engine sets) ends with the weights
    of an uninterrupted fit; so does a second fit call (head warm-up); without the callback not."""
    import keras

    from imet_kit.data.tfdata_train import ImageFiles, train_data

    paths, y = files
    source = ImageFiles(paths)

    def data(epoch=0, seed=1):
        d = train_data(source, y, np.arange(N), size=32, batch_size=4, augment="strong", seed=seed)
        d.epoch = epoch
        return d

    def model(weights=None):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(C, activation="sigmoid")])
        m.compile(keras.optimizers.SGD(1e-3), "binary_crossentropy")
        if weights is not None:
            m.set_weights(weights)
        return m

    e0, again, e1 = _batches(data().get_tf_dataset()), _batches(data().get_tf_dataset()), _batches(data(1).get_tf_dataset())
    np.testing.assert_array_equal(e0[0][0], again[0][0])
    assert not np.array_equal(e0[0][0], e1[0][0])
    assert not np.array_equal(e0[0][0], _batches(data(0, seed=2).get_tf_dataset())[0][0])

    d = data()
    whole = model()
    whole.fit(d, epochs=3, callbacks=[d.callback()], verbose=0)
    d = data()
    first = model()
    first.fit(d, epochs=1, callbacks=[d.callback()], verbose=0)
    w1 = first.get_weights()
    first.fit(d, epochs=3, initial_epoch=1, callbacks=[d.callback()], verbose=0)  # a second phase
    resumed, d = model(w1), data(epoch=1)  # the engine: setup.train.epoch = initial_epoch
    resumed.fit(d, epochs=3, initial_epoch=1, callbacks=[d.callback()], verbose=0)
    for a, b, c, w in zip(whole.get_weights(), first.get_weights(), resumed.get_weights(), w1):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, w)
    d = data()
    blind = model()
    blind.fit(d, epochs=3, verbose=0)  # Keras calls on_epoch_end once more than it runs epochs
    assert not np.array_equal(blind.get_weights()[0], whole.get_weights()[0])


def test_record_folder_must_be_the_datasets_rows_in_order(files, records, tmp_path):
    import tensorflow as tf

    from imet_kit.data.tfdata_train import RecordFolder, eval_dataset

    paths, y = files
    ids = [os.path.basename(p)[:-4] for p in paths]
    with pytest.raises(InputError, match=r"holds 9 images .* the dataset has 8 train images"):
        RecordFolder(records, ids[:8])
    with pytest.raises(InputError, match="other labels"):
        RecordFolder(records, ids, label_names=list("abcx"))
    with pytest.raises(InputError, match=r"record 4 is image 'im4' but train.csv row 4 is 'im5'"):
        RecordFolder(records, ids[:4] + [ids[5], ids[4]] + ids[6:])
    swapped = ids[:1] + [ids[2], ids[1]] + ids[3:]  # inside a shard: caught as records are read
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in train.csv order"):
        _batches(eval_dataset(RecordFolder(records, swapped), size=31))
    with pytest.raises(InputError, match="ascending"):
        eval_dataset(RecordFolder(records, ids), [3, 1], size=31)
    with pytest.raises(InputError, match="row indices"):
        eval_dataset(RecordFolder(records, ids), [0, 9], size=31)


@pytest.mark.slow
def test_cli_train_and_predict_with_tfdata(tmp_path, capsys):
    """`train --pipeline tfdata` (files; TFRecords) and `predict --pipeline tfdata`, in-process."""
    import pandas as pd

    from imet_kit.data.demo import make_demo_dataset
    from imet_kit.training.rundir import RunDir

    data, run = tmp_path / "data", tmp_path / "run"
    make_demo_dataset(data, n_train=24, n_test=8, seed=4)
    tiny = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8"]
    assert main(["train", "--data", str(data), "--out", str(run), "--folds", "2", "--epochs", "1",
                 "--pipeline", "tfdata", *tiny]) == 0
    assert RunDir(run).load_config().pipeline == "tfdata" and RunDir(run).trained_folds() == [0, 1]
    oof = np.load(run / "oof.npy")
    assert oof.shape == (24, 49) and np.isfinite(oof).all()
    sub = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(run), "--data", str(data), "--tta", "3", "--out", str(sub),
                 "--no-gallery"]) == 0  # the run's pipeline: tfdata
    ids = pd.read_csv(data / "sample_submission.csv", dtype=str)["id"].tolist()
    assert pd.read_csv(sub, dtype=str)["id"].tolist() == ids
    assert main(["predict", "--run", str(run), "--data", str(data), "--tta", "3",
                 "--out", str(tmp_path / "py.csv"), "--no-gallery", "--pipeline", "pydataset"]) == 0
    # TTA views within 1 grey level of pydataset's. Measured on a tiny_cnn demo run: the two
    # pipelines' probabilities differ by <= 1.6e-5, while dropping one of 3 views moves them 7.6e-4
    np.testing.assert_allclose(np.load(tmp_path / "sub_probs.npy"), np.load(tmp_path / "py_probs.npy"),
                               atol=1e-4)
    assert main(["tfrecords", str(data), str(data / "records"), "--shard-size", "10"]) == 0
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "rec"), "--folds", "2",
                 "--fold", "0", "--epochs", "1", "--pipeline", "tfdata", "--tfrecords",
                 str(data / "records"), *tiny]) == 0
    assert RunDir(tmp_path / "rec").trained_folds() == [0]
    capsys.readouterr()
    for flags, message in (
        (["--pipeline", "tf"], "pipeline: unknown 'tf', expected one of pydataset, tfdata"),
        (["--tfrecords", str(data / "records")], "is read only by pipeline 'tfdata'"),
        (["--pipeline", "tfdata", "--tfrecords", str(data)], "has no tfrecords.json"),
        (["--pipeline", "tfdata", "--task", "embedding"], "feeds the multilabel task only"),
    ):
        assert main(["train", "--data", str(data), "--out", str(tmp_path / "x"), *tiny, *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
    assert main(["predict", "--run", str(run), "--data", str(data), "--pipeline", "tf"]) == 2
    assert "Unknown pipeline 'tf'. Expected one of: pydataset, tfdata." in capsys.readouterr().err
