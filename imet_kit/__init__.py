"""imet_kit: multi-label fine-grained image classification and retrieval on Keras 3.

The notebook face: everything a notebook needs, importable from the package itself, and cheap
to import (TensorFlow / Keras load only when a model, dataset or training function is used)::

    from imet_kit import TrainConfig, load_dataset, make_folds, train, predict, evaluate

    cfg = TrainConfig(data="demo_data", out="runs/b3", folds=5)
    summary = train(cfg, resume=True, report=print)
    pred = predict("runs/b3", "demo_data", tta=4, out="submission.csv")

The package's floors, from the top: ``cli`` -> ``multilabel`` / ``retrieval`` (the tasks) ->
``training`` (the engine) -> ``data`` / ``folds`` / ``models`` -> ``plots`` / ``config`` /
``errors``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> "module:attribute", imported on first use
_LAZY = {
    "TrainConfig": "imet_kit.config:TrainConfig",
    "load_dataset": "imet_kit.data.folder:load_dataset",
    "make_demo_dataset": "imet_kit.data.demo:make_demo_dataset",
    "dataset_report": "imet_kit.data.stats:dataset_report",
    "make_folds": "imet_kit.folds.maker:make_folds",
    "fold_report": "imet_kit.folds.report:fold_report",
    "ImageDataset": "imet_kit.data.dataset:ImageDataset",
    "build_classifier": "imet_kit.models.classifier:build_classifier",
    "load_model": "imet_kit.models.loading:load_model",
    "train_cv": "imet_kit.training.engine:train_cv",
    "predict": "imet_kit.multilabel.predict:predict",
    "evaluate": "imet_kit.multilabel.evaluate:evaluate",
    "score_labels": "imet_kit.multilabel.evaluate:score_labels",
    "format_scores": "imet_kit.multilabel.evaluate:format_scores",
    "holdout_baseline": "imet_kit.multilabel.evaluate:holdout_baseline",
    "fbeta_samples": "imet_kit.multilabel.metrics:fbeta_samples",
    "binarize": "imet_kit.multilabel.thresholds:binarize",
    # for a notebook: reading files, the text reports, and the figures (each writes a PNG and
    # returns its path; show it inline with IPython.display.Image)
    "read_image": "imet_kit.data.images:read_image",
    "read_annotations": "imet_kit.data.labels:read_annotations",
    "format_dataset_report": "imet_kit.data.stats:format_report",
    "fold_label_counts": "imet_kit.folds.report:fold_label_counts",
    "format_fold_report": "imet_kit.folds.report:format_report",
    "plot_label_frequency": "imet_kit.plots.data:plot_label_frequency",
    "plot_batch_grid": "imet_kit.plots.data:plot_batch_grid",
    "plot_fold_report": "imet_kit.plots.folds:plot_fold_report",
    "plot_history": "imet_kit.plots.training:plot_history",
    "plot_threshold_curve": "imet_kit.plots.training:plot_threshold_curve",
    "plot_gallery": "imet_kit.plots.gallery:plot_gallery",
}

__all__ = ["__version__", "train", *sorted(_LAZY)]


def train(config=None, *, resume: bool = False, report=None, **fields: Any) -> dict:
    """Train a K-fold run; returns its summary (see :func:`imet_kit.training.engine.train_cv`).

    Args:
        config: a :class:`~imet_kit.config.TrainConfig`, a dict of its fields, or None.
        resume: continue the run in ``config.out``.
        report: called with one line per event (``print`` in a notebook).
        **fields: TrainConfig fields that override ``config``'s.
    """
    from imet_kit.config import TrainConfig
    from imet_kit.training.engine import train_cv

    if isinstance(config, TrainConfig):
        config = config.replace(**fields) if fields else config
    else:
        config = TrainConfig.from_dict({**(config or {}), **fields}, source="train()")
    return train_cv(config, resume=resume, report=report)


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'imet_kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
