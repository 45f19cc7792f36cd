"""Exact top-k cosine search: imet_kit's numpy blocks and faiss against the landmark notebook's loop.

The reference is the Google Landmark notebooks' per-query loop: one
``scipy.spatial.distance.cdist(query, gallery, "cosine")`` and ``np.argpartition`` per query.
It is timed on ``--ref-queries`` queries and its per-query time extrapolated to all queries.

Ties: two result lists count as identical when they hold the same gallery rows, except rows
whose reference similarity lies within ``--tie-tol`` of the k-th one (the boundary, where float32
and float64 may legitimately order near-equal rows differently); ordered lists are compared too.

Run by hand (about 10-15 minutes on 2 cores; writes a 2 GB gallery under --data-dir)::

    python benchmarks/bench_search.py --data-dir /tmp/imet_bench
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from imet_kit.retrieval.search import search  # noqa: E402


def make_data(folder: Path, n: int, d: int, nq: int, seed: int, chunk: int = 65536):
    """Unit-norm Gaussian gallery written in chunks; queries are noisy copies of gallery rows."""
    folder.mkdir(parents=True, exist_ok=True)
    g_path, q_path = folder / f"gallery_{n}x{d}_s{seed}.npy", folder / f"queries_{nq}x{d}_s{seed}.npy"
    if not g_path.is_file():
        mm = np.lib.format.open_memmap(g_path.with_suffix(".tmp.npy"), "w+", np.float32, (n, d))
        for i, c0 in enumerate(range(0, n, chunk)):
            x = np.random.default_rng([seed, i]).standard_normal((min(chunk, n - c0), d), np.float32)
            mm[c0:c0 + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
        mm.flush()
        del mm
        os.replace(g_path.with_suffix(".tmp.npy"), g_path)
    gallery = np.load(g_path, mmap_mode="r")
    if not q_path.is_file():
        rng = np.random.default_rng([seed, 10**6])
        src = np.sort(rng.choice(n, nq, replace=False))
        q = gallery[src] + rng.standard_normal((nq, d), np.float32) * 0.05
        np.save(q_path, (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32))
    return np.load(q_path), gallery


def reference_loop(queries: np.ndarray, gallery: np.ndarray, k: int):
    """The notebook: one cdist + argpartition per query."""
    idx = np.empty((len(queries), k), np.int64)
    sims = np.empty((len(queries), k))
    for i, q in enumerate(queries):
        dist = cdist(q[None], gallery, "cosine")[0]
        part = np.argpartition(dist, k)[:k]
        part = part[np.argsort(dist[part], kind="stable")]
        idx[i], sims[i] = part, 1 - dist[part]
    return idx, sims


class PeakRSS:
    """Samples the process RSS every 20 ms (psutil) to report the peak during a block."""

    def __init__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def measure(fn):
    gc.collect()
    tracemalloc.start()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, secs, heap_peak, rss.peak - rss.base


def compare(idx_a, idx_b, ref_sims, k, tol):
    """(identical ordered lists, identical sets up to boundary ties) as counts of queries.

    ``ref_sims`` are the similarities of ``idx_a``'s rows; both lists are exact top-k, so if every
    row of ``a`` missing from ``b`` is within ``tol`` of the k-th similarity, they differ only by ties.
    """
    ordered = int((idx_a == idx_b).all(axis=1).sum())
    same = 0
    for a, b, s in zip(idx_a, idx_b, ref_sims):
        missing = np.isin(a, b, invert=True)  # rows of a that b lacks must sit at the boundary
        same += int(np.all(np.abs(s[missing] - s[k - 1]) <= tol))
    return ordered, same


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-gallery", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--n-queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--ref-queries", type=int, default=50, help="queries the slow reference runs on")
    p.add_argument("--query-block", type=int, default=1024)
    p.add_argument("--gallery-block", type=int, default=16384)
    p.add_argument("--tie-tol", type=float, default=1e-5)
    p.add_argument("--skip-faiss", action="store_true")
    p.add_argument("--data-dir", default="/tmp/imet_bench")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    n, nq, k = a.n_gallery, a.n_queries, a.k
    queries, gallery = make_data(Path(a.data_dir), n, a.dim, nq, a.seed)
    np.asarray(gallery[::1]).sum()  # warm the page cache so no run pays the disk read
    rows, res = [], {}

    ref_q = queries[: a.ref_queries]
    (ref_idx, ref_sims), t_ref, heap_ref, rss_ref = measure(lambda: reference_loop(ref_q, gallery, k))
    per_q_ref = t_ref / len(ref_q)
    rows.append(("reference loop (cdist + argpartition per query)", per_q_ref * nq, per_q_ref * 1e3,
                 1.0, heap_ref, rss_ref, f"timed on {len(ref_q)} queries, extrapolated x{nq // len(ref_q)}"))

    nb, t_np, heap_np, rss_np = measure(lambda: search(
        queries, gallery, k=k, query_block=a.query_block, gallery_block=a.gallery_block, normalize=False))
    o, s = compare(ref_idx, nb.indices[: len(ref_q)], ref_sims, k, a.tie_tol)
    max_err = float(np.abs(nb.scores[: len(ref_q)] - ref_sims).max())
    rows.append((f"imet_kit numpy blocks ({a.query_block} x {a.gallery_block})", t_np, t_np / nq * 1e3,
                 t_ref / len(ref_q) * nq / t_np, heap_np, rss_np,
                 f"vs reference: {s}/{len(ref_q)} same sets, {o}/{len(ref_q)} same order, "
                 f"max |sim diff| {max_err:.1e}"))
    res["numpy_vs_reference"] = {"same_sets": s, "same_order": o, "of": len(ref_q), "max_sim_diff": max_err}

    small_q = queries[: min(nq, 2048)]
    _, t_sm, heap_sm, rss_sm = measure(lambda: search(
        small_q, gallery, k=k, query_block=256, gallery_block=4096, normalize=False))
    rows.append(("imet_kit numpy blocks (256 x 4096)", t_sm * nq / len(small_q), t_sm / len(small_q) * 1e3,
                 per_q_ref * len(small_q) / t_sm, heap_sm, rss_sm,
                 f"smaller blocks, timed on {len(small_q)} queries and extrapolated"))

    if not a.skip_faiss:
        fb, t_f, heap_f, rss_f = measure(lambda: search(queries, gallery, k=k, backend="faiss",
                                                        normalize=False))
        o_r, s_r = compare(ref_idx, fb.indices[: len(ref_q)], ref_sims, k, a.tie_tol)
        ties = compare(nb.indices, fb.indices, nb.scores.astype(np.float64), k, a.tie_tol)
        rows.append(("imet_kit faiss IndexFlatIP (incl. index build)", t_f, t_f / nq * 1e3,
                     per_q_ref * nq / t_f, heap_f, rss_f,
                     f"vs reference: {s_r}/{len(ref_q)} same sets; vs numpy on all {nq}: "
                     f"{ties[1]} same sets, {ties[0]} same order"))
        res["faiss_vs_numpy"] = {"same_sets": ties[1], "same_order": ties[0], "of": nq}

    full = nq * n * 4
    print(f"\nExact top-{k}, {nq:,} queries x {n:,} x {a.dim} float32 gallery (memory map, page cache warm); "
          f"a full n x m float32 similarity matrix would be {full / 2**30:.1f} GiB; "
          f"{os.cpu_count()} CPU cores.\n")
    print(f"| method | total s ({nq:,} queries) | ms / query | speed-up vs loop | peak heap (tracemalloc) | "
          "peak RSS increase | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, tot, ms, spd, heap, rss, note in rows:
        print(f"| {name} | {tot:,.0f} | {ms:.2f} | {spd:.0f}x | {heap / 2**20:,.0f} MiB | "
              f"{rss / 2**20:,.0f} MiB | {note} |")
    print(f"\nload average during the run (1/5/15 min): {os.getloadavg()}")
    res["rows"] = [dict(zip(["method", "total_s", "ms_per_query", "speedup", "heap_peak_bytes",
                             "rss_increase_bytes", "notes"], r)) for r in rows]
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
