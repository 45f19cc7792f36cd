"""Validation and ``best.keras`` on the weight EMA, in a run that checkpoints and resumes."""

from __future__ import annotations

import keras


class EMASwap(keras.callbacks.SwapEMAWeights):
    """``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`` for a run that checkpoints and resumes.

    At each epoch's end the EMA weights go into the model, so the validation callbacks after this
    one score them and the checkpoint's ``best.keras`` holds what was scored; at the next epoch's
    start the training weights come back. ``last.keras`` is therefore saved in the swapped state
    (model = EMA weights, the optimizer's average slots = training weights), and nothing is lost:
    a fold resumed from it (``resumed=True``) swaps back before its first epoch, so it continues
    exactly as an uninterrupted one. After ``fit`` Keras itself leaves the EMA weights in the model
    (``finalize_variable_values``); a second ``fit`` (after a head warm-up) starts from them.

    Args:
        resumed: the model was loaded from a checkpoint written at an epoch's end.
    """

    def __init__(self, resumed: bool = False):
        super().__init__(swap_on_epoch=True)
        self.resumed = bool(resumed)
        self._ema_weights_in_model = self.resumed

    def on_train_end(self, logs=None):
        # fit() has copied the averages into the model: one set of weights, nothing to swap back
        # (a next fit builds a fresh optimizer whose averages start from the model)
        self._ema_weights_in_model = False
