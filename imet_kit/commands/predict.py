"""`imet-kit predict`: fold ensemble x TTA on the test split -> submission.csv."""

from __future__ import annotations

import argparse

NAME = "predict"
ORDER = 40
HELP = "predict the test split with every fold model and TTA; write submission.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder of imet-kit train")
    p.add_argument("--data", required=True, help="dataset folder (labels.csv, sample_submission.csv, test/)")
    p.add_argument("--tta", type=int, default=1, help="deterministic test-time views per image (default 1)")
    p.add_argument("--out", default="submission.csv", help="submission path (default submission.csv)")
    p.add_argument("--threshold", type=float, help="one global threshold instead of the run's")
    p.add_argument("--threshold-mode", choices=["global", "group", "class"],
                   help="which of the run's OOF thresholds to use (default: the run's choice)")
    p.add_argument("--fold", type=int, action="append", dest="folds", help="use only fold k (repeatable)")
    p.add_argument("--batch-size", type=int, help="default: the run's")
    p.add_argument("--truth", help="CSV of true test labels to score against (default: DATA/holdout/"
                                   "test_labels.csv when it exists)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluate import default_truth, format_scores, score_labels
    from ..labels import read_annotations
    from ..predict import predict, probs_path
    from ..runs import RunDir

    pred = predict(args.run, args.data, tta=args.tta, out=args.out, threshold=args.threshold,
                   threshold_mode=args.threshold_mode, folds=args.folds, batch_size=args.batch_size)
    print(f"wrote {args.out} ({len(pred.ids)} images, folds {pred.folds}, TTA {pred.tta}) "
          f"and {probs_path(args.out)}")
    truth = Path(args.truth) if args.truth else default_truth(args.data)
    if truth.is_file():
        space = RunDir(args.run).load_space()
        true = read_annotations(truth, space)
        index = {i: r for r, i in enumerate(pred.ids)}
        rows = [index[i] for i in true.ids if i in index]
        scores = score_labels(true.y[[k for k, i in enumerate(true.ids) if i in index]],
                              pred.labels[rows], space)
        print(format_scores(scores, f"scored against {truth}"))
    return 0
