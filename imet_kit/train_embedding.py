"""K-fold metric learning on single-label identities: ``imet-kit train --task embedding``.

The data folder holds ``train.csv`` with columns ``id,label`` (a landmark or product id,
any string) and the images ``train/<id>.png|jpg``. The run folder is the classifier's
(:mod:`imet_kit.runs`: config.json, folds.csv, state.json, history.jsonl, resume) plus::

    RUN/classes.csv              code,label: the margin head's class index -> label
    RUN/labels.csv               the same classes as ``identity::<label>`` (resume checks them)
    RUN/fold{k}/best.keras       image + label -> logits, the epoch with the best val_map@10
    RUN/fold{k}/embedding.keras  image (0-255 RGB) -> L2-normalised embedding, cut from best
    RUN/summary.json             per fold: best val_map@10, val_recall@1, val_top1

Each epoch logs ``top1`` / ``top5`` / ``top10`` on the training batches (margin applied),
``val_top*`` on the validation fold (plain cosine logits), and ``val_map@10`` /
``val_recall@1`` / ``val_recall@10`` where the validation images search each other.

Example:
    >>> cfg = TrainConfig(task="embedding", data="demo_data/identities", out="runs/emb",
    ...                   backbone="tiny_cnn", weights=None, image_size=48, folds=2)
    >>> summary = train_embedding_cv(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .config import TrainConfig, atomic_write_json
from .errors import DataFileError, InputError
from .labels import LabelSpace, atomic_write_csv, find_images, read_csv_checked
from .runs import RunDir, atomic_save_model, load_model
from .train import (
    Reporter,
    _check_resume_config,
    _keras,
    _make_optimizer,
    _RunCheckpoint,
    fit_phases,
    resolve_size,
    resume_or_build,
)

log = logging.getLogger(__name__)

MONITOR = "val_map@10"
# TrainConfig.margin_head -> imet_kit.models.margins.HEADS
HEAD_NAMES = {"arcface": "arcface", "cosface": "cosface", "subcenter": "subcenter_arcface",
              "subcenter_arcface": "subcenter_arcface"}


@dataclass(frozen=True)
class IdentityData:
    """A validated ``id,label`` dataset: ``codes[i]`` indexes ``classes`` (sorted labels)."""

    root: Path
    ids: list[str]
    labels: np.ndarray  # str, one per image
    codes: np.ndarray  # int64, index into classes
    classes: list[str]
    paths: list[str]

    @property
    def space(self) -> LabelSpace:
        return LabelSpace.from_names(f"identity::{c}" for c in self.classes)

    def one_hot(self) -> sp.csr_matrix:
        n = len(self.ids)
        return sp.csr_matrix((np.ones(n, np.uint8), (np.arange(n), self.codes)),
                             shape=(n, len(self.classes)))


def load_identities(root: str | os.PathLike) -> IdentityData:
    """Read and check ``ROOT/train.csv`` (``id,label``) and find ``ROOT/train/<id>.*``."""
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(f"Dataset folder '{root}' does not exist. Expected a folder with "
                            f"train.csv (id,label) and train/<id>.png.")
    try:
        df = read_csv_checked(root / "train.csv", ["id", "label"], "train.csv")
    except DataFileError:
        raise
    except InputError as exc:
        raise InputError(f"{exc} --task embedding needs one label per image (id,label); an iMet "
                         f"id,attribute_ids file trains with --task multilabel.") from None
    ids, labels = df["id"].str.strip(), df["label"].str.strip()
    for name, col in (("id", ids), ("label", labels)):
        if (col == "").any():
            raise InputError(f"train.csv: row {int(np.argmax((col == '').values)) + 2} has an empty "
                             f"{name}. Expected a value in every row; fill it or drop the row.")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"train.csv: {len(dup)} duplicate id(s), first '{dup.iloc[0]}'. Expected "
                         f"each image once with a single label; keep one row per id.")
    classes, codes = np.unique(labels.to_numpy(str), return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"train.csv: {len(classes)} distinct label(s); a margin head needs at "
                         f"least 2 identities. Add images of other identities.")
    paths = find_images(root / "train", ids.tolist(), what="train images")
    counts = np.bincount(codes)
    if (counts == 1).any():
        log.warning("%d of %d identities have a single image (e.g. '%s'): it cannot be in both "
                    "train and validation, so as a validation query it has nothing to find.",
                    int((counts == 1).sum()), len(classes), classes[np.argmax(counts == 1)])
    return IdentityData(root, ids.tolist(), labels.to_numpy(str), codes.astype(np.int64),
                        classes.tolist(), paths)


def _head_kwargs(config: TrainConfig, class_counts: np.ndarray) -> tuple[str, dict]:
    """The margin head's name and arguments from the config (validated before any training)."""
    head = HEAD_NAMES.get(config.margin_head)
    if head is None:
        raise InputError(f"Unknown margin_head {config.margin_head!r}. Expected one of: "
                         f"arcface, cosface, subcenter.")
    kwargs: dict = {"scale": config.margin_scale}
    if head == "cosface":  # CosFace's margin is a cosine offset; the config's value is used as is
        kwargs["margin_cosine"] = config.margin_radians
    elif head == "subcenter_arcface":  # adaptive: rare identities get up to margin_radians
        kwargs.update(margin_radians=config.margin_radians, class_counts=class_counts.tolist(),
                      margin_max_radians=config.margin_radians,
                      margin_min_radians=min(0.05, config.margin_radians))
    else:
        kwargs["margin_radians"] = config.margin_radians
    return head, kwargs


def _build(config: TrainConfig, n_classes: int, size: int, class_counts: np.ndarray):
    from .models.backbones import build_backbone, get_backbone_spec, preprocessing_layer
    from .models.heads import pooling_layer
    from .models.margins import build_embedding_model

    head, kwargs = _head_kwargs(config, class_counts)
    backbone = build_backbone(config.backbone, (size, size, 3), config.weights)
    return build_embedding_model(
        backbone, n_classes, head=head, embedding_dim=config.embedding_dim, dropout=config.dropout,
        preprocess=preprocessing_layer(get_backbone_spec(config.backbone)),
        pooling=pooling_layer(config.pooling), **kwargs).train_model


def _compile(model, config: TrainConfig, n_classes: int, steps_per_epoch: int) -> None:
    keras = _keras()
    from .distribute import default_jit_compile
    from .models.margins import topk_metrics

    jit = {"auto": default_jit_compile(), "on": True, "off": False}[config.jit_compile]
    model.compile(optimizer=_make_optimizer(config, steps_per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=topk_metrics(n_classes), jit_compile=jit)


def _identity_batches(images, workers: int, use_multiprocessing: bool):
    """Wrap an ImageDataset of ``(x, code column)`` as ``({"image", "label"}, code)`` batches."""
    keras = _keras()

    class IdentityBatches(keras.utils.PyDataset):
        # y is a (n, 1) column of codes, not one-hot: a one-hot batch at 100k landmarks
        # would be B x 100k floats built and thrown away at every step.
        def __init__(self) -> None:
            super().__init__(workers=workers, use_multiprocessing=use_multiprocessing)
            self.images = images

        epoch = property(lambda self: self.images.epoch,
                         lambda self, value: setattr(self.images, "epoch", value))

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, index: int):
            x, y = self.images[index]
            code = y[:, 0].astype(np.int32)
            return {"image": x, "label": code}, code

        def on_epoch_end(self) -> None:
            self.images.on_epoch_end()

    return IdentityBatches()


def train_embedding_fold(config: TrainConfig, data: IdentityData, run: RunDir, k: int,
                         folds: np.ndarray, *, report: Reporter | None = None) -> dict:
    """Train fold ``k`` (validation = rows with ``folds == k``), resuming from its last epoch.

    Returns:
        ``{"fold": k, "best_map@10": ..., "best_recall@1": ..., "best_top1": ..., ...}``
    """
    keras = _keras()
    from .dataset import ImageDataset
    from .retrieval import export_embedding_model
    from .retrieval_metrics import RetrievalMetricsCallback

    size, n_classes = resolve_size(config), len(data.classes)
    tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    paths, column = np.asarray(data.paths), data.codes[:, None]
    common = {"size": size, "batch_size": config.batch_size}
    train_images = ImageDataset(paths[tr].tolist(), column[tr], augment=config.augment, shuffle=True,
                                seed=config.seed, **common)
    loader = {"workers": config.workers, "use_multiprocessing": config.use_multiprocessing}
    train_ds = _identity_batches(train_images, **loader)
    val_ds = _identity_batches(ImageDataset(paths[va].tolist(), column[va], shuffle=False, **common),
                               **loader)
    val_images = ImageDataset(paths[va].tolist(), None, shuffle=False, **common, **loader)
    fold = run.fold_dir(k)
    model, strategy, initial_epoch, best = resume_or_build(
        config, run, k,
        lambda: _build(config, n_classes, size, np.bincount(data.codes[tr], minlength=n_classes)),
        report, monitor=MONITOR)
    train_ds.epoch = initial_epoch  # shuffling and augmentation are seeded by (seed, epoch, batch)
    callbacks = [RetrievalMetricsCallback(export_embedding_model(model), val_images, data.labels[va]),
                 _RunCheckpoint(run, k, best, report, monitor=MONITOR)]
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                       patience=config.patience))
    fit_phases(model, train_ds, config, strategy, initial_epoch, callbacks,
               lambda: _compile(model, config, n_classes, len(train_ds)), report,
               validation_data=val_ds)
    atomic_save_model(export_embedding_model(load_model(fold / "best.keras", compile=False)),
                      fold / "embedding.keras")
    history = run.read_history(k)
    scored = [r for r in history if math.isfinite(r.get(MONITOR, float("nan")))]
    row = max(scored, key=lambda r: r[MONITOR], default={})
    result = {"fold": k, "best_map@10": float(row.get(MONITOR, float("nan"))),
              "best_recall@1": float(row.get("val_recall@1", float("nan"))),
              "best_top1": float(row.get("val_top1", float("nan"))),
              "best_epoch": int(row.get("epoch", -1)) + 1, "epochs": len(history),
              "n_train": int(len(tr)), "n_val": int(len(va))}
    run.write_fold_state(k, {"epoch": len(history), "done": True, **result})
    (fold / "last.keras").unlink(missing_ok=True)  # best and embedding are kept; last only resumes
    keras.backend.clear_session()
    return result


def train_embedding_cv(config: TrainConfig, *, resume: bool = False,
                       report: Reporter | None = None) -> dict:
    """Train every fold (or ``config.train_folds``) of an identity dataset; write summary.json.

    Args:
        config: the run's configuration (``config.data``: train.csv ``id,label`` + train/;
            ``config.out``: the run folder; ``margin_head``, ``margin_radians``, ``margin_scale``).
        resume: continue an existing run folder; without it an existing folder is refused.
        report: called with one human-readable line per event (fold start / end / skip).

    Returns:
        The summary dict also written to ``RUN/summary.json``.
    """
    from .folds import make_folds

    config = config.validated()
    run = RunDir(config.out)
    if run.exists() and not resume:
        raise InputError(f"Run folder '{run.path}' already holds a run. Pass --resume to continue "
                         f"it, or choose another --out.")
    if run.exists():
        _check_resume_config(run.load_config(), config)
    data = load_identities(config.data)
    _head_kwargs(config, np.ones(len(data.classes)))  # a bad head name fails before the run folder
    if run.exists():
        run.check_same_labels(data.space, config.data)
        run.check_same_train_ids(data.ids, config.data)
        folds = run.load_folds()["fold"].to_numpy()
    else:
        folds = make_folds(data.one_hot(), n_folds=config.folds, method=config.fold_method,
                           seed=config.seed)
        run.create(config, data.space, data.ids, folds)  # config.json before any training
        atomic_write_csv(pd.DataFrame({"code": range(len(data.classes)), "label": data.classes}),
                         run.path / "classes.csv")
    if report:
        report(f"{len(data.ids)} images of {len(data.classes)} identities, {config.folds} folds")
    todo = list(config.train_folds) if config.train_folds is not None else list(range(config.folds))
    results = {}
    for k in todo:
        if run.fold_done(k):
            res = run.fold_state(k)
            if report:
                report(f"fold {k}: already trained (best {MONITOR} "
                       f"{res.get('best_map@10', float('nan')):.4f}), skipped")
        else:
            if report:
                report(f"fold {k}: training on {int((folds != k).sum())} images, "
                       f"validating on {int((folds == k).sum())}")
            res = train_embedding_fold(config, data, run, k, folds, report=report)
            if report:
                report(f"fold {k}: best {MONITOR} {res['best_map@10']:.4f}, top1 "
                       f"{res['best_top1']:.4f} (epoch {res['best_epoch']}/{config.epochs})")
        results[str(k)] = {key: res.get(key) for key in
                           ("best_map@10", "best_recall@1", "best_top1", "best_epoch", "n_val")}
    maps = [r["best_map@10"] for r in results.values() if r["best_map@10"] is not None]
    summary = {"run": str(run.path), "task": "embedding", "images": len(data.ids),
               "identities": len(data.classes), "folds": results,
               "mean_map@10": float(np.nanmean(maps)) if maps else float("nan")}
    atomic_write_json(summary, run.summary_path)
    return summary
