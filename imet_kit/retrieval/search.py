"""Embeddings on disk, exact k-NN search, label voting and noisy-set cleaning.

* :func:`export_embedding_model` cuts a trained model at its embedding layer and
  L2-normalises it; :func:`embed_images` writes the embeddings of an image list to
  ``embeddings.npy`` (a memory-mapped ``(n, d)`` float32 array) chunk by chunk, with
  ``ids.csv`` and a ``progress.json`` that lets an interrupted run resume. These live in
  :mod:`imet_kit.retrieval.embed` and are re-exported here.
* :func:`search` gives the top-k gallery rows per query by cosine similarity, exactly,
  in numpy blocks: memory is ``O(query_block x gallery_block)``, never ``n x m``;
  ``backend="faiss"`` uses ``faiss.IndexFlatIP`` (``pip install faiss-cpu``).
* :func:`vote` turns neighbours into a label and a confidence (sum of similarities per
  label, as the Google Landmark notebooks did); :func:`clean_by_class_similarity` drops
  images far from the rest of their class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from imet_kit.errors import InputError
from imet_kit.retrieval.embed import _normalize

log = logging.getLogger(__name__)



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
                         f"{queries.shape} and {gallery.shape}. Embed both with the same model.")
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




