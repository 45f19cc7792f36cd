"""What the engine saves every epoch, and how a fold picks up from it.

After each epoch :class:`RunCheckpoint` writes ``fold{k}/last-e{N}.keras`` (model and optimizer after N epochs; state.json names it),
``best.keras`` when the monitored value improved, a ``history.jsonl`` row and ``state.json``,
each to a temporary name and renamed. :func:`resume_or_build` loads that checkpoint when a fold
stopped midway. :class:`EpochSeed` seeds every epoch from (seed, fold, epoch), so a fold resumed
at epoch e continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import keras
import numpy as np

from imet_kit.atomic import atomic_save_model
from imet_kit.models.loading import load_model
from imet_kit.training import schedules  # noqa: F401  (registers the schedule a checkpoint holds)
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

Reporter = Callable[[str], None]


def last_checkpoint_name(epochs_done: int) -> str:
    """The resume checkpoint after ``epochs_done`` finished epochs."""
    return f"last-e{int(epochs_done)}.keras"


def remove_stale_checkpoints(fold, keep: str | None = None) -> None:
    """Delete resume checkpoints other than ``keep`` (all of them with ``keep=None``)."""
    for p in fold.glob("last-e*.keras"):
        if p.name != keep:
            p.unlink(missing_ok=True)


def epoch_seed(seed: int, fold: int, epoch: int) -> int:
    """The seed of one epoch of one fold (a 31-bit integer)."""
    return int(np.random.SeedSequence([seed, fold, epoch]).generate_state(1)[0] >> 1)


def seed_model(model, seed: int) -> None:
    """Reset the global RNGs and every layer's seed generator (dropout, random augmentation
    layers) from ``seed``: what happens next depends only on the seed, not on the past."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for gen in getattr(layer, "_seed_generators", []) or []:
            state = gen.state
            state.assign(np.asarray(rng.integers(0, 2**31 - 1, size=state.shape),
                                    dtype=keras.backend.standardize_dtype(state.dtype)))


class EpochSeed(keras.callbacks.Callback):
    """Seed each epoch from (seed, fold, epoch): resumed training equals uninterrupted."""

    def __init__(self, seed: int, fold: int) -> None:
        super().__init__()
        self.seed, self.fold = seed, fold

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        seed_model(self.model, epoch_seed(self.seed, self.fold, epoch))


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch save best / last model, history and state atomically.

    ``best.keras`` follows the largest ``monitor`` (``val_f2`` for the classifier,
    ``val_map@10`` for the embedding task); the state keeps it as ``best_<name>``.
    """

    def __init__(self, run: RunDir, k: int, best: float, monitor: str = "val_f2") -> None:
        super().__init__()
        self.run, self.k, self.best, self.monitor = run, k, best, monitor
        self.state_key = "best_" + monitor.removeprefix("val_")
        self.t0 = time.time()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.t0 = time.time()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = dict(logs or {})
        value = logs.get(self.monitor)
        fold = self.run.fold_dir(self.k)
        improved = value is not None and value > self.best  # NaN never improves
        if improved:
            self.best = float(value)
        if improved or not (fold / "best.keras").exists():
            atomic_save_model(self.model, fold / "best.keras")
        # the resume checkpoint is named after its epoch and state.json points at it, so a kill
        # between the two writes leaves the previous (checkpoint, state) pair consistent
        last = last_checkpoint_name(epoch + 1)
        atomic_save_model(self.model, fold / last)
        row = {"epoch": epoch, "seconds": round(time.time() - self.t0, 1),
               **{k: float(v) for k, v in logs.items() if np.ndim(v) == 0}}
        try:
            row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # noqa: BLE001 - lr is informative only
            pass
        self.run.append_history(self.k, row)
        self.run.write_fold_state(self.k, {"epoch": epoch + 1, self.state_key: self.best,
                                           "last": last, "done": False})
        remove_stale_checkpoints(fold, keep=last)


def resume_or_build(config, run: RunDir, k: int, build: Callable[[], object],
                    report: Reporter | None, monitor: str = "val_f2"):
    """Set precision and seed for fold ``k``, then load its last checkpoint (weights + optimizer) if the
    fold stopped midway, else ``build()`` the model, both under the distribution strategy.

    Returns:
        ``(model, strategy, initial_epoch, best)``: ``best`` is the fold's best ``monitor`` so far
        (-1 for a fresh fold).
    """
    from imet_kit.training.devices import get_strategy
    from imet_kit.training.precision import set_precision

    set_precision("float32" if config.mixed_precision == "off" else config.mixed_precision)
    keras.utils.set_random_seed(config.seed * 1000 + k)
    fold = run.fold_dir(k)
    fold.mkdir(parents=True, exist_ok=True)
    state = run.fold_state(k)
    last = fold / str(state.get("last", last_checkpoint_name(state.get("epoch", 0))))
    initial_epoch = int(state.get("epoch", 0)) if last.is_file() and not state.get("done") else 0
    remove_stale_checkpoints(fold, keep=last.name if initial_epoch else None)
    best = float(state.get("best_" + monitor.removeprefix("val_"), -1.0)) if initial_epoch else -1.0
    strategy = get_strategy(config.distribution)
    n = strategy.num_replicas_in_sync
    if report and n > 1:
        report(f"fold {k}: {type(strategy).__name__} over {n} replicas, global batch "
               f"{config.batch_size} = {config.batch_size // n} per replica")
    with strategy.scope():
        if initial_epoch:
            model = load_model(last)
            log.info("fold %d: resuming after epoch %d (best %s %.4f)", k, initial_epoch, monitor, best)
            if report:
                report(f"fold {k}: resuming from epoch {initial_epoch + 1}/{config.epochs}")
        else:
            model = build()
    return model, strategy, initial_epoch, best
