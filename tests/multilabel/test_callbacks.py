"""F2Callback: logs Keras callbacks can monitor, the best-epoch weights."""


import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.multilabel.callbacks import F2Callback
from imet_kit.multilabel.thresholds import sweep_thresholds

C = 6
RNG = np.random.default_rng(0)
Y = (RNG.random((48, C)) < 0.3).astype("float32")
Y[np.arange(48), RNG.integers(0, C, 48)] = 1.0
X = Y + RNG.normal(0, 0.1, Y.shape).astype("float32")  # features that reveal the labels


def dense_model():
    model = keras.Sequential([keras.Input((C,)), keras.layers.Dense(C, activation="sigmoid", name="out")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy")
    return model


class SetWeights(keras.callbacks.Callback):
    """Put planned weights in place at each epoch end (the optimizer's rate is 0)."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan

    def on_epoch_end(self, epoch, logs=None):
        self.model.get_layer("out").set_weights([self.plan[epoch], np.full(C, -1.5, "float32")])


PLAN = [RNG.normal(0, 1, (C, C)).astype("float32"), 3 * np.eye(C, dtype="float32")] + [
    -3 * np.eye(C, dtype="float32")
] * 3


def test_best_weights_checkpoint_holds_the_best_epoch(tmp_path):
    best_path = tmp_path / "best.weights.h5"
    f2 = F2Callback((X, Y), best_weights_path=best_path, restore_best_weights=False)
    mc = keras.callbacks.ModelCheckpoint(tmp_path / "mc.weights.h5", monitor="val_f2", mode="max",
                                         save_best_only=True, save_weights_only=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_f2", mode="max", patience=1)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_f2", mode="max", patience=1, min_lr=0.0)
    model = dense_model()
    hist = model.fit(X, Y, epochs=5, batch_size=16, verbose=0, callbacks=[SetWeights(PLAN), f2, mc, stop, plateau])

    scores = hist.history["val_f2"]
    assert len(scores) == 3  # EarlyStopping read val_f2 as "higher is better" and stopped
    assert f2.best_epoch == 1 == int(np.argmax(scores)) and scores[1] > max(scores[0], scores[2])
    assert hist.history["val_threshold"][1] == f2.best_threshold

    for path in (best_path, tmp_path / "mc.weights.h5"):
        fresh = dense_model()
        fresh.load_weights(path)
        np.testing.assert_array_equal(fresh.get_layer("out").get_weights()[0], PLAN[1])
        again = sweep_thresholds(fresh.predict(X, verbose=0), Y)
        assert again.best_score == scores[1] and again.best_threshold == f2.best_threshold
    # the model itself ends with the last epoch's (worse) weights: nothing was restored
    np.testing.assert_array_equal(model.get_layer("out").get_weights()[0], PLAN[2])


def test_restore_best_weights_and_interval(tmp_path):
    f2 = F2Callback((X, Y), interval=2, restore_best_weights=True, train_subset=(X[:20], Y[:20]))
    model = dense_model()
    hist = model.fit(X, Y, epochs=4, verbose=0, callbacks=[SetWeights(PLAN), f2])
    assert [h["epoch"] for h in f2.history] == [1, 3]  # epochs 2 and 4, 0-based 1 and 3
    assert len(hist.history["val_f2"]) == 2 and len(hist.history["train_f2"]) == 2
    assert f2.best_epoch == 1
    np.testing.assert_array_equal(model.get_layer("out").get_weights()[0], PLAN[1])
    # a second fit (fine-tuning after a warm-up) keeps the best seen so far
    model.fit(X, Y, epochs=6, initial_epoch=4, verbose=0, callbacks=[SetWeights(PLAN + PLAN), f2])
    assert f2.best_epoch == 1 and [h["epoch"] for h in f2.history] == [1, 3, 5]


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


class KeepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, **(logs or {})})


def test_pydataset_validation_puts_f2_in_the_logs_later_callbacks_see():
    f2, keep = F2Callback(Batches(X, Y, 10), Y), KeepLogs()
    model = dense_model()
    model.fit(Batches(X, Y, 16), epochs=2, verbose=0, callbacks=[SetWeights(PLAN), f2, keep])
    rows = keep.rows
    assert [r["epoch"] for r in rows] == [1, 2]
    expected = sweep_thresholds(model.predict(X, verbose=0), Y)  # the epoch-2 weights
    assert rows[1]["val_f2"] == expected.best_score and rows[1]["val_threshold"] == expected.best_threshold
    assert "loss" in rows[0]


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="interval"):
        F2Callback((X, Y), interval=0)
    with pytest.raises(InputError, match=r"\.weights\.h5"):
        F2Callback((X, Y), best_weights_path="best.h5")
    with pytest.raises(InputError, match="together with its y"):
        F2Callback(Batches(X, Y, 8))
    f2 = F2Callback((X, Y[:10]))
    f2.set_model(dense_model())
    with pytest.raises(InputError, match="in y's order"):
        f2.on_epoch_end(0, {})


@pytest.mark.parametrize("module", ["imet_kit.multilabel.callbacks"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
