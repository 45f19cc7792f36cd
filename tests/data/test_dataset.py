"""imet_kit.data.dataset.ImageDataset (and the batch grid plot drawn from it)."""

import logging
import math

import cv2
import keras
import numpy as np
import pytest
import scipy.sparse as sp
from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

from imet_kit.data.dataset import ImageDataset, batch_seed
from imet_kit.errors import ImageReadError, InputError
from imet_kit.plots.data import plot_batch_grid

pytestmark = pytest.mark.filterwarnings("error::UserWarning")

N, C = 10, 5


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        h, w = (32, 32) if i % 2 else (33, 31)
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(str(p))
    y = np.zeros((N, C), np.uint8)
    y[np.arange(N), np.arange(N) % C] = 1
    y[::3, 0] = 1
    return paths, y


def _epoch(ds, **adapter_kw):
    """Iterate one epoch the way fit() does (threads / processes from the dataset)."""
    adapter = PyDatasetAdapter(ds, **adapter_kw)
    adapter.on_epoch_begin()
    batches = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    return batches


def test_shapes_dtypes_and_length(folder):
    paths, y = folder
    ds = ImageDataset(paths, y, size=32, batch_size=4, augment="notebook")
    assert len(ds) == math.ceil(N / 4) == 3
    x0, y0 = ds[0]
    assert x0.shape == (4, 32, 32, 3) and x0.dtype == np.float32
    assert y0.shape == (4, C) and y0.dtype == np.float32
    assert 0 <= x0.min() and x0.max() <= 255 and x0.max() > 1
    xl, yl = ds[2]
    assert xl.shape == (2, 32, 32, 3) and yl.shape == (2, C)  # short last batch, no row lost
    seen = np.concatenate([ds.load_batch(i)[2] for i in range(len(ds))])
    assert sorted(seen.tolist()) == list(range(N))


def test_predict_mode_yields_x_only_in_order(folder):
    paths, _ = folder
    ds = ImageDataset(paths, size=31, batch_size=3)
    assert not ds.shuffle and len(ds) == 4
    x = ds[0]
    assert isinstance(x, np.ndarray) and x.shape == (3, 31, 31, 3)
    img0 = cv2.imread(paths[0])[..., ::-1]  # 33x31: eval is a pure centre crop
    np.testing.assert_array_equal(x[0], img0[1:32].astype(np.float32))
    with pytest.raises(IndexError):
        ds[4]


def test_same_seed_same_batch_and_epochs_differ(folder):
    paths, y = folder
    a = ImageDataset(paths, y, size=32, batch_size=4, augment="strong", seed=3)
    b = ImageDataset(paths, y, size=32, batch_size=4, augment="strong", seed=3)
    b1 = b[1]  # the order of calls does not matter: each batch is seeded on its own
    np.testing.assert_array_equal(a[0][0], b[0][0])
    np.testing.assert_array_equal(a[1][0], b1[0])
    np.testing.assert_array_equal(a[1][1], b1[1])
    c = ImageDataset(paths, y, size=32, batch_size=4, augment="strong", seed=4)
    assert not np.array_equal(a[0][0], c[0][0])
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(first, a[0][0])  # new epoch: new order and new crops
    assert batch_seed(3, 0, 1) == batch_seed(3, 0, 1) != batch_seed(3, 1, 1)


@pytest.mark.parametrize("multiprocessing", [False, True])
def test_workers_match_serial_and_reseed_every_epoch(folder, multiprocessing):
    paths, y = folder
    kw = dict(size=32, batch_size=2, augment="notebook", seed=1)
    serial = ImageDataset(paths, y, **kw)
    par = ImageDataset(paths, y, workers=2, use_multiprocessing=multiprocessing, **kw)
    epochs = [_epoch(par), _epoch(par)]
    for e, got in enumerate(epochs):
        serial.epoch = e
        want = [serial[i] for i in range(len(serial))]
        assert len(got) == len(want)
        for (gx, gy), (wx, wy) in zip(got, want):
            np.testing.assert_array_equal(gx, wx)
            np.testing.assert_array_equal(gy, wy)
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # workers were not frozen


def test_preprocess_gets_uint8_and_sparse_labels(folder):
    paths, y = folder
    seen = {}

    def prep(batch):
        seen["dtype"] = batch.dtype
        return batch / 127.5 - 1.0

    ds = ImageDataset(paths, sp.csr_matrix(y), size=32, batch_size=4, preprocess=prep)
    x, yb = ds[0]
    assert seen["dtype"] == np.uint8 and x.dtype == np.float32 and x.min() >= -1
    np.testing.assert_array_equal(yb, y[:4])


def test_tta_view_dataset_matches_apply_tta(folder):
    from imet_kit.data.augment import apply_tta
    from imet_kit.data.images import read_image

    paths, _ = folder
    ds = ImageDataset(paths, size=32, batch_size=4, tta_view="crop_br_flip")
    np.testing.assert_array_equal(ds[0][1], apply_tta(read_image(paths[1]), "crop_br_flip", 32))


def test_bad_arguments(folder):
    paths, y = folder
    with pytest.raises(InputError, match="shuffled order"):
        ImageDataset(paths, size=32, shuffle=True)
    with pytest.raises(InputError, match="not both"):
        ImageDataset(paths, y, size=32, augment="light", tta_view="flip")
    with pytest.raises(InputError, match="notebook, light"):
        ImageDataset(paths, y, size=32, augment="nope")
    with pytest.raises(InputError, match="one row per path"):
        ImageDataset(paths, y[:3], size=32)
    with pytest.raises(InputError, match="Unknown TTA view"):
        ImageDataset(paths, size=32, tta_view="spin")


def test_corrupt_file_raises_naming_it(folder, tmp_path):
    paths, y = folder
    bad = tmp_path / "img3.png"
    bad.write_bytes(bad.read_bytes()[:100])
    ds = ImageDataset(paths, y, size=32, batch_size=4)
    with pytest.raises(ImageReadError, match="img3.png"):
        ds[0]


def test_skip_corrupt_counts_in_a_warning(folder, tmp_path, caplog):
    paths, y = folder
    (tmp_path / "img3.png").write_bytes(b"")
    (tmp_path / "img5.png").write_bytes((tmp_path / "img5.png").read_bytes()[:80])
    with caplog.at_level(logging.WARNING, logger="imet_kit.data.dataset"):
        ds = ImageDataset(paths, y, size=32, batch_size=4, skip_corrupt=True)
    assert "Skipping 2 of 10 images" in caplog.text and "img3.png" in caplog.text
    assert ds.kept_indices.tolist() == [0, 1, 2, 4, 6, 7, 8, 9] and len(ds) == 2
    x, yb, rows = ds.load_batch(0)
    np.testing.assert_array_equal(yb, y[rows])
    assert x.shape[0] == 4 and (x.reshape(4, -1).max(axis=1) > 0).all()  # no zero image


def test_skip_corrupt_late_failure(folder, tmp_path, caplog):
    paths, y = folder
    # Passes the cheap check (PNG magic, IEND) but does not decode.
    (tmp_path / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 50 + b"IEND\xaeB`\x82")
    ds = ImageDataset(paths, y, size=32, batch_size=4, skip_corrupt=True)
    assert len(ds.kept_indices) == N
    with caplog.at_level(logging.WARNING, logger="imet_kit.data.dataset"):
        x, yb = ds[0]
    assert x.shape[0] == 3 and yb.shape[0] == 3 and "img2.png" in caplog.text
    np.testing.assert_array_equal(yb, y[[0, 1, 3]])
    pred = ImageDataset(paths, size=32, batch_size=4, skip_corrupt=True)
    with pytest.raises(ImageReadError, match="img2.png"):
        pred[0]  # predictions must align with rows: never drop silently


def test_fit_and_predict_with_threads(folder):
    paths, y = folder
    train = ImageDataset(paths, y, size=32, batch_size=4, augment="light", workers=2)
    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(C, activation="sigmoid"),
    ])
    model.compile("adam", "binary_crossentropy")
    hist = model.fit(train, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2 and train.epoch >= 2
    pred = model.predict(ImageDataset(paths, size=32, batch_size=4), verbose=0)
    assert pred.shape == (N, C)


def test_plot_batch_grid_from_dataset_and_arrays(folder, tmp_path):
    paths, y = folder
    names = [f"culture::name{i}" for i in range(C)]
    ds = ImageDataset(paths, y, size=32, batch_size=6, augment="strong")
    out = plot_batch_grid(ds, names, tmp_path / "grid" / "batch.png")
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    assert not list(out.parent.glob(".*tmp*"))  # atomic: no temp file left
    from imet_kit.data.labels import LabelSpace

    plot_batch_grid(ds[0], LabelSpace.from_names(names), tmp_path / "arr.png", max_images=3)
    with pytest.raises(InputError, match="B, H, W, 3"):
        plot_batch_grid(np.zeros((4, 4)), names, tmp_path / "bad.png")


def test_resize_and_flip_reach_every_transform(folder):
    from imet_kit.data.augment import apply_tta, build_eval_transform
    from imet_kit.data.images import read_image

    paths, y = folder
    img = read_image(paths[0])
    for resize in ("squash", "pad"):
        ds = ImageDataset(paths, size=32, batch_size=4, resize=resize)
        want = build_eval_transform(32, resize=resize)(image=img)["image"]
        np.testing.assert_array_equal(ds[0][0], want.astype(np.float32))
        tta = ImageDataset(paths, size=32, batch_size=4, resize=resize, tta_view="crop_tl")
        np.testing.assert_array_equal(tta[0][0], apply_tta(img, "crop_tl", 32, resize=resize))
    train = ImageDataset(paths, y, size=32, batch_size=4, augment="light", flip=False, resize="pad")
    assert train.flip is False and train.resize == "pad"
    kinds = [type(t).__name__ for t in train._transform().transforms]
    assert "HorizontalFlip" not in kinds and "FitImage" in kinds
    with pytest.raises(InputError, match="crop, squash, pad"):
        ImageDataset(paths, size=32, resize="stretch")


def test_mixed_batches_are_seeded_per_batch_and_keep_label_mass(folder):
    paths, y = folder
    kw = dict(size=32, batch_size=4, augment="light", seed=2, mixup=0.4, cutmix=1.0)
    a, b = ImageDataset(paths, y, **kw), ImageDataset(paths, y, **kw)
    b1 = b[1]
    np.testing.assert_array_equal(a[1][0], b1[0])
    np.testing.assert_array_equal(a[1][1], b1[1])
    plain = ImageDataset(paths, y, **{**kw, "mixup": 0.0, "cutmix": 0.0})
    x, ym = a[0]
    _, y0, rows = a.load_batch(0)
    assert x.dtype == np.float32 and ym.shape == y0.shape
    assert not np.array_equal(ym, y0)  # targets were mixed
    assert ((ym >= 0) & (ym <= 1)).all() and np.isclose(ym.sum(), y0.sum(), rtol=0.5)
    np.testing.assert_array_equal(plain.load_batch(0)[0], a.load_batch(0)[0])  # mixing comes after
    par = ImageDataset(paths, y, workers=2, **kw)
    for (gx, gy), i in zip(_epoch(par), range(len(a))):
        np.testing.assert_array_equal(gx, a[i][0])
        np.testing.assert_array_equal(gy, a[i][1])
    with pytest.raises(InputError, match="need labels and an augment preset"):
        ImageDataset(paths, y, size=32, mixup=0.2)
