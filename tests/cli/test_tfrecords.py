"""`imet-kit tfrecords` (imet_kit.cli.tfrecords): the test split is written unlabelled in the
sample submission's order, the format flags reach the writer, and bad numbers are refused before
anything is written. The train split end to end is in tests/data/test_tfdata.py."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

from imet_kit.cli.main import main


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "labels.csv").write_text("attribute_id,attribute_name\n0,culture::a\n1,tag::x\n")
    (root / "train.csv").write_text("id,attribute_ids\nim0,0 1\nim1,1\n")
    (root / "sample_submission.csv").write_text("id,attribute_ids\nq2,\nq0,\nq1,\n")
    rng = np.random.default_rng(0)
    for folder, ids in (("train", ["im0", "im1"]), ("test", ["q0", "q1", "q2"])):
        for i in ids:
            cv2.imwrite(str(root / folder / f"{i}.png"), rng.integers(0, 256, (33, 31, 3), dtype=np.uint8))
    return root


def _ids_and_keys(out, meta):
    rows = []
    for shard in meta["shards"]:
        for raw in tf.data.TFRecordDataset(str(out / shard)).as_numpy_iterator():
            feats = tf.train.Example.FromString(raw).features.feature
            rows.append((feats["id"].bytes_list.value[0].decode(), sorted(feats)))
    return rows


def test_test_split_unlabelled_in_sample_submission_order(data, tmp_path, capsys):
    out = tmp_path / "rec"
    assert main(["tfrecords", str(data), str(out), "--split", "test", "--shard-size", "2"]) == 0
    meta = json.loads((out / "tfrecords.json").read_text())
    assert meta["shards"] == ["test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord"]
    assert meta["label_format"] is None and meta["label_names"] == ["culture::a", "tag::x"]
    rows = _ids_and_keys(out, meta)
    assert [i for i, _ in rows] == ["q2", "q0", "q1"]
    assert all(keys == ["height", "id", "image", "width"] for _, keys in rows)
    assert "labels: none" in capsys.readouterr().out


def test_format_and_label_flags_reach_the_writer(data, tmp_path):
    out = tmp_path / "rec"
    assert main(["tfrecords", str(data), str(out), "--format", "png", "--labels", "multihot",
                 "--workers", "1"]) == 0
    meta = json.loads((out / "tfrecords.json").read_text())
    assert (meta["image_format"], meta["label_format"], meta["n_classes"]) == ("png", "multihot", 2)
    assert [keys for _, keys in _ids_and_keys(out, meta)] == [
        ["height", "id", "image", "labels", "width"]] * 2


@pytest.mark.parametrize("flags, message", [
    (["--quality", "101"], "--quality must be between 1 and 100; received 101"),
    (["--shard-size", "0"], "--shard-size and --workers must be >= 1"),
    (["--workers", "0"], "--shard-size and --workers must be >= 1"),
    (["--shorter-side", "0"], "--shorter-side must be >= 1; received 0"),
])
def test_bad_numbers_are_one_line_exit_2(data, tmp_path, capsys, flags, message):
    assert main(["tfrecords", str(data), str(tmp_path / "rec"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "rec").exists()
