"""`imet-kit lr-find`: learning-rate range test on fold 0's training images; plot + suggestion."""

from __future__ import annotations

import argparse

NAME = "lr-find"
ORDER = 31
HELP = "learning-rate range test (fastai-style) on fold 0's training images: plot and suggested lr"
DESCRIPTION = (
    "Train the configured model for up to --steps batches while the learning rate grows "
    "geometrically from --start-lr to --end-lr; stop when the smoothed loss diverges. Writes a "
    "plot (loss vs lr, log axis) and prints a suggested lr: min10 = the lr at the (centred) smoothed "
    "loss' minimum / 10 (default), or steepest = where it falls fastest. Takes the same "
    "config flags as train (--recipe, --config, --backbone, ...); writes no run folder."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imet_kit.cli.train import add_config_arguments

    add_config_arguments(p)
    p.add_argument("--start-lr", dest="start_lr", type=float, default=1e-7, help="default 1e-7")
    p.add_argument("--end-lr", dest="end_lr", type=float, default=10.0, help="default 10")
    p.add_argument("--steps", type=int, default=200, help="batches at most (default 200)")
    p.add_argument("--diverge", type=float, default=4.0,
                   help="stop when the smoothed loss exceeds this many times its minimum (default 4)")
    p.add_argument("--suggest", choices=["min10", "steepest"], default="min10",
                   help="which suggestion to print first (default min10)")
    p.add_argument("--plot", default="lr_find.png", help="output PNG (default lr_find.png)")


OWN = ("start_lr", "end_lr", "steps", "diverge", "suggest", "plot")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli.train import list_recipes, resolve_config
    from imet_kit.errors import InputError
    from imet_kit.plots.lr_find import plot_lr_find
    from imet_kit.training.lr_find import lr_find

    if getattr(args, "recipe", None) == "list":
        print(list_recipes())
        return 0
    config = resolve_config(args, skip=OWN)
    if not config.data:
        raise InputError("--data is required: the dataset folder (labels.csv, train.csv, train/).")
    res = lr_find(config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                  diverge=args.diverge, method=args.suggest, report=print)
    png = plot_lr_find(res.lrs, res.losses, res.centred, res.suggestions, res.method, args.plot,
                       stop_curve=res.smoothed)
    print(f"plot: {png}")
    print(f"suggested lr: {res.suggestion:.3g} ({res.method})")
    return 0
