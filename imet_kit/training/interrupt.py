"""Ctrl-C and SIGTERM during training: stop at the next batch boundary, keep what a resume needs.

Inside :class:`GracefulInterrupts`, the first SIGINT / SIGTERM only raises a flag while Keras is
inside ``fit``; :class:`StopOnSignal` raises :class:`~imet_kit.errors.TrainingInterrupted` at the
end of the current batch, so the epoch being trained is dropped whole (its checkpoint is never
half-written) and ``--resume`` restarts it exactly. Outside ``fit`` (loading data, building a
model, writing the summary) the signal interrupts at once; every file is written atomically, so
nothing is left half-written either way. A second signal stops immediately.
"""

from __future__ import annotations

import signal
import sys
import threading

import keras

from imet_kit.errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupts:
    """Context manager installing the SIGINT / SIGTERM handlers (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_fit = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = signum
        if not (first and self.in_fit):
            raise TrainingInterrupted(signum)

    def check(self) -> None:
        """Raise if a signal arrived (call between steps that must not be cut)."""
        if self.signum is not None:
            raise TrainingInterrupted(self.signum)

    def _unraisable(self, info) -> None:
        # a signal landing inside a weakref / __del__ callback raises where Python can only
        # print "Exception ignored": the flag is set, so the next batch end or check() raises it
        if not isinstance(info.exc_value, TrainingInterrupted):
            self._old_hook(info)

    def __enter__(self) -> GracefulInterrupts:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
            self._old_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        if self._old:
            sys.unraisablehook = self._old_hook
        self._old.clear()


class StopOnSignal(keras.callbacks.Callback):
    """Raise at the end of the batch during which a signal arrived (see the module doc)."""

    def __init__(self, guard: GracefulInterrupts) -> None:
        super().__init__()
        self.guard = guard

    def on_train_begin(self, logs=None) -> None:
        self.guard.in_fit = True

    def on_train_end(self, logs=None) -> None:
        self.guard.in_fit = False

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.guard.signum is not None:
            self.guard.in_fit = False
            raise TrainingInterrupted(self.guard.signum)
