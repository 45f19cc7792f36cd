"""imet_kit.data.views: all TTA views from one decode, against ImageDataset / eval_dataset per view."""

import cv2
import numpy as np
import pytest

from imet_kit.data import images, views
from imet_kit.data.augment import TTA_VIEWS
from imet_kit.data.dataset import ImageDataset
from imet_kit.data.geometry import RESIZE_MODES
from imet_kit.data.views import chunk_rows, image_views, iter_views
from imet_kit.errors import ImageReadError, InputError

SIZE = 24
SHAPES = [(33, 31), (32, 32), (20, 45), (50, 27), (31, 33), (40, 40), (26, 60)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("v")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(SHAPES):
        p = root / f"img{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(str(p))
    return paths


def _per_view(paths, names, resize="crop"):
    """The old route: one ImageDataset per view, each decoding every file again."""
    out = []
    for view in names:
        ds = ImageDataset(paths, None, size=SIZE, batch_size=3, tta_view=view, resize=resize)
        out.append(np.concatenate([ds.load_batch(b)[0] for b in range(len(ds))]))
    return np.stack(out, axis=1)


@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_views_equal_one_image_dataset_per_view(files, resize):
    got = np.concatenate(list(iter_views(files, TTA_VIEWS, size=SIZE, resize=resize, chunk_size=3)))
    assert got.shape == (len(files), len(TTA_VIEWS), SIZE, SIZE, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _per_view(files, TTA_VIEWS, resize))


def test_each_file_is_decoded_once_and_chunks_are_bounded(files, monkeypatch):
    calls = []
    real = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda data, name="", **kw: calls.append(name) or
                        real(data, name, **kw))
    names = ["identity", "flip", "crop_tl", "crop_br"]
    chunks = list(iter_views(files, names, size=SIZE, chunk_size=3, workers=2))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert sorted(calls) == sorted(files)  # each file once, for all 4 views
    calls.clear()
    _per_view(files, names)
    assert sorted(calls) == sorted(files * 4)  # the old route: once per view


def test_image_views_match_the_flip_and_rgb_order(files):
    x = image_views(files[2], ["identity", "flip"], SIZE)
    np.testing.assert_array_equal(x[1], x[0][:, ::-1])
    rgb = cv2.cvtColor(cv2.imread(files[2]), cv2.COLOR_BGR2RGB)
    # 20 x 45: shorter side to 24 -> 24 x 54 (bilinear), centre columns 15..38, in RGB order
    np.testing.assert_array_equal(x[0], cv2.resize(rgb, (54, 24), interpolation=cv2.INTER_LINEAR)[:, 15:39])


def test_tfdata_decodes_once_in_graph_and_equals_eval_dataset(files, monkeypatch):
    import tensorflow as tf

    from imet_kit.data.tfdata_train import ImageFiles, eval_dataset

    seen = []
    real = views._tf_decode

    def counted(path, kind):
        img = real(path, kind)
        tick = tf.py_function(lambda p: seen.append(p.numpy().decode()) or 0, [path], tf.int32)
        with tf.control_dependencies([tick]):
            return tf.identity(img)

    monkeypatch.setattr(views, "_tf_decode", counted)
    names = ["identity", "flip", "crop_tl", "crop_br_flip"]
    got = np.concatenate(list(iter_views(files, names, size=SIZE, chunk_size=4, pipeline="tfdata")))
    assert sorted(seen) == sorted(files)
    source = ImageFiles(files)
    old = np.stack([np.concatenate([b.numpy() for b in eval_dataset(source, size=SIZE, batch_size=3,
                                                                     tta_view=v)]) for v in names], 1)
    np.testing.assert_array_equal(got, old.astype(np.uint8))
    diff = np.abs(got.astype(int) - _per_view(files, names).astype(int))
    assert diff.max() <= 1  # the documented tolerance against OpenCV


def test_chunk_rows_bounds_the_bytes():
    n = chunk_rows(4, 288, multiple=32)
    assert n == 128 and n * 4 * 288 * 288 * 3 <= 128 << 20
    assert chunk_rows(12, 1024, multiple=32) == 3  # 36 MiB an image: fewer than a batch, not 0
    assert chunk_rows(1, 8, multiple=7, budget=100) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
    ({"pipeline": "tfdata", "resize": "pad"}, "reads with the crop geometry only"),
    ({"pipeline": "torch"}, "Unknown pipeline 'torch'"),
])
def test_bad_arguments(files, kwargs, message):
    with pytest.raises(InputError, match=message):
        next(iter_views(files, ["identity"], size=SIZE, **kwargs))


def test_an_unreadable_file_is_named(files, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 40)
    with pytest.raises(ImageReadError, match="bad.png"):
        list(iter_views([files[0], str(bad)], ["identity"], size=SIZE, chunk_size=1))
