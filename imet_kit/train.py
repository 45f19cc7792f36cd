"""K-fold training: ``train_fold`` for one fold, ``train_cv`` for the whole run.

A run survives being killed at any moment: after every epoch the model and its
optimizer go to ``fold{k}/last.keras`` and the epoch to ``state.json`` (both written
to a temporary file, then renamed); ``resume=True`` continues the unfinished fold
from its last finished epoch and skips finished folds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import fields

import numpy as np

from .config import TrainConfig, atomic_write_json
from .errors import InputError
from .labels import ImetDataset, load_dataset
from .runs import RunDir, atomic_save_model, atomic_save_npy, load_model

log = logging.getLogger(__name__)

Reporter = Callable[[str], None]


def _keras():
    import keras

    return keras


def resolve_size(config: TrainConfig) -> int:
    from .models.backbones import get_backbone_spec

    return int(config.image_size or get_backbone_spec(config.backbone).default_size)


def _make_optimizer(config: TrainConfig, steps_per_epoch: int):
    keras = _keras()
    lr = config.lr
    if config.lr_schedule == "cosine":
        from .schedules import WarmupCosineSchedule

        total = steps_per_epoch * config.epochs
        lr = WarmupCosineSchedule(peak_lr=config.lr, total_steps=total,
                                  warmup_steps=int(config.warmup_epochs * steps_per_epoch))
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(learning_rate=lr)


def _compile(model, config: TrainConfig, steps_per_epoch: int) -> None:
    from .distribute import default_jit_compile
    from .losses import get_loss

    jit = {"auto": default_jit_compile(), "on": True, "off": False}[config.jit_compile]
    model.compile(optimizer=_make_optimizer(config, steps_per_epoch), loss=get_loss(config.loss),
                  jit_compile=jit)


class _RunCheckpoint:
    """Keras callback: after each epoch save best / last model, history and state atomically.

    ``best.keras`` follows the largest ``monitor`` (``val_f2`` for the classifier,
    ``val_map@10`` for the embedding task); the state keeps it as ``best_<name>``
    (``best_f2``, ``best_map@10``).
    """

    def __new__(cls, *args, **kwargs):  # build lazily so importing train.py does not load Keras
        keras = _keras()

        class RunCheckpoint(keras.callbacks.Callback):
            def __init__(self, run: RunDir, k: int, best: float, report: Reporter | None,
                         monitor: str = "val_f2") -> None:
                super().__init__()
                self.run, self.k, self.best, self.report = run, k, best, report
                self.monitor = monitor
                self.state_key = "best_" + monitor.removeprefix("val_")
                self.t0 = time.time()

            def on_epoch_end(self, epoch: int, logs=None) -> None:
                logs = dict(logs or {})
                value = logs.get(self.monitor)
                fold = self.run.fold_dir(self.k)
                improved = value is not None and value > self.best  # NaN never improves
                if improved:
                    self.best = float(value)
                    atomic_save_model(self.model, fold / "best.keras")
                elif not (fold / "best.keras").exists():
                    atomic_save_model(self.model, fold / "best.keras")
                atomic_save_model(self.model, fold / "last.keras")
                row = {"epoch": epoch, "seconds": round(time.time() - self.t0, 1),
                       **{k: float(v) for k, v in logs.items() if np.ndim(v) == 0}}
                try:
                    row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                except Exception:  # noqa: BLE001 - lr is informative only
                    pass
                self.run.append_history(self.k, row)
                self.run.write_fold_state(self.k, {"epoch": epoch + 1, self.state_key: self.best,
                                                   "done": False})
                self.t0 = time.time()

        return RunCheckpoint(*args, **kwargs)


def _datasets(config: TrainConfig, ds: ImetDataset, tr: np.ndarray, va: np.ndarray, size: int):
    from .dataset import ImageDataset

    y = np.asarray(ds.train.y)
    paths = np.asarray(ds.train_paths)
    common = {"size": size, "batch_size": config.batch_size, "workers": config.workers,
              "use_multiprocessing": config.use_multiprocessing}
    train = ImageDataset(paths[tr].tolist(), y[tr], augment=config.augment, shuffle=True,
                         seed=config.seed, **common)
    val = ImageDataset(paths[va].tolist(), None, augment=None, shuffle=False, **common)
    return train, val, y[va]


def resume_or_build(config: TrainConfig, run: RunDir, k: int, build: Callable[[], object],
                    report: Reporter | None, monitor: str = "val_f2"):
    """Set precision and seed for fold ``k``, then load ``last.keras`` (weights + optimizer) if the
    fold stopped mid-way, else ``build()`` the model, both under the distribution strategy.

    Returns:
        ``(model, strategy, initial_epoch, best)``: ``best`` is the fold's best ``monitor`` so far
        (-1 for a fresh fold), as :class:`_RunCheckpoint` keeps it.
    """
    keras = _keras()
    from .distribute import get_strategy, set_precision

    set_precision("float32" if config.mixed_precision == "off" else config.mixed_precision)
    keras.utils.set_random_seed(config.seed * 1000 + k)
    fold = run.fold_dir(k)
    fold.mkdir(parents=True, exist_ok=True)
    state = run.fold_state(k)
    initial_epoch = int(state.get("epoch", 0)) if (fold / "last.keras").is_file() else 0
    best = float(state.get("best_" + monitor.removeprefix("val_"), -1.0)) if initial_epoch else -1.0
    strategy = get_strategy("auto")
    with strategy.scope():
        if initial_epoch:
            model = load_model(fold / "last.keras")
            log.info("fold %d: resuming after epoch %d (best %s %.4f)", k, initial_epoch, monitor, best)
            if report:
                report(f"fold {k}: resuming from epoch {initial_epoch + 1}/{config.epochs}")
        else:
            model = build()
    return model, strategy, initial_epoch, best


def fit_phases(model, train_ds, config: TrainConfig, strategy, initial_epoch: int, callbacks: list,
               compile_model: Callable[[], None], report: Reporter | None, **fit_kwargs) -> None:
    """Fit in up to two phases: an optional head warm-up with the backbone frozen, then all.

    A model resumed from ``last.keras`` keeps its compiled optimizer for the phase it resumes in.
    """
    from .models.classifier import set_backbone_trainable

    phases = [(False, config.head_warmup_epochs)] if config.head_warmup_epochs else []
    phases.append((True, config.epochs))
    start = initial_epoch
    for trainable, end in phases:
        if start >= end:
            continue
        if not (initial_epoch and start == initial_epoch):
            with strategy.scope():
                if config.head_warmup_epochs:
                    # pretrained BatchNorm statistics stay frozen; random-init ones must learn
                    set_backbone_trainable(model, trainable,
                                           freeze_batchnorm=config.weights is not None)
                compile_model()
        model.fit(train_ds, epochs=end, initial_epoch=start, callbacks=callbacks,
                  verbose="auto" if report else 0, **fit_kwargs)
        start = end
        if model.stop_training:
            break


def train_fold(config: TrainConfig, ds: ImetDataset, run: RunDir, k: int, folds: np.ndarray,
               *, report: Reporter | None = None) -> dict:
    """Train fold ``k`` (validation = rows with ``folds == k``), resuming from its last epoch.

    Returns:
        ``{"fold": k, "best_f2": ..., "best_threshold": ..., "epochs": ...}``
    """
    keras = _keras()
    from .callbacks import F2Callback
    from .models.classifier import build_classifier

    size = resolve_size(config)
    tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    train_ds, val_ds, y_val = _datasets(config, ds, tr, va, size)
    fold = run.fold_dir(k)
    model, strategy, initial_epoch, best_f2 = resume_or_build(
        config, run, k, lambda: build_classifier(
            config.backbone, ds.space.n_classes, input_size=size, weights=config.weights,
            pooling=config.pooling, embedding_dim=config.embedding_dim, dropout=config.dropout),
        report)
    train_ds.epoch = initial_epoch  # shuffling and augmentation are seeded by (seed, epoch, batch)
    callbacks = [F2Callback(val_ds, y_val, interval=config.f2_interval, min_labels=config.min_labels,
                            max_labels=config.max_labels),
                 _RunCheckpoint(run, k, best_f2, report)]
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_f2", mode="max",
                                                       patience=config.patience))
    fit_phases(model, train_ds, config, strategy, initial_epoch, callbacks,
               lambda: _compile(model, config, len(train_ds)), report)
    best = load_model(fold / "best.keras", compile=False)
    probs = best.predict(val_ds, verbose=0).astype(np.float32)
    atomic_save_npy(probs, fold / "oof.npy")
    history = run.read_history(k)
    best_row = max((r for r in history if "val_f2" in r), key=lambda r: r["val_f2"], default={})
    result = {"fold": k, "best_f2": float(best_row.get("val_f2", float("nan"))),
              "best_threshold": float(best_row.get("val_threshold", float("nan"))),
              "best_epoch": int(best_row.get("epoch", -1)) + 1, "epochs": len(history),
              "n_train": int(len(tr)), "n_val": int(len(va))}
    run.write_fold_state(k, {"epoch": len(history), "best_f2": result["best_f2"], "done": True,
                             **result})
    (fold / "last.keras").unlink(missing_ok=True)  # the best model is kept; last only serves resume
    keras.backend.clear_session()
    return result


def _check_resume_config(saved: TrainConfig, given: TrainConfig) -> None:
    # where the data lives and how fast it loads may change; what is learned may not
    free = ("data", "out", "train_folds", "workers", "use_multiprocessing")
    diff = [f.name for f in fields(TrainConfig)
            if f.name not in free and getattr(saved, f.name) != getattr(given, f.name)]
    if diff:
        raise InputError(
            f"--resume continues a run with its saved config, but {', '.join(diff)} differ "
            f"(saved: {', '.join(f'{d}={getattr(saved, d)!r}' for d in diff)}). Drop those flags, "
            f"or start a new run with another --out."
        )


def train_cv(config: TrainConfig, *, resume: bool = False, report: Reporter | None = None) -> dict:
    """Train every fold (or ``config.train_folds``), then choose thresholds on the OOF predictions.

    Args:
        config: the run's configuration (``config.out`` is the run folder).
        resume: continue an existing run folder; without it an existing folder is refused.
        report: called with one human-readable line per event (fold start / end / skip).

    Returns:
        The summary dict also written to ``RUN/summary.json``.

    Example:
        >>> cfg = TrainConfig(data="demo_data", out="runs/demo", backbone="tiny_cnn",
        ...                   weights=None, image_size=64, epochs=2, folds=2)
        >>> summary = train_cv(cfg)  # doctest: +SKIP
    """
    from .folds import make_folds
    from .oof import finish_run

    config = config.validated()
    run = RunDir(config.out)
    if run.exists() and not resume:
        raise InputError(
            f"Run folder '{run.path}' already holds a run. Pass --resume to continue it, or "
            f"choose another --out."
        )
    if run.exists():
        _check_resume_config(run.load_config(), config)
    ds = load_dataset(config.data)
    if run.exists():
        run.check_same_labels(ds.space, config.data)
        run.check_same_train_ids(ds.train.ids, config.data)
        folds = run.load_folds()["fold"].to_numpy()
    else:
        folds = make_folds(ds.train.y, n_folds=config.folds, method=config.fold_method,
                           seed=config.seed)
        run.create(config, ds.space, ds.train.ids, folds)  # config.json before any training
    todo = list(config.train_folds) if config.train_folds is not None else list(range(config.folds))
    results = []
    for k in todo:
        if run.fold_done(k):
            res = run.fold_state(k)
            if report:
                report(f"fold {k}: already trained (best F2 {res.get('best_f2', float('nan')):.4f}), skipped")
            results.append(res)
            continue
        if report:
            report(f"fold {k}: training on {int((folds != k).sum())} images, "
                   f"validating on {int((folds == k).sum())}")
        res = train_fold(config, ds, run, k, folds, report=report)
        if report:
            report(f"fold {k}: best F2 {res['best_f2']:.4f} at threshold "
                   f"{res['best_threshold']:.2f} (epoch {res['best_epoch']}/{config.epochs})")
        results.append(res)
    summary = finish_run(run, ds, folds, config)
    atomic_write_json(summary, run.summary_path)
    return summary
