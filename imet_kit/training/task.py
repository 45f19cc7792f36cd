"""The task interface: what the training engine asks of a task, and the registry of tasks.

The engine (:mod:`imet_kit.training.engine`) walks the folds, creates or resumes the run
folder, checkpoints every epoch and writes the summary; it knows no task. A task supplies the
data, the model, its loss and validation metric, and what a finished fold and a finished run
leave behind. Adding a task means one new module with a :class:`Task` subclass and one line in
:data:`TASKS`; the engine does not change.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imet_kit.errors import InputError, describe_choices

# task name -> "module:Class"; named by string so that this floor imports no task
TASKS = {
    "multilabel": "imet_kit.multilabel.task:MultilabelTask",
    "embedding": "imet_kit.retrieval.task:EmbeddingTask",
}


@dataclass
class TaskData:
    """A task's validated training data, as the engine needs it.

    Attributes:
        ids: one id per training image, in ``train.csv`` order.
        space: the label vocabulary (its ``labels.csv`` is written to the run folder).
        y: multi-hot ``(n, C)`` labels the folds are stratified on.
        paths: one image path per id.
        extra: anything else the task keeps (identity codes, ...).
    """

    ids: list[str]
    space: Any
    y: Any
    paths: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FoldSetup:
    """What a task prepared for one fold: loaders and anything its callbacks need."""

    train: Any
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Task:
    """Base class of a training task. Subclasses set the class attributes and the methods."""

    name: str = ""
    monitor: str = "val_f2"  # the epoch log key that picks best.keras (larger is better)

    @property
    def best_key(self) -> str:
        """The fold state's key for the best monitored value (``best_f2``, ``best_map@10``)."""
        return "best_" + self.monitor.removeprefix("val_")

    def check_config(self, config) -> list[str]:
        """Problems with the task's own config fields, one message each (empty if none)."""
        return []

    def load_data(self, config) -> TaskData:
        raise NotImplementedError

    def on_create(self, run, data: TaskData) -> None:
        """Write task files into a new run folder (after config, labels and folds)."""

    def setup_fold(self, config, data: TaskData, tr: np.ndarray, va: np.ndarray,
                   size: int) -> FoldSetup:
        raise NotImplementedError

    def build_model(self, config, data: TaskData, tr: np.ndarray, size: int):
        raise NotImplementedError

    def compile_model(self, model, config, data: TaskData, optimizer, jit_compile) -> None:
        raise NotImplementedError

    def callbacks(self, model, config, data: TaskData, setup: FoldSetup) -> list:
        """Callbacks that put ``monitor`` into the epoch logs (run before the checkpoint)."""
        return []

    def finish_fold(self, run, k: int, config, data: TaskData, setup: FoldSetup,
                    history: list[dict]) -> dict:
        """Write the fold's outputs (from ``best.keras``); return its result row."""
        raise NotImplementedError

    def describe_fold(self, result: dict) -> str:
        return f"best {self.monitor} {result.get(self.best_key, float('nan')):.4f}"

    def finish(self, run, config, data: TaskData, folds: np.ndarray, results: dict) -> dict:
        """Gather the finished folds into the run's summary (also written to summary.json)."""
        return {"run": str(run.path), "task": self.name, "folds": results}


def get_task(name: str) -> Task:
    """The task registered as ``name``.

    Example:
        >>> get_task("multilabel").monitor
        'val_f2'
    """
    if name not in TASKS:
        raise InputError(f"Unknown task {name!r}. Expected one of: {describe_choices(TASKS)}.")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
