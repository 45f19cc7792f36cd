"""imet_kit.training.ema.EMASwap: validation sees the EMA weights, and a run resumed from a
checkpoint written at an epoch's end continues exactly."""

import keras
import numpy as np

from imet_kit.training.ema import EMASwap

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 4)).astype("float32")
Y = (X @ RNG.normal(size=(4, 2))).astype("float32")
MOMENTUM = 0.8


def _model(weights=None):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.05, use_ema=True, ema_momentum=MOMENTUM), loss="mse")
    return model


class Record(keras.callbacks.Callback):
    """What a validation callback placed after the swap sees: the weights at each epoch's end,
    and (on batch ends) the training weights."""

    def __init__(self, save_to=None, save_at=None):
        super().__init__()
        self.epoch_end, self.steps, self.save_to, self.save_at = [], [], save_to, save_at

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([w.copy() for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append([w.copy() for w in self.model.get_weights()])
        if epoch == self.save_at:
            self.model.save(self.save_to)  # as RunCheckpoint writes last.keras


def _fit(model, callbacks, epochs, initial_epoch=0):
    model.fit(X, Y, batch_size=6, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
              verbose=0, callbacks=callbacks)


def test_validation_sees_the_ema_of_the_training_weights():
    start = _model().get_weights()
    rec = Record()
    _fit(_model(start), [EMASwap(), rec], epochs=2)
    ema = None
    for i, w in enumerate(rec.steps):  # Keras: the average starts at the first step's weights
        ema = w if ema is None else [MOMENTUM * a + (1 - MOMENTUM) * b for a, b in zip(ema, w)]
        if (i + 1) % 4 == 0:  # 4 batches per epoch
            for got, want in zip(rec.epoch_end[i // 4], ema):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(rec.epoch_end[0][0], rec.steps[3][0])  # the EMA, not the last step


def test_resume_from_an_epoch_end_checkpoint_is_exact(tmp_path):
    start = _model().get_weights()
    path = tmp_path / "last.keras"
    full = Record(path, save_at=1)  # last.keras after epoch 2 of 4, as if killed there
    model = _model(start)
    _fit(model, [EMASwap(), full], epochs=4)
    resumed = Record()
    again = keras.saving.load_model(path)
    _fit(again, [EMASwap(resumed=True), resumed], epochs=4, initial_epoch=2)
    for got, want in zip(resumed.epoch_end, full.epoch_end[2:]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    for g, w in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    naive = Record()  # without resumed=True the swapped checkpoint trains on from the EMA
    _fit(keras.saving.load_model(path), [EMASwap(), naive], epochs=4, initial_epoch=2)
    assert not np.allclose(naive.epoch_end[-1][0], full.epoch_end[-1][0], atol=1e-6)


def test_a_second_fit_starts_from_the_ema_weights():
    """A head warm-up then fine-tuning: two fits, the second with a fresh optimizer."""
    model = _model()
    swap = EMASwap()
    _fit(model, [swap], epochs=1)
    after_first = [w.copy() for w in model.get_weights()]
    assert swap._ema_weights_in_model is False
    model.compile(optimizer=keras.optimizers.SGD(0.05, use_ema=True, ema_momentum=MOMENTUM), loss="mse")
    rec = Record()
    _fit(model, [swap, rec], epochs=2, initial_epoch=1)
    assert np.isfinite(rec.epoch_end[0][0]).all()
    assert not np.allclose(rec.steps[0][0], 0)  # not swapped with the new optimizer's empty slots
    assert np.abs(rec.steps[0][0] - after_first[0]).max() < 0.5
