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


def embed_images(model, paths: Sequence[str], ids: Sequence[str], out_dir: str | os.PathLike, *,
                 labels: Sequence | None = None, batch_size: int = 64, chunk_size: int = 4096,
                 preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
                 resume: bool = True, workers: int = 2, progress: bool = True) -> Path:
    """Write L2-normalised embeddings of ``paths`` to ``out_dir`` in chunks.

    ``out_dir`` gets ``embeddings.npy`` (``(n, d)`` float32, row i = ``ids[i]``), ``ids.csv``
    (id, path[, label]) and ``progress.json``; after each chunk the rows are flushed and the
    progress saved, so a million images never sit in memory and a rerun resumes.

    Args:
        model: an embedding model or the path of a saved ``.keras`` one.
        preprocess: RGB uint8 ``(H, W, 3)`` -> model input; default resizes to the model's
            input size and keeps 0-255 floats.
        workers: threads decoding images.
    """
    import keras

    if len(paths) != len(ids) or (labels is not None and len(labels) != len(ids)):
        raise InputError(f"embed_images: {len(paths)} paths, {len(ids)} ids"
                         f"{'' if labels is None else f', {len(labels)} labels'}; expected equal lengths.")
    if not len(ids):
        raise InputError("embed_images: no images to embed.")
    if isinstance(model, (str, os.PathLike)):
        from imet_kit.models.loading import load_model

        model = load_model(model, compile=False)
    if preprocess is None:
        h, w = model.input_shape[1:3]
        if h is None or w is None:
            raise InputError("The model's input size is dynamic; pass preprocess= to resize images.")
        preprocess = _resizer((h, w))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"id": list(ids), "path": list(paths)})
    if labels is not None:
        table["label"] = list(labels)
    # the row hashes in order: the same images listed in another order are another job (a sum
    # would match and a resume would write rows under the wrong ids)
    fingerprint = hashlib.sha1(
        pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()).hexdigest()
    state_path, emb_path = out / "progress.json", out / "embeddings.npy"
    state = json.loads(state_path.read_text()) if state_path.is_file() and resume else {}
    dim = int(model.output_shape[-1])
    if state.get("fingerprint") == fingerprint and state.get("dim") == dim and emb_path.is_file():
        mm = np.lib.format.open_memmap(emb_path, mode="r+")
        done = int(state["done"])
        log.info("resuming %s at %d / %d", out, done, len(ids))
    else:
        atomic_write_csv(table, out / "ids.csv")
        mm = np.lib.format.open_memmap(emb_path, mode="w+", dtype=np.float32, shape=(len(ids), dim))
        done = 0
    state = {"n": len(ids), "dim": dim, "done": done, "fingerprint": fingerprint}
    bar = tqdm(total=len(ids), initial=done, desc="embed", unit="img", disable=not progress or None)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for c0 in range(done, len(ids), chunk_size):
            c1 = min(c0 + chunk_size, len(ids))
            for b0 in range(c0, c1, batch_size):
                b1 = min(b0 + batch_size, c1)
                batch = np.stack(list(pool.map(lambda p: preprocess(read_image(p)), paths[b0:b1])))
                mm[b0:b1] = _normalize(keras.ops.convert_to_numpy(model.predict_on_batch(batch)))
                bar.update(b1 - b0)
            mm.flush()
            state["done"] = c1
            atomic_write_json(state, state_path, indent=None)
    bar.close()
    del mm
    return out


@dataclass
class EmbeddingSet:
    """Embeddings written by :func:`embed_images`: ``embeddings[i]`` belongs to ``ids[i]``."""

    ids: list[str]
    paths: list[str]
    embeddings: np.ndarray
    labels: np.ndarray | None


def load_embeddings(folder: str | os.PathLike, *, mmap: bool = True) -> EmbeddingSet:
    """Open an :func:`embed_images` folder (memory-mapped unless ``mmap=False``)."""
    folder = Path(folder)
    state_path = folder / "progress.json"
    if not state_path.is_file() or not (folder / "embeddings.npy").is_file():
        raise DataFileError(f"'{folder}' is not an embeddings folder (no progress.json / "
                            "embeddings.npy); write one with `imet-kit embed`.")
    state = json.loads(state_path.read_text())
    if state["done"] < state["n"]:
        raise InputError(f"Embeddings in '{folder}' are incomplete ({state['done']} of {state['n']}); "
                         "rerun `imet-kit embed` with the same arguments to resume.")
    table = pd.read_csv(folder / "ids.csv", dtype={"id": str, "path": str}, keep_default_na=False)
    emb = np.load(folder / "embeddings.npy", mmap_mode="r" if mmap else None)
    labels = table["label"].to_numpy() if "label" in table else None
    return EmbeddingSet(table["id"].tolist(), table["path"].tolist(), emb, labels)
