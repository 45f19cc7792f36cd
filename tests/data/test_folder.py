"""imet_kit.data.folder: ids resolve to image files of any known extension in the ids' order; what
is missing is counted and named; a dataset folder loads as a whole, its test split from
sample_submission.csv."""

import pytest

from imet_kit.data.folder import ImetDataset, find_images, load_dataset
from imet_kit.errors import DataFileError


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")  # find_images looks at names only


def test_find_images_in_the_ids_order_any_extension(tmp_path):
    _touch(tmp_path, "b.png", "a.JPG", "0012.jpeg", "c.webp", "a.txt", "notes.csv")
    paths = find_images(tmp_path, ["c", "0012", "a", "b"])
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["c.webp", "0012.jpeg", "a.JPG", "b.png"]
    assert find_images(tmp_path, []) == []


def test_missing_images_are_counted_and_the_first_five_named(tmp_path):
    _touch(tmp_path, "a.png", "b.txt")  # b exists, but not as an image
    ids = ["a", "b"] + [f"m{i}" for i in range(6)]
    with pytest.raises(DataFileError) as exc:
        find_images(tmp_path, ids, what="test images")
    msg = str(exc.value)
    assert msg.startswith(f"7 of 8 test images listed are missing from '{tmp_path}'")
    assert "(first: b, m0, m1, m2, m3)" in msg and "m4" not in msg


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(DataFileError, match=f"Image folder '{tmp_path / 'train'}' does not exist"):
        find_images(tmp_path / "train", ["a"])


@pytest.fixture
def root(tmp_path):
    (tmp_path / "labels.csv").write_text("attribute_id,attribute_name\n0,culture::a\n1,tag::x\n")
    (tmp_path / "train.csv").write_text("id,attribute_ids\nt2,0 1\nt1,1\n")
    (tmp_path / "sample_submission.csv").write_text("id,attribute_ids\nq9,\nq1,\n")
    _touch(tmp_path / "train", "t1.png", "t2.jpg")
    _touch(tmp_path / "test", "q1.png", "q9.png")
    return tmp_path


def test_load_dataset_in_train_csv_order(root):
    ds = load_dataset(root)
    assert isinstance(ds, ImetDataset) and ds.root == root
    assert ds.space.names == ("culture::a", "tag::x") and ds.train.ids == ["t2", "t1"]
    assert ds.train.y.tolist() == [[1, 1], [0, 1]]
    assert ds.train_paths == [str(root / "train" / "t2.jpg"), str(root / "train" / "t1.png")]
    assert ds.test_ids() == ["q9", "q1"]  # the sample submission's order
    assert ds.test_paths() == [str(root / "test" / "q9.png"), str(root / "test" / "q1.png")]
    assert ds.test_paths(["q1"]) == [str(root / "test" / "q1.png")]


def test_check_images_false_reads_only_the_csvs(root):
    (root / "train" / "t1.png").unlink()
    with pytest.raises(DataFileError, match=r"1 of 2 train images .*first: t1"):
        load_dataset(root)
    ds = load_dataset(root, check_images=False)
    assert ds.train_paths == [] and ds.train.ids == ["t2", "t1"]


def test_missing_test_images_are_named(root):
    (root / "test" / "q9.png").unlink()
    with pytest.raises(DataFileError, match=r"1 of 2 test images .*first: q9"):
        load_dataset(root).test_paths()


def test_a_missing_dataset_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(DataFileError, match=r"does not exist.*imet-kit demo-data"):
        load_dataset(tmp_path / "nope")
