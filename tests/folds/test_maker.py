"""Fold makers (imet_kit.folds.maker) and `imet-kit folds`. The repair and the quality report have
their own modules: test_repair.py and test_report.py."""

from __future__ import annotations

import doctest
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from imet_kit.cli.main import main
from imet_kit.errors import InputError
from imet_kit.folds import maker as fm
from imet_kit.folds.maker import MultilabelStratifiedFolds, make_folds
from imet_kit.folds.report import fold_label_counts

METHODS = list(fm.METHODS)


# ---- properties ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", range(2, 11))
def test_folds_disjoint_complete_and_every_label_in_every_fold(method, k, long_tailed):
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
def test_property_holds_over_many_matrices(method, long_tailed, empty_pairs):
    for seed in range(6):
        y = long_tailed(n_rows=300, n_labels=40, seed=100 + seed)
        for k in (2, 3, 5, 7, 10):
            folds = make_folds(y, k, method=method, seed=seed)
            assert folds.min() == 0 and folds.max() == k - 1
            assert empty_pairs(y, folds, k) == 0, (seed, k)


def test_iterative_fold_sizes_differ_by_at_most_one(long_tailed):
    for k in (2, 3, 5, 7, 10):
        sizes = np.bincount(make_folds(long_tailed(seed=k), k, seed=1), minlength=k)
        assert sizes.max() - sizes.min() <= 1, sizes


def test_labels_under_n_folds_are_spread_one_per_fold(long_tailed):
    y = long_tailed(n_rows=400, n_labels=30, seed=3)
    folds = make_folds(y, 10, seed=0)
    counts = fold_label_counts(y, folds, 10)
    n_pos = counts.sum(axis=0)
    rare = (n_pos > 0) & (n_pos < 10)
    assert rare.any()
    assert ((counts[:, rare] > 0).sum(axis=0) == n_pos[rare]).all()


# ---- determinism ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_folds_any_input_form(method, long_tailed):
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


def test_input_is_not_modified_and_unshuffled_order_works(long_tailed, empty_pairs):
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

def test_splitter_in_sklearn_code(long_tailed):
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


def test_docstring_examples_run():
    assert doctest.testmod(fm).failed == 0


# ---- CLI -----------------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path, long_tailed):
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


def test_cli_writes_folds_report_and_plot(data_dir, capsys, empty_pairs):
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


def test_cli_when_no_attribute_can_be_in_every_fold(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("attribute_id,attribute_name\n0,tag::a\n1,tag::b\n")
    (tmp_path / "train.csv").write_text("id,attribute_ids\ni0,0\ni1,0 1\ni2,1\ni3,0\ni4,1\n")
    out = tmp_path / "f.csv"
    assert main(["folds", "--data", str(tmp_path), "--folds", "4", "--out", str(out)]) == 0
    assert (tmp_path / "f_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 label(s) have fewer than 4 positives" in capsys.readouterr().out
