"""K-fold metric learning on single-label identities: ``imet-kit train --task embedding``.

The data folder holds ``train.csv`` with columns ``id,label`` (a landmark or product id,
any string) and the images ``train/<id>.png|jpg``. The run folder is the classifier's
(:mod:`imet_kit.training.rundir`: config.json, folds.csv, state.json, history.jsonl, resume) plus::

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

from imet_kit.atomic import atomic_save_model, atomic_write_csv
from imet_kit.config import TrainConfig
from imet_kit.data.folder import find_images
from imet_kit.data.labels import LabelSpace, read_csv_checked
from imet_kit.errors import DataFileError, InputError
from imet_kit.training.task import FoldSetup, Task, TaskData

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
    from imet_kit.models.backbones import build_backbone, get_backbone_spec, preprocessing_layer
    from imet_kit.models.heads import pooling_layer
    from imet_kit.models.margins import build_embedding_model

    head, kwargs = _head_kwargs(config, class_counts)
    backbone = build_backbone(config.backbone, (size, size, 3), config.weights)
    return build_embedding_model(
        backbone, n_classes, head=head, embedding_dim=config.embedding_dim, dropout=config.dropout,
        preprocess=preprocessing_layer(get_backbone_spec(config.backbone)),
        pooling=pooling_layer(config.pooling), **kwargs).train_model


def _identity_batches(images, workers: int, use_multiprocessing: bool):
    """Wrap an ImageDataset of ``(x, code column)`` as ``({"image", "label"}, code)`` batches."""
    import keras

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




class EmbeddingTask(Task):
    """Metric learning on single-label identities: a margin head, validation mAP@10."""

    name = "embedding"
    monitor = MONITOR

    def check_config(self, config) -> list[str]:
        if config.margin_head not in HEAD_NAMES:
            return [f"margin_head: unknown {config.margin_head!r}, expected one of "
                    f"{', '.join(sorted(HEAD_NAMES))}"]
        problems = []
        if not config.margin_scale > 0:
            problems.append(f"margin_scale: expected a positive number, received {config.margin_scale!r}")
        if not 0 <= config.margin_radians < math.pi / 2:
            problems.append(f"margin_radians: expected a number in [0, pi/2), received "
                            f"{config.margin_radians!r}")
        return problems

    def load_data(self, config) -> TaskData:
        data = load_identities(config.data)
        return TaskData(ids=data.ids, space=data.space, y=data.one_hot(), paths=data.paths,
                        extra={"identities": data})

    def on_create(self, run, data: TaskData) -> None:
        classes = data.extra["identities"].classes
        atomic_write_csv(pd.DataFrame({"code": range(len(classes)), "label": classes}),
                         run.path / "classes.csv")

    def setup_fold(self, config, data: TaskData, tr, va, size) -> FoldSetup:
        from imet_kit.data.dataset import ImageDataset

        ident = data.extra["identities"]
        paths, column = np.asarray(ident.paths), ident.codes[:, None]
        common = {"size": size, "batch_size": config.batch_size, "resize": config.resize}
        loader = {"workers": config.workers, "use_multiprocessing": config.use_multiprocessing}
        train = _identity_batches(ImageDataset(paths[tr].tolist(), column[tr], augment=config.augment,
                                               shuffle=True, seed=config.seed, flip=config.flip,
                                               **common), **loader)
        val = _identity_batches(ImageDataset(paths[va].tolist(), column[va], shuffle=False, **common),
                                **loader)
        val_images = ImageDataset(paths[va].tolist(), None, shuffle=False, **common, **loader)
        return FoldSetup(train=train, fit_kwargs={"validation_data": val},
                         extra={"val_images": val_images, "val_labels": ident.labels[va],
                                "class_counts": np.bincount(ident.codes[tr],
                                                            minlength=len(ident.classes))})

    def build_model(self, config, data: TaskData, tr, size):
        ident = data.extra["identities"]
        counts = np.bincount(ident.codes[tr], minlength=len(ident.classes))
        return _build(config, len(ident.classes), size, counts)

    def compile_model(self, model, config, data: TaskData, optimizer, jit_compile) -> None:
        import keras

        from imet_kit.models.margins import topk_metrics

        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=topk_metrics(len(data.extra["identities"].classes)),
                      jit_compile=jit_compile)

    def callbacks(self, model, config, data: TaskData, setup: FoldSetup) -> list:
        from imet_kit.retrieval.embed import export_embedding_model
        from imet_kit.retrieval.metrics import RetrievalMetricsCallback

        return [RetrievalMetricsCallback(export_embedding_model(model), setup.extra["val_images"],
                                         setup.extra["val_labels"])]

    def finish_fold(self, run, k: int, config, data: TaskData, setup: FoldSetup,
                    history: list[dict]) -> dict:
        from imet_kit.models.loading import load_model
        from imet_kit.retrieval.embed import export_embedding_model

        fold = run.fold_dir(k)
        atomic_save_model(export_embedding_model(load_model(fold / "best.keras", compile=False)),
                          fold / "embedding.keras")
        scored = [r for r in history if math.isfinite(r.get(MONITOR, float("nan")))]
        row = max(scored, key=lambda r: r[MONITOR], default={})
        return {"best_map@10": float(row.get(MONITOR, float("nan"))),
                "best_recall@1": float(row.get("val_recall@1", float("nan"))),
                "best_top1": float(row.get("val_top1", float("nan"))),
                "best_epoch": int(row.get("epoch", -1)) + 1}

    def describe_fold(self, result: dict) -> str:
        return (f"best {MONITOR} {result.get('best_map@10', float('nan')):.4f}, top1 "
                f"{result.get('best_top1', float('nan')):.4f}")

    def finish(self, run, config, data: TaskData, folds, results: dict) -> dict:
        ident = data.extra["identities"]
        rows = {k: {key: r.get(key) for key in
                    ("best_map@10", "best_recall@1", "best_top1", "best_epoch", "n_val")}
                for k, r in results.items()}
        maps = [r["best_map@10"] for r in rows.values() if r["best_map@10"] is not None]
        return {"run": str(run.path), "task": "embedding", "images": len(ident.ids),
                "identities": len(ident.classes), "folds": rows,
                "mean_map@10": float(np.nanmean(maps)) if maps else float("nan")}


def train_embedding_cv(config: TrainConfig, *, resume: bool = False, report=None) -> dict:
    """Train an embedding run: :func:`imet_kit.training.engine.train_cv` with ``task="embedding"``."""
    from imet_kit.training.engine import train_cv

    return train_cv(config.replace(task="embedding"), resume=resume, report=report)
