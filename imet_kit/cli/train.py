"""`imet-kit train`: K-fold training into a run folder (resumable)."""

from __future__ import annotations

import argparse
import json

NAME = "train"
ORDER = 30
HELP = "train K-fold models into a run folder (--resume continues a killed run)"
DESCRIPTION = (
    "Train one model per fold on an iMet-format dataset, keep the best epoch by validation F2, "
    "then choose thresholds on the out-of-fold predictions. Defaults are the 2019 notebook's "
    "(EfficientNet-B3, 288 px, batch 32, Adam 3e-4, BCE, 8 epochs, ImageNet weights). "
    "Precedence: defaults < --config FILE < flags."
)

S = argparse.SUPPRESS


IMAGE_HINT = ("Re-export or replace each file named, or remove it and its row from train.csv; "
              "then rerun (with --resume if the run folder was created).")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, received '{text}'")


def _weights(text: str) -> str | None:
    return None if text.lower() in ("none", "random", "") else text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=S, help="dataset folder (labels.csv, train.csv, train/)")
    p.add_argument("--out", default=S, help="run folder to create (default runs/run)")
    p.add_argument("--config", help="JSON file of TrainConfig fields (flags override it)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: finished folds are skipped, the unfinished one "
                        "restarts from its last finished epoch")
    p.add_argument("--folds", type=int, default=S, help="K (default 5)")
    p.add_argument("--fold", type=int, action="append", dest="train_folds", default=S,
                   help="train only fold k (repeatable)")
    p.add_argument("--fold-method", dest="fold_method", default=S, help="iterative (default) or rare-first")
    p.add_argument("--task", default=S,
                   help="multilabel (default) or embedding (margin head; see imet-kit embed)")
    p.add_argument("--backbone", default=S, help="efficientnet_b0..b7, efficientnetv2_*, tiny_cnn, ...")
    p.add_argument("--weights", type=_weights, default=S,
                   help="imagenet (default), none, or a local *.weights.h5 file")
    p.add_argument("--image-size", dest="image_size", type=int, default=S, help="input side (default 288)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=S, help="default 32")
    p.add_argument("--epochs", type=int, default=S, help="epochs per fold (default 8)")
    p.add_argument("--optimizer", default=S, help="adam (default), adamw or sgd")
    p.add_argument("--lr", type=float, default=S, help="peak learning rate (default 3e-4)")
    p.add_argument("--lr-schedule", dest="lr_schedule", default=S,
                   help="constant (default) or cosine (warmup + cosine decay)")
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=float, default=S)
    p.add_argument("--loss", default=S, help="bce (default), focal or asl")
    p.add_argument("--augment", default=S, help="train augmentation preset: notebook, light, strong, none")
    p.add_argument("--pooling", default=S, help="head pooling: avg (default), max or gem")
    p.add_argument("--dropout", type=float, default=S)
    p.add_argument("--head-warmup-epochs", dest="head_warmup_epochs", type=int, default=S,
                   help="epochs with the backbone frozen first")
    p.add_argument("--mixed-precision", dest="mixed_precision", default=S,
                   help="auto (default: fp16 on GPU, off on CPU), off, mixed_float16, mixed_bfloat16")
    p.add_argument("--jit-compile", dest="jit_compile", default=S,
                   help="XLA: auto (default: off on CPU), on, off")
    p.add_argument("--workers", type=int, default=S, help="data loader workers (default 1)")
    p.add_argument("--use-multiprocessing", dest="use_multiprocessing", type=_bool, default=S)
    p.add_argument("--patience", type=int, default=S, help="early stopping on val_f2")
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--margin-head", dest="margin_head", default=S,
                   help="--task embedding: margin head arcface (default), subcenter or cosface")
    p.add_argument("--margin-radians", dest="margin_radians", type=float, default=S,
                   help="--task embedding: angular margin m (default 0.3)")
    p.add_argument("--margin-scale", dest="margin_scale", type=float, default=S,
                   help="--task embedding: logit scale s (default 30)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def resolve_config(args: argparse.Namespace):
    """defaults < --config FILE < flags; with --resume and no other source, the run's own config."""
    from imet_kit.cli import _checks
    from imet_kit.config import TrainConfig, load_config_file
    from imet_kit.training.rundir import RunDir

    skip = {"config", "resume", "json", "verbose", "command", "_run", "_image_hint"}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    if "train_folds" in flags:
        flags["train_folds"] = tuple(flags["train_folds"])
    base: dict = {}
    if args.resume and "out" in flags and RunDir(flags["out"]).exists():
        base = _checks.run_folder(flags["out"]).load_config().to_dict()
        base["train_folds"] = None
    if args.config:
        _checks.input_file(args.config, "--config", "a JSON file of TrainConfig fields")
        base.update(load_config_file(args.config))
    base.update(flags)
    return TrainConfig.from_dict(base, source=args.config or "flags")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.data.images import check_images
    from imet_kit.errors import InputError
    from imet_kit.training.engine import train_cv
    from imet_kit.training.task import get_task
    from imet_kit.training.validate import check_config

    config = resolve_config(args)
    if not config.data:
        raise InputError("--data is required: the dataset folder (labels.csv, train.csv, train/).")
    # before anything is written: the config, the output folder, the data and its images
    check_config(config)
    task = get_task(config.task)
    _checks.output_folder(config.out)
    _checks.input_folder(config.data, "--data", "a dataset folder (labels.csv, train.csv, train/)")
    check_images(task.load_data(config).paths, workers=max(2, config.workers))
    summary = train_cv(config, resume=args.resume, report=print)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        oof = summary.get("oof_f2")
        if oof:
            print("OOF F2: " + ", ".join(f"{m} thresholds {v:.4f}" for m, v in oof.items()))
        print(f"run folder: {summary['run']}")
    return 0
