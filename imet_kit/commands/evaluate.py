"""`imet-kit evaluate`: score a submission (or probabilities) against true labels."""

from __future__ import annotations

import argparse
import json

NAME = "evaluate"
ORDER = 45
HELP = "score submission.csv or *_probs.npy against true labels (F2, precision, recall, per group)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder (its labels.csv)")
    p.add_argument("--truth", help="true labels CSV (default DATA/holdout/test_labels.csv)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--submission", help="submission.csv to score")
    g.add_argument("--probs", help="probabilities .npy in the truth file's id order")
    p.add_argument("--threshold", type=float, default=0.2, help="with --probs (default 0.2)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluate import default_truth, evaluate, format_scores

    truth = args.truth or default_truth(args.data)
    scores = evaluate(truth, Path(args.data) / "labels.csv", submission=args.submission,
                      probs=args.probs, threshold=args.threshold)
    print(json.dumps(scores, indent=2) if args.json else format_scores(scores))
    return 0
