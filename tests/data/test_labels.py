"""The iMet data layer: round trips, scale, and every bad input named in the issue."""

import time

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.folder import load_dataset
from imet_kit.data.images import read_image
from imet_kit.data.labels import (
    LabelSpace,
    format_attribute_ids,
    parse_attribute_ids,
    read_annotations,
    read_labels,
    write_annotations,
    write_labels,
)
from imet_kit.errors import DataFileError, ImageReadError, InputError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def data(tmp_path):
    """A 3-image iMet folder with real PNGs (32x32 and 33x31)."""
    import cv2

    write(tmp_path / "labels.csv",
          "attribute_id,attribute_name\n0,culture::a\n1,culture::b\n2,tag::x\n3,tag::y\n")
    write(tmp_path / "train.csv", "id,attribute_ids\nim1,0 2\nim2,3\nim3,1 2 3\n")
    (tmp_path / "train").mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("im1", (32, 32, 3)), ("im2", (33, 31, 3)), ("im3", (32, 32, 3))):
        cv2.imwrite(str(tmp_path / "train" / f"{name}.png"), rng.integers(0, 255, shape, dtype=np.uint8))
    return tmp_path


def test_label_space_groups_from_prefix(data):
    space = read_labels(data / "labels.csv")
    assert space.names == ("culture::a", "culture::b", "tag::x", "tag::y")
    assert space.group_names == ("culture", "tag")
    assert space.group_index.tolist() == [0, 0, 1, 1]
    assert space.group_mask("tag").tolist() == [False, False, True, True]
    assert space.short_name(3) == "y"
    assert LabelSpace.from_names(["plain"]).groups == ("other",)


def test_labels_sorted_by_id(tmp_path):
    p = write(tmp_path / "labels.csv", "attribute_id,attribute_name\n1,tag::b\n0,culture::a\n")
    assert read_labels(p).names == ("culture::a", "tag::b")


def test_round_trip(data, tmp_path):
    space = read_labels(data / "labels.csv")
    ann = read_annotations(data / "train.csv", space)
    assert ann.ids == ["im1", "im2", "im3"]
    assert ann.y.dtype == np.uint8
    assert ann.y.tolist() == [[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 1]]
    write_annotations(tmp_path / "out" / "train.csv", ann.ids, ann.y)
    write_labels(space, tmp_path / "out" / "labels.csv")
    space2 = read_labels(tmp_path / "out" / "labels.csv")
    ann2 = read_annotations(tmp_path / "out" / "train.csv", space2)
    assert space2 == space and ann2.ids == ann.ids
    np.testing.assert_array_equal(ann2.y, ann.y)
    sparse = read_annotations(data / "train.csv", space, sparse=True)
    np.testing.assert_array_equal(sparse.y.toarray(), ann.y)


def test_duplicate_ids_in_a_row_collapse():
    assert parse_attribute_ids(["2 2 0"], 3).tolist() == [[1, 0, 1]]
    assert format_attribute_ids(np.array([[1, 0, 1], [0, 1, 0]])) == ["0 2", "1"]


def test_imet_scale_is_fast():
    rng = np.random.default_rng(0)
    n, c = 109_237, 1_103
    rows = [" ".join(map(str, rng.choice(c, size=rng.integers(1, 9), replace=False))) for _ in range(n)]
    t = time.perf_counter()
    y = parse_attribute_ids(rows, c)
    out = format_attribute_ids(y)
    elapsed = time.perf_counter() - t
    assert y.shape == (n, c) and y.dtype == np.uint8
    assert [sorted(map(int, r.split())) for r in out[:50]] == [sorted(map(int, r.split())) for r in rows[:50]]
    # generous bound: a regression to per-cell Python loops takes tens of seconds
    assert elapsed < 10, elapsed


@pytest.mark.parametrize(
    "labels, train, message",
    [
        (None, "identifier,attribute_ids\nim1,0\n", "lacks column(s) id"),
        (None, "id,attribute_ids\nim1,0 x\n", "attribute id 'x'"),
        (None, "id,attribute_ids\nim1,0 -1\n", "negative attribute id -1"),
        (None, "id,attribute_ids\nim1,0 7\n", "attribute id 7, which is not in labels.csv"),
        (None, "id,attribute_ids\nim1,0\nim1,1\n", "duplicate image id"),
        (None, "id,attribute_ids\nim1,0\nim2,\n", "row 3 has an empty attribute_ids"),
        ("attribute_id,attribute_name\n0,a\n2,b\n", "id,attribute_ids\nim1,0\n", "exactly 0..1"),
        ("attribute_id,attribute_name\n0,a\n0,b\n", "id,attribute_ids\nim1,0\n", "duplicated id"),
        ("attribute_id,attribute_name\n0,a\nz,b\n", "id,attribute_ids\nim1,0\n", "must be an integer"),
        ("attribute_id,name\n0,a\n", "id,attribute_ids\nim1,0\n", "lacks column(s) attribute_name"),
    ],
)
def test_bad_csv_gives_clear_error_and_cli_exit_2(data, capsys, labels, train, message):
    if labels is not None:
        write(data / "labels.csv", labels)
    write(data / "train.csv", train)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_dataset(data, check_images=False)
    assert main(["stats", "--data", str(data), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_file(tmp_path, capsys):
    with pytest.raises(DataFileError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    write(tmp_path / "labels.csv", "attribute_id,attribute_name\n0,a\n")
    with pytest.raises(DataFileError, match="Missing train.csv"):
        load_dataset(tmp_path)
    assert main(["stats", "--data", str(tmp_path)]) == 2
    assert "Missing train.csv" in capsys.readouterr().err


def test_missing_images_counted_and_named(data, capsys):
    (data / "train" / "im2.png").unlink()
    (data / "train" / "im3.png").unlink()
    with pytest.raises(DataFileError, match=r"2 of 3 train images .* \(first: im2, im3\)"):
        load_dataset(data)
    assert main(["stats", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "2 of 3" in err and err.count("\n") == 1


def test_corrupt_and_truncated_images_are_named(data):
    good = data / "train" / "im1.png"
    assert read_image(good).shape == (32, 32, 3)
    truncated = data / "train" / "trunc.png"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ImageReadError, match="trunc.png"):
        read_image(truncated)
    garbage = data / "train" / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    with pytest.raises(ImageReadError, match="garbage.png"):
        read_image(garbage)
    empty = data / "train" / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png.*empty"):
        read_image(empty)
