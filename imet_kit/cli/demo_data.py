"""`imet-kit demo-data PATH`: write the embedded demo dataset and print its statistics."""

from __future__ import annotations

import argparse
import json

NAME = "demo-data"
ORDER = 10
HELP = "write the embedded demo dataset (real digits, fonts and photos) in iMet format"
DESCRIPTION = (
    "Generate an iMet-format dataset from material shipped with installed packages "
    "(scikit-image sample photos, scikit-learn handwritten digits, matplotlib / OpenCV fonts) "
    "and print its statistics, including the 'most frequent labels' F2 baseline."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imet_kit.data.demo import SIZES, VARIANTS

    p.add_argument("path", help="output folder")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="small: 160+40 images, medium: 1200+300, full: 3000+600 (default small)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    p.add_argument("--variant", choices=list(VARIANTS), default="default",
                   help="default (49 labels) or hard (98 labels: small digits, glyphs and font cards "
                        "on wide photos, aspect 1.0-2.4)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from imet_kit.cli import _checks
    from imet_kit.data.demo import make_demo_dataset
    from imet_kit.data.stats import dataset_report, format_report
    from imet_kit.multilabel.evaluate import holdout_baseline

    _checks.at_least("--seed", args.seed, 0)
    _checks.output_folder(args.path, "PATH")
    created = not Path(args.path).exists()
    try:
        make_demo_dataset(args.path, size=args.size, seed=args.seed, variant=args.variant)
    except BaseException:
        if created:  # a half-made dataset would pass for a whole one
            shutil.rmtree(args.path, ignore_errors=True)
        raise
    report = dataset_report(args.path)
    baseline = holdout_baseline(args.path)
    if baseline:
        report["baseline"] = baseline
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
