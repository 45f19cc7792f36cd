"""`imet-kit clean` (imet_kit.cli.clean): images far from their class are dropped, with a report."""

import numpy as np
import pandas as pd

from imet_kit.cli.main import main


def test_clean_drops_the_mislabelled_image(tmp_path, capsys, write_embeddings):
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:2]
    emb = np.vstack([centres[0] + 0.05 * rng.normal(size=(5, 8)), centres[1] + 0.05 * rng.normal(size=(5, 8))])
    labels = ["a"] * 5 + ["b"] * 5
    labels[9] = "a"  # an image of class b labelled a: far from the other a's
    ids = [f"im{i}" for i in range(10)]
    write_embeddings(tmp_path / "e", emb, ids, labels)
    assert main(["clean", str(tmp_path / "e"), "--threshold", "0.5", "--out", str(tmp_path / "kept.csv")]) == 0
    kept = pd.read_csv(tmp_path / "kept.csv", dtype=str)
    assert "im9" not in kept["id"].tolist() and len(kept) == 9
    report = pd.read_csv(tmp_path / "kept_report.csv", dtype={"id": str})
    assert report.loc[report["id"] == "im9", "mean_similarity"].item() < 0.2
    assert "kept 9 of 10" in capsys.readouterr().out


def test_clean_needs_labels(tmp_path, capsys, write_embeddings):
    write_embeddings(tmp_path / "e", np.eye(3), ["x", "y", "z"])
    assert main(["clean", str(tmp_path / "e"), "--out", str(tmp_path / "k.csv")]) == 2
    err = capsys.readouterr().err
    assert "has no labels" in err and err.count("\n") == 1


def test_clean_threshold_is_a_cosine(tmp_path, capsys, write_embeddings):
    write_embeddings(tmp_path / "e", np.eye(3), ["x", "y", "z"], ["a", "a", "b"])
    assert main(["clean", str(tmp_path / "e"), "--threshold", "1.5", "--out", str(tmp_path / "k.csv")]) == 2
    assert "--threshold is a cosine similarity in [-1, 1]; received 1.5" in capsys.readouterr().err
    assert not (tmp_path / "k.csv").exists()
