"""`imet-kit embed` (imet_kit.cli.embed): what is checked before a model is loaded: the model file,
the batch and chunk sizes, the images the CSV lists. The embed + search round trip with a real
model is in tests/retrieval/test_search.py."""

import cv2
import numpy as np
import pytest

from imet_kit.cli.main import main


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((9, 11, 3), np.uint8))
    (tmp_path / "m.keras").write_bytes(b"")  # never loaded: the checks come first
    return tmp_path


def _run(folder, *extra):
    return main(["embed", str(folder / "m.keras"), str(folder / "imgs"), str(folder / "out"), *extra])


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--chunk-size", "0"]])
def test_sizes_must_be_positive(folder, capsys, flags):
    assert _run(folder, *flags) == 2
    err = capsys.readouterr().err
    assert f"{flags[0]} must be >= 1; received 0" in err and err.count("\n") == 1
    assert not (folder / "out").exists()


def test_images_the_csv_lists_must_exist(folder, capsys):
    (folder / "ids.csv").write_text("id,label\na,x\nb,y\nc,y\n")
    assert _run(folder, "--csv", str(folder / "ids.csv")) == 2
    err = capsys.readouterr().err
    assert "2 of 3 images listed are missing" in err and "(first: b, c)" in err
    assert not (folder / "out").exists()


def test_the_csv_needs_its_id_column(folder, capsys):
    (folder / "ids.csv").write_text("name,label\na,x\n")
    assert _run(folder, "--csv", str(folder / "ids.csv"), "--id-column", "image_id") == 2
    assert "image_id" in capsys.readouterr().err


def test_a_folder_without_images(folder, capsys):
    (folder / "imgs" / "a.png").unlink()
    assert _run(folder) == 2
    assert "No images" in capsys.readouterr().err


def test_a_missing_model_file(folder, capsys):
    (folder / "m.keras").unlink()
    assert _run(folder) == 2
    assert "Model file" in capsys.readouterr().err and not (folder / "out").exists()
