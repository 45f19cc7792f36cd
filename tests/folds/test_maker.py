"""Fold makers (imet_kit.folds.maker), their quality report (imet_kit.folds.report) and `imet-kit folds`."""

from __future__ import annotations

import doctest
import json
import tracemalloc
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from imet_kit.cli.main import main
from imet_kit.errors import InputError
from imet_kit.folds import maker as fm
from imet_kit.folds import report as fr
from imet_kit.folds.maker import MultilabelStratifiedFolds, make_folds, repair_folds
from imet_kit.folds.report import fold_label_counts, fold_report, label_pair_distribution

METHODS = list(fm.METHODS)


def long_tailed(n_rows=400, n_labels=30, seed=0, empty_rows=5) -> sp.csr_matrix:
    """Long-tailed, topic-correlated multi-hot labels (120 positives down to 2)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(2, (0.3 * n_rows / np.arange(1, n_labels + 1) ** 1.1).astype(int))
    topic = rng.integers(0, 4, n_rows)
    topic[:empty_rows] = -1  # rows that get no label
    rows, cols = [], []
    for j, size in enumerate(sizes):
        w = np.where(topic == j % 4, 4.0, 1.0) * (topic >= 0)
        picked = rng.choice(n_rows, size=size, replace=False, p=w / w.sum())
        rows += picked.tolist()
        cols += [j] * size
    return sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, cols)), shape=(n_rows, n_labels))


def empty_pairs(y, folds, k) -> int:
    counts = fold_label_counts(y, folds, k)
    return int(((counts == 0) & (counts.sum(axis=0) >= k)[None, :]).sum())


# ---- properties ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", range(2, 11))
def test_folds_disjoint_complete_and_every_label_in_every_fold(method, k):
    y = long_tailed(seed=k)
    cv = MultilabelStratifiedFolds(n_splits=k, method=method, random_state=k)
    seen = np.zeros(y.shape[0], dtype=int)
    for train, val in cv.split(None, y):
        assert len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == y.shape[0]
        seen[val] += 1
        n_pos = np.asarray(y.sum(axis=0)).ravel()
        in_val = np.asarray(y[val].sum(axis=0)).ravel()
        assert (in_val[n_pos >= k] > 0).all()
    assert (seen == 1).all()  # every row validated exactly once


@pytest.mark.parametrize("method", METHODS)
def test_property_holds_over_many_matrices(method):
    for seed in range(6):
        y = long_tailed(n_rows=300, n_labels=40, seed=100 + seed)
        for k in (2, 3, 5, 7, 10):
            folds = make_folds(y, k, method=method, seed=seed)
            assert folds.min() == 0 and folds.max() == k - 1
            assert empty_pairs(y, folds, k) == 0, (seed, k)


def test_iterative_fold_sizes_differ_by_at_most_one():
    for k in (2, 3, 5, 7, 10):
        sizes = np.bincount(make_folds(long_tailed(seed=k), k, seed=1), minlength=k)
        assert sizes.max() - sizes.min() <= 1, sizes


def test_labels_under_n_folds_are_spread_one_per_fold():
    y = long_tailed(n_rows=400, n_labels=30, seed=3)
    folds = make_folds(y, 10, seed=0)
    counts = fold_label_counts(y, folds, 10)
    n_pos = counts.sum(axis=0)
    rare = (n_pos > 0) & (n_pos < 10)
    assert rare.any()
    assert ((counts[:, rare] > 0).sum(axis=0) == n_pos[rare]).all()


# ---- determinism ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_folds_any_input_form(method):
    y = long_tailed(seed=5)
    a = make_folds(y, 5, method=method, seed=11)
    assert np.array_equal(a, make_folds(y, 5, method=method, seed=11))
    assert np.array_equal(a, make_folds(y.toarray(), 5, method=method, seed=11))
    assert np.array_equal(a, make_folds(y.tocsc().astype(bool), 5, method=method, seed=11))
    assert not np.array_equal(a, make_folds(y, 5, method=method, seed=12))


def test_pinned_folds_for_a_seed():
    # Same seed, same folds on any machine: a change here changes users' folds.
    y = np.array([[1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0],
                  [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]])
    assert make_folds(y, 3, seed=7).tolist() == [1, 1, 0, 2, 0, 0, 2, 0, 2, 1, 1, 2]
    assert make_folds(y, 3, method="rare-first", seed=7).tolist() == [
        0, 0, 1, 1, 2, 2, 2, 1, 1, 2, 0, 1]


def test_input_is_not_modified_and_unshuffled_order_works():
    y = long_tailed(seed=2)
    before = (y.data.copy(), y.indices.copy(), y.indptr.copy())
    folds = make_folds(y, 4, seed=0, shuffle=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, (y.data, y.indices, y.indptr)))
    assert empty_pairs(y, folds, 4) == 0


def test_deal_matches_the_row_by_row_greedy():
    """The vectorised dealing equals iterstrat's per-row loop (largest need, then size, then tie)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(2, 11))
        d, c, prio = rng.integers(-30, 40, k), rng.integers(-50, 50, k), rng.random(k)
        if rng.random() < 0.3:
            d[:] = d[0]
        m = int(rng.integers(0, 40))
        dd, cc, want = d.copy(), c.copy(), []
        for _ in range(m):
            f = max(range(k), key=lambda f: (dd[f], cc[f], prio[f]))
            want.append(f)
            dd[f] -= k
            cc[f] -= k
        assert fm._deal(d, c, prio, m, k).tolist() == want


def test_sparse_input_is_never_densified():
    rng = np.random.default_rng(0)
    n, c = 20_000, 2_000
    rows = rng.integers(0, n, 60_000)
    cols = np.minimum(rng.zipf(1.3, 60_000) - 1, c - 1)
    y = sp.csr_matrix((np.ones(60_000, np.uint8), (rows, cols)), shape=(n, c))
    y.sum_duplicates()
    y.data[:] = 1
    tracemalloc.start()
    make_folds(y, 5, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.1 * n * c  # the dense uint8 matrix alone would be n * c bytes (40 MB)


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("k, match", [(1, "at least 2"), (0, "at least 2"), (-3, "at least 2"),
                                      (2.5, "integer"), (True, "integer"), (13, "more than the 12")])
def test_bad_n_folds(k, match):
    with pytest.raises(InputError, match=match):
        make_folds(np.eye(4, dtype=int)[np.arange(12) % 4], k)


@pytest.mark.parametrize("y, match", [
    (np.array([[0, 2], [1, 0]]), "binary"),
    (np.array([[0.5, 1.0], [1.0, 0.0]]), "binary"),
    (np.array([[np.nan, 1.0], [1.0, 0.0]]), "binary"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 0)), "empty"),
    (np.zeros((4, 3)), "no positive"),
    (sp.csr_matrix((4, 3)), "no positive"),
    (np.array([1, 0, 1]), "2-D"),
    (np.array([["a", "b"]]), "numeric"),
    (None, "received None"),
])
def test_bad_label_matrix(y, match):
    with pytest.raises(InputError, match=match):
        make_folds(y, 2)


def test_unknown_method_and_missing_y():
    with pytest.raises(InputError, match="Expected one of: iterative, rare-first"):
        make_folds(np.eye(3), 2, method="random")
    with pytest.raises(InputError, match="needs y"):
        list(MultilabelStratifiedFolds(2).split(np.zeros((3, 1))))


# ---- scikit-learn shape --------------------------------------------------------------------

def test_splitter_in_sklearn_code():
    from sklearn.model_selection import check_cv, cross_validate
    from sklearn.neighbors import KNeighborsClassifier

    y = long_tailed(n_rows=120, n_labels=8, seed=1, empty_rows=0).toarray()
    X = y + np.random.default_rng(0).normal(0, 0.3, y.shape)
    cv = MultilabelStratifiedFolds(n_splits=3, random_state=0)
    assert check_cv(cv) is cv and cv.get_n_splits() == 3
    assert (cv.shuffle, cv.random_state) == (True, 0)
    assert "MultilabelStratifiedFolds(n_splits=3" in repr(cv)
    res = cross_validate(KNeighborsClassifier(3), X, y, cv=cv, return_indices=True)
    assert len(res["test_score"]) == 3 and np.isfinite(res["test_score"]).all()
    ours = [val.tolist() for _, val in MultilabelStratifiedFolds(3, random_state=0).split(X, y)]
    assert [v.tolist() for v in res["indices"]["test"]] == ours


# ---- repair and report ---------------------------------------------------------------------

def test_repair_fills_an_empty_fold_and_keeps_sizes():
    y = long_tailed(seed=4)
    folds = make_folds(y, 3, seed=0)
    counts = fold_label_counts(y, folds, 3)
    lab = int(np.argmax(counts.sum(axis=0) == counts.sum(axis=0)[counts.sum(axis=0) >= 3].min()))
    broken = folds.copy()
    broken[(y[:, lab].toarray().ravel() > 0) & (folds == 0)] = 1  # fold 0 loses label `lab`
    assert empty_pairs(y, broken, 3) > 0
    fixed = repair_folds(y, broken, 3)
    assert empty_pairs(y, fixed, 3) == 0
    assert np.array_equal(np.bincount(fixed), np.bincount(broken))
    assert repair_folds(y, broken, 3, balance_sizes=True).tolist() != broken.tolist()


def _ld_by_hand(y, folds, items):
    """Sechidis' formula with loops, over ``items`` (lists of label ids a row must all have)."""
    n, k = y.shape[0], folds.max() + 1
    total = []
    for item in items:
        has = y[:, item].all(axis=1)
        d = has.sum()
        for i in range(k):
            s, sj = (folds == i).sum(), has[folds == i].sum()
            total.append(abs(sj / (s - sj) - d / (n - d)))
    return np.mean(total)


def test_ld_lpd_fz_against_the_formula():
    y = long_tailed(n_rows=60, n_labels=6, seed=9, empty_rows=0).toarray()
    folds = np.arange(60) % 3
    rep = fold_report(y, folds, 3)
    assert rep["ld"] == pytest.approx(_ld_by_hand(y, folds, [[j] for j in range(6)]))
    pairs = [list(p) for p in combinations(range(6), 2) if y[:, list(p)].all(axis=1).any()]
    assert rep["lpd"] == pytest.approx(_ld_by_hand(y, folds, pairs))
    assert label_pair_distribution(y, folds, 3) == rep["lpd"]
    assert rep["fz"] == empty_pairs(y, folds, 3) and rep["fold_sizes"] == [20, 20, 20]
    bad = np.where(y[:, 0] > 0, 0, folds)  # all of label 0 in fold 0: folds 1 and 2 lack it
    assert fold_report(y, bad, 3)["fz"] >= 2


def test_report_lists_rare_labels_and_round_trips(tmp_path):
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]])
    rep = fold_report(y, np.array([0, 1, 0, 1]), 2, label_names=["a", "b", "c"], method="x")
    rare = rep["labels_under_n_folds"]
    assert rare["count"] == 2 and [r["name"] for r in rare["labels"]] == ["b", "c"]
    assert rare["labels"][0]["folds"] == [0] and "cannot be measured" in rare["note"]
    text = fr.format_report(rep)
    assert "FZ   0" in text and "2 label(s) have fewer than 2 positives" in text
    path = fr.save_report_json(rep, tmp_path / "r.json")
    assert json.loads(path.read_text()) == rep
    with pytest.raises(InputError, match="one integer fold per row"):
        fold_report(y, [0, 1], 2)


def test_docstring_examples_run():
    for mod in (fm, fr):
        assert doctest.testmod(mod).failed == 0


# ---- CLI -----------------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path):
    y = long_tailed(n_rows=90, n_labels=12, seed=6, empty_rows=0).tolil()
    y[np.flatnonzero(np.diff(y.tocsr().indptr) == 0), 0] = 1  # every iMet image has a label
    y = y.tocsr()
    names = [f"culture::c{j}" if j < 4 else f"tag::t{j}" for j in range(12)]
    pd.DataFrame({"attribute_id": range(12), "attribute_name": names}).to_csv(
        tmp_path / "labels.csv", index=False)
    ids = [f"img{i:03d}" for i in range(90)]
    attr = [" ".join(map(str, y.indices[y.indptr[i]:y.indptr[i + 1]])) for i in range(90)]
    pd.DataFrame({"id": ids, "attribute_ids": attr}).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path, y, ids


def test_cli_writes_folds_report_and_plot(data_dir, capsys):
    root, y, ids = data_dir
    out = root / "run" / "folds.csv"
    assert main(["folds", "--data", str(root), "--folds", "3", "--seed", "1", "--out", str(out)]) == 0
    df = pd.read_csv(out, dtype={"id": str})
    assert list(df.columns) == ["id", "fold"] and df["id"].tolist() == ids
    assert set(df["fold"]) == {0, 1, 2} and empty_pairs(y, df["fold"].to_numpy(), 3) == 0
    rep = json.loads((root / "run" / "folds_report.json").read_text())
    assert rep["fz"] == 0 and rep["method"] == "iterative" and rep["seed"] == 1
    assert (root / "run" / "folds_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LD " in capsys.readouterr().out
    again = root / "again.csv"
    main(["folds", "--data", str(root), "--folds", "3", "--seed", "1", "--out", str(again),
          "--no-plot"])
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("argv, match", [
    (["--folds", "1"], "n_folds must be at least 2"),
    (["--folds", "91"], "more than the 90 row(s)"),
    (["--folds", "x"], "invalid int value"),
    (["--method", "random"], "invalid choice"),
])
def test_cli_bad_input_is_one_line_exit_2(data_dir, capsys, argv, match):
    root, _, _ = data_dir
    out = root / "f.csv"
    try:  # argparse's own errors leave main() as SystemExit(2)
        code = main(["folds", "--data", str(root), "--out", str(out), "--no-plot", *argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and match in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_cli_missing_folder(tmp_path, capsys):
    assert main(["folds", "--data", str(tmp_path / "nope"), "--no-plot"]) == 2
    assert "does not exist" in capsys.readouterr().err
