"""`imet-kit embed MODEL IMAGES OUT`: write embeddings of an image folder to disk in chunks."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "embed"
ORDER = 60
HELP = "write L2-normalised embeddings of an image folder (chunked, resumable)"
DESCRIPTION = (
    "Run a saved embedding model (.keras, image -> embedding) over the images of a folder "
    "and write OUT/embeddings.npy (float32, one row per image), OUT/ids.csv (id, path[, label]) "
    "and OUT/progress.json. Rows are flushed every --chunk-size images, so a million images "
    "fit on disk and an interrupted run resumes where it stopped."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="embedding model (.keras), e.g. a run's embedding.keras")
    p.add_argument("images", help="folder of images (<id>.png / .jpg ...)")
    p.add_argument("out", help="output folder")
    p.add_argument("--csv", help="CSV listing the images to embed (column --id-column, optional "
                                 "--label-column); default: every image in the folder")
    p.add_argument("--id-column", default="id", help="id column of --csv (default id)")
    p.add_argument("--label-column", default="label",
                   help="label column of --csv, kept with the embeddings if present (default label)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--chunk-size", type=int, default=4096,
                   help="images between flushes to disk (default 4096)")
    p.add_argument("--workers", type=int, default=2, help="image-decoding threads (default 2)")
    p.add_argument("--no-resume", action="store_true", help="start again even if OUT has progress")


def run(args: argparse.Namespace) -> int:
    from imet_kit.data.folder import find_images
    from imet_kit.data.labels import read_csv_checked
    from imet_kit.errors import DataFileError, InputError
    from imet_kit.retrieval.embed import embed_images, list_images

    if not Path(args.model).is_file():
        raise DataFileError(f"Model file '{args.model}' does not exist; expected a .keras "
                            "embedding model (image -> embedding).")
    if args.batch_size < 1 or args.chunk_size < 1:
        raise InputError(f"--batch-size and --chunk-size must be >= 1; received "
                         f"{args.batch_size}, {args.chunk_size}.")
    labels = None
    if args.csv:
        df = read_csv_checked(args.csv, [args.id_column], Path(args.csv).name)
        ids = df[args.id_column].str.strip().tolist()
        paths = find_images(args.images, ids)
        if args.label_column in df.columns:
            labels = df[args.label_column].tolist()
    else:
        ids, paths = list_images(args.images)
    out = embed_images(args.model, paths, ids, args.out, labels=labels, batch_size=args.batch_size,
                       chunk_size=args.chunk_size, resume=not args.no_resume, workers=args.workers)
    print(f"embedded {len(ids)} images -> {out / 'embeddings.npy'}")
    return 0
