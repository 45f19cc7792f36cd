"""Prediction: every fold model x deterministic TTA views, averaged; thresholds; submission.csv.

Phases of a run that predict uses when present (each can be skipped):

* ``RUN/full/best.keras`` (``train --refit``): the fold ensemble's mean and the refit model's
  probabilities are averaged with equal weight, ``0.5 * mean(folds) + 0.5 * full`` (the refit saw
  every image, so it counts as much as the whole fold ensemble); ``refit=False`` /
  ``--no-refit`` skips it.
* ``RUN/stack/`` (``imet-kit stack``): the averaged probabilities go through the second-level
  model, and its own thresholds apply; ``stack=False`` / ``--no-stack`` skips it.

Each test image is decoded once per call, whatever the number of views and models: a chunk of
images is decoded, all its views cut (:mod:`imet_kit.data.views`), and every model predicts every
view before the next chunk.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imet_kit.atomic import atomic_save_npy
from imet_kit.config import PIPELINES
from imet_kit.data.folder import find_images
from imet_kit.data.labels import LabelSpace, read_annotations, read_labels, write_annotations
from imet_kit.errors import InputError
from imet_kit.multilabel.stack import load_stack
from imet_kit.training.refit import full_model_path
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Test-set output: ids in sample-submission order, probabilities, binary labels."""

    ids: list[str]
    probs: np.ndarray
    labels: np.ndarray
    threshold_mode: str
    folds: list[int]
    tta: int
    refit: bool = False     # RUN/full/best.keras was averaged in
    stacked: bool = False   # RUN/stack/ turned the probabilities into its own


def _check_batch_size(batch_size: int | None, chunk_size: int | None = None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise InputError(f"batch size (--batch-size) must be an integer >= 1, or left out for the "
                         f"run's; received {batch_size!r}.")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise InputError(f"chunk_size (images decoded together) must be an integer >= 1, or None "
                         f"for the default; received {chunk_size!r}.")


def check_folds(run: RunDir, folds: list[int] | None, refit: bool) -> None:
    """The run has a model to use (a trained fold, or the refit when ``refit``), and every
    fold asked for is trained."""
    trained = run.trained_folds()
    if not trained and not (refit and full_model_path(run).is_file()):
        raise InputError(f"Run '{run.path}' has no trained fold (no fold*/best.keras). Train it first.")
    missing = [k for k in (folds or []) if k not in trained]
    if missing:
        raise InputError(f"Fold {missing[0]} has no model in '{run.path}'; trained folds: {trained}.")


def predict_probs(run: RunDir, paths: list[str], *, tta: int = 1, folds: list[int] | None = None,
                  batch_size: int | None = None, progress: bool = True,
                  refit: bool = False, pipeline: str | None = None,
                  chunk_size: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Mean sigmoid probabilities over fold models and ``tta`` deterministic views.

    Args:
        pipeline: ``pydataset`` or ``tfdata`` (the files decoded and viewed in-graph; views
            within 1 grey level of pydataset's, see :mod:`imet_kit.data.tfdata`); default the run's.
        folds: any subset of the trained folds (default all; ``[]`` with ``refit`` uses only the
            refit model).
        refit: average in ``RUN/full/best.keras`` with weight 1/2 (the folds' mean the other 1/2).
        chunk_size: images decoded (once each, all views) and predicted together; default: as many
            as fit 128 MiB of uint8 views (:func:`imet_kit.data.views.chunk_rows`).
    """
    config = run.load_config()
    pipeline = config.pipeline if pipeline is None else pipeline
    if pipeline not in PIPELINES:
        raise InputError(f"Unknown pipeline {pipeline!r}. Expected one of: {', '.join(PIPELINES)}.")
    if pipeline == "tfdata" and config.resize != "crop":
        raise InputError(f"pipeline 'tfdata' reads with the crop geometry only; run '{run.path}' was "
                         f"trained with resize {config.resize!r}. Predict with pipeline 'pydataset'.")
    if not paths:
        raise InputError("No test image to predict; expected at least one image path.")
    trained = run.trained_folds()
    full = full_model_path(run) if refit else None
    if not trained and full is None:
        raise InputError(f"Run '{run.path}' has no trained fold (no fold*/best.keras). Train it first.")
    folds = trained if folds is None else list(folds)
    missing = [k for k in folds if k not in trained]
    if missing:
        raise InputError(f"Fold {missing[0]} has no model in '{run.path}'; trained folds: {trained}.")
    if full is not None and not full.is_file():
        raise InputError(f"Run '{run.path}' has no refit model ({full}); train with --refit, or "
                         f"predict without it.")
    if not folds and full is None:
        raise InputError("No model to predict with: pass at least one fold.")
    models = [run.fold_dir(k) / "best.keras" for k in folds] + ([full] if full else [])
    each = _mean_probs(run, models, paths, tta, batch_size, progress, pipeline, chunk_size)
    fold_mean = np.mean(each[:len(folds)], axis=0) if folds else None
    if full is None:
        probs = fold_mean
    else:
        probs = each[-1] if fold_mean is None else 0.5 * fold_mean + 0.5 * each[-1]
    return probs.astype(np.float32), folds


def _mean_probs(run: RunDir, models: list[Path], paths: list[str], tta: int,
                batch_size: int | None, progress: bool, pipeline: str,
                chunk_size: int | None = None) -> list[np.ndarray]:
    """Per model file, its probabilities averaged over the ``tta`` deterministic views.

    Each image is decoded once (:func:`imet_kit.data.views.iter_views`), a chunk at a time; every
    model (all loaded up front) predicts every view of the chunk.
    """
    import keras
    from tqdm.auto import tqdm

    from imet_kit.data.augment import tta_views
    from imet_kit.data.views import chunk_rows, iter_views
    from imet_kit.models.loading import load_model
    from imet_kit.training.engine import resolve_size

    config = run.load_config()
    views = tta_views(tta, flip=config.flip, resize=config.resize)
    size = resolve_size(config)
    batch = batch_size or config.batch_size
    chunk = chunk_rows(len(views), size, multiple=batch) if chunk_size is None else chunk_size
    loaded = [load_model(path, compile=False) for path in models]
    parts: list[list[np.ndarray]] = [[] for _ in loaded]
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress or None) as bar:
        for x in iter_views(paths, views, size=size, resize=config.resize, chunk_size=chunk,
                            pipeline=pipeline):
            for model, out in zip(loaded, parts):
                total = None
                for v in range(len(views)):
                    p = model.predict(x[:, v].astype(np.float32), batch_size=batch,
                                      verbose=0).astype(np.float64)
                    total = p if total is None else total + p
                out.append(total / len(views))
            bar.update(len(x))
    del loaded
    keras.backend.clear_session()
    return [np.concatenate(out) for out in parts]


def predict(run: str | os.PathLike, data: str | os.PathLike, *, tta: int = 1,
            out: str | os.PathLike | None = None, threshold: float | None = None,
            threshold_mode: str | None = None, folds: list[int] | None = None,
            batch_size: int | None = None, progress: bool = True, refit: bool = True,
            stack: bool = True, pipeline: str | None = None,
            chunk_size: int | None = None) -> Prediction:
    """Predict the test split of ``data`` with every fold model of ``run``.

    Args:
        run: the run folder of `imet-kit train`.
        data: dataset folder with labels.csv (must equal the run's), sample_submission.csv, test/.
        tta: number of deterministic test-time views (1 = the eval transform only).
        out: write ``submission.csv`` there (and ``<stem>_probs.npy`` beside it).
        threshold: one global threshold instead of the run's thresholds.json.
        threshold_mode: "global", "group" or "class" thresholds from the run.
        folds: fold models to use (default: all trained; any subset).
        refit: average in ``RUN/full/best.keras`` when it exists (see the module docstring).
        stack: apply ``RUN/stack/`` and its thresholds when it exists.
        pipeline: ``pydataset`` or ``tfdata``; default the run's ``config.pipeline``.
        chunk_size: test images decoded and predicted together (each decoded once for all views
            and models); default: as many as fit 128 MiB of views.

    Returns:
        A :class:`Prediction`.

    Example:
        >>> pred = predict("runs/demo", "demo_data", tta=4, out="submission.csv")  # doctest: +SKIP
    """
    from imet_kit.data.augment import tta_views
    from imet_kit.data.images import check_images
    from imet_kit.multilabel.oof import apply_thresholds, load_thresholds
    from imet_kit.multilabel.thresholds import binarize

    # every argument is checked before TensorFlow loads (a bad --tta fails in about a second)
    run_dir = RunDir(run)
    run_dir.require()
    config = run_dir.load_config()
    tta_views(tta, flip=config.flip, resize=config.resize)
    _check_batch_size(batch_size, chunk_size)
    check_folds(run_dir, folds, refit)
    if threshold is not None and not 0 < threshold < 1:
        raise InputError(f"--threshold must be in (0, 1); received {threshold}.")
    data = Path(data)
    space = read_labels(data / "labels.csv")
    run_dir.check_same_labels(space, data)
    sub = read_annotations(data / "sample_submission.csv", space, allow_empty=True)
    paths = find_images(data / "test", sub.ids, what="test images")
    check_images(paths)  # header and end marker of each: cheap, before any model loads
    stacker = load_stack(run_dir) if stack else None
    use_refit = bool(refit) and full_model_path(run_dir).is_file()
    if threshold is not None:
        saved = None
    else:
        saved = stacker[1] if stacker else load_thresholds(run_dir)
        apply_thresholds(np.zeros((1, space.n_classes)), saved, space, threshold_mode)  # check mode early
    probs, used = predict_probs(run_dir, paths, tta=tta, folds=folds, batch_size=batch_size,
                                progress=progress, refit=use_refit, pipeline=pipeline,
                                chunk_size=chunk_size)
    if stacker:
        probs = stacker[0].predict(probs)
    if saved is None:
        labels = binarize(probs, threshold, min_labels=config.min_labels, max_labels=config.max_labels)
        mode = "global"
    else:
        labels = apply_thresholds(probs, saved, space, threshold_mode)
        mode = threshold_mode or saved.get("mode", "global")
    if out is not None:
        write_submission(out, sub.ids, labels, space)
        atomic_save_npy(probs, probs_path(out))
    return Prediction(sub.ids, probs, labels.astype(np.uint8), mode, used, tta, use_refit,
                      stacker is not None)


def probs_path(submission: str | os.PathLike) -> Path:
    p = Path(submission)
    return p.with_name(f"{p.stem}_probs.npy")


def write_submission(path: str | os.PathLike, ids: list[str], labels: np.ndarray,
                     space: LabelSpace) -> None:
    """Write ``id,attribute_ids`` and check it reads back in the same order and shape."""
    write_annotations(path, ids, labels)
    back = read_annotations(path, space, allow_empty=True)
    if back.ids != list(ids) or not np.array_equal(np.asarray(back.y), np.asarray(labels, np.uint8)):
        raise InputError(f"Submission '{path}' did not read back identically; disk full?")
