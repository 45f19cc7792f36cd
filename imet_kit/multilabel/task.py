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
        data = TaskData(ids=list(ds.train.ids), space=ds.space, y=ds.train.y,
                        paths=list(ds.train_paths), extra={"dataset": ds})
        if config.init_from:
            from imet_kit.multilabel.phases import load_init_folds

            data.extra["init_folds"] = load_init_folds(config, data)
        return data

    def setup_fold(self, config, data: TaskData, tr, va, size) -> FoldSetup:
        from imet_kit.models.losses import class_positive_weights

        y, paths = np.asarray(data.y), np.asarray(data.paths)
        # compile_model gets no fold: keep this fold's class weights for it (setup_fold runs first)
        self._pos_weight = class_positive_weights(y[tr], config.class_weight)
        if config.pipeline == "tfdata":
            from imet_kit.data.tfdata_files import scan_files
            from imet_kit.data.tfdata_train import fold_data

            if config.tfrecords is None and "file_kinds" not in data.extra:
                data.extra["file_kinds"] = scan_files(data.paths)  # once per run, not per fold
            train, val = fold_data(data.paths, data.ids, data.y, tr, va, size=size,
                                   batch_size=config.batch_size, augment=config.augment,
                                   seed=config.seed, tfrecords=config.tfrecords,
                                   label_names=data.space.names, kinds=data.extra.get("file_kinds"))
            return FoldSetup(train=train, extra={"val": val, "y_val": y[va],
                                                 "callbacks": [train.callback()]})
        from imet_kit.data.dataset import ImageDataset
        from imet_kit.data.sampling import WeightedImageDataset

        common = {"size": size, "batch_size": config.batch_size, "workers": config.workers,
                  "use_multiprocessing": config.use_multiprocessing, "resize": config.resize}
        kind, extra = ImageDataset, {}
        if config.sampling != "uniform":
            kind, extra = WeightedImageDataset, {"sampling": config.sampling}
        train = kind(paths[tr].tolist(), y[tr], augment=config.augment, shuffle=True,
                     seed=config.seed, flip=config.flip, mixup=config.mixup, cutmix=config.cutmix,
                     **extra, **common)
        val = (ImageDataset(paths[va].tolist(), None, augment=None, shuffle=False, **common)
               if len(va) else None)  # a refit on all images has no validation rows
        return FoldSetup(train=train, extra={"val": val, "y_val": y[va]})

    def build_model(self, config, data: TaskData, tr, size):
        from imet_kit.models.classifier import build_classifier

        model = build_classifier(config.backbone, data.space.n_classes, input_size=size,
                                 weights=None if config.init_from else config.weights,
                                 pooling=config.pooling, embedding_dim=config.embedding_dim,
                                 dropout=config.dropout)
        if config.init_from:
            from imet_kit.multilabel.phases import init_weights

            init_weights(model, config, data, tr)
        return model

    def compile_model(self, model, config, data: TaskData, optimizer, jit_compile) -> None:
        from imet_kit.models.losses import get_loss

        kwargs = {"label_smoothing": config.label_smoothing} if config.label_smoothing else {}
        pos_weight = getattr(self, "_pos_weight", None)
        if pos_weight is not None:
            kwargs["pos_weight"] = pos_weight.tolist()
        model.compile(optimizer=optimizer, loss=get_loss(config.loss, **kwargs),
                      jit_compile=jit_compile)

    def callbacks(self, model, config, data: TaskData, setup: FoldSetup) -> list:
        from imet_kit.multilabel.callbacks import F2Callback

        if setup.extra["val"] is None:  # a refit: no validation rows
            return [*setup.extra.get("callbacks", [])]
        return [*setup.extra.get("callbacks", []),  # tfdata: the epoch its shuffle follows
                F2Callback(setup.extra["val"], setup.extra["y_val"], interval=config.f2_interval,
                           min_labels=config.min_labels, max_labels=config.max_labels)]

    def finish_fold(self, run, k: int, config, data: TaskData, setup: FoldSetup,
                    history: list[dict]) -> dict:
        fold = run.fold_dir(k)
        if setup.extra["val"] is None:  # a refit (training/refit.py): the last epoch is the model
            import shutil

            from imet_kit.atomic import atomic_path

            with atomic_path(fold / "best.keras", keep_suffix=True) as tmp:
                shutil.copyfile(fold / run.fold_state(k)["last"], tmp)  # the last epoch's checkpoint
            return {"best_epoch": len(history), "refit": True}
        best = load_model(fold / "best.keras", compile=False)
        from imet_kit.training.hosts import predict_all  # every host's rows, no repeats

        probs = predict_all(best, setup.extra["val"], verbose=0).astype(np.float32)
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
