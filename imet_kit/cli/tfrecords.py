"""`imet-kit tfrecords DATA OUT`: write a dataset's images and labels as sharded TFRecords."""

from __future__ import annotations

import argparse

NAME = "tfrecords"
ORDER = 25
HELP = "write sharded TFRecords (encoded images + labels) for the tf.data / multi-GPU path"
DESCRIPTION = (
    "Read an iMet-format dataset folder (labels.csv, train.csv, train/; or the test split "
    "listed in sample_submission.csv) and write OUT/<split>-NNNNN-of-NNNNN.tfrecord shards "
    "plus OUT/tfrecords.json. Each image is read as the PyDataset reads it (upright, RGB, "
    "8-bit, alpha on white) and re-encoded: JPEG decodes ~3x faster than PNG, PNG is lossless."
)


IMAGE_HINT = ("Re-export or replace each file named, or pass --skip-corrupt to leave unreadable "
              "images out (they are counted in a warning and listed in tfrecords.json).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset folder in iMet layout (labels.csv, train.csv, train/)")
    p.add_argument("out", help="output folder for the shards and tfrecords.json")
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="train: train.csv with labels; test: sample_submission.csv ids, no labels")
    p.add_argument("--format", dest="image_format", choices=["jpeg", "png"], default="jpeg",
                   help="stored image encoding (default jpeg)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality 1-100 (default 95)")
    p.add_argument("--labels", dest="label_format", choices=["ids", "multihot"], default="ids",
                   help="label ids (compact, default) or a multi-hot float row per image")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard (default 1024)")
    p.add_argument("--shorter-side", type=int, default=None,
                   help="shrink images whose shorter side exceeds this (default keep size)")
    p.add_argument("--workers", type=int, default=2, help="decode/encode threads (default 2)")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="leave unreadable images out (counted in a warning) instead of failing")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli import _checks
    from imet_kit.data.folder import load_dataset
    from imet_kit.data.images import check_images
    from imet_kit.errors import InputError

    if not 1 <= args.quality <= 100:
        raise InputError(f"--quality must be between 1 and 100; received {args.quality}.")
    if args.shard_size < 1 or args.workers < 1:
        raise InputError(f"--shard-size and --workers must be >= 1; received "
                         f"{args.shard_size}, {args.workers}.")
    if args.shorter_side is not None and args.shorter_side < 1:
        raise InputError(f"--shorter-side must be >= 1; received {args.shorter_side}.")
    _checks.input_folder(args.data, "DATA", "a dataset folder in iMet layout (labels.csv, "
                         "train.csv, train/)")
    _checks.output_folder(args.out, "OUT")
    ds = load_dataset(args.data, check_images=args.split == "train")
    if args.split == "train":
        paths, y, ids = ds.train_paths, ds.train.y, ds.train.ids
    else:
        ids = ds.test_ids()
        paths, y = ds.test_paths(ids), None
    if not paths:
        raise InputError(f"The {args.split} split of '{args.data}' lists no images; nothing to write.")
    if not args.skip_corrupt:
        check_images(paths, workers=args.workers)  # cheap, before TensorFlow loads
    from imet_kit.data.tfdata import write_tfrecords

    meta = write_tfrecords(
        paths, args.out, y=y, ids=ids, label_names=ds.space.names,
        image_format=args.image_format, quality=args.quality, label_format=args.label_format,
        shard_size=args.shard_size, shorter_side=args.shorter_side,
        skip_corrupt=args.skip_corrupt, workers=args.workers, prefix=args.split,
    )
    print(f"Wrote {meta['count']} images in {len(meta['shards'])} shard(s) to {args.out} "
          f"({args.image_format}, labels: {meta['label_format'] or 'none'}); "
          f"skipped {len(meta['skipped'])}.")
    return 0
