"""`imet-kit search QUERIES GALLERY --out results.csv`: top-k neighbours, votes, optional re-ranking."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

NAME = "search"
ORDER = 61
HELP = "find the top-k gallery images per query by cosine similarity (exact)"
DESCRIPTION = (
    "QUERIES and GALLERY are folders written by `imet-kit embed`. Writes a CSV with, per "
    "query, the top-k gallery ids and similarities; when the gallery has labels, also a "
    "predicted label and confidence from voting over the top --vote-k; when the queries have "
    "labels too, mAP@k, recall@1/k and GAP go to <out>.metrics.json. Search is exact, in numpy "
    "blocks (bounded memory) or with faiss (--backend faiss, pip install faiss-cpu)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("queries", help="query embeddings folder (from imet-kit embed)")
    p.add_argument("gallery", help="gallery embeddings folder (from imet-kit embed)")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("-k", "--k", type=int, default=100, help="neighbours per query (default 100)")
    p.add_argument("--backend", choices=["numpy", "faiss"], default="numpy",
                   help="exact search backend (default numpy)")
    p.add_argument("--vote-k", type=int, default=5,
                   help="neighbours whose similarities are summed per label (default 5)")
    p.add_argument("--exclude-self", action="store_true",
                   help="queries are the gallery: skip each query's own row (leave-one-out)")
    p.add_argument("--query-block", type=int, default=1024, help="queries per block (default 1024)")
    p.add_argument("--gallery-block", type=int, default=16384,
                   help="gallery rows per block (default 16384)")
    p.add_argument("--rerank", action="store_true",
                   help="re-rank the top --rerank-top by local features + MAGSAC inliers")
    p.add_argument("--rerank-top", type=int, default=20, help="candidates re-ranked (default 20)")
    p.add_argument("--local-features", choices=["sift", "orb", "akaze"], default="sift",
                   help="keypoint detector / descriptor for --rerank (default sift)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from imet_kit.atomic import atomic_path
    from imet_kit.cli import _checks
    from imet_kit.errors import InputError
    from imet_kit.retrieval.embed import load_embeddings
    from imet_kit.retrieval.metrics import gap, map_at_k, recall_at_k
    from imet_kit.retrieval.search import search, vote

    for flag, value in (("-k", args.k), ("--vote-k", args.vote_k), ("--rerank-top", args.rerank_top),
                        ("--query-block", args.query_block), ("--gallery-block", args.gallery_block)):
        _checks.at_least(flag, value)
    metrics_path = Path(args.out).with_suffix(".metrics.json")
    out = _checks.output_file(args.out, beside=(metrics_path,))
    q, g = load_embeddings(args.queries), load_embeddings(args.gallery)
    if args.exclude_self and len(q.ids) != len(g.ids):
        raise InputError(f"--exclude-self needs the queries to be the gallery; received "
                         f"{len(q.ids)} queries and {len(g.ids)} gallery rows.")
    nb = search(q.embeddings, g.embeddings, k=args.k, backend=args.backend,
                query_block=args.query_block, gallery_block=args.gallery_block,
                exclude_self=args.exclude_self, normalize=False)
    if args.rerank:
        from imet_kit.retrieval.rerank import LocalFeatureExtractor, rerank

        nb, _ = rerank(nb, q.paths, g.paths, top=args.rerank_top,
                       extractor=LocalFeatureExtractor(args.local_features))
    gallery_ids = np.asarray(g.ids, dtype=object)
    table = pd.DataFrame({
        "id": q.ids,
        "neighbours": [" ".join(gallery_ids[row[row >= 0]]) for row in nb.indices],
        "scores": [" ".join(f"{s:.4f}" for s in row[np.isfinite(row)]) for row in nb.scores],
    })
    metrics = {}
    if g.labels is not None:
        table["label"], table["confidence"] = vote(nb, g.labels, k=args.vote_k)
        table["confidence"] = table["confidence"].round(4)
        if q.labels is not None:
            kw = {"exclude_self": args.exclude_self}
            metrics = {f"map@{nb.indices.shape[1]}": map_at_k(nb.indices, q.labels, g.labels, args.k, **kw),
                       "recall@1": recall_at_k(nb.indices, q.labels, g.labels, 1, **kw),
                       f"recall@{nb.indices.shape[1]}": recall_at_k(nb.indices, q.labels, g.labels, args.k, **kw),
                       "gap": gap(table["label"], table["confidence"], q.labels)}
    # both files or neither: each goes to a temporary name, renamed once both are written
    with contextlib.ExitStack() as stack:
        table.to_csv(stack.enter_context(atomic_path(out)), index=False)
        if metrics:
            stack.enter_context(atomic_path(metrics_path)).write_text(json.dumps(metrics, indent=2))
        else:  # an older run's metrics would describe other neighbours
            metrics_path.unlink(missing_ok=True)
    line = f"wrote {len(table)} queries x {nb.indices.shape[1]} neighbours -> {out}"
    if metrics:
        line += "; " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(line)
    return 0
