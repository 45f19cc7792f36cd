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
    "and OUT/progress.json. Rows are flushed every --chunk-size images into OUT/.partial/, so a "
    "million images fit on disk and an interrupted run resumes where it stopped; only a "
    "complete set replaces what OUT held before."
)


IMAGE_HINT = ("Re-export or replace each file named, or leave it out: move it out of the image "
              "folder, or list only readable images with --csv.")


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
    p.add_argument("--no-resume", action="store_true",
                   help="start again even if OUT has progress (OUT keeps its old embeddings until "
                        "the new ones are complete)")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.data.folder import find_images
    from imet_kit.data.images import check_images
    from imet_kit.data.labels import read_csv_checked
    from imet_kit.errors import InputError
    from imet_kit.retrieval.embed import embed_images, list_images

    for flag, value in (("--batch-size", args.batch_size), ("--chunk-size", args.chunk_size),
                        ("--workers", args.workers)):
        _checks.at_least(flag, value)
    _checks.input_folder(args.images, "IMAGES", "a folder of images (<id>.png / .jpg ...)")
    _checks.output_folder(args.out, "OUT")
    labels = None
    if args.csv:
        _checks.input_file(args.csv, "--csv", "a CSV listing the images to embed")
        df = read_csv_checked(args.csv, [args.id_column], Path(args.csv).name)
        ids = df[args.id_column].astype(str).str.strip().tolist()
        if not ids:
            raise InputError(f"--csv '{args.csv}' lists no images; expected one row per image.")
        paths = find_images(args.images, ids)
        if args.label_column in df.columns:
            labels = df[args.label_column].tolist()
    else:
        ids, paths = list_images(args.images)
    # header and end marker of each image: cheap, before TensorFlow loads for the model
    check_images(paths, workers=args.workers)
    out = embed_images(args.model, paths, ids, args.out, labels=labels, batch_size=args.batch_size,
                       chunk_size=args.chunk_size, resume=not args.no_resume, workers=args.workers)
    print(f"embedded {len(ids)} images -> {out / 'embeddings.npy'}")
    return 0
