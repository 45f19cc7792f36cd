"""`imet-kit stats --data DIR`: validate an iMet folder and print its statistics."""

from __future__ import annotations

import argparse
import json

NAME = "stats"
ORDER = 11
HELP = "validate an iMet-format folder and print label / image statistics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (labels.csv, train.csv, train/)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--no-plot", action="store_true", help="skip label_frequency.png")


def run(args: argparse.Namespace) -> int:
    from imet_kit.data.stats import dataset_report, format_report
    from imet_kit.multilabel.evaluate import holdout_baseline

    report = dataset_report(args.data, plot=not args.no_plot)
    baseline = holdout_baseline(args.data)
    if baseline:
        report["baseline"] = baseline
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
