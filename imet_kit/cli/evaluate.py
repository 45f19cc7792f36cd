"""`imet-kit evaluate`: score submissions (or probabilities) against true labels."""

from __future__ import annotations

import argparse
import json

NAME = "evaluate"
ORDER = 45
HELP = "score submission.csv files or *_probs.npy against true labels (F2, precision, recall, per group)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (its labels.csv)")
    p.add_argument("--truth", help="true labels CSV (default DATA/holdout/test_labels.csv)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--submission", action="append", help="submission.csv to score (repeat to compare)")
    g.add_argument("--probs", help="probabilities .npy (rows as in the submission beside it, "
                                   "or the truth file's order)")
    p.add_argument("--threshold", type=float, default=0.2, help="with --probs (default 0.2)")
    p.add_argument("--baseline", action="store_true",
                   help="add the 'most frequent train labels' baseline row and each row's gain over it")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from imet_kit.cli import _checks
    from imet_kit.data.folder import load_dataset
    from imet_kit.data.labels import read_annotations
    from imet_kit.errors import InputError
    from imet_kit.multilabel.evaluate import (
        default_truth,
        evaluate,
        format_scores,
        format_table,
        most_frequent_baseline,
    )

    _checks.input_folder(args.data, "--data", "a dataset folder with labels.csv")
    truth = _checks.input_file(args.truth or default_truth(args.data), "--truth",
                               "a CSV of true labels (id,attribute_ids; default "
                               "DATA/holdout/test_labels.csv)")
    labels = Path(args.data) / "labels.csv"
    sources = args.submission or [args.probs]
    for src in args.submission or []:
        _checks.input_file(src, "--submission", "a submission CSV (id,attribute_ids)")
    if args.probs:
        if not 0 < args.threshold < 1:
            raise InputError(f"--threshold must be in (0, 1); received {args.threshold}.")
        _checks.npy_file(args.probs, "--probs", "a probabilities .npy written by imet-kit predict")
    rows = {}
    for src in sources:
        kw = {"submission": src} if args.submission else {"probs": src, "threshold": args.threshold}
        rows[str(src)] = evaluate(truth, labels, **kw)
    if args.baseline:
        ds = load_dataset(args.data, check_images=False)
        k, f2 = most_frequent_baseline(np.asarray(ds.train.y), read_annotations(truth, ds.space).y)
        rows = {f"baseline: {k} most frequent labels": {"f2": f2}, **rows}
    if args.json:
        print(json.dumps(rows, indent=2))
    elif len(rows) == 1:
        print(format_scores(next(iter(rows.values()))))
    else:
        print(format_table(rows, baseline=args.baseline))
    return 0
