"""`imet-kit stats --data DIR`: validate an iMet folder and print its statistics."""

from __future__ import annotations

import argparse
import json

NAME = "stats"
ORDER = 11
HELP = "validate an iMet-format folder and print label / image statistics"


IMAGE_HINT = ("Re-export or replace each file named, or drop its row from train.csv (train/) or "
              "sample_submission.csv (test/).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (labels.csv, train.csv, train/)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--no-plot", action="store_true", help="skip label_frequency.png")
    p.add_argument("--workers", type=int, default=None,
                   help="threads decoding the images (default: one per CPU core)")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.data.stats import dataset_report, format_report
    from imet_kit.errors import InputError
    from imet_kit.multilabel.evaluate import holdout_baseline

    _checks.at_least("--workers", args.workers)
    _checks.input_folder(args.data, "--data", "a dataset folder (labels.csv, train.csv, train/)")
    if not args.no_plot:
        try:
            _checks.writable_folder(args.data, "--data")
        except InputError as exc:
            raise InputError(f"{exc} Or pass --no-plot: label_frequency.png is the only file "
                             f"stats writes.") from None
    report = dataset_report(args.data, plot=not args.no_plot, workers=args.workers)
    baseline = holdout_baseline(args.data)
    if baseline:
        report["baseline"] = baseline
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
