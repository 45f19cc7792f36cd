"""Folds as Ray tasks: ``imet-kit train --executor ray [--ray-address ADDR]``.

Each fold is one Ray task with its own resources (``num_cpus`` / ``num_gpus`` per fold) that
runs the ordinary engine on that fold (``train_cv`` with ``train_folds=(k,)``) into the one run
folder, which every Ray node must see at the same path (a shared file system). The per-fold
locks and the run-level finish (:mod:`imet_kit.training.finish`) do the rest: the first task
creates the run, the others join it, the last one to end finishes it. Ray is optional:
``pip install "imet_kit[ray]"``.

Example:
    >>> cfg = TrainConfig(data="demo_data", out="runs/ray", backbone="tiny_cnn", weights=None,
    ...                   image_size=32, epochs=1, folds=2)
    >>> summary = train_folds_on_ray(cfg, num_cpus=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from imet_kit.config import TrainConfig
from imet_kit.errors import ImetKitError, InputError
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

RAY_HINT = 'pip install "imet_kit[ray]" (or: pip install ray)'


def import_ray():
    """The ``ray`` module, or an ImportError naming the install."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def _train_one_fold(config: dict, resume: bool) -> dict:
    """Runs inside a Ray worker: the engine on one fold (its lines go to the driver's log)."""
    from imet_kit.training.engine import train_cv

    return train_cv(TrainConfig.from_dict(config), resume=resume, report=print)


def train_folds_on_ray(config: TrainConfig, *, resume: bool = False, address: str | None = None,
                       num_cpus: float = 1.0, num_gpus: float = 0.0,
                       report: Callable[[str], None] | None = None) -> dict:
    """Train the config's folds (``config.train_folds`` or all) as Ray tasks; return the summary.

    Args:
        config: the run's configuration; ``config.out`` must be on storage every node sees.
        resume: continue an existing run folder (as ``train --resume``).
        address: a running Ray cluster (``ray://host:10001``, ``auto``); None starts a local one.
        num_cpus, num_gpus: Ray resources each fold's task asks for.
        report: called with one line per fold that ends.

    Returns:
        ``RUN/summary.json`` as the last fold left it.
    """
    from imet_kit.training.finish import read_summary
    from imet_kit.training.start import check_run_folder
    from imet_kit.training.validate import check_config

    if num_cpus <= 0 or num_gpus < 0:
        raise InputError(f"--cpus-per-fold must be > 0 and --gpus-per-fold >= 0; received "
                         f"{num_cpus} and {num_gpus}.")
    ray = import_ray()
    config = check_config(config)
    # a worker's working directory is not the driver's: every path absolute
    paths = {f: os.path.abspath(getattr(config, f)) for f in ("data", "out", "tfrecords", "init_from")
             if getattr(config, f, None)}
    config = config.replace(**paths)
    run = RunDir(config.out)
    check_run_folder(run, config, resume)  # what a local call refuses, before any task starts
    todo = list(config.train_folds) if config.train_folds is not None else list(range(config.folds))
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True)
    try:
        task = ray.remote(_train_one_fold).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                   max_retries=0)
        # each task joins the run (a new fold needs no resume); with resume, each resumes its fold
        pending = {task.remote(config.replace(train_folds=(k,)).to_dict(), resume): k for k in todo}
        errors = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                ray.get(ready[0])
                if report:
                    report(f"ray: fold {k} done")
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                errors.append(cause if isinstance(cause, ImetKitError) else exc)
                if report:
                    report(f"ray: fold {k} failed: {str(cause or exc).splitlines()[0]}")
        if errors:
            raise errors[0]
    finally:
        if started:
            ray.shutdown()
    return read_summary(run)
