"""Starting a run: continue it (``resume``), join it (``--fold k`` of folds not started), or
refuse; and after a failed start, leave the folder as it was unless someone else works in it.

Example:
    >>> import tempfile
    >>> check_run_folder(RunDir(tempfile.mkdtemp()), TrainConfig(weights=None), resume=False)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import fields

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError, RunLockedError
from imet_kit.training.lock import lock_holder
from imet_kit.training.rundir import RunDir

# where the data lives, how fast it loads and which folds this call trains may change on resume;
# what is learned may not
# (tensorboard only adds output files; distribution: a run may resume on a machine with another
# device count, batch_size staying the global batch)
RESUME_FREE_FIELDS = ("data", "out", "train_folds", "workers", "use_multiprocessing", "refit",
                      "tensorboard", "distribution")


def check_resume_config(saved: TrainConfig, given: TrainConfig, joining: bool = False) -> None:
    """Refuse to continue (or join, with ``--fold``) a run with settings that change what is
    learned."""
    diff = [f.name for f in fields(TrainConfig)
            if f.name not in RESUME_FREE_FIELDS and getattr(saved, f.name) != getattr(given, f.name)]
    if not diff:
        return
    saved_text = ", ".join(f"{d}={getattr(saved, d)!r}" for d in diff)
    if joining:
        raise InputError(
            f"--fold joins the run in '{given.out}' only with its saved config, but "
            f"{', '.join(diff)} differ (saved: {saved_text}). Use the flags the run was started "
            f"with (or --resume, which takes them from the run), or choose another --out."
        )
    raise InputError(
        f"--resume continues a run with its saved config, but {', '.join(diff)} differ "
        f"(saved: {saved_text}). Drop those flags, or start a new run with another --out."
    )


def check_run_folder(run: RunDir, config: TrainConfig, resume: bool) -> None:
    """An existing run is continued with ``resume``, or joined by ``--fold k`` of folds not
    started yet (same config either way)."""
    if not run.exists():
        return
    if not resume:
        if config.train_folds is None:
            raise InputError(f"Run folder '{run.path}' already holds a run. Pass --resume to "
                             f"continue it, or choose another --out.")
        for k in config.train_folds:
            state = run.fold_state(k)
            if state:
                holder = lock_holder(run.fold_dir(k))
                what = f"is being trained by {holder}" if holder else (
                    "is trained" if state.get("done") else f"has {state.get('epoch', 0)} epochs saved")
                raise InputError(f"Run folder '{run.path}' already holds a run whose fold {k} "
                                 f"{what}. Pass --resume to continue it, or choose another --out.")
    check_resume_config(run.load_config(), config, joining=not resume)


def _any_epoch_done(run: RunDir, config: TrainConfig) -> bool:
    return any((run.fold_dir(k) / "state.json").is_file() for k in range(config.folds))


def clean_failed_start(run: RunDir, config: TrainConfig, creator, *, created: bool,
                       existed: bool, before: set[str], mine: list[int]) -> None:
    """After a failure: leave a run with no finished epoch as it was before this call (gone if it
    was new), unless another process works in it; then remove only the folders of the fold locks
    this call held (``mine``). A run with a finished epoch stays, to resume."""
    if _any_epoch_done(run, config) or not run.path.is_dir():
        return
    if created or not existed:
        try:
            creator.wait = 0.0  # released by now: a holder is another process
            creator.acquire()
        except RunLockedError:  # someone is creating or finishing the run: it is theirs too
            pass
        else:
            try:
                if not any(lock_holder(run.fold_dir(k)) for k in range(config.folds)
                           if k not in mine):
                    _remove_new_entries(run.path, existed, before)
                    return
            finally:
                creator.release()
    for k in mine:  # a folder holding nothing but this call's lock
        fold = run.fold_dir(k)
        if fold.is_dir() and os.listdir(fold) == [".lock"]:
            os.unlink(fold / ".lock")
            with contextlib.suppress(OSError):
                fold.rmdir()


def _remove_new_entries(folder, existed: bool, before: set[str]) -> None:
    """Leave ``folder`` as it was before the call: gone if it was new, else without new entries."""
    if not existed:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in set(os.listdir(folder)) - before:
        path = os.path.join(folder, name)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
