"""The embedded demo dataset: iMet format, groups, long tail, determinism, real material."""

import hashlib
import json

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.data.folder import load_dataset
from imet_kit.data.labels import read_annotations
from imet_kit.data.stats import describe
from imet_kit.errors import InputError
from imet_kit.multilabel.evaluate import most_frequent_baseline


def digest(folder):
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, size="small", seed=3)
    return root


def test_imet_format_and_groups(demo):
    ds = load_dataset(demo)  # validates CSVs and that every image exists
    assert ds.space.group_names == ("culture", "tag")
    assert ds.space.group_mask("culture").sum() >= 15 and ds.space.group_mask("tag").sum() >= 20
    y = np.asarray(ds.train.y)
    assert y.shape == (160, ds.space.n_classes)
    per_image = y.sum(1)
    assert per_image.min() >= 1 and per_image.max() <= 10
    assert (y[:, ds.space.group_mask("tag")].sum(1) >= 1).all()  # every image has its scene
    test_ids = ds.test_ids()
    assert len(test_ids) == 40 and not set(test_ids) & set(ds.train.ids)
    assert len(ds.test_paths()) == 40
    truth = read_annotations(demo / "holdout" / "test_labels.csv", ds.space)
    assert truth.ids == test_ids
    info = json.loads((demo / "demo_info.json").read_text())
    assert info["n_train"] == 160 and info["seed"] == 3


def test_images_vary_in_size_and_are_real_pictures(demo):
    from imet_kit.data.images import read_image

    ds = load_dataset(demo)
    shapes = set()
    for p in ds.train_paths[:40]:
        img = read_image(p)
        assert img.dtype == np.uint8 and img.ndim == 3
        assert 128 <= img.shape[0] <= 300 and 128 <= img.shape[1] <= 300
        shapes.add(img.shape[:2])
        assert img.std() > 20  # photographs, not flat fills
    assert len(shapes) > 30


def test_describe_counts_match_hand_computation():
    """describe() on a hand-made matrix: its counts are the column sums."""
    rng_counts = np.random.default_rng(0)  # describe() on a hand-made matrix checks the arithmetic
    y = (rng_counts.random((50, 4)) < [0.9, 0.5, 0.1, 0.02]).astype(np.uint8)
    y[0] = 1
    from imet_kit.data.labels import LabelSpace

    d = describe(y, LabelSpace.from_names(["a::1", "a::2", "b::1", "b::2"]))
    assert d["label_count_max"] == y.sum(0).max() and d["labels_under_10_images"] == (y.sum(0) < 10).sum()


@pytest.mark.slow
def test_full_size_long_tail_and_generation_time(tmp_path):
    import time

    t = time.perf_counter()
    make_demo_dataset(tmp_path, size="full", seed=0)
    assert time.perf_counter() - t < 120
    ds = load_dataset(tmp_path, check_images=False)
    counts = np.asarray(ds.train.y).sum(0)
    assert (counts < 10).sum() >= 1
    assert counts.max() > 50 * counts.min()
    k, f2 = most_frequent_baseline(np.asarray(ds.train.y),
                                   read_annotations(tmp_path / "holdout" / "test_labels.csv", ds.space).y)
    assert 0.2 < f2 < 0.7  # not trivial, not hopeless


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    make_demo_dataset(tmp_path / "a", n_train=12, n_test=4, seed=5)
    make_demo_dataset(tmp_path / "b", n_train=12, n_test=4, seed=5)
    make_demo_dataset(tmp_path / "c", n_train=12, n_test=4, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_baseline_matches_sklearn():
    from sklearn.metrics import fbeta_score

    rng = np.random.default_rng(1)
    # the last label never occurs in train: uint8 column sums must not wrap it to the top
    y_tr = (rng.random((80, 6)) < [0.8, 0.6, 0.3, 0.2, 0.1, 0.0]).astype(np.uint8)
    y_tr[y_tr.sum(1) == 0, 0] = 1
    y_te = (rng.random((30, 6)) < [0.8, 0.6, 0.3, 0.2, 0.1, 0.05]).astype(np.uint8)
    y_te[y_te.sum(1) == 0, 0] = 1
    k, f2 = most_frequent_baseline(y_tr, y_te)
    order = np.argsort(-y_tr.sum(0).astype(int), kind="stable")
    assert order[-1] == 5
    pred = np.zeros_like(y_te)
    pred[:, order[:k]] = 1
    assert f2 == pytest.approx(fbeta_score(y_te, pred, beta=2, average="samples", zero_division=0))


def test_cli_demo_data_prints_statistics(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "train images       160" in out and "baseline F2 (test)" in out
    assert (tmp_path / "d" / "label_frequency.png").is_file()


def test_bad_size_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="Unknown demo size 'huge'"):
        make_demo_dataset(tmp_path, size="huge")


def test_default_variant_files_are_unchanged_by_the_variants(tmp_path):
    """The default variant's bytes as they were before the hard variant existed: imet_kit 7831557's
    code under the libraries of a fresh install of 2026-12-03 (OpenCV 5.1.0.95, Pillow 13.0.0,
    scikit-image 0.26.0, numpy 2.4.6; the install of 2026-12-02 gave c44f84e9...). If a library
    upgrade changes the rendering, regenerate the value with that commit's code, not with the
    current one: ``git archive 7831557 imet_kit | tar -x -C /tmp/old``, then run
    ``make_demo_dataset(..., n_train=6, n_test=2, seed=0)`` with ``PYTHONPATH=/tmp/old`` and
    ``digest`` its folder."""
    make_demo_dataset(tmp_path / "d", n_train=6, n_test=2, seed=0)
    assert digest(tmp_path / "d") == "6463a388f26ac5c1572ec36fa6f1def95ed66b85"
    assert make_demo_dataset(tmp_path / "v", n_train=6, n_test=2, seed=0, variant="default")["n_classes"] == 49
    assert digest(tmp_path / "v") == digest(tmp_path / "d")


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    make_demo_dataset(root, n_train=60, n_test=10, seed=2, variant="hard")
    return root


def test_hard_variant_small_objects_on_wide_images_98_labels(hard):
    from imet_kit.data.images import read_image

    ds = load_dataset(hard)
    assert ds.space.n_classes == 98 and ds.space.group_names == ("culture", "tag")
    assert sum(n.startswith("tag::glyph_") for n in ds.space.names) == 49
    assert {"tag::glyph_lower_b", "tag::glyph_lower_d", "tag::glyph_lower_p", "tag::glyph_lower_q"} <= \
        set(ds.space.names)  # mirror pairs: flipping changes the label
    y = np.asarray(ds.train.y)
    assert y.sum(1).min() >= 1 and y.sum(1).max() <= 10 and y.sum(1).mean() > 3
    glyphs = [i for i, n in enumerate(ds.space.names) if n.startswith("tag::glyph_")]
    assert y[:, glyphs].sum() > 30  # glyph stickers are common
    aspects = []
    for p in ds.train_paths[:30]:
        h, w = read_image(p).shape[:2]
        assert 128 <= h <= 192 and h <= w <= 2.4 * h + 1
        aspects.append(w / h)
    assert max(aspects) > 1.8 and min(aspects) < 1.4
    info = json.loads((hard / "demo_info.json").read_text())
    assert info["variant"] == "hard" and info["n_classes"] == 98


def test_hard_variant_is_deterministic_and_named_in_errors(tmp_path):
    make_demo_dataset(tmp_path / "a", n_train=5, n_test=2, seed=4, variant="hard")
    make_demo_dataset(tmp_path / "b", n_train=5, n_test=2, seed=4, variant="hard")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    with pytest.raises(InputError, match="Unknown demo variant 'easy'. Expected one of: default, hard"):
        make_demo_dataset(tmp_path / "c", variant="easy")


def test_cli_demo_data_hard_variant(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "h"), "--variant", "hard", "--seed", "1"]) == 0
    assert "train images       160" in capsys.readouterr().out
    assert json.loads((tmp_path / "h" / "demo_info.json").read_text())["variant"] == "hard"
