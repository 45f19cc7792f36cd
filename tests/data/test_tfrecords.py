"""imet_kit.data.tfrecords (the writer): a round trip write -> read back of every record's id, size,
labels (ids or multi-hot) and image (PNG bit-exact, JPEG close), shard naming and counts, the
metadata, unlabelled data, shrinking, and refusals. The tf.data reader is in test_tfdata.py."""

import json
import os

import cv2
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from imet_kit.data.images import read_image
from imet_kit.data.tfrecords import META_FILE, encode_image, write_tfrecords
from imet_kit.errors import InputError

N, C = 7, 5
SHAPES = [(33, 31), (31, 33), (20, 45)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        p = d / f"im{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (*SHAPES[i % 3], 3), dtype=np.uint8))
        paths.append(str(p))
    y = (rng.random((N, C)) < 0.4).astype(np.uint8)
    y[np.arange(N), np.arange(N) % C] = 1
    return paths, y


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def _records(out, meta):
    """Every record of the shards, in order, as {feature: python values}."""
    rows = []
    for shard in meta["shards"]:
        for raw in tf.data.TFRecordDataset(str(out / shard)).as_numpy_iterator():
            ex = tf.train.Example.FromString(raw).features.feature
            row = {k: list(getattr(v, v.WhichOneof("kind")).value) for k, v in ex.items()}
            row["id"] = row["id"][0].decode()
            row["image"] = _decode(row["image"][0])
            rows.append(row)
    return rows


def test_png_round_trip_ids_labels_and_exact_pixels(files, tmp_path):
    paths, y = files
    ids = [f"id-{i:03d}" for i in range(N)]
    meta = write_tfrecords(paths, tmp_path, y=sp.csr_matrix(y), ids=ids, image_format="png",
                           shard_size=3, label_names=list("abcde"), workers=3)
    rows = _records(tmp_path, meta)
    assert [r["id"] for r in rows] == ids  # shard after shard, in the order given
    for r, p, labels in zip(rows, paths, y):
        img = read_image(p)
        assert (r["height"], r["width"]) == ([img.shape[0]], [img.shape[1]])
        np.testing.assert_array_equal(r["image"], img)  # PNG is lossless
        assert r["label_ids"] == np.flatnonzero(labels).tolist() and "labels" not in r
    assert meta["shards"] == [f"data-0000{s}-of-00003.tfrecord" for s in range(3)]
    assert meta["shard_counts"] == [3, 3, 1] and meta["count"] == N
    assert (meta["n_classes"], meta["label_format"], meta["image_format"]) == (C, "ids", "png")
    assert meta["label_names"] == list("abcde") and meta["quality"] is None and meta["skipped"] == {}
    assert json.loads((tmp_path / META_FILE).read_text()) == meta
    assert sorted(os.listdir(tmp_path)) == sorted([*meta["shards"], META_FILE])  # no temporaries


def test_jpeg_multihot_round_trip(files, tmp_path):
    paths, y = files
    meta = write_tfrecords(paths, tmp_path, y=y, image_format="jpeg", quality=95,
                           label_format="multihot", prefix="train")
    rows = _records(tmp_path, meta)
    assert meta["shards"] == ["train-00000-of-00001.tfrecord"] and meta["quality"] == 95
    assert [r["id"] for r in rows] == [f"im{i}" for i in range(N)]  # default: file stems
    for r, p, labels in zip(rows, paths, y):
        assert r["labels"] == labels.astype(np.float32).tolist() and "label_ids" not in r
        # lossy: exactly the image as read, encoded at that quality
        want = encode_image(read_image(p), "jpeg", quality=95)
        np.testing.assert_array_equal(r["image"], _decode(want))


def test_unlabelled_data_has_no_label_features(files, tmp_path):
    paths, _ = files
    meta = write_tfrecords(paths[:2], tmp_path, image_format="png")
    assert (meta["label_format"], meta["n_classes"], meta["label_names"]) == (None, None, None)
    assert all(set(r) == {"id", "image", "height", "width"} for r in _records(tmp_path, meta))


def test_shorter_side_shrinks_only_larger_images(files, tmp_path):
    paths, _ = files
    meta = write_tfrecords(paths[:3], tmp_path, image_format="png", shorter_side=25)
    sizes = [(r["height"][0], r["width"][0]) for r in _records(tmp_path, meta)]
    # 33x31 -> shorter side 25, aspect kept; 20x45 is already under 25: unchanged
    assert sizes[0][1] == 25 and sizes[0][0] == round(33 * 25 / 31)
    assert sizes[1][0] == 25 and sizes[1][1] == round(33 * 25 / 31)
    assert sizes[2] == (20, 45)


@pytest.mark.parametrize("kwargs, match", [
    ({"image_format": "webp"}, "image_format must be one of jpeg, png"),
    ({"label_format": "onehot"}, "label_format one of ids, multihot"),
    ({"shard_size": 0}, "shard_size >= 1"),
    ({"ids": ["a"]}, "7 paths but 1 ids"),
    ({"y": np.zeros((3, C))}, "3 label rows"),
])
def test_bad_arguments_write_nothing(files, tmp_path, kwargs, match):
    paths, _ = files
    with pytest.raises(InputError, match=match):
        write_tfrecords(paths, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_no_images_is_refused(tmp_path):
    with pytest.raises(InputError, match="at least one image"):
        write_tfrecords([], tmp_path)


def test_encode_image():
    img = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    png = encode_image(img, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(_decode(png), img)
    small, large = encode_image(img, "jpeg", quality=10), encode_image(img, "jpeg", quality=100)
    assert small[:2] == large[:2] == b"\xff\xd8" and len(small) < len(large)
    with pytest.raises(InputError, match="Unknown image format 'gif'"):
        encode_image(img, "gif")
