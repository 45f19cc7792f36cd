"""The run's finish step: gather the folds into the run's outputs, once, under the run-level lock.

Folds are independent jobs (``imet-kit train --fold k`` on several machines into one shared run
folder). Each call that trains a fold ends with :func:`finish_cv`: it takes ``RUN/.lock`` and

* when every fold is done and the run is not finished yet, lets the task finish the run (the
  classifier: OOF, thresholds, plots) and writes ``summary.json`` with ``"complete": true``.
  Two folds ending at the same moment finish it once: the second call waits for the lock, then
  finds the run finished;
* when folds remain, finishes what is there (as a single-fold run always did: thresholds on
  the OOF rows trained so far, so ``predict`` works) and writes ``"complete": false`` and
  ``"missing_folds"``, then says which folds remain.

:func:`finish_run_folder` (``imet-kit finish RUN``) finishes a run whose folds are all done,
e.g. after the process of the last fold was killed while finishing.

Example:
    >>> import tempfile
    >>> missing_folds(RunDir(tempfile.mkdtemp()), 3)
    [0, 1, 2]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np

from imet_kit.atomic import atomic_write_json, remove_temporaries
from imet_kit.config import TrainConfig
from imet_kit.errors import InputError
from imet_kit.training import lock as locks
from imet_kit.training.refit import full_model_path
from imet_kit.training.rundir import RunDir
from imet_kit.training.task import Task, TaskData, get_task

Reporter = Callable[[str], None]


def missing_folds(run: RunDir, n_folds: int) -> list[int]:
    """The folds of ``0..n_folds-1`` that are not trained to the end yet."""
    return [k for k in range(n_folds) if not run.fold_done(k)]


def run_lock(run: RunDir) -> locks.RunLock:
    """The run-level lock (create, finish), waiting up to ``RUN_LOCK_WAIT_S`` for a holder."""
    return locks.RunLock(run.path, wait=locks.RUN_LOCK_WAIT_S)


def read_summary(run: RunDir) -> dict:
    try:
        return json.loads(run.summary_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def finish_cv(task: Task, config: TrainConfig, data: TaskData, run: RunDir, folds: np.ndarray, *,
              report: Reporter | None = None, force: bool = False) -> dict:
    """Finish the run (see the module doc) and return its summary.

    Args:
        force: finish again even if ``summary.json`` says the run is finished.
    """
    say = report or (lambda line: None)
    with run_lock(run):
        remove_temporaries(run.path, recursive=False)  # root files are written under this lock
        remove_temporaries(run.plots_dir)
        missing = missing_folds(run, config.folds)
        summary = read_summary(run)
        if not missing and summary.get("complete") and not force:
            say(f"run: already finished ({run.summary_path})")
            return summary
        done = {str(k): run.fold_state(k) for k in range(config.folds) if k not in missing}
        old, summary = summary, task.finish(run, config, data, folds, done)
        if "refit" in old and not missing:  # trained after the folds; finishing again keeps it
            summary["refit"] = old["refit"]
        summary["complete"] = not missing
        if missing:
            summary["missing_folds"] = missing
        atomic_write_json(summary, run.summary_path)
    if missing:
        say(f"run: folds {', '.join(map(str, missing))} of 0..{config.folds - 1} remain; the call "
            f"that trains the last of them finishes the run (or: imet-kit finish {run.path})")
    else:
        say(f"run: finished, all {config.folds} folds gathered into {run.summary_path}")
    return summary


def finish_run_folder(path: str | os.PathLike, *, data: str | None = None,
                      report: Reporter | None = None, task: Task | None = None) -> dict:
    """Finish the run in ``path`` whose folds are all trained (``imet-kit finish RUN``).

    Args:
        path: the run folder.
        data: the dataset folder, if it moved since training (default: the run's config).
        report: called with one line per event.

    Returns:
        The summary also written to ``RUN/summary.json`` (finished again if it was finished).

    Raises:
        InputError: a fold is not trained to the end (the message lists them), or the data
            is not the run's.
    """
    run = RunDir(path)
    if not run.path.is_dir():
        raise InputError(f"Run folder '{run.path}' does not exist. Expected the --out folder of "
                         f"`imet-kit train`.")
    config = run.load_config()
    if data is not None:
        config = config.replace(data=str(data))
    missing = missing_folds(run, config.folds)
    if missing:
        busy = {k: h for k in missing if (h := locks.lock_holder(run.fold_dir(k)))}
        names = ", ".join(f"{k} (being trained by {busy[k]})" if k in busy else str(k)
                          for k in missing)
        flags = " ".join(f"--fold {k}" for k in missing if k not in busy)
        fix = (f"train them (imet-kit train --out {run.path} --resume {flags}), then rerun"
               if flags else "wait for them (the last one finishes the run) or rerun this then")
        raise InputError(f"Run '{run.path}' cannot be finished: folds {names} of "
                         f"0..{config.folds - 1} are not trained yet. Expected every fold done; "
                         f"{fix}.")
    task = task or get_task(config.task)
    loaded = task.load_data(config)
    run.check_same_labels(loaded.space, config.data)
    run.check_same_train_ids(loaded.ids, config.data)
    folds = run.load_folds()["fold"].to_numpy()
    summary = finish_cv(task, config, loaded, run, folds, report=report, force=True)
    if config.refit and not full_model_path(run).is_file() and report:
        report(f"refit: not trained yet; imet-kit train --out {run.path} --resume trains it")
    return summary
