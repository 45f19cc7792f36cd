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


def test_fit_under_mirrored_strategy(records, tmp_path):
    """tf.distribute: two logical CPUs must be configured before TF starts: a subprocess."""
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
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LOSS" in res.stdout and res.stdout.strip().endswith(" 2")
