"""`imet-kit folds --data DIR --out folds.csv`: stratified folds for train.csv, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "folds"
ORDER = 20
HELP = "split train.csv into stratified cross-validation folds (id, fold) and report their quality"
DESCRIPTION = (
    "Assign every image of DATA/train.csv to a fold so that each attribute's share is even "
    "across folds and every attribute with at least --folds positives has one in every "
    "validation fold. Writes OUT (columns id, fold), OUT's stem + '_report.json' and "
    "'_report.png' beside it, and prints the quality table (LD, LPD, FZ, fold sizes). "
    "Attributes with fewer positives than folds are listed in the report: their F2 cannot be "
    "measured in the folds that lack them. Same --seed, same folds, on any machine."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imet_kit.folds.maker import DEFAULT_METHOD, DEFAULT_SEED, METHODS

    p.add_argument("--data", required=True, help="dataset folder with labels.csv and train.csv")
    p.add_argument("--folds", type=int, default=5, help="number of folds, >= 2 (default 5)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"fold maker (default {DEFAULT_METHOD}; rare-first is the 2019 "
                        f"notebook's greedy)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of every random choice (default {DEFAULT_SEED})")
    p.add_argument("--out", default="folds.csv", help="output CSV (default folds.csv)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG report")


def report_paths(out: str | Path) -> tuple[Path, Path]:
    """The JSON and PNG report paths that go beside ``out``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_report.json"), out.with_name(f"{out.stem}_report.png")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from imet_kit.atomic import atomic_write_csv
    from imet_kit.cli import _checks
    from imet_kit.data.labels import read_annotations, read_labels
    from imet_kit.folds.maker import make_folds
    from imet_kit.folds.report import (
        fold_label_counts,
        fold_report,
        format_report,
        save_report_json,
    )
    from imet_kit.plots.folds import plot_fold_report

    root = _checks.input_folder(args.data, "--data", "a dataset folder with labels.csv and "
                                f"train.csv (make one with `imet-kit demo-data {args.data}`)")
    _checks.at_least("--seed", args.seed, 0)  # the fold count is checked by make_folds
    out = _checks.output_file(args.out, beside=report_paths(args.out))
    space = read_labels(root / "labels.csv")
    train = read_annotations(root / "train.csv", space, sparse=True)
    folds = make_folds(train.y, args.folds, method=args.method, seed=args.seed)
    atomic_write_csv(pd.DataFrame({"id": train.ids, "fold": folds}), out)
    report = fold_report(train.y, folds, args.folds, label_names=space.names,
                         method=args.method, seed=args.seed, data=str(root), folds_csv=str(out))
    json_path, png_path = report_paths(out)
    save_report_json(report, json_path)
    written = [out, json_path]
    if not args.no_plot:
        title = f"{args.folds} folds ({args.method}, seed {args.seed}) of {root.name or root}"
        counts = fold_label_counts(train.y, folds, args.folds)
        sizes = np.bincount(folds, minlength=args.folds)
        written.append(plot_fold_report(counts, sizes, png_path, label_names=space.names,
                                        title=title))
    print(format_report(report))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
