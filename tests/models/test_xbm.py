"""Cross-batch memory: FIFO order, warm-up, the loss by hand, training alone, save/load."""

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models.xbm import CrossBatchMemory, contrastive_loss


def _unit(rng, n, d=4):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _loss_by_hand(z, y, ref, ref_y, margin=0.5):
    total = 0.0
    for i in range(len(z)):
        for j in range(len(ref)):
            if ref_y[j] < 0:
                continue
            s = float(z[i] @ ref[j])
            if y[i] == ref_y[j]:
                total += (1 - s) if s < 1 - 1e-5 else 0.0
            else:
                total += max(s - margin, 0.0)
    return total / len(z)


def test_contrastive_loss_matches_pairs_by_hand():
    rng = np.random.default_rng(0)
    z, ref = _unit(rng, 5), _unit(rng, 7)
    y, ref_y = np.array([0, 1, 1, 2, 0]), np.array([1, 0, -1, 2, 2, 3, 0])
    got = float(contrastive_loss(z, y, ref, ref_y, margin=0.1))
    assert got == pytest.approx(_loss_by_hand(z, y, ref, ref_y, margin=0.1), abs=1e-5)
    assert got > 0


def test_memory_is_fifo_and_wraps_around():
    xbm = CrossBatchMemory(memory_size=5, warmup_steps=0, batch_weight=0.0)
    rng = np.random.default_rng(0)
    seen_z, seen_y = [], []
    for step in range(4):
        z, y = _unit(rng, 3), np.arange(3) + 10 * step
        xbm([z, y], training=True)
        seen_z.append(z)
        seen_y.append(y)
        mem_z, mem_y = xbm.memory()
        want_y = np.concatenate(seen_y)[-5:]
        np.testing.assert_array_equal(mem_y, want_y)
        np.testing.assert_allclose(mem_z, np.concatenate(seen_z)[-5:], atol=1e-6)
    # A batch larger than the memory keeps its last rows, oldest first.
    big_y = np.arange(100, 108)
    xbm([_unit(rng, 8), big_y], training=True)
    np.testing.assert_array_equal(xbm.memory()[1], big_y[-5:])


def test_warmup_delays_memory_and_its_loss():
    rng = np.random.default_rng(1)
    xbm = CrossBatchMemory(memory_size=16, warmup_steps=2, margin=0.0)
    batches = [(_unit(rng, 4), np.array([0, 1, 0, 2])) for _ in range(3)]
    for z, y in batches[:2]:  # warm-up: batch loss only, nothing stored
        xbm([z, y], training=True)
        assert float(xbm.losses[0]) == pytest.approx(_loss_by_hand(z, y, z, y, 0.0), abs=1e-5)
        assert len(xbm.memory()[1]) == 0
    z, y = batches[2]
    xbm([z, y], training=True)  # step 3: enqueued, then compared with the memory (itself)
    np.testing.assert_array_equal(xbm.memory()[1], y)
    want = 2 * _loss_by_hand(z, y, z, y, 0.0)
    assert float(xbm.losses[0]) == pytest.approx(want, abs=1e-5)


def test_inference_passes_through_without_storing():
    xbm = CrossBatchMemory(memory_size=4)
    z = np.ones((2, 3), "float32")
    out = xbm([z, np.array([0, 1])], training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), z)
    assert len(xbm.memory()[1]) == 0 and not xbm.losses


def test_xbm_alone_trains_and_round_trips(tmp_path):
    # seeded: over 12 Dense initialisations the loss fell to 0.41-0.75x (TF) and 0.47-0.82x (JAX)
    # of its start, so unseeded the 0.7 bound below failed now and then, on either backend
    keras.utils.set_random_seed(0)
    image, label = keras.Input((6,), name="image"), keras.Input((), dtype="int32", name="label")
    emb = keras.layers.Dense(4)(image)
    model = keras.Model({"image": image, "label": label},
                        CrossBatchMemory(32, warmup_steps=1, name="xbm")([emb, label]))
    model.compile(keras.optimizers.SGD(0.1), loss=None)
    rng = np.random.default_rng(0)
    y = np.arange(32) % 4
    x = (rng.normal(size=(32, 6)) + np.eye(6)[y] * 3).astype("float32")
    embed = keras.Model(image, emb)

    def full_loss():
        z = embed.predict(x, verbose=0)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return float(contrastive_loss(z, y, z, y))

    before = full_loss()
    model.fit({"image": x, "label": y}, epochs=3, batch_size=8, verbose=0, shuffle=False)
    assert full_loss() < 0.7 * before
    layer = model.get_layer("xbm")
    assert int(layer.step.numpy()) == 12 and len(layer.memory()[1]) == 32
    model.save(tmp_path / "xbm.keras")
    loaded = keras.saving.load_model(tmp_path / "xbm.keras")
    assert loaded.get_layer("xbm").get_config() == layer.get_config()
    np.testing.assert_array_equal(loaded.get_layer("xbm").memory()[1], layer.memory()[1])


def test_bad_sizes_are_input_errors():
    with pytest.raises(InputError, match="memory_size"):
        CrossBatchMemory(0)
    with pytest.raises(InputError, match="warmup_steps"):
        CrossBatchMemory(4, warmup_steps=-1)


def test_xbm_beside_a_margin_head_adds_its_loss():
    from imet_kit.models.margins import build_embedding_model

    backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    xbm = CrossBatchMemory(64, warmup_steps=2, name="xbm")
    models = build_embedding_model(backbone, 3, head="arcface", embedding_dim=8, xbm=xbm)
    models.train_model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 3)).astype("float32"), np.arange(16) % 3
    models.train_model.fit({"image": x, "label": y}, y, epochs=1, batch_size=4, verbose=0)
    assert int(xbm.step.numpy()) == 4 and len(xbm.memory()[1]) == 8  # 2 warm steps x 4 rows
    logits = models.train_model({"image": x[:4], "label": y[:4]}, training=True)
    assert logits.shape == (4, 3) and len(models.train_model.losses) == 1
    # the embedding model never touches the memory
    models.embedding_model.predict(x, verbose=0)
    assert int(xbm.step.numpy()) == 5
