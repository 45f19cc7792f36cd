"""`imet-kit search` (imet_kit.cli.search) on embeddings folders written without a model: the
result table with and without gallery labels, metrics only when both sides have labels, and the
flag checks. The embed + search round trip with a real model is in tests/retrieval/test_search.py."""

import json
import shutil

import numpy as np
import pandas as pd

from imet_kit.cli.main import main


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # as `imet-kit embed` writes them


# two clusters along x and y; q0 is nearest g0 then g1, q1 nearest g2
GALLERY = _unit([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
QUERIES = _unit([[1.0, 0.05], [0.1, 1.0]])


def _folders(tmp_path, write_embeddings, gallery_labels=None, query_labels=None):
    write_embeddings(tmp_path / "g", GALLERY, ["g0", "g1", "g2"], gallery_labels)
    write_embeddings(tmp_path / "q", QUERIES, ["q0", "q1"], query_labels)
    return str(tmp_path / "q"), str(tmp_path / "g")


def test_neighbours_without_labels(tmp_path, capsys, write_embeddings):
    q, g = _folders(tmp_path, write_embeddings)
    out = tmp_path / "r.csv"
    assert main(["search", q, g, "--out", str(out), "-k", "2"]) == 0
    res = pd.read_csv(out, dtype=str)
    assert list(res.columns) == ["id", "neighbours", "scores"]  # no labels: no vote
    assert res["neighbours"].tolist() == ["g0 g1", "g2 g1"]
    scores = [float(s) for s in res["scores"][0].split()]
    assert scores == [round(float(QUERIES[0] @ GALLERY[j]), 4) for j in (0, 1)]  # cosines
    assert not (tmp_path / "r.metrics.json").exists()
    assert "wrote 2 queries x 2 neighbours" in capsys.readouterr().out


def test_gallery_labels_vote_and_query_labels_score(tmp_path, write_embeddings):
    q, g = _folders(tmp_path, write_embeddings, ["x", "x", "y"])
    assert main(["search", q, g, "--out", str(tmp_path / "a.csv"), "-k", "3", "--vote-k", "2"]) == 0
    res = pd.read_csv(tmp_path / "a.csv", dtype={"id": str})
    assert res["label"].tolist() == ["x", "y"]
    assert not (tmp_path / "a.metrics.json").exists()  # the queries have no labels to score
    q2 = tmp_path / "q2"
    shutil.copytree(q, q2)
    pd.DataFrame({"id": ["q0", "q1"], "path": ["q0.png", "q1.png"], "label": ["x", "y"]}).to_csv(
        q2 / "ids.csv", index=False)
    assert main(["search", str(q2), g, "--out", str(tmp_path / "b.csv"), "-k", "2"]) == 0
    metrics = json.loads((tmp_path / "b.metrics.json").read_text())
    assert metrics["recall@1"] == 1.0 and metrics["gap"] == 1.0


def test_bad_flags_are_one_line_exit_2(tmp_path, capsys, write_embeddings):
    q, g = _folders(tmp_path, write_embeddings)
    out = tmp_path / "r.csv"
    assert main(["search", q, g, "--out", str(out), "-k", "0"]) == 2
    assert "-k must be >= 1; received 0" in capsys.readouterr().err
    assert main(["search", q, g, "--out", str(out), "--exclude-self"]) == 2
    err = capsys.readouterr().err
    assert "needs the queries to be the gallery; received 2 queries and 3 gallery rows" in err
    assert err.count("\n") == 1 and not out.exists()
