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
    "Precedence: defaults < --recipe NAME < --config FILE < flags."
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


def _path_or_none(text: str) -> str | None:
    return None if text.lower() in ("none", "") else text


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of the recipe fields (issue 12): geometry, batch mixing, optimisation extras."""
    p.add_argument("--resize", default=S,
                   help="geometry for train, eval and TTA: crop (default: shorter side, then a "
                        "square crop), squash (whole image to the square), pad (letterbox, aspect kept)")
    p.add_argument("--flip", type=_bool, default=S,
                   help="mirror images in train presets and TTA: true (default) or false")
    p.add_argument("--no-flip", dest="flip", action="store_const", const=False, default=S,
                   help="same as --flip false: for data where a mirrored image is another label")
    p.add_argument("--mixup", type=float, default=S,
                   help="MixUp Beta alpha on training batches, lambda-weighted labels (default 0 = off)")
    p.add_argument("--cutmix", type=float, default=S,
                   help="CutMix Beta alpha in (0, 1], area-weighted labels (default 0 = off); "
                        "with --mixup too, each batch gets one of them")
    p.add_argument("--ema", type=float, default=S,
                   help="weight EMA momentum, e.g. 0.999: validation and best.keras use the EMA "
                        "weights (default 0 = off)")
    p.add_argument("--clipnorm", type=_optional_float, default=S,
                   help="clip each weight's gradient to this L2 norm (default none)")
    p.add_argument("--weight-decay", dest="weight_decay", type=_optional_float, default=S,
                   help="decoupled weight decay for any optimizer (default none: adamw 0.004, others 0)")
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float, default=S,
                   help="BCE target smoothing s: y * (1 - s) + s / 2 (default 0; loss bce only)")
    p.add_argument("--grad-accum-steps", dest="grad_accum_steps", type=int, default=S,
                   help="average gradients over N batches per update (default 1 = off)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=S, help="run folder to create (default runs/run)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: finished folds are skipped, the unfinished one "
                        "restarts from its last finished epoch")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=False,
                   default=S, help="write no TensorBoard event files (default: per fold in "
                                   "RUN/tensorboard/: loss, val F2, threshold, LR, a batch)")
    p.add_argument("--tensorboard", action="store_const", const=True, default=S,
                   help="write them (the default; with --resume: again, after --no-tensorboard)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default: the folds one after the other in this process) or ray "
                        "(each fold a Ray task; RUN must be on storage every node sees; "
                        'pip install "imet_kit[ray]")')
    p.add_argument("--ray-address", dest="ray_address", default=None,
                   help="--executor ray: a running cluster (auto, ray://HOST:10001; default: "
                        "start a local Ray instance)")
    p.add_argument("--cpus-per-fold", dest="cpus_per_fold", type=float, default=1.0,
                   help="--executor ray: CPUs each fold's task reserves (default 1)")
    p.add_argument("--gpus-per-fold", dest="gpus_per_fold", type=float, default=0.0,
                   help="--executor ray: GPUs each fold's task reserves (default 0)")
    # many hosts (JAX): not config fields, each host is started with its own --process-id
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="several processes train one model (JAX; on many hosts): process 0's "
                        "address, the same on every host (default: $KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    p.add_argument("--num-processes", dest="num_processes", type=int, default=None, metavar="N",
                   help="how many processes (default: $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1); "
                        "--batch-size is the global batch; only process 0 writes --out")
    p.add_argument("--process-id", dest="process_id", type=int, default=None, metavar="I",
                   help="this process, 0..N-1 (default: $KERAS_DISTRIBUTION_PROCESS_ID)")
    add_config_arguments(p)


EXECUTOR_FLAGS = ("executor", "ray_address", "cpus_per_fold", "gpus_per_fold",
                  "coordinator", "num_processes", "process_id")


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of TrainConfig fields, --config and --recipe (shared with `imet-kit lr-find`)."""
    p.add_argument("--data", default=S, help="dataset folder (labels.csv, train.csv, train/)")
    p.add_argument("--config", help="JSON file of TrainConfig fields (flags override it)")
    p.add_argument("--recipe", default=S,
                   help="shipped recipe to start from: " + ", ".join(_recipes()) +
                        " (--config and flags override it; 'list' lists them)")
    p.add_argument("--folds", type=int, default=S, help="K (default 5)")
    p.add_argument("--fold", type=int, action="append", dest="train_folds", default=S,
                   help="train only fold k (repeatable); other processes or machines may train "
                        "other folds into the same --out at once, the last one finishes the run")
    p.add_argument("--fold-method", dest="fold_method", default=S, help="iterative (default) or rare-first")
    p.add_argument("--task", default=S,
                   help="multilabel (default) or embedding (margin head; see imet-kit embed)")
    p.add_argument("--backbone", default=S, help="efficientnet_b0..b7, efficientnetv2_*, convnext_*, "
                        "resnet50, densenet121, ..., tiny_cnn, small_cnn, plain_cnn, resnet_small, "
                        "or hub:<preset> (keras-hub); imet-kit backbones lists them")
    p.add_argument("--weights", type=_weights, default=S,
                   help="imagenet (default), none, or a local *.weights.h5 file")
    p.add_argument("--image-size", dest="image_size", type=int, default=S, help="input side (default 288)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=S, help="default 32")
    p.add_argument("--epochs", type=int, default=S, help="epochs per fold (default 8)")
    p.add_argument("--optimizer", default=S, help="adam (default), adamw or sgd")
    p.add_argument("--lr", type=float, default=S, help="peak learning rate (default 3e-4)")
    p.add_argument("--lr-schedule", dest="lr_schedule", default=S,
                   help="constant (default), cosine (warmup + cosine decay) or onecycle (cosine up "
                        "for --warmup-epochs, default 30%% of the run, then cosine down)")
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=float, default=S)
    p.add_argument("--loss", default=S, help="bce (default), focal or asl")
    p.add_argument("--augment", default=S, help="train augmentation preset: notebook (default), light, strong, "
                        "randaugment, none")
    p.add_argument("--pooling", default=S, help="head pooling: avg (default), max, gem or avgmax (max and average concatenated)")
    p.add_argument("--embedding-dim", type=int, default=S,
                   help="width of the Dense+ReLU layer between pooling and the sigmoid layer "
                        "(default 512); 0: none, the pooled features feed the sigmoid layer")
    p.add_argument("--dropout", type=float, default=S)
    p.add_argument("--head-warmup-epochs", dest="head_warmup_epochs", type=int, default=S,
                   help="epochs with the backbone frozen first")
    p.add_argument("--mixed-precision", dest="mixed_precision", default=S,
                   help="auto (default: fp16 on GPU, off on CPU), off, mixed_float16, mixed_bfloat16")
    p.add_argument("--jit-compile", dest="jit_compile", default=S,
                   help="XLA: auto (default: off on CPU), on, off")
    p.add_argument("--distribution", default=S,
                   help="devices: auto (default: TF: TPU, else mirrored over >1 GPU; JAX: "
                        "data-parallel over >1 GPU/TPU or several processes; else one device), "
                        "none (one device), data-parallel (every device: TF MirroredStrategy, JAX "
                        "keras.distribution.DataParallel), mirrored (TF only: MirroredStrategy over "
                        "every GPU, or the logical CPUs); --batch-size is the global batch and must "
                        "divide by the device count")
    p.add_argument("--workers", type=int, default=S, help="data loader workers (default 1)")
    p.add_argument("--use-multiprocessing", dest="use_multiprocessing", type=_bool, default=S)
    p.add_argument("--pipeline", default=S,
                   help="input pipeline: pydataset (default: OpenCV + albumentations in --workers "
                        "Python threads) or tfdata (tf.data: decode and augment in-graph, on all "
                        "cores; PNG/JPEG files of DATA/train, or --tfrecords DIR)")
    p.add_argument("--tfrecords", type=_path_or_none, default=S, metavar="DIR",
                   help="with --pipeline tfdata: read the train images from DIR, written by "
                        "`imet-kit tfrecords DATA DIR` (default none: decode DATA/train's files; "
                        "DIR is never guessed)")
    p.add_argument("--patience", type=int, default=S, help="early stopping on val_f2")
    p.add_argument("--seed", type=int, default=S)
    p.add_argument("--margin-head", dest="margin_head", default=S,
                   help="--task embedding: margin head arcface (default), subcenter or cosface")
    p.add_argument("--margin-radians", dest="margin_radians", type=float, default=S,
                   help="--task embedding: angular margin m (default 0.3)")
    p.add_argument("--margin-scale", dest="margin_scale", type=float, default=S,
                   help="--task embedding: logit scale s (default 30)")
    # recipe power (issue 12): the long tail and training in phases
    p.add_argument("--sampling", default=S,
                   help="train order: uniform (default, reshuffle) or logfreq (an image's weight "
                        "1/ln(1 + count of its rarest label), drawn with replacement)")
    p.add_argument("--class-weight", dest="class_weight", default=S,
                   help="BCE positive weight per class: none (default) or inverse_log "
                        "(1/ln(1 + count), normalised)")
    p.add_argument("--refit", type=_bool, nargs="?", const=True, default=S,
                   help="after CV, train RUN/full/best.keras on all images for round(mean best "
                        "epoch) epochs (predict averages it in)")
    p.add_argument("--init-from", dest="init_from", default=S,
                   help="earlier run folder: fold k starts from its fold{k}/best.keras (progressive "
                        "resizing: same folds, seed and backbone; new image size, lr, epochs)")
    _add_recipe_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _recipes() -> list[str]:
    from imet_kit.config import recipe_names

    return recipe_names()


def list_recipes() -> str:
    """One line per shipped recipe: name and what it is."""
    from imet_kit.config import recipe_about

    names = _recipes()
    width = max(map(len, names))
    return "\n".join(f"{n:<{width}}  {recipe_about(n)}" for n in names)


def resolve_config(args: argparse.Namespace, skip: tuple[str, ...] = ()):
    """defaults < --recipe < --config FILE < flags; with --resume and no other source, the run's
    own config. ``skip``: argument names that are not TrainConfig fields."""
    from imet_kit.cli import _checks
    from imet_kit.config import TrainConfig, load_config_file, load_recipe
    from imet_kit.training.rundir import RunDir

    skip = {"config", "resume", "json", "verbose", "command", "_run", "_image_hint",
            *EXECUTOR_FLAGS, *skip}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    if "train_folds" in flags:
        flags["train_folds"] = tuple(flags["train_folds"])
    base: dict = {}
    if getattr(args, "resume", False) and "out" in flags and RunDir(flags["out"]).exists():
        base = _checks.run_folder(flags["out"]).load_config().to_dict()
        base["train_folds"] = None
    file = {}
    if args.config:
        _checks.input_file(args.config, "--config", "a JSON file of TrainConfig fields")
        file = load_config_file(args.config)
    recipe = flags.pop("recipe", None) or file.get("recipe")
    if recipe:
        base.update(load_recipe(recipe))
    base.update(file)
    base.update(flags)
    return TrainConfig.from_dict(base, source=args.config or "flags")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.errors import InputError
    from imet_kit.training.engine import train_cv
    from imet_kit.training.hosts import hosts_from, initialize, run_folder_of_this_process
    from imet_kit.training.validate import check_config

    if getattr(args, "recipe", None) == "list":
        print(list_recipes())
        return 0
    config = resolve_config(args)
    if not config.data:
        raise InputError("--data is required: the dataset folder (labels.csv, train.csv, train/).")
    hosts = hosts_from(args.coordinator, args.num_processes, args.process_id)
    if hosts.many and args.executor != "local":
        raise InputError(f"--executor {args.executor} runs folds as separate jobs; {hosts.count} "
                         f"processes train one model together: drop one of them.")
    initialize(hosts)  # before JAX computes anything, even the device list of check_config
    # before anything is written: the config, the output folder, the data and its images
    check_config(config)
    _checks.output_folder(config.out)
    _checks.input_folder(config.data, "--data", "a dataset folder (labels.csv, train.csv, train/)")
    if args.executor == "ray":
        from imet_kit.training.ray_jobs import train_folds_on_ray

        summary = train_folds_on_ray(config, resume=args.resume, address=args.ray_address,
                                     num_cpus=args.cpus_per_fold, num_gpus=args.gpus_per_fold,
                                     report=print)
    elif hosts.many:
        with run_folder_of_this_process(config.out, hosts) as out:  # only process 0 writes --out
            summary = train_cv(config.replace(out=str(out)), resume=args.resume,
                               report=print if hosts.writer else None)
        if not hosts.writer:
            print(f"process {hosts.index} of {hosts.count}: done; process 0 wrote the run folder "
                  f"{config.out}")
            return 0
    else:
        summary = train_cv(config, resume=args.resume, report=print)  # checks data and images first
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        oof = summary.get("oof_f2")
        if oof:
            print("OOF F2: " + ", ".join(f"{m} thresholds {v:.4f}" for m, v in oof.items()))
        if summary.get("refit"):
            print(f"refit: {summary['run']}/full/best.keras ({summary['refit'].get('epochs')} epochs)")
        print(f"run folder: {summary['run']}")
    return 0
