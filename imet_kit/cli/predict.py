"""`imet-kit predict`: fold ensemble x TTA on the test split -> submission.csv."""

from __future__ import annotations

import argparse

NAME = "predict"
ORDER = 40
HELP = "predict the test split with every fold model and TTA; write submission.csv"


def _fold_list(text: str) -> list[int]:
    try:
        folds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 0,2; received '{text}'") from None
    if not folds:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 0,2; received '{text}'")
    return folds


IMAGE_HINT = ("Re-export or replace each file named in the test folder (every id of "
              "sample_submission.csv needs a readable image).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder of imet-kit train")
    p.add_argument("--data", required=True, help="dataset folder (labels.csv, sample_submission.csv, test/)")
    p.add_argument("--tta", type=int, default=1, help="deterministic test-time views per image (default 1). Crop "
                   "runs: identity, flip, corner crops (at most 12; 6 with --no-flip); squash / pad "
                   "runs: identity, flip, the whole image shifted 5%% and zoomed 10%% (at most 10; "
                   "7 with --no-flip)")
    p.add_argument("--out", default="submission.csv", help="submission path (default submission.csv)")
    p.add_argument("--threshold", type=float, help="one global threshold instead of the run's")
    p.add_argument("--threshold-mode", choices=["global", "group", "class"],
                   help="which of the run's OOF thresholds to use (default: the run's choice)")
    p.add_argument("--fold", type=int, action="append", dest="folds", help="use only fold k (repeatable)")
    p.add_argument("--folds", type=_fold_list, dest="fold_list",
                   help="use only these trained folds, comma-separated (e.g. 0,2)")
    p.add_argument("--no-refit", action="store_true",
                   help="ignore RUN/full/best.keras (train --refit); by default it is averaged 50/50 "
                        "with the fold ensemble when present")
    p.add_argument("--no-stack", action="store_true",
                   help="ignore RUN/stack/ (imet-kit stack); by default the second-level model and "
                        "its thresholds apply when present")
    p.add_argument("--batch-size", type=int, help="default: the run's")
    p.add_argument("--pipeline", help="pydataset or tfdata (decode + TTA views in-graph, within 1 "
                                      "grey level of pydataset's); default: the run's --pipeline")
    p.add_argument("--truth", help="CSV of true test labels to score against (default: DATA/holdout/"
                                   "test_labels.csv when it exists)")
    p.add_argument("--no-gallery", action="store_true",
                   help="skip <out>_gallery.png (test images with predicted and true labels)")


def run(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    import numpy as np

    from imet_kit.atomic import atomic_path
    from imet_kit.cli import _checks
    from imet_kit.data.labels import read_annotations
    from imet_kit.multilabel.evaluate import default_truth, format_scores, score_labels
    from imet_kit.multilabel.predict import predict, probs_path, write_submission
    from imet_kit.training.rundir import RunDir

    _checks.run_folder(args.run, thresholds=args.threshold is None)
    _checks.input_folder(args.data, "--data", "a dataset folder (labels.csv, "
                         "sample_submission.csv, test/)")
    if args.truth:
        _checks.input_file(args.truth, "--truth", "a CSV of true test labels (id,attribute_ids)")
    gallery = Path(args.out).with_name(f"{Path(args.out).stem}_gallery.png")
    out = _checks.output_file(args.out, beside=(probs_path(args.out), gallery))
    folds = None
    if args.folds or args.fold_list:
        folds = sorted(set(args.folds or []) | set(args.fold_list or []))
    pred = predict(args.run, args.data, tta=args.tta, threshold=args.threshold,
                   threshold_mode=args.threshold_mode, folds=folds, batch_size=args.batch_size,
                   refit=not args.no_refit, stack=not args.no_stack, pipeline=args.pipeline)
    truth = Path(args.truth) if args.truth else default_truth(args.data)
    space = RunDir(args.run).load_space()
    y_true = scores = None
    if truth.is_file():
        true = read_annotations(truth, space)
        where = {i: r for r, i in enumerate(true.ids)}
        if all(i in where for i in pred.ids):
            y_true = np.asarray(true.y)[[where[i] for i in pred.ids]]
            scores = score_labels(y_true, pred.labels, space)
    # the submission, its probabilities and the gallery go to temporary names, renamed together
    # once all are written: a failure (a full disk, Ctrl-C) leaves the previous three as they were
    with contextlib.ExitStack() as stack:
        write_submission(stack.enter_context(atomic_path(out)), pred.ids, pred.labels, space)
        np.save(stack.enter_context(atomic_path(probs_path(out), keep_suffix=True)), pred.probs)
        if not args.no_gallery:
            from imet_kit.data.folder import find_images
            from imet_kit.data.images import read_image
            from imet_kit.plots.gallery import plot_gallery

            paths = find_images(Path(args.data) / "test", pred.ids[:12], what="test images")
            plot_gallery([read_image(p) for p in paths], pred.ids[:12], pred.labels[:12], space.names,
                         stack.enter_context(atomic_path(gallery, keep_suffix=True)),
                         truth=None if y_true is None else y_true[:12].astype(bool))
    extras = "".join([", + refit model" if pred.refit else "", ", stacked" if pred.stacked else ""])
    print(f"wrote {out} ({len(pred.ids)} images, folds {pred.folds}, TTA {pred.tta}{extras}) "
          f"and {probs_path(out)}")
    if scores is not None:
        print(format_scores(scores, f"scored against {truth}"))
    if not args.no_gallery:
        print(f"gallery: {gallery}")
    return 0
