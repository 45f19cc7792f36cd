"""imet_kit.data.images: every odd image kind loads to HxWx3 uint8 RGB; corrupt files raise."""

import doctest

import cv2
import numpy as np
import pytest
from PIL import Image

from imet_kit.data import images
from imet_kit.data.images import check_image_file, read_image, scan_images
from imet_kit.errors import DataFileError, ImageReadError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (31, 33, 3), dtype=np.uint8)  # odd H != W catches swaps


def _save(tmp_path, name, arr=None, mode=None, **kw):
    path = tmp_path / name
    Image.fromarray(RGB if arr is None else arr, mode=mode).save(path, **kw)
    return path


def test_rgb_png_roundtrip(tmp_path):
    out = read_image(_save(tmp_path, "a.png"))
    assert out.dtype == np.uint8 and out.shape == (31, 33, 3)
    np.testing.assert_array_equal(out, RGB)  # RGB order, not OpenCV's BGR


def test_grayscale_png_and_jpeg(tmp_path):
    for name in ("g.png", "g.jpg"):
        out = read_image(_save(tmp_path, name, RGB[..., 0]))
        assert out.shape == (31, 33, 3) and out.dtype == np.uint8
        assert np.array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[..., 1], RGB[..., 0])


def test_rgba_composited_on_white(tmp_path):
    alpha = np.zeros((31, 33), np.uint8)
    alpha[:, :10] = 255
    out = read_image(_save(tmp_path, "a.png", np.dstack([RGB, alpha]), "RGBA"))
    assert out.shape == (31, 33, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :10], RGB[:, :10])  # opaque: unchanged
    assert (out[:, 10:] == 255).all()  # transparent: white, not black


def test_gray_alpha_png(tmp_path):
    la = Image.fromarray(np.dstack([RGB[..., 0], np.zeros((31, 33), np.uint8)]), "LA")
    la.save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (31, 33, 3) and (out == 255).all()


def test_palette_png_with_and_without_transparency(tmp_path):
    pal = Image.fromarray(RGB).convert("P")
    pal.save(tmp_path / "p.png")
    pal.save(tmp_path / "pt.png", transparency=0)
    plain = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(plain, np.asarray(pal.convert("RGB")))
    trans = read_image(tmp_path / "pt.png")
    assert trans.shape == (31, 33, 3) and trans.dtype == np.uint8
    idx = np.asarray(pal)
    assert (trans[idx == 0] == 255).all() and np.array_equal(trans[idx != 0], plain[idx != 0])


def test_16bit_png_gray_and_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "g16.png"), RGB[..., 0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "c16.png"), (RGB.astype(np.uint16) * 257)[..., ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], RGB[..., 0])
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png"), RGB)


def test_exif_rotation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(tmp_path, "r.jpg", exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (33, 31, 3)
    upright = np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270))
    assert np.abs(out.astype(int) - upright.astype(int)).mean() < 2


def test_cmyk_jpeg_and_bmp_and_webp(tmp_path):
    Image.fromarray(RGB).convert("CMYK").save(tmp_path / "c.jpg")
    cv2.imwrite(str(tmp_path / "b.bmp"), RGB[..., ::-1])
    cv2.imwrite(str(tmp_path / "w.webp"), RGB[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert read_image(tmp_path / "c.jpg").shape == (31, 33, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "b.bmp"), RGB)
    np.testing.assert_array_equal(read_image(tmp_path / "w.webp"), RGB)


def test_gif_falls_back_to_pillow(tmp_path):
    Image.fromarray(RGB).convert("P").save(tmp_path / "a.gif")
    out = read_image(tmp_path / "a.gif")
    assert out.shape == (31, 33, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("name", ["a.png", "a.jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file_raises_naming_it(tmp_path, name, keep):
    path = _save(tmp_path, name, np.kron(RGB, np.ones((4, 4, 1), np.uint8)))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match="truncated") as err:
        read_image(path)
    assert str(path) in str(err.value) and err.value.path == str(path)
    assert "truncated" in check_image_file(path)


def test_jpeg_with_trailing_data_is_accepted(tmp_path):
    path = _save(tmp_path, "t.jpg")
    path.write_bytes(path.read_bytes() + b"APPENDED-BY-CAMERA" * 100)
    assert read_image(path).shape == (31, 33, 3)
    assert check_image_file(path) == ""


def test_empty_garbage_and_missing(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    (tmp_path / "x.png").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "e.png")
    with pytest.raises(ImageReadError, match=r"x\.png"):
        read_image(tmp_path / "x.png")
    with pytest.raises(DataFileError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_scan_images_reports_only_bad_files(tmp_path):
    good = _save(tmp_path, "g.png")
    (tmp_path / "e.png").write_bytes(b"")
    (tmp_path / "x.png").write_bytes(b"garbage")
    bad = scan_images([good, tmp_path / "e.png", tmp_path / "x.png", tmp_path / "missing.png"])
    assert sorted(bad) == [1, 2, 3]
    assert "empty" in bad[1] and "not an image" in bad[2] and "not exist" in bad[3]


def test_docstring_examples():
    assert doctest.testmod(images).failed == 0
