"""Prediction: every fold model x deterministic TTA views, averaged; thresholds; submission.csv."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imet_kit.atomic import atomic_save_npy
from imet_kit.data.folder import find_images
from imet_kit.data.labels import LabelSpace, read_annotations, read_labels, write_annotations
from imet_kit.errors import InputError
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


def _check_folds(run: RunDir, folds: list[int] | None) -> list[int]:
    """The fold models to use: ``folds`` (default: every trained fold), each one trained."""
    trained = run.trained_folds()
    if not trained:
        raise InputError(f"Run '{run.path}' has no trained fold (no fold*/best.keras). Train it first.")
    folds = trained if folds is None else list(folds)
    missing = [k for k in folds if k not in trained]
    if missing:
        raise InputError(f"Fold {missing[0]} has no model in '{run.path}'; trained folds: {trained}.")
    return folds


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise InputError(f"batch size (--batch-size) must be an integer >= 1, or left out for the "
                         f"run's; received {batch_size!r}.")


def predict_probs(run: RunDir, paths: list[str], *, tta: int = 1, folds: list[int] | None = None,
                  batch_size: int | None = None, progress: bool = True) -> tuple[np.ndarray, list[int]]:
    """Mean sigmoid probabilities over fold models and ``tta`` deterministic views."""
    import keras
    from tqdm.auto import tqdm

    from imet_kit.data.augment import tta_views
    from imet_kit.data.dataset import ImageDataset
    from imet_kit.models.loading import load_model
    from imet_kit.training.engine import resolve_size

    config = run.load_config()
    folds = _check_folds(run, folds)
    views = tta_views(tta)
    _check_batch_size(batch_size)
    size = resolve_size(config)
    batch = batch_size or config.batch_size
    total = None
    bar = tqdm(total=len(folds) * len(views), desc="predict (fold x view)", disable=not progress or None)
    for k in folds:
        model = load_model(run.fold_dir(k) / "best.keras", compile=False)
        for view in views:
            ds = ImageDataset(paths, None, size=size, batch_size=batch, augment=None, shuffle=False,
                              tta_view=view)
            p = model.predict(ds, verbose=0).astype(np.float64)
            total = p if total is None else total + p
            bar.update(1)
        del model
        keras.backend.clear_session()
    bar.close()
    return (total / (len(folds) * len(views))).astype(np.float32), folds


def predict(run: str | os.PathLike, data: str | os.PathLike, *, tta: int = 1,
            out: str | os.PathLike | None = None, threshold: float | None = None,
            threshold_mode: str | None = None, folds: list[int] | None = None,
            batch_size: int | None = None, progress: bool = True) -> Prediction:
    """Predict the test split of ``data`` with every fold model of ``run``.

    Args:
        run: the run folder of `imet-kit train`.
        data: dataset folder with labels.csv (must equal the run's), sample_submission.csv, test/.
        tta: number of deterministic test-time views (1 = the eval transform only).
        out: write ``submission.csv`` there (and ``<stem>_probs.npy`` beside it).
        threshold: one global threshold instead of the run's thresholds.json.
        threshold_mode: "global", "group" or "class" thresholds from the run.
        folds: fold models to use (default: all trained).

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
    tta_views(tta)
    _check_batch_size(batch_size)
    folds = _check_folds(run_dir, folds)
    if threshold is not None and not 0 < threshold < 1:
        raise InputError(f"--threshold must be in (0, 1); received {threshold}.")
    data = Path(data)
    space = read_labels(data / "labels.csv")
    run_dir.check_same_labels(space, data)
    sub = read_annotations(data / "sample_submission.csv", space, allow_empty=True)
    paths = find_images(data / "test", sub.ids, what="test images")
    check_images(paths)  # header and end marker of each: cheap, before any model loads
    config = run_dir.load_config()
    if threshold is not None:
        saved = None
    else:
        saved = load_thresholds(run_dir)
        apply_thresholds(np.zeros((1, space.n_classes)), saved, space, threshold_mode)  # check mode early
    probs, used = predict_probs(run_dir, paths, tta=tta, folds=folds, batch_size=batch_size,
                                progress=progress)
    if saved is None:
        labels = binarize(probs, threshold, min_labels=config.min_labels, max_labels=config.max_labels)
        mode = "global"
    else:
        labels = apply_thresholds(probs, saved, space, threshold_mode)
        mode = threshold_mode or saved.get("mode", "global")
    if out is not None:
        write_submission(out, sub.ids, labels, space)
        atomic_save_npy(probs, probs_path(out))
    return Prediction(sub.ids, probs, labels.astype(np.uint8), mode, used, tta)


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
