"""The one K-fold training engine: create or resume the run folder, walk the folds, checkpoint
every epoch, let the task finish each fold and the run. It knows no task (see
:mod:`imet_kit.training.task`).

A run survives being killed at any moment: after every epoch the model and its optimizer go to
``fold{k}/last-e{N}.keras`` and the epoch to ``state.json``; ``resume=True`` continues the unfinished
fold from its last finished epoch and skips finished folds.

Folds are independent jobs: each holds its own lock while it trains (:mod:`imet_kit.training.lock`),
so processes on several machines train the folds of one shared run folder at once; the call that
trains the last fold finishes the run (:mod:`imet_kit.training.finish`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack, nullcontext

import numpy as np

from imet_kit.atomic import atomic_write_json, remove_temporaries
from imet_kit.config import TrainConfig
from imet_kit.errors import InputError
from imet_kit.training.optim import jit_compile, make_optimizer, optimizer_callbacks
from imet_kit.training.rundir import RunDir
from imet_kit.training.task import Task, TaskData, get_task

log = logging.getLogger(__name__)

Reporter = Callable[[str], None]


def resolve_size(config: TrainConfig) -> int:
    """The square input side: ``config.image_size`` or the backbone's default."""
    from imet_kit.models.backbones import get_backbone_spec

    return int(config.image_size or get_backbone_spec(config.backbone).default_size)


def fit_phases(model, train_ds, config: TrainConfig, strategy, initial_epoch: int, callbacks: list,
               compile_model: Callable[[], None], verbose="auto", **fit_kwargs) -> None:
    """Fit in up to two phases: an optional head warm-up with the backbone frozen, then all.

    A model resumed from its last checkpoint keeps its compiled optimizer for the phase it resumes in.
    """
    from imet_kit.models.classifier import set_backbone_trainable

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
        model.fit(train_ds, epochs=end, initial_epoch=start, callbacks=callbacks, verbose=verbose,
                  **fit_kwargs)
        start = end
        if model.stop_training:
            break


def train_fold(task: Task, config: TrainConfig, data: TaskData, run: RunDir, k: int,
               folds: np.ndarray, *, report: Reporter | None = None, guard=None) -> dict:
    """Train fold ``k`` (validation = rows with ``folds == k``), resuming from its last epoch.

    Returns:
        The task's result row for the fold (also kept in ``fold{k}/state.json``).
    """
    import keras

    from imet_kit.training.checkpoint import remove_stale_checkpoints, resume_or_build
    from imet_kit.training.hosts import fit_loaders_to_replicas, process_count, process_index

    size = resolve_size(config)
    tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    setup = task.setup_fold(config, data, tr, va, size)
    model, strategy, initial_epoch, best = resume_or_build(
        config, run, k, lambda: task.build_model(config, data, tr, size), report,
        monitor=task.monitor)
    setup.train.epoch = initial_epoch  # shuffling and augmentation: seeded by (seed, epoch, batch)
    fit_loaders_to_replicas([setup.train, *setup.fit_kwargs.values(), *setup.extra.values()],
                            strategy.num_replicas_in_sync,  # no replica ever gets an empty batch
                            even=getattr(strategy, "even_batches", False),  # JAX: splits evenly
                            processes=(process_index(), process_count()))
    with getattr(strategy, "fold_scope", nullcontext)():  # JAX DataParallel: fit and predicts
        finished, epochs = _fit_and_finish(task, config, data, run, k, setup, model, strategy,
                                           initial_epoch, best, report=report, guard=guard)
    result = {"fold": k, **finished, "epochs": epochs, "n_train": int(len(tr)), "n_val": int(len(va))}
    run.write_fold_state(k, {"epoch": epochs, "done": True, **result})
    remove_stale_checkpoints(run.fold_dir(k))  # best is kept; the last checkpoint only resumes
    keras.backend.clear_session()
    return result


def _fit_and_finish(task: Task, config: TrainConfig, data: TaskData, run: RunDir, k: int, setup,
                    model, strategy, initial_epoch: int, best: float, *, report, guard) -> tuple[dict, int]:
    """Fit fold ``k`` and let the task finish it: ``(its result, epochs trained)``."""
    import keras

    from imet_kit.training.checkpoint import EpochSeed, RunCheckpoint
    from imet_kit.training.interrupt import StopOnSignal
    from imet_kit.training.tensorboard import LearningRateLog, fold_tensorboard

    # optimizer callbacks (EMA swap) run before the task's validation, so both it and the
    # checkpoint see the weights that are validated
    # the learning rate joins the epoch logs first; TensorBoard follows the task's callbacks (it
    # writes their val_* logs) and precedes the checkpoint (an epoch redone after a kill
    # overwrites its step rather than leaving a gap)
    callbacks = [EpochSeed(config.seed, k), LearningRateLog(),
                 *optimizer_callbacks(config, resumed=initial_epoch > 0),
                 *task.callbacks(model, config, data, setup)]
    if config.tensorboard:
        callbacks.append(fold_tensorboard(run, k, setup.train, write_images=initial_epoch == 0))
    callbacks.append(RunCheckpoint(run, k, best, monitor=task.monitor))
    if guard is not None:
        callbacks.insert(0, StopOnSignal(guard))
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=task.monitor, mode="max",
                                                       patience=config.patience))

    def compile_model():
        task.compile_model(model, config, data, make_optimizer(config, len(setup.train)),
                           jit_compile(config))

    try:
        fit_phases(model, setup.train, config, strategy, initial_epoch, callbacks, compile_model,
                   verbose=fit_verbosity(report), **setup.fit_kwargs)
    finally:
        if guard is not None:
            guard.in_fit = False
    if guard is not None:
        guard.check()  # a signal during the last epoch's validation: stop before finishing
    history = run.read_history(k)
    return task.finish_fold(run, k, config, data, setup, history), len(history)


def fit_verbosity(report: Reporter | None):
    """Keras' live progress bar on a terminal; one line per epoch in a file or a pipe."""
    if report is None:
        return 0
    return "auto" if sys.stdout.isatty() else 2


def train_cv(config: TrainConfig, *, resume: bool = False, report: Reporter | None = None,
             task: Task | None = None) -> dict:
    """Train every fold (or ``config.train_folds``) of the config's task, then finish the run.

    Each fold trained holds its own lock (``RUN/fold{k}/.lock``), so calls with different
    ``train_folds`` train one run folder at once, from several processes or machines sharing it;
    the first creates the run, the others join it (same config; no ``resume`` needed for folds
    not started yet). The call that trains the last missing fold finishes the run
    (:mod:`imet_kit.training.finish`).

    Args:
        config: the run's configuration (``config.out`` is the run folder, ``config.task`` the
            task: ``multilabel`` chooses thresholds on the out-of-fold predictions,
            ``embedding`` exports an embedding model per fold).
        resume: continue an existing run folder; without it an existing folder is refused,
            unless ``config.train_folds`` names only folds not started yet.
        report: called with one human-readable line per event (fold start / end / skip).
        task: a :class:`~imet_kit.training.task.Task` instance instead of ``config.task``'s.

    Returns:
        The summary dict also written to ``RUN/summary.json``.

    Example:
        >>> cfg = TrainConfig(data="demo_data", out="runs/demo", backbone="tiny_cnn",
        ...                   weights=None, image_size=64, epochs=2, folds=2)
        >>> summary = train_cv(cfg)  # doctest: +SKIP
    """
    from imet_kit.data.images import check_images
    from imet_kit.folds.maker import make_folds
    from imet_kit.training.finish import finish_cv, run_lock
    from imet_kit.training.interrupt import GracefulInterrupts
    from imet_kit.training.lock import RunLock
    from imet_kit.training.start import check_run_folder, clean_failed_start
    from imet_kit.training.validate import check_config

    config = check_config(config, task)  # every name and number, before anything is written
    task = task or get_task(config.task)
    run = RunDir(config.out)
    if run.path.exists() and not run.path.is_dir():
        raise InputError(f"--out '{run.path}' is a file; expected a run folder (new or to resume). "
                         f"Choose another --out.")
    todo = list(config.train_folds) if config.train_folds is not None else list(range(config.folds))
    existed = run.path.is_dir()
    before = set(os.listdir(run.path)) if existed else set()
    check_run_folder(run, config, resume)  # a refusal writes nothing, not even a lock file
    created, creator, mine = False, run_lock(run), {}
    with GracefulInterrupts() as guard, ExitStack() as held:
        try:
            for k in todo:  # a fold another process trains: refused at once
                mine[k] = held.enter_context(RunLock(run.fold_dir(k), what=f"fold {k} of the run"))
            data = task.load_data(config)
            check_images(data.paths, workers=max(2, config.workers))  # headers, before any write
            with creator:  # short: the first process creates the run, the others wait, then join
                for lock in mine.values():
                    lock.ensure_linked()
                check_run_folder(run, config, resume)  # again, now that no one else can change it
                remove_temporaries(run.path, recursive=False)  # what a killed writer left
                if run.exists():
                    run.check_same_labels(data.space, config.data)
                    run.check_same_train_ids(data.ids, config.data)
                    folds = run.load_folds()["fold"].to_numpy()
                else:
                    folds = make_folds(data.y, n_folds=config.folds, method=config.fold_method,
                                       seed=config.seed)
                    created = True
                    run.create(config, data.space, data.ids, folds)  # config.json before training
                    task.on_create(run, data)
            for k in todo:
                remove_temporaries(run.fold_dir(k))  # folds no one else writes while we hold them
            _train_folds(task, config, data, run, folds, todo, report, guard)
            summary = finish_cv(task, config, data, run, folds, report=report)
            if config.refit and summary.get("complete"):
                summary = _refit(task, config, data, run, folds, summary, report, guard)
        except BaseException:
            clean_failed_start(run, config, creator, created=created, existed=existed,
                               before=before, mine=list(mine))
            raise
    return summary


def _refit(task: Task, config: TrainConfig, data: TaskData, run: RunDir, folds: np.ndarray,
           summary: dict, report: Reporter | None, guard) -> dict:
    """After CV: one model on all images into RUN/full (training/refit.py), under its own lock."""
    from imet_kit.training.finish import read_summary, run_lock
    from imet_kit.training.lock import RunLock
    from imet_kit.training.refit import refit_plan

    plan = refit_plan(run, config, report)
    if plan is None:  # a fold is missing after all (cannot happen after a complete finish)
        return summary
    result = plan.result
    if result is None:
        with RunLock(plan.run.fold_dir(plan.fold), what="refit of the run"):
            result = train_fold(task, plan.config, data, plan.run, plan.fold, folds,
                                report=report, guard=guard)
    with run_lock(run):
        summary = {**read_summary(run), "refit": result}
        atomic_write_json(summary, run.summary_path)
    return summary


def _train_folds(task: Task, config: TrainConfig, data: TaskData, run: RunDir, folds: np.ndarray,
                 todo: list[int], report: Reporter | None, guard) -> dict:
    results = {}
    for k in todo:
        if run.fold_done(k):
            res = run.fold_state(k)
            if report:
                report(f"fold {k}: already trained ({task.describe_fold(res)}), skipped")
        else:
            if report:
                report(f"fold {k}: training on {int((folds != k).sum())} images, "
                       f"validating on {int((folds == k).sum())}")
            res = train_fold(task, config, data, run, k, folds, report=report, guard=guard)
            if report:
                report(f"fold {k}: {task.describe_fold(res)} "
                       f"(epoch {res.get('best_epoch', '?')}/{config.epochs})")
        results[str(k)] = res
    return results
