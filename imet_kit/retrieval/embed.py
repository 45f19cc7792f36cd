"""Embeddings on disk: export an embedding model, embed an image folder, load the result.

:func:`export_embedding_model` cuts a trained model at its embedding layer and
L2-normalises it; :func:`embed_images` writes the embeddings of an image list (e.g. from
:func:`list_images`) to ``embeddings.npy`` (a memory-mapped ``(n, d)`` float32 array)
chunk by chunk, with ``ids.csv`` and a ``progress.json`` that lets an interrupted run
resume; :func:`load_embeddings` opens such a folder as an :class:`EmbeddingSet`. The
search, voting and cleaning that use them are in :mod:`imet_kit.retrieval.search`, which
re-exports these names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from imet_kit.atomic import atomic_write_csv, atomic_write_json
from imet_kit.data.images import read_image
from imet_kit.data.labels import IMAGE_EXTENSIONS
from imet_kit.errors import DataFileError, InputError

# The logger name from before the split, so existing log filters still match.
log = logging.getLogger("imet_kit.retrieval.search")

__all__ = ["EmbeddingSet", "embed_images", "export_embedding_model", "list_images",
           "load_embeddings"]


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def export_embedding_model(model, path: str | os.PathLike | None = None, *,
                           layer_name: str = "embedding"):
    """Cut ``model`` at ``layer_name``, add L2 normalisation, optionally save as ``.keras``.

    Args:
        model: a trained model (e.g. ``build_embedding_model(...).train_model``); its image
            input is the input named ``"image"`` or its only input.
        path: where to save; must end with ``.keras``.
        layer_name: the layer whose output is the embedding.

    Returns:
        ``keras.Model``: image -> unit-length embedding.
    """
    import keras

    if path is not None and not str(path).endswith(".keras"):
        raise InputError(f"Embedding model path must end with '.keras'; received '{path}'.")
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        names = ", ".join(layer.name for layer in model.layers)
        raise InputError(f"Model has no layer '{layer_name}'. Expected one of: {names}.") from None
    inputs = [t for t in model.inputs if t.name == "image"] or list(model.inputs)
    if len(inputs) != 1:
        raise InputError(f"Cannot tell the image input among {[t.name for t in model.inputs]}; "
                         "name it 'image'.")
    out = layer.output
    if layer_name != "l2_normalize":
        out = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(out)
    emb_model = keras.Model(inputs[0], out, name="embedding_model")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        emb_model.save(path)
    return emb_model


def list_images(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(ids, paths)`` of the image files in ``folder`` (id = file stem), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"Image folder '{folder}' does not exist.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataFileError(f"No images ({'/'.join(IMAGE_EXTENSIONS)}) in '{folder}'.")
    return [p.stem for p in files], [str(p) for p in files]


def _resizer(size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    h, w = size

    def preprocess(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)

    return preprocess


PARTIAL = ".partial"  # OUT/.partial/: an unfinished embedding run (resumed by a rerun)


def check_embedding_model(model, name: str = "The model") -> None:
    """Refuse a model that does not map one image to one embedding vector.

    A classifier of ``imet-kit train`` ends in the sigmoid layer ``"probs"``: embedding its
    outputs would silently give class probabilities, not an embedding.
    """
    from imet_kit.models.heads import OUTPUT_LAYER

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         f"expected an embedding model with one image input and one output.")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise InputError(f"{name} takes input of shape {shape}; expected images (batch, height, "
                         f"width, 3).")
    if len(model.outputs[0].shape) != 2:
        raise InputError(f"{name} outputs shape {tuple(model.outputs[0].shape)}; expected one "
                         f"vector per image (batch, dim).")
    last = model.layers[-1]
    if last.name == OUTPUT_LAYER or getattr(getattr(last, "activation", None), "__name__", "") == "sigmoid":
        raise InputError(f"{name} is a classifier (its output is the sigmoid layer '{last.name}'), "
                         f"not an embedding model. Use RUN/fold{{k}}/embedding.keras from "
                         f"`imet-kit train --task embedding`, or cut a model at its embedding layer "
                         f"with imet_kit.retrieval.embed.export_embedding_model.")


def _read_state(path: Path) -> dict:
    """A progress.json as a dict; {} when missing or damaged (a damaged one means start again)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _create_npy(path: Path, n: int, dim: int) -> int:
    """Create an ``(n, dim)`` float32 ``.npy`` (sparse until written); returns the data offset."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    offset = mm.offset
    del mm
    return offset


def _npy_offset(path: Path, shape: tuple[int, int]) -> int | None:
    """The data offset of a float32 ``.npy`` of ``shape``; None if it is not one."""
    try:
        mm = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    ok = mm.shape == shape and mm.dtype == np.float32
    offset = mm.offset
    del mm
    return offset if ok else None


def embed_images(model, paths: Sequence[str], ids: Sequence[str], out_dir: str | os.PathLike, *,
                 labels: Sequence | None = None, batch_size: int = 64, chunk_size: int = 4096,
                 preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
                 resume: bool = True, workers: int = 2, progress: bool = True) -> Path:
    """Write L2-normalised embeddings of ``paths`` to ``out_dir`` in chunks.

    ``out_dir`` gets ``embeddings.npy`` (``(n, d)`` float32, row i = ``ids[i]``), ``ids.csv``
    (id, path[, label]) and ``progress.json``. The work happens in ``out_dir/.partial/``:
    rows are written chunk by chunk, each chunk followed by its progress, so a million images
    never sit in memory and a rerun with the same images resumes. Only a finished run is
    moved into ``out_dir``: its ``progress.json`` is removed first and written last, so a
    folder whose progress.json says complete always holds complete embeddings, and a run that
    fails or is killed leaves an earlier result in ``out_dir`` as it was.

    Args:
        model: an embedding model or the path of a saved ``.keras`` one (a classifier is
            refused: see :func:`check_embedding_model`).
        preprocess: RGB uint8 ``(H, W, 3)`` -> model input; default resizes to the model's
            input size and keeps 0-255 floats.
        resume: continue an unfinished run of the same images and model file (or keep a
            finished one); False starts again.
        workers: threads decoding images.
    """
    import shutil

    import keras

    if len(paths) != len(ids) or (labels is not None and len(labels) != len(ids)):
        raise InputError(f"embed_images: {len(paths)} paths, {len(ids)} ids"
                         f"{'' if labels is None else f', {len(labels)} labels'}; expected equal lengths.")
    if not len(ids):
        raise InputError("embed_images: no images to embed.")
    name, stamp = "The model", ""
    if isinstance(model, (str, os.PathLike)):
        from imet_kit.models.loading import load_model

        name, path = f"Model '{model}'", model
        model = load_model(path, compile=False)
        st = os.stat(path)
        stamp = f" {st.st_size} {st.st_mtime_ns}"  # a changed model file is not resumed
    check_embedding_model(model, name)
    if preprocess is None:
        h, w = model.input_shape[1:3]
        if h is None or w is None:
            raise InputError("The model's input size is dynamic; pass preprocess= to resize images.")
        preprocess = _resizer((h, w))
    out = Path(out_dir)
    table = pd.DataFrame({"id": list(ids), "path": list(paths)})
    if labels is not None:
        table["label"] = list(labels)
    # the row hashes in order: the same images listed in another order are another job (a sum
    # would match and a resume would write rows under the wrong ids)
    fingerprint = hashlib.sha1(
        pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()).hexdigest() + stamp
    n, dim = len(ids), int(model.output_shape[-1])
    wanted = {"n": n, "dim": dim, "fingerprint": fingerprint}
    final = _read_state(out / "progress.json")
    work = out / PARTIAL
    if resume and final == {**wanted, "done": n} and (out / "embeddings.npy").is_file():
        log.info("%s already holds these embeddings; nothing to do", out)
        shutil.rmtree(work, ignore_errors=True)  # an interrupted rerun of the same images
        return out
    created_out = not out.exists()
    state = _read_state(work / "progress.json") if resume else {}
    offset = _npy_offset(work / "embeddings.npy", (n, dim))
    fresh = not (state.get("fingerprint") == fingerprint and state.get("dim") == dim
                 and offset is not None and (work / "ids.csv").is_file())
    start = done = 0 if fresh else int(state["done"])
    try:
        if fresh:
            shutil.rmtree(work, ignore_errors=True)  # progress goes first, then the data it described
            work.mkdir(parents=True)
            atomic_write_csv(table, work / "ids.csv")
            offset = _create_npy(work / "embeddings.npy", n, dim)
            atomic_write_json({**wanted, "done": 0}, work / "progress.json", indent=None)
        else:
            log.info("resuming %s at %d / %d", out, done, n)
        bar = tqdm(total=n, initial=done, desc="embed", unit="img", disable=not progress or None)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
                open(work / "embeddings.npy", "r+b") as fh:
            for c0 in range(done, n, chunk_size):
                c1 = min(c0 + chunk_size, n)
                fh.seek(offset + c0 * dim * 4)
                for b0 in range(c0, c1, batch_size):
                    b1 = min(b0 + batch_size, c1)
                    batch = np.stack(list(pool.map(lambda p: preprocess(read_image(p)), paths[b0:b1])))
                    rows = _normalize(keras.ops.convert_to_numpy(model.predict_on_batch(batch)))
                    fh.write(rows.astype(np.float32, copy=False).tobytes())
                    bar.update(b1 - b0)
                fh.flush()
                os.fsync(fh.fileno())
                done = c1
                atomic_write_json({**wanted, "done": done}, work / "progress.json", indent=None)
        bar.close()
        # the finished set replaces the old one: its progress marker goes first, comes back last
        (out / "progress.json").unlink(missing_ok=True)
        os.replace(work / "embeddings.npy", out / "embeddings.npy")
        os.replace(work / "ids.csv", out / "ids.csv")
        atomic_write_json({**wanted, "done": n}, out / "progress.json", indent=None)
        shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        if done == start and fresh:  # nothing gained: leave no trace
            shutil.rmtree(work, ignore_errors=True)
            if created_out:
                with contextlib.suppress(OSError):
                    out.rmdir()
        raise
    return out


@dataclass
class EmbeddingSet:
    """Embeddings written by :func:`embed_images`: ``embeddings[i]`` belongs to ``ids[i]``."""

    ids: list[str]
    paths: list[str]
    embeddings: np.ndarray
    labels: np.ndarray | None


def load_embeddings(folder: str | os.PathLike, *, mmap: bool = True) -> EmbeddingSet:
    """Open an :func:`embed_images` folder (memory-mapped unless ``mmap=False``).

    Raises:
        DataFileError: not an embeddings folder.
        InputError: unfinished, or its files disagree (rows, ids, width): never half a set.
    """
    folder = Path(folder)
    state_path, emb_path, ids_path = (folder / "progress.json", folder / "embeddings.npy",
                                      folder / "ids.csv")
    if not folder.is_dir():
        raise DataFileError(f"Embeddings folder '{folder}' does not exist; write one with "
                            f"`imet-kit embed MODEL IMAGES {folder}`.")
    if not state_path.is_file() or not emb_path.is_file() or not ids_path.is_file():
        partial = (folder / PARTIAL / "progress.json").is_file()
        raise DataFileError(
            f"'{folder}' is not an embeddings folder (no progress.json, embeddings.npy and ids.csv)"
            + ("; an unfinished `imet-kit embed` run is in it: rerun that command to finish it."
               if partial else "; write one with `imet-kit embed`."))
    state = _read_state(state_path)
    fix = f"Run `imet-kit embed ... {folder} --no-resume` to write it again."
    try:
        n, done = int(state["n"]), int(state["done"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"'{state_path}' is damaged. {fix}") from None
    if done < n:
        raise InputError(f"Embeddings in '{folder}' are incomplete ({done} of {n}); "
                         "rerun `imet-kit embed` with the same arguments to resume.")
    try:
        table = pd.read_csv(ids_path, dtype={"id": str, "path": str}, keep_default_na=False)
        emb = np.load(emb_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise InputError(f"Embeddings in '{folder}' are damaged ({exc}). {fix}") from None
    if "id" not in table or emb.ndim != 2 or len(emb) != n or len(table) != n or \
            state.get("dim", emb.shape[1]) != emb.shape[1]:
        raise InputError(f"Embeddings in '{folder}' do not match: progress.json says {n} rows"
                         f"{'' if 'dim' not in state else ' of width ' + str(state['dim'])}, "
                         f"embeddings.npy has shape {emb.shape}, ids.csv {len(table)} rows. {fix}")
    labels = table["label"].to_numpy() if "label" in table else None
    paths = table["path"].tolist() if "path" in table else [""] * n
    return EmbeddingSet(table["id"].tolist(), paths, emb, labels)
