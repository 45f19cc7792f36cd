"""`imet-kit export RUN --format savedmodel|onnx|tflite --out DIR`: the fold ensemble for serving."""

from __future__ import annotations

import argparse

NAME = "export"
ORDER = 45
HELP = "export the fold ensemble (uint8 images -> probabilities) as SavedModel, ONNX or TFLite"
DESCRIPTION = (
    "Writes DIR/ with one artefact (saved_model/, model.onnx or model.tflite) that takes uint8 "
    "RGB images of the run's input size, already resized as the run's eval transform does "
    "(its image_size and resize mode, in DIR/export.json), and returns the probabilities "
    "averaged over the fold models (and RUN/full/best.keras, 50/50 with the folds, as predict "
    "does), plus labels.json and thresholds.json (the run's thresholds and rule) so a server can "
    "binarise as predict does. RUN/stack (a second-level model) is not in the artefact. ONNX needs "
    "pip install 'imet_kit[export]'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from imet_kit.cli.predict import _fold_list

    p.add_argument("run", help="run folder of imet-kit train")
    p.add_argument("--format", required=True, dest="fmt", metavar="FORMAT",
                   help="savedmodel (TF Serving), onnx (onnxruntime) or tflite (LiteRT)")
    p.add_argument("--out", required=True, help="folder to create for the artefact and its JSON files")
    p.add_argument("--force", action="store_true", help="replace --out when it exists")
    p.add_argument("--tta", type=int, default=1,
                   help="TTA views in-graph: 1 (default) or 2 (+ horizontal flip; 1 for a run "
                        "trained with --no-flip); crop, shift, zoom views: use predict")
    p.add_argument("--fold", type=int, action="append", dest="folds", help="use only fold k (repeatable)")
    p.add_argument("--folds", type=_fold_list, dest="fold_list",
                   help="use only these trained folds, comma-separated (e.g. 0,2)")
    p.add_argument("--no-refit", action="store_true",
                   help="leave out RUN/full/best.keras (by default averaged 50/50 with the folds)")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from imet_kit.cli import _checks
    from imet_kit.multilabel.export import check_converter, check_out, export_run, plan_export

    _checks.input_folder(args.run, "RUN", "the run folder of `imet-kit train`")
    _checks.run_folder(args.run, thresholds=True)
    folds = None
    if args.folds or args.fold_list:
        folds = sorted(set(args.folds or []) | set(args.fold_list or []))
    plan = plan_export(args.run, args.fmt, folds=folds, refit=not args.no_refit, tta=args.tta)
    check_out(args.out, plan.run, args.force)
    _checks.writable_folder(os.path.dirname(os.path.abspath(args.out)), "--out")
    check_converter(args.fmt)
    res = export_run(args.run, args.out, args.fmt, folds=plan.folds, refit=plan.refit,
                     tta=args.tta, force=args.force)
    for line in res.warnings:
        sys.stderr.write(f"imet-kit export: warning: {line}\n")
    checked = "" if res.max_abs_diff is None else f"; max |diff| vs Keras {res.max_abs_diff:.2g}"
    print(f"wrote {res.artefact} ({args.fmt}: folds {plan.folds}"
          f"{', + refit model' if plan.refit else ''}, TTA {len(plan.views)}; input uint8 "
          f"(N, {plan.size}, {plan.size}, 3) resized with resize={plan.resize}{checked})")
    print(f"beside it: labels.json, {'thresholds.json, ' if (res.out / 'thresholds.json').is_file() else ''}"
          f"export.json")
    return 0
