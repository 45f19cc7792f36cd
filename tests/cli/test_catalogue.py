"""The catalogue of bad inputs and interruptions, one row each, as a careful new user meets them.

Every row runs ``imet-kit`` in-process on one tiny demo dataset and one tiny trained run (built
once for the module) and asserts what the CLI promises: the exit code (2 for bad input, 130 for
Ctrl-C), exactly one line on stderr that names the problem and says how to fix it, no
traceback, and every output as it was before (nothing written, no temporary left), except
what a row names as kept on purpose.

Read-only places, as root: chmod does not stop root, so a path under a regular file stands for
a folder that cannot be made, /sys (where root may not create files) for a read-only folder,
and a writer monkeypatched to raise ``OSError(EACCES / ENOSPC)`` for a permission refused or a
full disk in the middle of writing.

Training-engine failures (the run-folder lock, Ctrl-C during training, exact resume) are tested
with the engine (tests/training); the train rows here are bad flags, config files and data,
all refused before anything is written.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from imet_kit.cli.main import main

# CPU seconds of this process for the whole module: measured ~40 (about 65 s wall on a 2-core
# box, most of it TensorFlow's import and the tiny run); wall time is not asserted, it varies
# with what else the machine runs
BUDGET_CPU_S = 120


# --- the shared dataset, run and embeddings ---------------------------------------------------

TRAIN = ["--folds", "2", "--epochs", "1", "--backbone", "tiny_cnn", "--weights", "none",
         "--image-size", "32", "--batch-size", "8", "--augment", "none"]


def _cli(argv):
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """demo data (24 train + 6 test), a 2-fold tiny_cnn run, its submission, an embedding model
    cut from a fold model, labelled and unlabelled embeddings of the test images, bad models."""
    import keras

    from imet_kit.data.demo import make_demo_dataset
    from imet_kit.models.loading import load_model
    from imet_kit.retrieval.embed import export_embedding_model

    start = time.time()
    base = tmp_path_factory.mktemp("catalogue")
    data, run = base / "data", base / "run"
    make_demo_dataset(data, n_train=24, n_test=6, seed=0)
    assert _cli(["train", "--data", data, "--out", run, *TRAIN]) == 0
    assert _cli(["predict", "--run", run, "--data", data, "--out", base / "sub.csv",
                 "--no-gallery"]) == 0
    emb_model = base / "emb.keras"
    export_embedding_model(load_model(run / "fold0" / "best.keras", compile=False), emb_model)
    test_ids = pd.read_csv(data / "sample_submission.csv", dtype=str)["id"].tolist()
    labels_csv = base / "test_labels.csv"
    pd.DataFrame({"id": test_ids, "label": ["a", "a", "a", "b", "b", "b"]}).to_csv(labels_csv,
                                                                                  index=False)
    assert _cli(["embed", emb_model, data / "test", base / "emb", "--csv", labels_csv]) == 0
    assert _cli(["embed", emb_model, data / "test", base / "emb_nl"]) == 0

    bad = base / "models"
    bad.mkdir()
    inp = keras.Input((32, 32, 3))
    lam = keras.layers.Lambda(lambda x: x * 2.0)(inp)
    keras.Model(inp, keras.layers.GlobalAveragePooling2D()(lam)).save(bad / "lambda.keras")
    (bad / "fake.keras").write_text("this is not a Keras model\n")
    whole = (run / "fold0" / "best.keras").read_bytes()
    (bad / "trunc.keras").write_bytes(whole[: len(whole) // 2])
    with zipfile.ZipFile(bad / "otherzip.keras", "w") as z:
        z.writestr("readme.txt", "a zip, but no model")
    readonly = Path("/sys/imet-kit-catalogue")
    try:
        readonly.mkdir()
        readonly.rmdir()
        readonly = None  # /sys takes writes here: the rows that need a read-only folder skip
    except OSError:
        pass
    print(f"catalogue fixtures built in {time.time() - start:.1f} s")
    return SimpleNamespace(
        base=base, data=data, run=run, sub=base / "sub.csv", probs=base / "sub_probs.npy",
        emb=base / "emb", emb_nl=base / "emb_nl", emb_model=emb_model, labels_csv=labels_csv,
        classifier=run / "fold0" / "best.keras", lambda_model=bad / "lambda.keras",
        fake_model=bad / "fake.keras", trunc_model=bad / "trunc.keras",
        zip_model=bad / "otherzip.keras", readonly=readonly, test_ids=test_ids)


@pytest.fixture(scope="module", autouse=True)
def runtime_budget():
    """The catalogue stays quick enough to run on every change: its CPU time is bounded (wall
    time is not asserted; it depends on what else the machine runs)."""
    start = time.process_time()
    yield
    used = time.process_time() - start
    assert used < BUDGET_CPU_S, f"the catalogue used {used:.0f} CPU s; its budget is {BUDGET_CPU_S}"


# --- what a row can do to its own copy of the data -------------------------------------------

def zero_byte(p: Path) -> None:
    p.write_bytes(b"")


def text_as_png(p: Path) -> None:
    p.write_text("Hello! This was saved with a .png name, but it is a text file.\n")


def truncate(p: Path) -> None:
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])


def damage(p: Path) -> None:
    """Overwrite bytes in the middle: header and end marker intact, the data inside not."""
    b = bytearray(p.read_bytes())
    mid = len(b) // 2
    b[mid:mid + 64] = bytes(x ^ 0xFF for x in b[mid:mid + 64])
    p.write_bytes(bytes(b))


def to_folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


def copy_data(w: Path, e, split: str | None = None, index: int = 0, harm=None) -> Path:
    """Copy the dataset into the row's folder; ``harm`` the ``index``-th image of ``split``."""
    data = w / "data"
    shutil.copytree(e.data, data)
    if harm is not None:
        harm(sorted((data / split).glob("*.png"))[index])
    return data


def copy_run(w: Path, e) -> Path:
    shutil.copytree(e.run, w / "run")
    return w / "run"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def edit_csv(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df).to_csv(path, index=False)


def hand_embeddings(folder: Path, n: int, dim: int, *, done: int | None = None,
                    rows: int | None = None, state: str | None = None) -> None:
    """An embeddings folder written by hand (to make it inconsistent on purpose)."""
    folder.mkdir(parents=True)
    np.save(folder / "embeddings.npy", np.eye(max(n if rows is None else rows, dim), dim, dtype=np.float32)[: n if rows is None else rows])
    pd.DataFrame({"id": [f"h{i}" for i in range(n)], "path": ""}).to_csv(folder / "ids.csv",
                                                                         index=False)
    text = state if state is not None else json.dumps({"n": n, "dim": dim, "done": n if done is None else done})
    (folder / "progress.json").write_text(text)


def fail_writes(monkeypatch, code: int, where: str = "pandas") -> None:
    """Every CSV / .npy / JSON / figure write raises ``OSError(code)`` (a full disk, no permission)."""
    def boom(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[1] if len(args) > 1 else "file"))

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    monkeypatch.setattr(np, "save", boom)
    monkeypatch.setattr(Path, "write_text", boom)
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)


def interrupt(monkeypatch, target: str) -> None:
    """Ctrl-C at ``module:function``."""
    module, name = target.rsplit(":", 1)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module + "." + name, ctrl_c)


def full_disk_after(monkeypatch, target: str, calls: int) -> None:
    """``module.Class.method`` (or function) raises ENOSPC from its ``calls + 1``-th call on."""
    import importlib

    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    for attr in parts[i:-1]:
        obj = getattr(obj, attr)
    real, count = getattr(obj, parts[-1]), [0]

    def maybe(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device", "out")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, parts[-1], maybe)


# --- the catalogue ----------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: list[str]
    expect: tuple[str, ...]  # substrings of the one stderr line: the problem and the fix
    setup: object = None  # (w, env) -> None: the row's own copies and damage
    patch: object = None  # (monkeypatch, w, env) -> None: a failing writer, Ctrl-C
    code: int = 2
    keeps: tuple[str, ...] = ()  # paths under the row's folder allowed (and required) to appear
    check: object = None  # (w, env) -> None: more assertions afterwards
    readonly: bool = False  # needs a folder where even root cannot write


C = Case
EMPTY = "Expected readable"  # the default image hint is never shown: each command has its own

CASES = [
    # general ---------------------------------------------------------------------------------
    C("no-command", [], ("give a command", "demo-data", "--help")),
    C("unknown-command", ["trian"], ("invalid choice: 'trian'", "--help")),
    C("unknown-flag", ["stats", "--data", "{data}", "--colour", "red"], ("unrecognized arguments",)),

    # demo-data -------------------------------------------------------------------------------
    C("demo-path-is-a-file", ["demo-data", "{w}/file.txt"], ("is a file", "expected a folder")),
    C("demo-path-under-a-file", ["demo-data", "{w}/file.txt/demo"],
      ("cannot be created", "file.txt' is a file, not a folder")),
    C("demo-path-read-only", ["demo-data", "{readonly}/demo"], ("cannot be written", "refuses new files"),
      readonly=True),
    C("demo-path-in-proc", ["demo-data", "/proc/imet-kit-demo"], ("cannot be written", "/proc")),
    C("demo-size-unknown", ["demo-data", "{w}/d", "--size", "huge"], ("invalid choice: 'huge'",)),
    C("demo-seed-negative", ["demo-data", "{w}/d", "--seed", "-1"], ("--seed must be >= 0", "received -1")),
    C("demo-seed-not-a-number", ["demo-data", "{w}/d", "--seed", "one"], ("invalid int value: 'one'",)),
    C("demo-path-missing", ["demo-data"], ("required", "path")),
    C("demo-full-disk", ["demo-data", "{w}/d"], ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: fail_writes(mp, errno.ENOSPC)),
    C("demo-ctrl-c", ["demo-data", "{w}/d"], ("interrupted",), code=130,
      patch=lambda mp, w, e: interrupt(mp, "imet_kit.data.demo:write_labels")),

    # stats -----------------------------------------------------------------------------------
    C("stats-data-missing", ["stats", "--data", "{w}/nope"], ("does not exist", "dataset folder")),
    C("stats-data-is-a-file", ["stats", "--data", "{w}/file.txt"], ("is a file", "dataset folder")),
    C("stats-no-labels-csv", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Missing labels.csv", "check --data"), setup=lambda w, e: (copy_data(w, e) / "labels.csv").unlink()),
    C("stats-labels-ids-not-consecutive", ["stats", "--data", "{w}/data", "--no-plot"],
      ("attribute_id must be exactly 0..", "Renumber"),
      setup=lambda w, e: edit_csv(copy_data(w, e) / "labels.csv",
                                  lambda d: d.assign(attribute_id=[str(int(i) + 5) for i in d["attribute_id"]]))),
    C("stats-labels-empty-file", ["stats", "--data", "{w}/data", "--no-plot"], ("Cannot parse labels.csv",),
      setup=lambda w, e: (copy_data(w, e) / "labels.csv").write_text("")),
    C("stats-train-csv-missing-column", ["stats", "--data", "{w}/data", "--no-plot"],
      ("lacks column(s) attribute_ids", "Expected columns id, attribute_ids"),
      setup=lambda w, e: edit_csv(copy_data(w, e) / "train.csv", lambda d: d.rename(columns={"attribute_ids": "labels"}))),
    C("stats-train-csv-unknown-attribute", ["stats", "--data", "{w}/data", "--no-plot"], ("9999",),
      setup=lambda w, e: edit_csv(copy_data(w, e) / "train.csv",
                                  lambda d: d.assign(attribute_ids=["9999"] + d["attribute_ids"].tolist()[1:]))),
    C("stats-train-csv-duplicate-ids", ["stats", "--data", "{w}/data", "--no-plot"], ("duplicate",),
      setup=lambda w, e: edit_csv(copy_data(w, e) / "train.csv", lambda d: pd.concat([d, d.iloc[:1]]))),
    C("stats-train-image-missing", ["stats", "--data", "{w}/data", "--no-plot"],
      ("1 of 24 train images listed are missing", "copy them there or drop those rows"),
      setup=lambda w, e: sorted((copy_data(w, e) / "train").glob("*.png"))[0].unlink()),
    C("stats-zero-byte-image", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "the file is empty", "drop its row from train.csv"),
      setup=lambda w, e: copy_data(w, e, "train", 3, zero_byte)),
    C("stats-text-as-png", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "the file is not an image"),
      setup=lambda w, e: copy_data(w, e, "train", 4, text_as_png)),
    C("stats-truncated-png", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "truncated"), setup=lambda w, e: copy_data(w, e, "train", 5, truncate)),
    C("stats-damaged-png", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "the PNG data is damaged"), setup=lambda w, e: copy_data(w, e, "train", 6, damage)),
    C("stats-damaged-test-image", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "/test/", "sample_submission.csv (test/)"),
      setup=lambda w, e: copy_data(w, e, "test", 1, damage)),
    C("stats-three-bad-images-named", ["stats", "--data", "{w}/data", "--no-plot"],
      ("the file is empty", "2 more cannot be read either", "truncated", "damaged"),
      setup=lambda w, e: [copy_data(w, e, "train", 0, zero_byte),
                          truncate(sorted((w / "data/train").glob("*.png"))[1]),
                          damage(sorted((w / "data/train").glob("*.png"))[2])]),
    C("stats-image-is-a-folder", ["stats", "--data", "{w}/data", "--no-plot"],
      ("Cannot read image", "it is a folder, not a file"), setup=lambda w, e: copy_data(w, e, "train", 2, to_folder)),
    C("stats-image-permission-denied", ["stats", "--data", "{data}", "--no-plot"],
      ("Cannot read image", "the file cannot be read (Permission denied)"),
      patch=lambda mp, w, e: mp.setattr("imet_kit.data.images.np.fromfile", _refuse)),
    C("stats-workers-zero", ["stats", "--data", "{data}", "--workers", "0"], ("--workers must be >= 1",)),
    C("stats-data-not-writable-for-plot", ["stats", "--data", "{data}"], ("refuses new files", "--no-plot"),
      patch=lambda mp, w, e: mp.setattr("tempfile.mkstemp", _refuse)),
    C("stats-full-disk-writing-plot", ["stats", "--data", "{data}"], ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: fail_writes(mp, errno.ENOSPC)),
    C("stats-missing-test-image", ["stats", "--data", "{w}/data", "--no-plot"],
      ("1 of 6 test images listed are missing",), setup=lambda w, e: sorted((copy_data(w, e) / "test").glob("*.png"))[0].unlink()),

    # folds -----------------------------------------------------------------------------------
    C("folds-one-fold", ["folds", "--data", "{data}", "--folds", "1", "--out", "{w}/f.csv"], ("n_folds must be at least 2",)),
    C("folds-zero-folds", ["folds", "--data", "{data}", "--folds", "0", "--out", "{w}/f.csv"], ("n_folds must be at least 2",)),
    C("folds-not-a-number", ["folds", "--data", "{data}", "--folds", "five"], ("invalid int value: 'five'",)),
    C("folds-method-unknown", ["folds", "--data", "{data}", "--method", "random"], ("invalid choice: 'random'",)),
    C("folds-seed-negative", ["folds", "--data", "{data}", "--seed", "-3", "--out", "{w}/f.csv"], ("--seed must be >= 0",)),
    C("folds-data-missing", ["folds", "--data", "{w}/nope", "--out", "{w}/f.csv"], ("does not exist", "demo-data")),
    C("folds-data-is-a-file", ["folds", "--data", "{w}/file.txt", "--out", "{w}/f.csv"], ("is a file",)),
    C("folds-out-is-a-folder", ["folds", "--data", "{data}", "--out", "{w}"], ("is a folder", "expected a file name")),
    C("folds-out-under-a-file", ["folds", "--data", "{data}", "--out", "{w}/file.txt/f.csv"], ("is a file, not a folder",)),
    C("folds-out-read-only", ["folds", "--data", "{data}", "--out", "{readonly}/f.csv"], ("refuses new files",), readonly=True),
    C("folds-more-folds-than-images", ["folds", "--data", "{data}", "--folds", "50", "--out", "{w}/f.csv"], ("50",)),
    C("folds-full-disk", ["folds", "--data", "{data}", "--out", "{w}/f.csv"], ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: fail_writes(mp, errno.ENOSPC)),
    C("folds-permission-denied", ["folds", "--data", "{data}", "--out", "{w}/f.csv"], ("Permission denied", "change its permissions"),
      patch=lambda mp, w, e: fail_writes(mp, errno.EACCES)),

    # tfrecords -------------------------------------------------------------------------------
    C("tfrecords-data-missing", ["tfrecords", "{w}/nope", "{w}/tf"], ("DATA", "does not exist")),
    C("tfrecords-out-is-a-file", ["tfrecords", "{data}", "{w}/file.txt"], ("OUT", "is a file")),
    C("tfrecords-out-under-a-file", ["tfrecords", "{data}", "{w}/file.txt/tf"], ("is a file, not a folder",)),
    C("tfrecords-out-read-only", ["tfrecords", "{data}", "{readonly}/tf"], ("refuses new files",), readonly=True),
    C("tfrecords-quality-zero", ["tfrecords", "{data}", "{w}/tf", "--quality", "0"], ("--quality must be between 1 and 100",)),
    C("tfrecords-quality-101", ["tfrecords", "{data}", "{w}/tf", "--quality", "101"], ("--quality must be between 1 and 100",)),
    C("tfrecords-shard-size-zero", ["tfrecords", "{data}", "{w}/tf", "--shard-size", "0"], ("--shard-size and --workers must be >= 1",)),
    C("tfrecords-workers-zero", ["tfrecords", "{data}", "{w}/tf", "--workers", "0"], ("--shard-size and --workers must be >= 1",)),
    C("tfrecords-shorter-side-zero", ["tfrecords", "{data}", "{w}/tf", "--shorter-side", "0"], ("--shorter-side must be >= 1",)),
    C("tfrecords-format-gif", ["tfrecords", "{data}", "{w}/tf", "--format", "gif"], ("invalid choice: 'gif'",)),
    C("tfrecords-split-val", ["tfrecords", "{data}", "{w}/tf", "--split", "val"], ("invalid choice: 'val'",)),
    C("tfrecords-zero-byte-image", ["tfrecords", "{w}/data", "{w}/tf"],
      ("the file is empty", "pass --skip-corrupt"), setup=lambda w, e: copy_data(w, e, "train", 0, zero_byte)),
    C("tfrecords-text-as-png", ["tfrecords", "{w}/data", "{w}/tf"],
      ("the file is not an image", "--skip-corrupt"), setup=lambda w, e: copy_data(w, e, "train", 1, text_as_png)),
    C("tfrecords-damaged-png-no-tmp-shard", ["tfrecords", "{w}/data", "{w}/tf", "--shard-size", "4"],
      ("the PNG data is damaged", "--skip-corrupt"), setup=lambda w, e: copy_data(w, e, "train", 17, damage)),
    C("tfrecords-damaged-png-keeps-old-shards", ["tfrecords", "{w}/data", "{w}/old", "--shard-size", "4"],
      ("the PNG data is damaged",), setup=lambda w, e: _old_tfrecords(w, e)),
    C("tfrecords-test-image-missing", ["tfrecords", "{w}/data", "{w}/tf", "--split", "test"],
      ("test images listed are missing",), setup=lambda w, e: sorted((copy_data(w, e) / "test").glob("*.png"))[2].unlink()),
    C("tfrecords-full-disk", ["tfrecords", "{data}", "{w}/tf", "--shard-size", "4"], ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: full_disk_after(mp, "imet_kit.data.tfrecords._example", 9)),
    C("tfrecords-ctrl-c", ["tfrecords", "{data}", "{w}/tf", "--shard-size", "4"], ("interrupted",), code=130,
      patch=lambda mp, w, e: _ctrl_c_after(mp, "imet_kit.data.tfrecords._example", 6)),

    # train -----------------------------------------------------------------------------------
    C("train-no-data", ["train", "--out", "{w}/run", *TRAIN], ("--data is required",)),
    C("train-data-missing", ["train", "--data", "{w}/nope", "--out", "{w}/run", *TRAIN], ("does not exist",)),
    C("train-data-is-a-file", ["train", "--data", "{w}/file.txt", "--out", "{w}/run", *TRAIN], ("is a file",)),
    C("train-out-is-a-file", ["train", "--data", "{data}", "--out", "{w}/file.txt", *TRAIN], ("--out", "is a file", "expected a folder")),
    C("train-out-under-a-file", ["train", "--data", "{data}", "--out", "{w}/file.txt/run", *TRAIN], ("is a file, not a folder",)),
    C("train-out-read-only", ["train", "--data", "{data}", "--out", "{readonly}/run", *TRAIN], ("refuses new files",), readonly=True),
    C("train-one-fold", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--folds", "1"], ("folds: expected an integer >= 2",)),
    C("train-zero-epochs", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--epochs", "0"], ("epochs: expected an integer >= 1",)),
    C("train-batch-size-zero", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--batch-size", "0"], ("batch_size: expected an integer >= 1",)),
    C("train-image-size-8", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--image-size", "8"], ("image_size: expected an integer >= 16",)),
    C("train-negative-lr", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--lr", "-0.1"], ("lr: expected a positive number",)),
    C("train-dropout-1.5", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--dropout", "1.5"], ("dropout",)),
    C("train-unknown-backbone", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--backbone", "effnet_b0"],
      ("backbone: unknown 'effnet_b0'", "efficientnet_b0")),
    C("train-unknown-loss", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--loss", "l2"], ("loss: unknown 'l2'", "bce")),
    C("train-unknown-augment", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--augment", "heavy"], ("augment: unknown 'heavy'",)),
    C("train-unknown-task", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--task", "regression"], ("task: unknown 'regression'",)),
    C("train-mixed-precision-unknown", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--mixed-precision", "fp8"], ("mixed_precision",)),
    C("train-weights-file-missing", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--weights", "{w}/b0.weights.h5"],
      ("does not exist", "weights.h5")),
    C("train-fold-out-of-range", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--fold", "5"], ("fold: 5 is out of range",)),
    C("train-head-warmup-too-long", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--head-warmup-epochs", "3"],
      ("head_warmup_epochs",)),
    C("train-epochs-not-a-number", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--epochs", "ten"], ("invalid int value: 'ten'",)),
    C("train-bool-flag-maybe", ["train", "--data", "{data}", "--out", "{w}/run", *TRAIN, "--use-multiprocessing", "maybe"],
      ("expected true/false",)),
    C("train-config-missing", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}/nope.json"], ("--config", "does not exist")),
    C("train-config-is-a-folder", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}"], ("--config", "is a folder")),
    C("train-config-not-json", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}/c.json"], ("not valid JSON",),
      setup=lambda w, e: write(w / "c.json", "epochs: 3\n")),
    C("train-config-a-list", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}/c.json"], ("JSON object",),
      setup=lambda w, e: write(w / "c.json", "[1, 2]")),
    C("train-config-wrong-types", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}/c.json"],
      ("epochs: expected int, received 'ten'", "lr: expected float"),
      setup=lambda w, e: write(w / "c.json", json.dumps({"epochs": "ten", "lr": "fast"}))),
    C("train-config-unknown-field", ["train", "--data", "{data}", "--out", "{w}/run", "--config", "{w}/c.json"],
      ("unknown field(s) epoch", "Expected some of"), setup=lambda w, e: write(w / "c.json", json.dumps({"epoch": 3}))),
    C("train-existing-run-without-resume", ["train", "--data", "{data}", "--out", "{run}", *TRAIN], ("already holds a run", "--resume")),
    C("train-resume-damaged-config", ["train", "--data", "{data}", "--out", "{w}/run", "--resume"],
      ("config", "is damaged", "not valid JSON"), setup=lambda w, e: write(copy_run(w, e) / "config.json", "{\"folds\": 2,")),
    C("train-resume-other-epochs", ["train", "--data", "{data}", "--out", "{w}/run", "--resume", "--epochs", "5"],
      ("--resume continues a run", "epochs"), setup=lambda w, e: copy_run(w, e)),
    C("train-zero-byte-image", ["train", "--data", "{w}/data", "--out", "{w}/run", *TRAIN],
      ("the file is empty", "its row from train.csv"), setup=lambda w, e: copy_data(w, e, "train", 0, zero_byte)),
    C("train-text-as-png", ["train", "--data", "{w}/data", "--out", "{w}/run", *TRAIN],
      ("the file is not an image",), setup=lambda w, e: copy_data(w, e, "train", 1, text_as_png)),
    C("train-truncated-png", ["train", "--data", "{w}/data", "--out", "{w}/run", *TRAIN],
      ("truncated",), setup=lambda w, e: copy_data(w, e, "train", 2, truncate)),
    C("train-image-missing", ["train", "--data", "{w}/data", "--out", "{w}/run", *TRAIN],
      ("train images listed are missing",), setup=lambda w, e: sorted((copy_data(w, e) / "train").glob("*.png"))[3].unlink()),
    C("train-embedding-task-on-multilabel-data", ["train", "--task", "embedding", "--data", "{data}", "--out", "{w}/run", *TRAIN],
      ("label",)),
    C("train-damaged-png-inside-training", ["train", "--data", "{w}/data", "--out", "{w}/run", *TRAIN],
      ("Cannot read image", "the PNG data is damaged", "with --resume"),
      setup=lambda w, e: copy_data(w, e, "train", 7, damage)),  # the run it began is removed

    # predict ---------------------------------------------------------------------------------
    C("predict-run-missing", ["predict", "--run", "{w}/nope", "--data", "{data}", "--out", "{w}/s.csv"], ("--run", "does not exist")),
    C("predict-run-is-a-file", ["predict", "--run", "{w}/file.txt", "--data", "{data}", "--out", "{w}/s.csv"], ("--run", "is a file")),
    C("predict-run-not-a-run", ["predict", "--run", "{data}", "--data", "{data}", "--out", "{w}/s.csv"],
      ("is not a run folder", "imet-kit train")),
    C("predict-before-train", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("no trained fold", "Train it first"), setup=lambda w, e: _config_only_run(w, e)),
    C("predict-damaged-config", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("config", "is damaged"), setup=lambda w, e: write(copy_run(w, e) / "config.json", "{\"epochs\": ")),
    C("predict-config-wrong-types", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("folds: expected int",), setup=lambda w, e: _edit_json(copy_run(w, e) / "config.json", folds="two")),
    C("predict-damaged-thresholds", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("thresholds", "is damaged", "--threshold"), setup=lambda w, e: write(copy_run(w, e) / "thresholds.json", "{")),
    C("predict-no-thresholds", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("no thresholds.json", "--threshold"), setup=lambda w, e: (copy_run(w, e) / "thresholds.json").unlink()),
    C("predict-fold-not-trained", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--fold", "7"],
      ("Fold 7 has no model", "trained folds: [0, 1]")),
    C("predict-tta-zero", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--tta", "0"],
      ("TTA count must be between 1 and 12; received 0",)),
    C("predict-tta-99", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--tta", "99"],
      ("TTA count must be between 1 and 12; received 99", "Views available")),
    C("predict-tta-not-a-number", ["predict", "--run", "{run}", "--data", "{data}", "--tta", "four"], ("invalid int value: 'four'",)),
    C("predict-batch-size-zero", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--batch-size", "0"],
      ("--batch-size", ">= 1", "received 0")),
    C("predict-batch-size-negative", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--batch-size", "-4"],
      ("--batch-size", "received -4")),
    C("predict-threshold-1.5", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--threshold", "1.5"],
      ("--threshold must be in (0, 1)",)),
    C("predict-threshold-zero", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--threshold", "0"],
      ("--threshold must be in (0, 1)",)),
    C("predict-threshold-mode-unknown", ["predict", "--run", "{run}", "--data", "{data}", "--threshold-mode", "best"],
      ("invalid choice: 'best'",)),
    C("predict-data-missing", ["predict", "--run", "{run}", "--data", "{w}/nope", "--out", "{w}/s.csv"], ("--data", "does not exist")),
    C("predict-other-labels", ["predict", "--run", "{run}", "--data", "{w}/data", "--out", "{w}/s.csv"],
      ("differs from the run's", "Use the dataset the run was trained on"),
      setup=lambda w, e: edit_csv(copy_data(w, e) / "labels.csv", lambda d: d.iloc[:-1])),
    C("predict-no-sample-submission", ["predict", "--run", "{run}", "--data", "{w}/data", "--out", "{w}/s.csv"],
      ("sample_submission.csv",), setup=lambda w, e: (copy_data(w, e) / "sample_submission.csv").unlink()),
    C("predict-test-image-missing", ["predict", "--run", "{run}", "--data", "{w}/data", "--out", "{w}/s.csv"],
      ("test images listed are missing",), setup=lambda w, e: sorted((copy_data(w, e) / "test").glob("*.png"))[0].unlink()),
    C("predict-zero-byte-test-image", ["predict", "--run", "{run}", "--data", "{w}/data", "--out", "{w}/s.csv"],
      ("the file is empty", "every id of sample_submission.csv needs a readable image"),
      setup=lambda w, e: copy_data(w, e, "test", 0, zero_byte)),
    C("predict-damaged-test-image", ["predict", "--run", "{run}", "--data", "{w}/data", "--out", "{w}/s.csv"],
      ("the PNG data is damaged", "sample_submission.csv"), setup=lambda w, e: copy_data(w, e, "test", 4, damage)),
    C("predict-truncated-best-keras", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("best.keras", "not a Keras .keras archive"),
      setup=lambda w, e: truncate(copy_run(w, e) / "fold1" / "best.keras")),
    C("predict-text-best-keras", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("best.keras", "not a Keras .keras archive"),
      setup=lambda w, e: text_as_png(copy_run(w, e) / "fold0" / "best.keras")),
    C("predict-lambda-best-keras", ["predict", "--run", "{w}/run", "--data", "{data}", "--out", "{w}/s.csv"],
      ("Lambda layer", "does not run code from model files"),
      setup=lambda w, e: shutil.copy(e.lambda_model, copy_run(w, e) / "fold0" / "best.keras")),
    C("predict-out-is-a-folder", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}"], ("--out", "is a folder", "expected a file name")),
    C("predict-out-under-a-file", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/file.txt/s.csv"], ("is a file, not a folder",)),
    C("predict-out-read-only", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{readonly}/s.csv"], ("refuses new files",), readonly=True),
    C("predict-truth-missing", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--truth", "{w}/t.csv"],
      ("--truth", "does not exist")),
    C("predict-full-disk", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--no-gallery"],
      ("No space left on device", "Free some space"), patch=lambda mp, w, e: fail_writes(mp, errno.ENOSPC)),
    C("predict-full-disk-keeps-old-pair", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv"],
      ("No space left on device",), setup=lambda w, e: [shutil.copy(e.sub, w / "s.csv"), shutil.copy(e.probs, w / "s_probs.npy")],
      patch=lambda mp, w, e: full_disk_after(mp, "numpy.save", 0)),
    C("predict-truth-unknown-attribute", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv", "--truth", "{w}/t.csv"],
      ("555",), setup=lambda w, e: write(w / "t.csv", "id,attribute_ids\n" + "".join(f"{i},555\n" for i in e.test_ids))),
    C("predict-ctrl-c", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{w}/s.csv"], ("interrupted",), code=130,
      patch=lambda mp, w, e: interrupt(mp, "imet_kit.multilabel.predict:predict_probs")),

    # evaluate --------------------------------------------------------------------------------
    C("evaluate-data-missing", ["evaluate", "--data", "{w}/nope", "--submission", "{sub}"], ("--data", "does not exist")),
    C("evaluate-before-predict", ["evaluate", "--data", "{data}", "--submission", "{w}/submission.csv"],
      ("--submission", "does not exist")),
    C("evaluate-submission-is-a-folder", ["evaluate", "--data", "{data}", "--submission", "{w}"], ("--submission", "is a folder")),
    C("evaluate-no-truth", ["evaluate", "--data", "{w}/data", "--submission", "{sub}"], ("--truth", "does not exist"),
      setup=lambda w, e: shutil.rmtree(copy_data(w, e) / "holdout")),
    C("evaluate-submission-lacks-ids", ["evaluate", "--data", "{data}", "--submission", "{w}/s.csv"], ("lacks 2 of the 6 ids",),
      setup=lambda w, e: shutil.copy(e.sub, w / "s.csv") and edit_csv(w / "s.csv", lambda d: d.iloc[:4])),
    C("evaluate-submission-unknown-attribute", ["evaluate", "--data", "{data}", "--submission", "{w}/s.csv"], ("777",),
      setup=lambda w, e: shutil.copy(e.sub, w / "s.csv") and edit_csv(w / "s.csv", lambda d: d.assign(attribute_ids="777"))),
    C("evaluate-submission-wrong-columns", ["evaluate", "--data", "{data}", "--submission", "{w}/s.csv"], ("lacks column",),
      setup=lambda w, e: write(w / "s.csv", "image,tags\na,1\n")),
    C("evaluate-probs-missing", ["evaluate", "--data", "{data}", "--probs", "{w}/p.npy"], ("--probs", "does not exist")),
    C("evaluate-probs-text", ["evaluate", "--data", "{data}", "--probs", "{w}/p.npy"], ("is not a NumPy .npy file",),
      setup=lambda w, e: write(w / "p.npy", "0.1 0.2 0.3\n")),
    C("evaluate-probs-truncated", ["evaluate", "--data", "{data}", "--probs", "{w}/p.npy"], ("is not a whole NumPy .npy file",),
      setup=lambda w, e: (w / "p.npy").write_bytes(e.probs.read_bytes()[:-100])),
    C("evaluate-probs-wrong-shape", ["evaluate", "--data", "{data}", "--probs", "{w}/p.npy"], ("have shape (6, 3)", "expected (6,"),
      setup=lambda w, e: np.save(w / "p.npy", np.zeros((6, 3), np.float32))),
    C("evaluate-probs-threshold-2", ["evaluate", "--data", "{data}", "--probs", "{probs}", "--threshold", "2"],
      ("--threshold must be in (0, 1)",)),
    C("evaluate-submission-and-probs", ["evaluate", "--data", "{data}", "--submission", "{sub}", "--probs", "{probs}"],
      ("not allowed with argument",)),
    C("evaluate-neither", ["evaluate", "--data", "{data}"], ("one of the arguments --submission --probs is required",)),

    # embed -----------------------------------------------------------------------------------
    C("embed-model-missing", ["embed", "{w}/nope.keras", "{data}/test", "{w}/e"], ("nope.keras' does not exist",)),
    C("embed-model-is-a-folder", ["embed", "{w}", "{data}/test", "{w}/e"], ("is a folder", ".keras")),
    C("embed-fake-keras", ["embed", "{fake_model}", "{data}/test", "{w}/e"], ("not a Keras .keras archive",)),
    C("embed-truncated-keras", ["embed", "{trunc_model}", "{data}/test", "{w}/e"], ("not a Keras .keras archive",)),
    C("embed-zip-without-model", ["embed", "{zip_model}", "{data}/test", "{w}/e"], ("no Keras model", "no config.json")),
    C("embed-lambda-model", ["embed", "{lambda_model}", "{data}/test", "{w}/e"], ("holds a Lambda layer", "Rebuild the model")),
    C("embed-a-classifier", ["embed", "{classifier}", "{data}/test", "{w}/e"],
      ("is a classifier", "'probs'", "embedding.keras", "--task embedding")),
    C("embed-images-missing", ["embed", "{emb_model}", "{w}/nope", "{w}/e"], ("IMAGES", "does not exist")),
    C("embed-images-is-a-file", ["embed", "{emb_model}", "{w}/file.txt", "{w}/e"], ("IMAGES", "is a file")),
    C("embed-no-images", ["embed", "{emb_model}", "{w}/empty", "{w}/e"], ("No images",),
      setup=lambda w, e: (w / "empty").mkdir()),
    C("embed-csv-missing", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--csv", "{w}/ids.csv"], ("--csv", "does not exist")),
    C("embed-csv-without-id-column", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--csv", "{w}/ids.csv"],
      ("lacks column(s) id",), setup=lambda w, e: write(w / "ids.csv", "name,label\na,b\n")),
    C("embed-csv-lists-missing-image", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--csv", "{w}/ids.csv"],
      ("1 of 1 images listed are missing",), setup=lambda w, e: write(w / "ids.csv", "id,label\nnot-there,x\n")),
    C("embed-csv-empty", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--csv", "{w}/ids.csv"],
      ("lists no images",), setup=lambda w, e: write(w / "ids.csv", "id,label\n")),
    C("embed-batch-size-zero", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--batch-size", "0"], ("--batch-size must be >= 1",)),
    C("embed-chunk-size-zero", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--chunk-size", "0"], ("--chunk-size must be >= 1",)),
    C("embed-workers-zero", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--workers", "0"], ("--workers must be >= 1",)),
    C("embed-out-is-a-file", ["embed", "{emb_model}", "{data}/test", "{w}/file.txt"], ("OUT", "is a file")),
    C("embed-out-under-a-file", ["embed", "{emb_model}", "{data}/test", "{w}/file.txt/e"], ("is a file, not a folder",)),
    C("embed-out-read-only", ["embed", "{emb_model}", "{data}/test", "{readonly}/e"], ("refuses new files",), readonly=True),
    C("embed-zero-byte-image", ["embed", "{emb_model}", "{w}/data/test", "{w}/e"],
      ("the file is empty", "list only readable images with --csv"), setup=lambda w, e: copy_data(w, e, "test", 2, zero_byte)),
    C("embed-damaged-image-leaves-nothing", ["embed", "{emb_model}", "{w}/data/test", "{w}/e"],
      ("the PNG data is damaged", "--csv"), setup=lambda w, e: copy_data(w, e, "test", 5, damage)),
    C("embed-damaged-image-keeps-old-set", ["embed", "{emb_model}", "{w}/data/test", "{w}/emb", "--no-resume"],
      ("the PNG data is damaged",),
      setup=lambda w, e: [copy_data(w, e, "test", 5, damage), shutil.copytree(e.emb_nl, w / "emb")],
      check=lambda w, e: _embeddings_usable(w / "emb", 6)),
    C("embed-full-disk", ["embed", "{emb_model}", "{data}/test", "{w}/e", "--chunk-size", "2", "--batch-size", "2"],
      ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: full_disk_after(mp, "imet_kit.retrieval.embed.atomic_write_json", 0)),
    C("embed-ctrl-c-before-a-chunk", ["embed", "{emb_model}", "{data}/test", "{w}/e"], ("interrupted",), code=130,
      patch=lambda mp, w, e: interrupt(mp, "imet_kit.retrieval.embed:_normalize")),
    C("embed-ctrl-c-rerun-over-finished", ["embed", "{emb_model}", "{data}/test", "{w}/emb", "--no-resume",
                                           "--chunk-size", "2", "--batch-size", "2"],
      ("interrupted",), code=130, setup=lambda w, e: shutil.copytree(e.emb_nl, w / "emb"),
      patch=lambda mp, w, e: _ctrl_c_after(mp, "imet_kit.retrieval.embed._normalize", 2),
      keeps=("emb/.partial",), check=lambda w, e: _embeddings_usable(w / "emb", 6)),

    # search ----------------------------------------------------------------------------------
    C("search-before-embed", ["search", "{w}/q", "{emb}", "--out", "{w}/r.csv"], ("does not exist", "imet-kit embed")),
    C("search-queries-not-embeddings", ["search", "{data}", "{emb}", "--out", "{w}/r.csv"],
      ("is not an embeddings folder", "imet-kit embed")),
    C("search-gallery-missing", ["search", "{emb}", "{w}/g", "--out", "{w}/r.csv"], ("does not exist",)),
    C("search-k-zero", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "-k", "0"], ("-k must be >= 1",)),
    C("search-vote-k-zero", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--vote-k", "0"], ("--vote-k must be >= 1",)),
    C("search-query-block-zero", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--query-block", "0"], ("--query-block must be >= 1",)),
    C("search-gallery-block-negative", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--gallery-block", "-1"],
      ("--gallery-block must be >= 1",)),
    C("search-rerank-top-zero", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--rerank-top", "0"], ("--rerank-top must be >= 1",)),
    C("search-backend-unknown", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--backend", "annoy"], ("invalid choice: 'annoy'",)),
    C("search-out-is-a-folder", ["search", "{emb}", "{emb}", "--out", "{w}"], ("is a folder",)),
    C("search-out-under-a-file", ["search", "{emb}", "{emb}", "--out", "{w}/file.txt/r.csv"], ("is a file, not a folder",)),
    C("search-out-read-only", ["search", "{emb}", "{emb}", "--out", "{readonly}/r.csv"], ("refuses new files",), readonly=True),
    C("search-other-width", ["search", "{emb}", "{w}/h", "--out", "{w}/r.csv"], ("of one width", "Embed both with the same model"),
      setup=lambda w, e: hand_embeddings(w / "h", 4, 3)),
    C("search-exclude-self-other-gallery", ["search", "{emb}", "{w}/h", "--out", "{w}/r.csv", "--exclude-self"],
      ("--exclude-self needs the queries to be the gallery",), setup=lambda w, e: hand_embeddings(w / "h", 4, 512)),
    C("search-incomplete-embeddings", ["search", "{w}/h", "{emb}", "--out", "{w}/r.csv"], ("incomplete (2 of 4)", "resume"),
      setup=lambda w, e: hand_embeddings(w / "h", 4, 3, done=2)),
    C("search-damaged-progress", ["search", "{w}/h", "{emb}", "--out", "{w}/r.csv"], ("is damaged", "--no-resume"),
      setup=lambda w, e: hand_embeddings(w / "h", 4, 3, state="{\"n\": 4, ")),
    C("search-rows-do-not-match", ["search", "{w}/h", "{emb}", "--out", "{w}/r.csv"], ("do not match", "--no-resume"),
      setup=lambda w, e: hand_embeddings(w / "h", 4, 3, rows=2)),
    C("search-unfinished-embed", ["search", "{w}/h", "{emb}", "--out", "{w}/r.csv"], ("unfinished", "rerun that command"),
      setup=lambda w, e: hand_embeddings(w / "h" / ".partial", 4, 3, done=1)),
    C("search-faiss-missing", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv", "--backend", "faiss"], ("pip install faiss-cpu",),
      patch=lambda mp, w, e: mp.setitem(sys.modules, "faiss", None)),
    C("search-full-disk", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv"], ("No space left on device", "Free some space"),
      patch=lambda mp, w, e: fail_writes(mp, errno.ENOSPC)),
    C("search-full-disk-on-metrics-keeps-old", ["search", "{emb}", "{emb}", "--out", "{w}/r.csv"], ("No space left on device",),
      setup=lambda w, e: [write(w / "r.csv", "old\n"), write(w / "r.metrics.json", "{}")],
      patch=lambda mp, w, e: full_disk_after(mp, "pathlib.Path.write_text", 0)),

    # clean -----------------------------------------------------------------------------------
    C("clean-embeddings-missing", ["clean", "{w}/nope", "--out", "{w}/k.csv"], ("does not exist",)),
    C("clean-not-embeddings", ["clean", "{data}", "--out", "{w}/k.csv"], ("is not an embeddings folder",)),
    C("clean-without-labels", ["clean", "{emb_nl}", "--out", "{w}/k.csv"], ("has no labels", "--csv")),
    C("clean-threshold-2", ["clean", "{emb}", "--out", "{w}/k.csv", "--threshold", "2"], ("cosine similarity in [-1, 1]",)),
    C("clean-threshold-not-a-number", ["clean", "{emb}", "--out", "{w}/k.csv", "--threshold", "high"], ("invalid float value",)),
    C("clean-out-missing", ["clean", "{emb}"], ("required: --out",)),
    C("clean-out-is-a-folder", ["clean", "{emb}", "--out", "{w}"], ("is a folder",)),
    C("clean-out-under-a-file", ["clean", "{emb}", "--out", "{w}/file.txt/k.csv"], ("is a file, not a folder",)),
    C("clean-out-read-only", ["clean", "{emb}", "--out", "{readonly}/k.csv"], ("refuses new files",), readonly=True),
    C("clean-report-path-is-a-folder", ["clean", "{emb}", "--out", "{w}/k.csv"], ("k_report.csv", "is a folder"),
      setup=lambda w, e: (w / "k_report.csv").mkdir()),
    C("clean-full-disk-on-report", ["clean", "{emb}", "--out", "{w}/k.csv"], ("No space left on device",),
      patch=lambda mp, w, e: full_disk_after(mp, "pandas.DataFrame.to_csv", 1)),
    C("clean-permission-denied", ["clean", "{emb}", "--out", "{w}/k.csv"], ("Permission denied",),
      patch=lambda mp, w, e: fail_writes(mp, errno.EACCES)),
]


# --- helpers the rows above use ---------------------------------------------------------------

def _refuse(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def _ctrl_c_after(monkeypatch, target: str, calls: int) -> None:
    import importlib

    module, name = target.rsplit(".", 1) if ":" not in target else target.split(":")
    mod = importlib.import_module(module)
    real, count = getattr(mod, name), [0]

    def maybe(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, name, maybe)


def _old_tfrecords(w: Path, e) -> None:
    """A finished tfrecords folder from earlier, then damage in the data for the rerun."""
    copy_data(w, e)
    assert _cli(["tfrecords", w / "data", w / "old", "--shard-size", "8"]) == 0
    damage(sorted((w / "data" / "train").glob("*.png"))[20])


def _config_only_run(w: Path, e) -> None:
    run = w / "run"
    run.mkdir()
    for name in ("config.json", "labels.csv", "folds.csv"):
        shutil.copy(e.run / name, run / name)


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))




def _embeddings_usable(folder: Path, n: int) -> None:
    from imet_kit.retrieval.embed import load_embeddings

    es = load_embeddings(folder, mmap=False)
    assert es.embeddings.shape[0] == n and np.isfinite(es.embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(es.embeddings, axis=1), 1.0, atol=1e-4)


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots``: size, inode and modification time (a rewrite, an
    atomic replace or a new temporary all show)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (p.is_dir(), 0 if p.is_dir() else st.st_size, st.st_ino,
                               0 if p.is_dir() else st.st_mtime_ns)
    return out


def test_the_catalogue_is_large_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 118
    commands = {c.argv[0] for c in CASES if c.argv}
    assert commands >= {"demo-data", "stats", "folds", "tfrecords", "train", "predict", "evaluate",
                        "embed", "search", "clean"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_leaves_outputs_alone(case, env, tmp_path, monkeypatch, capsys):
    if case.readonly and env.readonly is None:
        pytest.skip("no folder here refuses root's writes")
    w = tmp_path
    (w / "file.txt").write_text("a regular file where a folder or another file is expected\n")
    if case.setup:
        case.setup(w, env)
    monkeypatch.chdir(w)  # default output names (submission.csv, folds.csv) land here
    names = {**{k: v for k, v in vars(env).items() if isinstance(v, Path)}, "w": w}
    argv = [a.format(**names) for a in case.argv]
    before = snapshot(env.base, w)
    capsys.readouterr()
    if case.patch:
        case.patch(monkeypatch, w, env)
    code = _cli(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == case.code, err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    if case.code == 130:
        assert err == f"imet-kit {argv[0]}: interrupted.\n"
    for text in case.expect:
        assert text in err, f"{text!r} not in {err!r}"
    assert EMPTY not in err
    after = snapshot(env.base, w)
    kept = [str(w / k) for k in case.keeps]
    for k in kept:
        assert any(p == k or p.startswith(k + os.sep) for p in after), f"{k} should be kept"
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)
               and not any(p == k or p.startswith(k + os.sep) for k in kept)}
    assert not changed, f"outputs changed: {sorted(changed)}"
    if case.check:
        case.check(w, env)


# --- checks that need a fresh interpreter -----------------------------------------------------

def _run_cli(*argv, code: str = "") -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI must quiet TensorFlow by itself
    script = code or "import sys; from imet_kit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_bad_predict_flags_fail_before_tensorflow_loads(env, tmp_path):
    """--tta, --fold, --batch-size and the paths are checked in about a second, not after
    TensorFlow's import (several seconds) and a model load."""
    probe = ("import sys; from imet_kit.cli.main import main\n"
             "base = sys.argv[1:]\n"
             "for flags in (['--tta', '99'], ['--fold', '7'], ['--batch-size', '0'], ['--out', base[0]]):\n"
             "    print(main(['predict', '--run', base[1], '--data', base[2], '--out', base[3], *flags]),"
             " 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = _run_cli(tmp_path, env.run, env.data, tmp_path / "s.csv", code=probe)
    assert out.stdout.splitlines() == ["2 False False"] * 4, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("imet-kit predict: error:") for line in lines)
    assert "TTA count" in lines[0] and "Fold 7" in lines[1] and "--batch-size" in lines[2]
    assert "is a folder" in lines[3]


def test_an_error_after_tensorflow_loads_is_still_one_line(env, tmp_path):
    """TensorFlow's absl / oneDNN start-up lines do not reach the terminal."""
    out = _run_cli("embed", env.classifier, env.data / "test", tmp_path / "e")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "is a classifier" in out.stderr, out.stderr
    assert not (tmp_path / "e").exists()
