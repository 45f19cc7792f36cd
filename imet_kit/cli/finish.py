"""`imet-kit finish RUN`: gather a run whose folds were trained as separate jobs."""

from __future__ import annotations

import argparse
import json

NAME = "finish"
ORDER = 32
HELP = "finish a run whose folds are all trained: OOF, thresholds, plots, summary.json"
DESCRIPTION = (
    "Folds trained as separate jobs (`imet-kit train --out RUN --fold k` on several machines "
    "sharing RUN) finish the run by themselves: the call that trains the last fold gathers the "
    "out-of-fold predictions, chooses thresholds and writes the plots and summary.json. This "
    "command does it by hand, e.g. when that call was killed while finishing, and finishes a "
    "finished run again. It refuses a run with folds not trained yet and lists them."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder of imet-kit train")
    p.add_argument("--data", help="dataset folder the run was trained on, if it moved "
                                  "(default: the run's config)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.training.finish import finish_run_folder

    folder = _checks.run_folder(args.run)
    if args.data is not None:
        _checks.input_folder(args.data, "--data", "the dataset folder the run was trained on")
    summary = finish_run_folder(folder.path, data=args.data, report=print)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        oof = summary.get("oof_f2")
        if oof:
            print("OOF F2: " + ", ".join(f"{m} thresholds {v:.4f}" for m, v in oof.items()))
        print(f"run folder: {summary['run']}")
    return 0
