"""`imet-kit clean`: flag training images far from the rest of their class (noisy labels)."""

from __future__ import annotations

import argparse

NAME = "clean"
ORDER = 62
HELP = "drop images whose mean cosine similarity to their class is under a threshold; write a report"
DESCRIPTION = (
    "The product-search solutions' cleaning trick: for each labelled embedding written by "
    "`imet-kit embed --csv ... --label-column label`, the mean cosine similarity to the other "
    "images of its class; images under --threshold are dropped. Writes OUT (id,label of the kept "
    "images) and OUT with suffix _report.csv (every image, its score and the decision)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("embeddings", help="folder written by imet-kit embed (with labels)")
    p.add_argument("--threshold", type=float, default=0.5, help="minimum mean class similarity (default 0.5)")
    p.add_argument("--out", required=True, help="CSV of the kept images (id,label)")


def run(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from imet_kit.atomic import atomic_path
    from imet_kit.cli import _checks
    from imet_kit.errors import InputError
    from imet_kit.retrieval.clean import clean_by_class_similarity
    from imet_kit.retrieval.embed import load_embeddings

    if not -1 <= args.threshold <= 1:
        raise InputError(f"--threshold is a cosine similarity in [-1, 1]; received {args.threshold}.")
    report_path = Path(args.out).with_name(f"{Path(args.out).stem}_report.csv")
    out = _checks.output_file(args.out, beside=(report_path,))
    emb = load_embeddings(args.embeddings)
    if emb.labels is None:
        raise InputError(f"'{args.embeddings}' has no labels; embed with --csv FILE holding a label "
                         f"column so that classes are known.")
    report = clean_by_class_similarity(emb.embeddings, list(emb.labels), args.threshold, ids=emb.ids)
    kept = report.table[report.table["kept"]][["id", "label"]]
    with contextlib.ExitStack() as stack:  # both files or neither
        kept.to_csv(stack.enter_context(atomic_path(out)), index=False)
        report.table.to_csv(stack.enter_context(atomic_path(report_path)), index=False)
    print(report.summary())
    print(f"wrote {out} and {report_path}")
    return 0
