"""The multi-label classifier task: sigmoid head, F2 threshold sweep on the validation fold,
out-of-fold thresholds when the run finishes.

Example:
    >>> from imet_kit.config import TrainConfig
    >>> from imet_kit.training.engine import train_cv
    >>> cfg = TrainConfig(data="demo_data", out="runs/demo", backbone="tiny_cnn", weights=None,
    ...                   image_size=64, epochs=2, folds=2)
    >>> summary = train_cv(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from imet_kit.atomic import atomic_save_npy
from imet_kit.data.folder import load_dataset
from imet_kit.models.loading import load_model
from imet_kit.training.task import FoldSetup, Task, TaskData


class MultilabelTask(Task):
    """iMet-style multi-label tagging, scored by sample-averaged F2."""

    name = "multilabel"
    monitor = "val_f2"

    def load_data(self, config) -> TaskData:
        ds = load_dataset(config.data)
        return TaskData(ids=list(ds.train.ids), space=ds.space, y=ds.train.y,
                        paths=list(ds.train_paths), extra={"dataset": ds})

    def setup_fold(self, config, data: TaskData, tr, va, size) -> FoldSetup:
        from imet_kit.data.dataset import ImageDataset

        y, paths = np.asarray(data.y), np.asarray(data.paths)
        common = {"size": size, "batch_size": config.batch_size, "workers": config.workers,
                  "use_multiprocessing": config.use_multiprocessing, "resize": config.resize}
        train = ImageDataset(paths[tr].tolist(), y[tr], augment=config.augment, shuffle=True,
                             seed=config.seed, flip=config.flip, mixup=config.mixup,
                             cutmix=config.cutmix, **common)
        val = ImageDataset(paths[va].tolist(), None, augment=None, shuffle=False, **common)
        return FoldSetup(train=train, extra={"val": val, "y_val": y[va]})

    def build_model(self, config, data: TaskData, tr, size):
        from imet_kit.models.classifier import build_classifier

        return build_classifier(config.backbone, data.space.n_classes, input_size=size,
                                weights=config.weights, pooling=config.pooling,
                                embedding_dim=config.embedding_dim, dropout=config.dropout)

    def compile_model(self, model, config, data: TaskData, optimizer, jit_compile) -> None:
        from imet_kit.models.losses import get_loss

        smoothing = {"label_smoothing": config.label_smoothing} if config.label_smoothing else {}
        model.compile(optimizer=optimizer, loss=get_loss(config.loss, **smoothing),
                      jit_compile=jit_compile)

    def callbacks(self, model, config, data: TaskData, setup: FoldSetup) -> list:
        from imet_kit.multilabel.callbacks import F2Callback

        return [F2Callback(setup.extra["val"], setup.extra["y_val"], interval=config.f2_interval,
                           min_labels=config.min_labels, max_labels=config.max_labels)]

    def finish_fold(self, run, k: int, config, data: TaskData, setup: FoldSetup,
                    history: list[dict]) -> dict:
        fold = run.fold_dir(k)
        best = load_model(fold / "best.keras", compile=False)
        probs = best.predict(setup.extra["val"], verbose=0).astype(np.float32)
        atomic_save_npy(probs, fold / "oof.npy")
        row = max((r for r in history if "val_f2" in r), key=lambda r: r["val_f2"], default={})
        return {"best_f2": float(row.get("val_f2", float("nan"))),
                "best_threshold": float(row.get("val_threshold", float("nan"))),
                "best_epoch": int(row.get("epoch", -1)) + 1}

    def describe_fold(self, result: dict) -> str:
        return (f"best F2 {result.get('best_f2', float('nan')):.4f} at threshold "
                f"{result.get('best_threshold', float('nan')):.2f}")

    def finish(self, run, config, data: TaskData, folds, results: dict) -> dict:
        from imet_kit.multilabel.oof import finish_run

        return finish_run(run, data.extra["dataset"], folds, config)
