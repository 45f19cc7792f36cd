"""Fold makers on an iMet-shaped label matrix: time, memory and fold quality, one table.

Run by hand (about 3-5 minutes on 2 cores; iterstrat and scikit-multilearn take most of it)::

    pip install -e .[bench]          # iterative-stratification, scikit-multilearn
    python benchmarks/bench_folds.py [--rows 109237] [--folds 5] [--seed 0] [--only ours]

Each method runs in its own fresh Python process, on the same seeded matrix (saved to a
temporary .npz), so that its CPU time and its peak memory (Linux: the rise of the
process's peak resident set over its level just before the call, after
``/proc/self/clear_refs``) are its own. Fold quality is then measured by
:mod:`imet_kit.folds.report` in the parent process.

The reference implementations (the 2019 notebook's loop, the peers' calls) live here,
not in the package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np
import scipy.sparse as sp

N_ROWS, N_CULTURE, N_TAG = 109_237, 398, 705

# Log-count profile of labels sorted by frequency: (quantile, positives at full iMet size).
CULTURE_PROFILE = [(0, 14000), (0.01, 5000), (0.05, 1200), (0.2, 120), (0.5, 16), (0.82, 5), (1, 1)]
TAG_PROFILE = [(0, 23000), (0.005, 10500), (0.04, 2900), (0.25, 240), (0.5, 20), (0.85, 5), (1, 1)]


def _profile(n_labels: int, points, scale: float) -> np.ndarray:
    u = (np.arange(n_labels) + 0.5) / n_labels
    xs, ys = zip(*points)
    return np.maximum(1, np.round(scale * np.exp(np.interp(u, xs, np.log(ys))))).astype(np.int64)


def imet_shaped_labels(n_rows: int = N_ROWS, n_culture: int = N_CULTURE, n_tag: int = N_TAG,
                       seed: int = 0, n_topics: int = 60) -> sp.csr_matrix:
    """A seeded multi-hot matrix shaped like iMet 2019's train labels.

    Label sizes follow a long-tailed profile (largest ~20k of 109k rows, median ~18,
    ~150+ labels under 5 positives); co-occurrence is correlated through latent topics:
    each row has a topic and each label draws about half its rows from its own topic.
    Rows left without a label get one tag drawn by popularity (every iMet image has one).

    Args:
        n_rows: rows (images); label sizes scale with ``n_rows / 109237``.
        n_culture: culture labels (ids ``0..n_culture-1``).
        n_tag: tag labels (the ids after them).
        seed: seed of everything.
        n_topics: latent topics behind the co-occurrence.

    Returns:
        ``csr_matrix`` (uint8) of shape ``(n_rows, n_culture + n_tag)``.
    """
    rng = np.random.default_rng(seed)
    scale = n_rows / N_ROWS
    sizes = np.concatenate([_profile(n_culture, CULTURE_PROFILE, scale),
                            _profile(n_tag, TAG_PROFILE, scale)])
    order = np.concatenate([rng.permutation(n_culture), n_culture + rng.permutation(n_tag)])
    sizes = np.minimum(sizes[np.argsort(order)], n_rows)
    topic_w = 1.0 / np.arange(1, n_topics + 1) ** 0.8
    topic_w /= topic_w.sum()
    topic = rng.choice(n_topics, size=n_rows, p=topic_w)
    members = [np.flatnonzero(topic == t) for t in range(n_topics)]
    rows_all, cols_all = [], []
    for lab, size in enumerate(sizes.tolist()):
        home = members[int(rng.choice(n_topics, p=topic_w))]
        k_in = min(int(rng.binomial(size, rng.uniform(0.3, 0.8))), len(home) // 2)
        picked = np.union1d(rng.choice(home, k_in, replace=False),
                            rng.choice(n_rows, size - k_in, replace=False))
        rows_all.append(picked)
        cols_all.append(np.full(len(picked), lab))
    rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
    empty = np.setdiff1d(np.arange(n_rows), rows)
    tag_p = sizes[n_culture:] / sizes[n_culture:].sum()
    rows = np.concatenate([rows, empty])
    cols = np.concatenate([cols, n_culture + rng.choice(n_tag, size=len(empty), p=tag_p)])
    y = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)),
                      shape=(n_rows, n_culture + n_tag))
    y.sum_duplicates()
    y.data[:] = 1
    return y


def describe(y: sp.csr_matrix) -> str:
    pos = np.asarray(y.sum(axis=0)).ravel()
    per_row = np.diff(y.indptr)
    return (f"{y.shape[0]:,} rows x {y.shape[1]:,} labels, {y.nnz:,} positives "
            f"({per_row.mean():.2f}/row, max {per_row.max()}); label sizes max {pos.max():,}, "
            f"median {np.median(pos):.0f}, {int((pos < 5).sum())} under 5; "
            f"CSR {sparse_bytes(y) / 2**20:.1f} MiB")


def sparse_bytes(y: sp.csr_matrix) -> int:
    return y.data.nbytes + y.indices.nbytes + y.indptr.nbytes


# ---- reference implementations -------------------------------------------------------------

def notebook_loop(attribute_ids: list[str], n_folds: int, seed: int) -> np.ndarray:
    """lopuhin/kaggle-imet-2019 ``imet/make_folds.py``, line for line, on train.csv's strings.

    Only the pandas I/O is gone: ``df.sample(frac=1, random_state=seed)`` becomes the same
    permutation and ``df.loc[item.Index, 'fold'] = fold`` a list write (the per-row
    ``.loc`` costs ~100 us, an artefact of pandas, not of the algorithm).
    """
    folds = [-1] * len(attribute_ids)
    cls_counts = Counter(cls for classes in attribute_ids for cls in classes.split())
    fold_cls_counts = defaultdict(int)
    for index in np.random.RandomState(seed).permutation(len(attribute_ids)).tolist():
        classes = attribute_ids[index].split()
        cls = min(classes, key=lambda cls: cls_counts[cls])
        fold_counts = [(f, fold_cls_counts[f, cls]) for f in range(n_folds)]
        min_count = min([count for _, count in fold_counts])
        random.seed(index)
        fold = random.choice([f for f, count in fold_counts if count == min_count])
        folds[index] = fold
        for cls in classes:
            fold_cls_counts[fold, cls] += 1
    return np.asarray(folds)


def _folds_from_splits(splits, n_rows: int) -> np.ndarray:
    folds = np.full(n_rows, -1)
    for k, (_, val) in enumerate(splits):
        folds[np.asarray(val)] = k
    return folds


def run_method(name: str, y: sp.csr_matrix, n_folds: int, seed: int):
    """Return a zero-argument callable that makes the folds with ``name`` (setup not timed)."""
    n = y.shape[0]
    X = np.zeros((n, 1))
    if name.startswith("ours:"):
        from imet_kit.folds.maker import make_folds

        return lambda: make_folds(y, n_folds, method=name[5:], seed=seed)
    if name == "notebook-2019":
        ids = [" ".join(map(str, y.indices[y.indptr[i]:y.indptr[i + 1]])) for i in range(n)]
        return lambda: notebook_loop(ids, n_folds, seed)
    if name == "iterstrat":
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        cv = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return lambda: _folds_from_splits(cv.split(X, y.toarray()), n)
    if name == "skmultilearn":
        from skmultilearn.model_selection import IterativeStratification

        def go():
            np.random.seed(seed)  # its ties use the global RNG; random_state needs shuffle
            cv = IterativeStratification(n_splits=n_folds, order=1)
            return _folds_from_splits(cv.split(X, y), n)

        return go
    if name == "random-kfold":
        from sklearn.model_selection import KFold

        cv = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return lambda: _folds_from_splits(cv.split(X), n)
    raise SystemExit(f"unknown method {name!r}")


METHODS = ["ours:iterative", "ours:rare-first", "notebook-2019", "iterstrat", "skmultilearn",
           "random-kfold"]


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child(name: str, npz: str, n_folds: int, seed: int, out: str) -> None:
    y = sp.load_npz(npz).tocsr()
    fn = run_method(name, y, n_folds, seed)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS to the current RSS
    except OSError:
        pass
    before = _rss_kib("VmRSS")
    w0, c0 = time.perf_counter(), time.process_time()
    folds = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = _rss_kib("VmHWM")
    np.save(out, np.asarray(folds, dtype=np.int64))
    peak_mb = None if before is None or peak is None else (peak - before) / 1024
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mib": peak_mb}))


def check_targets(by_name: dict, csr_mib: float, ours: str = "ours:iterative") -> None:
    """Print the issue's targets for the default method, each with pass / FAIL."""
    if ours not in by_name:
        return
    t, rep = by_name[ours]
    checks = [("FZ = 0", rep["fz"] == 0)]
    if "iterstrat" in by_name:
        ti, ri = by_name["iterstrat"]
        checks += [(f"LD {rep['ld']:.3e} <= iterstrat's {ri['ld']:.3e}", rep["ld"] <= ri["ld"]),
                   (f"fold-size std {rep['fold_size_std']:.2f} <= iterstrat's "
                    f"{ri['fold_size_std']:.2f}", rep["fold_size_std"] <= ri["fold_size_std"]),
                   (f"CPU {t['cpu_s']:.2f} s is {ti['cpu_s'] / t['cpu_s']:.0f}x less than "
                    f"iterstrat's (>= 50x)", ti["cpu_s"] >= 50 * t["cpu_s"])]
    if "notebook-2019" in by_name:
        tn = by_name["notebook-2019"][0]
        checks.append((f"CPU {t['cpu_s']:.2f} s <= notebook loop's {tn['cpu_s']:.2f} s",
                       t["cpu_s"] <= tn["cpu_s"]))
    if t["peak_mib"] is not None:
        checks.append((f"peak {t['peak_mib']:.1f} MiB <= 5x the CSR matrix ({csr_mib:.1f} MiB)",
                       t["peak_mib"] <= 5 * csr_mib))
    print(f"\nTargets for {ours}:")
    for text, ok in checks:
        print(f"  [{'pass' if ok else 'FAIL'}] {text}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=N_ROWS)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="method names or prefixes to run")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--npz", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.npz, args.folds, args.seed, args.out)
        return 0

    from imet_kit.folds.report import fold_report

    y = imet_shaped_labels(n_rows=args.rows, seed=args.seed)
    print(describe(y))
    print(f"{args.folds} folds, seed {args.seed}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpu(s)\n")
    methods = [m for m in METHODS if not args.only or any(m.startswith(o) for o in args.only)]
    head = f"{'method':<16} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9} {'LD':>9} {'LPD':>9} " \
           f"{'FZ':>5} {'size std':>9} {'CPU vs iterstrat':>17}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "y.npz")
        sp.save_npz(npz, y)
        for name in methods:
            out = os.path.join(tmp, "folds.npy")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--npz", npz,
                   "--out", out, "--folds", str(args.folds), "--seed", str(args.seed)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                print(f"{name}: failed\n{res.stderr[-2000:]}")
                continue
            t = json.loads(res.stdout.strip().splitlines()[-1])
            rep = fold_report(y, np.load(out), args.folds)
            rows.append((name, t, rep))
            print(f"  done {name} in {t['wall_s']:.1f} s", file=sys.stderr)
    by_name = {name: (t, rep) for name, t, rep in rows}
    ref_cpu = by_name["iterstrat"][0]["cpu_s"] if "iterstrat" in by_name else None
    print(head)
    print("-" * len(head))
    for name, t, rep in rows:
        peak = "n/a" if t["peak_mib"] is None else f"{t['peak_mib']:.1f}"
        speed = f"{ref_cpu / t['cpu_s']:.0f}x faster" if ref_cpu and t["cpu_s"] > 0 else ""
        print(f"{name:<16} {t['wall_s']:>8.2f} {t['cpu_s']:>8.2f} {peak:>9} {rep['ld']:>9.3e} "
              f"{rep['lpd']:>9.3e} {rep['fz']:>5d} {rep['fold_size_std']:>9.2f} {speed:>17}")
    check_targets(by_name, sparse_bytes(y) / 2**20)
    print(f"\nLD/LPD: Sechidis et al. 2011 label / label-pair distribution (lower is better); "
          f"FZ: (fold, label) pairs with no positive in the validation fold among labels with "
          f">= {args.folds} positives; peak MiB: rise of peak RSS during the call "
          f"(CSR matrix itself: {sparse_bytes(y) / 2**20:.1f} MiB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
