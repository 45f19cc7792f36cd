"""imet_kit.training.checkpoint: per-epoch seeds are a pure function of (seed, fold, epoch);
seed_model makes dropout repeat for the same seed; RunCheckpoint keeps best / last models,
history and state after every epoch; resume_or_build picks a fold up where it stopped."""

import json

import keras
import numpy as np
import pytest

from imet_kit.config import TrainConfig
from imet_kit.training.checkpoint import (
    EpochSeed,
    RunCheckpoint,
    epoch_seed,
    resume_or_build,
    seed_model,
)
from imet_kit.training.rundir import RunDir


def test_epoch_seed_is_deterministic_distinct_and_31_bit():
    seeds = {(s, f, e): epoch_seed(s, f, e) for s in (0, 1, 7) for f in range(5) for e in range(20)}
    assert all(epoch_seed(*k) == v for k, v in seeds.items())  # the same every call
    assert len(set(seeds.values())) == len(seeds)  # no two (seed, fold, epoch) share a seed
    assert all(isinstance(v, int) and 0 <= v < 2**31 for v in seeds.values())
    # pinned, on any machine: a change here makes a run resumed across versions draw other
    # augmentation and dropout than the uninterrupted run would have
    assert (epoch_seed(0, 0, 0), epoch_seed(1, 2, 3)) == (1484405855, 1911094848)


def _noisy_model():
    inp = keras.Input((64,))
    x = keras.layers.Dropout(0.5)(inp)
    x = keras.layers.GaussianNoise(1.0)(x)
    return keras.Model(inp, keras.layers.Dropout(0.3)(x))


def test_seed_model_makes_dropout_repeat_for_the_same_seed():
    model = _noisy_model()
    x = np.ones((4, 64), np.float32)

    def draw(seed):
        seed_model(model, seed)
        return keras.ops.convert_to_numpy(model(x, training=True))

    a = draw(5)
    assert not np.array_equal(a, keras.ops.convert_to_numpy(model(x, training=True)))  # random
    np.testing.assert_array_equal(draw(5), a)  # ... but the same after the same seed
    assert not np.array_equal(draw(6), a)
    other = _noisy_model()  # a freshly built model with other seed generators: same draws
    seed_model(other, 5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(other(x, training=True)), a)


def test_epoch_seed_callback_seeds_each_epoch_from_fold_and_epoch():
    model = _noisy_model()
    x = np.ones((2, 64), np.float32)
    cb = EpochSeed(seed=3, fold=1)
    cb.set_model(model)
    cb.on_epoch_begin(4)
    first = keras.ops.convert_to_numpy(model(x, training=True))
    seed_model(model, epoch_seed(3, 1, 4))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=True)), first)


def _tiny():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.optimizer.build(model.trainable_variables)  # as after a first step: all its slots saved
    return model


def _kernel(path):
    return keras.saving.load_model(path).get_layer("d").get_weights()[0]


def test_run_checkpoint_keeps_the_best_model_last_model_history_and_state(tmp_path):
    run = RunDir(tmp_path)
    model = _tiny()
    cb = RunCheckpoint(run, 0, best=-1.0)
    cb.set_model(model)
    fold = run.fold_dir(0)
    weights = {}
    for epoch, val in enumerate([0.3, 0.2, float("nan"), 0.5]):
        model.get_layer("d").set_weights([np.full((3, 2), epoch, np.float32), np.zeros(2)])
        weights[epoch] = model.get_layer("d").get_weights()[0]
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_f2": val})
        best_epoch = {0: 0, 1: 0, 2: 0, 3: 3}[epoch]  # 0.2 and NaN do not improve on 0.3
        np.testing.assert_array_equal(_kernel(fold / "best.keras"), weights[best_epoch])
        np.testing.assert_array_equal(_kernel(fold / f"last-e{epoch + 1}.keras"), weights[epoch])
        assert not (fold / f"last-e{epoch}.keras").exists()  # one resume checkpoint at a time
    state = json.loads((fold / "state.json").read_text())
    assert state == {"epoch": 4, "best_f2": 0.5, "last": "last-e4.keras", "done": False}
    hist = run.read_history(0)
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3] and hist[1]["val_f2"] == pytest.approx(0.2)
    assert hist[0]["lr"] == pytest.approx(1e-3) and "seconds" in hist[0]
    assert sorted(p.name for p in fold.iterdir()) == [
        "best.keras", "history.jsonl", "last-e4.keras", "state.json"]  # no temporaries


def test_run_checkpoint_other_monitor_and_a_first_epoch_without_it(tmp_path):
    run = RunDir(tmp_path)
    cb = RunCheckpoint(run, 2, best=-1.0, monitor="val_map@10")
    cb.set_model(_tiny())
    cb.on_epoch_end(0, {"loss": 1.0})  # the metric runs every N epochs: not this one
    assert (run.fold_dir(2) / "best.keras").is_file()  # a best model exists from epoch 1 on
    assert run.fold_state(2) == {"epoch": 1, "best_map@10": -1.0, "last": "last-e1.keras",
                                 "done": False}
    cb.on_epoch_end(1, {"loss": 0.5, "val_map@10": 0.25})
    assert run.fold_state(2)["best_map@10"] == 0.25


def test_resume_or_build_builds_a_fresh_fold_and_resumes_a_stopped_one(tmp_path):
    run = RunDir(tmp_path)
    cfg = TrainConfig(epochs=5, mixed_precision="off")
    built = []

    def build():
        built.append(1)
        return _tiny()

    model, _, initial, best = resume_or_build(cfg, run, 0, build, report=None)
    assert (initial, best, len(built)) == (0, -1.0, 1)
    # stopped after epoch 2 of 5 with best 0.4: load its checkpoint, do not build
    model.get_layer("d").set_weights([np.full((3, 2), 7.0, np.float32), np.zeros(2)])
    model.save(run.fold_dir(0) / "last-e2.keras")
    model.save(run.fold_dir(0) / "last-e3.keras")  # saved by a kill before state.json said so
    run.write_fold_state(0, {"epoch": 2, "best_f2": 0.4, "last": "last-e2.keras", "done": False})
    messages = []
    again, _, initial, best = resume_or_build(cfg, run, 0, build, report=messages.append)
    assert (initial, best, len(built)) == (2, 0.4, 1)
    np.testing.assert_array_equal(again.get_layer("d").get_weights()[0], np.full((3, 2), 7.0))
    assert messages == ["fold 0: resuming from epoch 3/5"]
    assert not (run.fold_dir(0) / "last-e3.keras").exists()  # the orphan is removed
    # a state without its checkpoint (killed before the first save): start the fold again
    run.write_fold_state(1, {"epoch": 3, "best_f2": 0.9, "done": False})
    _, _, initial, best = resume_or_build(cfg, run, 1, build, report=None)
    assert (initial, best, len(built)) == (0, -1.0, 2)
