"""imet_kit.data.stats: label statistics by hand on a tiny matrix, the dataset report (image sizes
read from the files, test image count, label-frequency plot) and its text table."""

import cv2
import numpy as np
import pytest

from imet_kit.data.labels import LabelSpace
from imet_kit.data.stats import dataset_report, describe, format_report
from imet_kit.errors import DataFileError

SPACE = LabelSpace.from_names(["culture::a", "culture::b", "tag::x", "tag::y", "tag::z"])
# label counts 3, 0, 2, 1, 12 -> min 0, median 2, max 12; labels per image 3, 2, 2, eight 1s, 3
# -> min 1, mean 18 / 12 = 1.5, max 3
Y = np.zeros((12, 5), np.uint8)
Y[:, 4] = 1
Y[[0, 1, 2], 0] = 1
Y[[0, 11], 2] = 1
Y[11, 3] = 1


def test_describe_by_hand():
    d = describe(Y, SPACE)
    assert d == {
        "images": 12, "labels": 5, "groups": {"culture": 2, "tag": 3},
        "label_count_min": 0, "label_count_median": 2.0, "label_count_max": 12,
        "labels_under_10_images": 4,
        "labels_per_image_min": 1, "labels_per_image_mean": 1.5,
        "labels_per_image_max": 3,
    }


def test_describe_image_size_ranges_are_height_then_width():
    d = describe(Y, SPACE, [(33, 31), (40, 20), (35, 60)])
    assert d["height_range"] == [33, 40] and d["width_range"] == [20, 60]


@pytest.fixture
def root(tmp_path):
    space_csv = "attribute_id,attribute_name\n" + "".join(
        f"{i},{n}\n" for i, n in enumerate(SPACE.names))
    (tmp_path / "labels.csv").write_text(space_csv)
    rows = [" ".join(map(str, np.flatnonzero(r))) for r in Y]
    (tmp_path / "train.csv").write_text("id,attribute_ids\n" + "".join(
        f"im{i},{r}\n" for i, r in enumerate(rows)))
    (tmp_path / "train").mkdir()
    for i in range(12):
        h, w = (33, 31) if i % 2 else (29, 45)
        cv2.imwrite(str(tmp_path / "train" / f"im{i}.png"), np.zeros((h, w, 3), np.uint8))
    return tmp_path


def test_dataset_report_reads_sizes_and_draws_the_frequency_plot(root):
    rep = dataset_report(root)
    assert rep["train"] == describe(Y, SPACE, [(29, 45), (33, 31)] * 6)
    assert rep["train"]["height_range"] == [29, 33] and rep["train"]["width_range"] == [31, 45]
    assert "test_images" not in rep  # no sample_submission.csv
    png = root / "label_frequency.png"
    assert rep["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left


def test_dataset_report_counts_test_images_and_checks_they_exist(root):
    (root / "sample_submission.csv").write_text("id,attribute_ids\nq1,\nq2,\n")
    (root / "test").mkdir()
    cv2.imwrite(str(root / "test" / "q1.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFileError, match=r"1 of 2 test images .*first: q2"):
        dataset_report(root, plot=False)
    cv2.imwrite(str(root / "test" / "q2.png"), np.zeros((8, 8, 3), np.uint8))
    rep = dataset_report(root, plot=False)
    assert rep["test_images"] == 2 and "plot" not in rep
    assert not (root / "label_frequency.png").exists()


def test_format_report_lines(root):
    rep = dataset_report(root, plot=False)
    text = format_report(rep)
    assert "train images       12" in text and "test images        -" in text
    assert "attributes         5  (culture: 2, tag: 3)" in text
    assert "images per label   min 0, median 2, max 12; 4 labels under 10 images" in text
    assert "labels per image   min 1, mean 1.5, max 3" in text
    assert "image size (HxW)   29-33 x 31-45 px" in text
    assert "baseline" not in text and "plot" not in text
    rep["baseline"] = {"test_f2": 0.41234, "method": "predict the 2 most frequent train labels"}
    assert "baseline F2 (test) 0.4123  (predict the 2 most frequent" in format_report(rep)
