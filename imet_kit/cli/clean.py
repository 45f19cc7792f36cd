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
    from pathlib import Path

    from imet_kit.atomic import atomic_write_csv
    from imet_kit.errors import InputError
    from imet_kit.retrieval.clean import clean_by_class_similarity
    from imet_kit.retrieval.embed import load_embeddings

    emb = load_embeddings(args.embeddings)
    if emb.labels is None:
        raise InputError(f"'{args.embeddings}' has no labels; embed with --csv FILE holding a label "
                         f"column so that classes are known.")
    if not -1 <= args.threshold <= 1:
        raise InputError(f"--threshold is a cosine similarity in [-1, 1]; received {args.threshold}.")
    report = clean_by_class_similarity(emb.embeddings, list(emb.labels), args.threshold, ids=emb.ids)
    out = Path(args.out)
    kept = report.table[report.table["kept"]][["id", "label"]]
    atomic_write_csv(kept, out)
    atomic_write_csv(report.table, out.with_name(f"{out.stem}_report.csv"))
    print(report.summary())
    print(f"wrote {out} and {out.with_name(f'{out.stem}_report.csv')}")
    return 0
