"""imet_kit.data.mix.BatchMix: MixUp and CutMix targets against hand-computed oracles."""

import doctest

import numpy as np
import pytest

from imet_kit.data import mix as mix_module
from imet_kit.data.mix import BatchMix
from imet_kit.errors import InputError

B, H, W, C = 8, 12, 17, 6  # odd sizes catch a height / width swap


def _batch(seed=0):
    """Every image one flat grey level of its own (10, 40, 70, ...), random multi-hot targets."""
    rng = np.random.default_rng(seed)
    levels = 10 + 30 * np.arange(B)
    x = np.broadcast_to(levels[:, None, None, None], (B, H, W, 3)).astype(np.uint8)
    y = (rng.random((B, C)) < 0.4).astype(np.float32)
    y[np.arange(B), np.arange(B) % C] = 1
    return x, y, levels


def test_mixup_blends_images_and_labels_by_the_same_lambda():
    x, y, _ = _batch()
    mix = BatchMix(mixup=0.4)
    kind, t = mix.transformation(x, y, seed=11)
    lam, perm = np.asarray(t["mix_weight"]), np.asarray(t["permutation_order"])
    assert kind == "mixup" and sorted(perm.tolist()) == list(range(B))
    xm, ym = mix(x, y, seed=11)
    want_x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm].astype(np.float32)
    np.testing.assert_allclose(xm, want_x, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ym, lam[:, None] * y + (1 - lam[:, None]) * y[perm], rtol=1e-6)
    assert xm.dtype == ym.dtype == np.float32


def test_cutmix_labels_are_the_pixel_share_of_each_image():
    """Oracle from the pixels alone: count how much of image i shows image j's grey level."""
    x, y, levels = _batch(1)
    for seed in range(6):
        xm, ym = BatchMix(cutmix=1.0)(x, y, seed=seed)
        for i in range(B):
            values, counts = np.unique(xm[i, ..., 0], return_counts=True)
            assert set(values) <= {levels[i], *levels}  # pasted, never blended
            others = [v for v in values if v != levels[i]]
            assert len(others) <= 1
            if not others:  # nothing pasted, or paired with itself
                np.testing.assert_allclose(ym[i], y[i], atol=1e-6)
                continue
            j = int(np.flatnonzero(levels == others[0])[0])
            r = counts[list(values).index(others[0])] / (H * W)
            np.testing.assert_allclose(ym[i], (1 - r) * y[i] + r * y[j], atol=1e-6)
            shared = (y[i] == 1) & (y[j] == 1)
            assert (ym[i][shared] == 1).all()  # a label both carry stays 1


def test_cutmix_pastes_one_axis_aligned_box_not_only_on_the_diagonal():
    x, y, levels = _batch(2)
    corners = set()
    for seed in range(10):
        xm, _ = BatchMix(cutmix=1.0)(x, y, seed=seed)
        for i in range(B):
            rows, cols = np.nonzero(xm[i, ..., 0] != levels[i])
            if len(rows):
                box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
                assert len(rows) == (box[1] - box[0]) * (box[3] - box[2])  # a full rectangle
                corners.add((round(box[0] / H, 1), round(box[2] / W, 1)))
    assert len({a - b for a, b in corners}) > 2  # x and y offsets drawn independently


def test_same_seed_same_result_and_both_mixes_alternate():
    x, y, _ = _batch()
    both = BatchMix(mixup=0.2, cutmix=1.0)
    a, b, c = both(x, y, 5), both(x, y, 5), both(x, y, 6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    kinds = {both.choose(s) for s in range(20)}
    assert kinds == {"mixup", "cutmix"}
    assert BatchMix().choose(0) is None and not BatchMix().active
    xo, yo = BatchMix()(x, y, 0)
    np.testing.assert_array_equal(xo, x) and np.testing.assert_array_equal(yo, y)


def test_pickles_without_its_layers():
    import pickle

    mix = BatchMix(mixup=0.3)
    x, y, _ = _batch()
    want = mix(x, y, 3)
    again = pickle.loads(pickle.dumps(mix))
    assert again._layers == {} and again.mixup == 0.3
    np.testing.assert_array_equal(again(x, y, 3)[0], want[0])


def test_bad_alphas_are_input_errors():
    for kw in ({"mixup": -1}, {"cutmix": 1.5}, {"mixup": float("nan")}):
        with pytest.raises(InputError, match="mixup must be"):
            BatchMix(**kw)


def test_docstring_examples():
    assert doctest.testmod(mix_module).failed == 0
