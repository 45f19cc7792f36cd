"""Embeddings on disk, exact k-NN search, label voting and noisy-set cleaning.

* :func:`export_embedding_model` cuts a trained model at its embedding layer and
  L2-normalises it; :func:`embed_images` writes the embeddings of an image list to
  ``embeddings.npy`` (a memory-mapped ``(n, d)`` float32 array) chunk by chunk, with
  ``ids.csv`` and a ``progress.json`` that lets an interrupted run resume.
* :func:`search` gives the top-k gallery rows per query by cosine similarity, exactly,
  in numpy blocks: memory is ``O(query_block x gallery_block)``, never ``n x m``;
  ``backend="faiss"`` uses ``faiss.IndexFlatIP`` (``pip install faiss-cpu``).
* :func:`vote` turns neighbours into a label and a confidence (sum of similarities per
  label, as the Google Landmark notebooks did); :func:`clean_by_class_similarity` drops
  images far from the rest of their class.
"""

from __future__ import annotations

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

from .errors import DataFileError, InputError
from .images import read_image
from .labels import IMAGE_EXTENSIONS, atomic_write_csv

log = logging.getLogger(__name__)


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
        from . import xbm  # noqa: F401
        from .models import margins  # noqa: F401  (registers the custom layers)

        model = keras.saving.load_model(model, compile=False)
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
    fingerprint = str(pd.util.hash_pandas_object(table, index=False).sum())
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
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, state_path)
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


@dataclass
class Neighbours:
    """Top-k gallery rows per query, best first (ties: lower gallery index first)."""

    indices: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float32 cosine similarity


def _merge_topk(top_s: np.ndarray, top_i: np.ndarray, s: np.ndarray, offset: int, k: int) -> None:
    """Fold block similarities ``s`` (rows x cols) into the running top-k, in place."""
    n, m = s.shape
    thr = top_s.min(axis=1)
    if np.isfinite(thr).all():
        mask = s > thr[:, None]
        counts = np.count_nonzero(mask, axis=1)
        if counts.max() == 0:
            return
    else:
        mask, counts = None, np.full(n, m)
    if mask is not None and counts.max() <= k:
        # Few candidates (the usual case once the top-k is good): gather them sparsely.
        flat = np.flatnonzero(mask)
        rows, cols = np.divmod(flat, m)
        width = int(counts.max())
        pos = np.arange(flat.size) - (np.cumsum(counts) - counts)[rows]
        cand_s = np.full((n, width), -np.inf, np.float32)
        cand_i = np.full((n, width), -1, np.int64)
        cand_s[rows, pos] = s.ravel()[flat]
        cand_i[rows, pos] = cols + offset
    else:
        width = min(k, m)
        cand_s = np.empty((n, width), np.float32)
        cand_i = np.empty((n, width), np.int64)
        for r0 in range(0, n, 256):  # row chunks bound argpartition's int64 index array
            part = s[r0:r0 + 256]
            idx = np.argpartition(part, m - width, axis=1)[:, m - width:] if width < m else \
                np.broadcast_to(np.arange(m), part.shape)
            cand_s[r0:r0 + 256] = np.take_along_axis(part, idx, axis=1)
            cand_i[r0:r0 + 256] = idx + offset
    rows = np.flatnonzero(counts)
    all_s = np.concatenate([top_s[rows], cand_s[rows]], axis=1)
    all_i = np.concatenate([top_i[rows], cand_i[rows]], axis=1)
    sel = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
    top_s[rows] = np.take_along_axis(all_s, sel, axis=1)
    top_i[rows] = np.take_along_axis(all_i, sel, axis=1)


def search(queries: np.ndarray, gallery: np.ndarray, k: int = 100, *, backend: str = "numpy",
           query_block: int = 1024, gallery_block: int = 16384, exclude_self: bool = False,
           normalize: bool = True, progress: bool = True) -> Neighbours:
    """Exact top-k cosine neighbours of each query in the gallery.

    Args:
        queries: ``(n, d)``; gallery: ``(m, d)`` (a memory map is read one block at a time).
        k: neighbours per query (capped at the gallery size).
        backend: ``"numpy"`` (blocks; working memory ~ ``6 * query_block * gallery_block``
            bytes) or ``"faiss"`` (``IndexFlatIP``; holds a normalised copy of the gallery).
        exclude_self: queries are the gallery (leave-one-out): skip row i for query i.
        normalize: L2-normalise rows first (skip if they already are).

    Example:
        >>> g = np.array([[1, 0], [0, 1], [1, 1]], "float32")
        >>> search(g[:1], g, k=2, progress=False).indices.tolist()
        [[0, 2]]
    """
    queries, n_gallery = np.asarray(queries), len(gallery)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise InputError(f"search expects queries (n, d) and gallery (m, d) of one width; received "
                         f"{queries.shape} and {gallery.shape}.")
    k = min(int(k), n_gallery - int(exclude_self))
    if k < 1:
        raise InputError(f"search needs k >= 1 and a gallery larger than that; received k={k}, "
                         f"gallery of {n_gallery}.")
    q = _normalize(queries) if normalize else np.ascontiguousarray(queries, dtype=np.float32)
    if backend == "faiss":
        return _search_faiss(q, gallery, k, gallery_block, exclude_self, normalize)
    if backend != "numpy":
        raise InputError(f"Unknown search backend '{backend}'. Expected one of: numpy, faiss.")
    top_s = np.full((len(q), k), -np.inf, np.float32)
    top_i = np.full((len(q), k), -1, np.int64)
    for g0 in tqdm(range(0, n_gallery, gallery_block), desc="search", unit="block",
                   disable=not progress or None):
        g = np.asarray(gallery[g0:g0 + gallery_block], dtype=np.float32)
        g = _normalize(g) if normalize else g
        for q0 in range(0, len(q), query_block):
            s = q[q0:q0 + query_block] @ g.T
            if exclude_self:
                r = np.arange(max(q0, g0), min(q0 + len(s), g0 + len(g)))
                s[r - q0, r - g0] = -np.inf
            _merge_topk(top_s[q0:q0 + query_block], top_i[q0:q0 + query_block], s, g0, k)
    order = np.lexsort((top_i, -top_s), axis=1)
    return Neighbours(np.take_along_axis(top_i, order, 1), np.take_along_axis(top_s, order, 1))


def _search_faiss(q, gallery, k, block, exclude_self, normalize) -> Neighbours:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu "
                          "(or pip install 'imet_kit[faiss]').") from exc
    index = faiss.IndexFlatIP(q.shape[1])
    for g0 in range(0, len(gallery), block):
        g = np.asarray(gallery[g0:g0 + block], dtype=np.float32)
        index.add(_normalize(g) if normalize else np.ascontiguousarray(g))
    scores, idx = index.search(q, k + int(exclude_self))
    if exclude_self:
        keep = idx != np.arange(len(q))[:, None]
        keep[keep.sum(1) > k, -1] = False  # self not found: drop the extra last column
        idx, scores = idx[keep].reshape(len(q), k), scores[keep].reshape(len(q), k)
    return Neighbours(idx.astype(np.int64), scores.astype(np.float32))


def vote(neighbours: Neighbours, gallery_labels: Sequence, k: int | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """Label per query by summing neighbour similarities per label over the top ``k``.

    Returns:
        ``(labels, confidence)``: the label with the largest summed similarity and that sum.

    Example:
        >>> nb = Neighbours(np.array([[0, 1, 2]]), np.array([[0.9, 0.5, 0.45]], "float32"))
        >>> labels, conf = vote(nb, ["a", "b", "b"])
        >>> labels.tolist(), conf.round(2).tolist()
        (['b'], [0.95])
    """
    idx = neighbours.indices[:, :k] if k else neighbours.indices
    sims = neighbours.scores[:, : idx.shape[1]].astype(np.float64)
    codes, uniques = pd.factorize(np.asarray(gallery_labels, dtype=object))
    uniques, n_codes = np.asarray(uniques, dtype=object), max(len(uniques), 1)
    row = np.repeat(np.arange(len(idx)), idx.shape[1])
    flat = idx.ravel()
    ok = flat >= 0
    ok[ok] = codes[flat[ok]] >= 0  # skip padding (-1) and unlabelled gallery rows
    key = row[ok] * n_codes + codes[flat[ok]]
    groups, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=sims.ravel()[ok])
    g_row = groups // n_codes
    order = np.lexsort((groups % n_codes, -sums, g_row))  # per row: largest sum first
    first = order[np.r_[True, g_row[order][1:] != g_row[order][:-1]]]
    labels = np.full(len(idx), None, dtype=object)
    confidence = np.zeros(len(idx), np.float64)
    labels[g_row[first]] = uniques[groups[first] % n_codes]
    confidence[g_row[first]] = sums[first]
    return labels, confidence


@dataclass
class CleaningReport:
    """Per image: its class size, mean cosine to the rest of its class, and whether kept."""

    table: pd.DataFrame
    threshold: float

    @property
    def keep(self) -> np.ndarray:
        return self.table["kept"].to_numpy()

    def summary(self) -> str:
        t = self.table
        dropped = t[~t["kept"]]
        worst = dropped.groupby("label").size().sort_values(ascending=False).head(5)
        return (f"kept {int(t['kept'].sum())} of {len(t)} images (threshold {self.threshold}); "
                f"dropped {len(dropped)} from {dropped['label'].nunique()} classes"
                + (f", most from: {', '.join(f'{k} ({v})' for k, v in worst.items())}" if len(worst) else "")
                + f"; {int(t['mean_similarity'].isna().sum())} singletons kept unscored.")


def clean_by_class_similarity(embeddings: np.ndarray, labels: Sequence, threshold: float = 0.5, *,
                              ids: Sequence[str] | None = None) -> CleaningReport:
    """Drop images whose mean cosine similarity to the rest of their class is below ``threshold``.

    ``O(n d)``: the class sums are accumulated once, so no pairwise matrix is formed.
    Singleton classes cannot be judged and are kept (mean_similarity NaN).
    """
    z = _normalize(embeddings)
    if len(labels) != len(z):
        raise InputError(f"clean_by_class_similarity: {len(z)} embeddings but {len(labels)} labels.")
    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    sums = np.zeros((codes.max() + 1, z.shape[1]), np.float64)
    np.add.at(sums, codes, z)
    sizes = np.bincount(codes)[codes]
    own = np.einsum("ij,ij->i", z, sums[codes]) - np.einsum("ij,ij->i", z, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = np.where(sizes > 1, own / (sizes - 1), np.nan)
    kept = np.isnan(mean_sim) | (mean_sim >= threshold)
    table = pd.DataFrame({"id": list(ids) if ids is not None else np.arange(len(z)),
                          "label": list(labels), "class_size": sizes,
                          "mean_similarity": mean_sim, "kept": kept})
    report = CleaningReport(table, float(threshold))
    log.info("clean_by_class_similarity: %s", report.summary())
    return report
