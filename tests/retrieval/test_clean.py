"""imet_kit.retrieval.clean: each image's mean cosine similarity to the rest of its class (against
the pairwise matrix by hand), the threshold rule, singletons kept unscored, the summary. The first
test moved from test_search.py; the `imet-kit clean` command is tested in tests/cli/test_clean.py."""

import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.retrieval.clean import clean_by_class_similarity


def test_cleaning_drops_the_outlier_of_a_class():
    rng = np.random.default_rng(0)
    centre = np.eye(8)[0]
    emb = np.vstack([centre + rng.normal(scale=0.05, size=(5, 8)), -centre, np.eye(8)[3]])
    labels = ["a"] * 6 + ["solo"]
    report = clean_by_class_similarity(emb, labels, threshold=0.5, ids=[f"i{i}" for i in range(7)])
    assert report.keep.tolist() == [True] * 5 + [False, True]
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    want = np.mean([z[5] @ z[j] for j in range(5)])
    assert report.table.loc[5, "mean_similarity"] == pytest.approx(want, abs=1e-5)
    assert np.isnan(report.table.loc[6, "mean_similarity"])
    assert "kept 6 of 7" in report.summary() and "a (1)" in report.summary()


def test_mean_similarity_equals_the_pairwise_matrix_by_hand():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(30, 5)) * rng.uniform(0.1, 10, (30, 1))  # any norm: cosine only
    labels = rng.choice(["x", "y", "z", 7], size=30).tolist()  # any hashable label
    report = clean_by_class_similarity(emb, labels, threshold=0.1)
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = z @ z.T
    for i in range(30):
        same = [j for j in range(30) if labels[j] == labels[i] and j != i]
        assert report.table.loc[i, "class_size"] == len(same) + 1
        assert report.table.loc[i, "mean_similarity"] == pytest.approx(np.mean(sims[i, same]), abs=1e-5)
    np.testing.assert_array_equal(report.keep, report.table["mean_similarity"].to_numpy() >= 0.1)
    assert report.table["id"].tolist() == list(range(30))  # row numbers without ids


def test_threshold_is_inclusive():
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])  # orthogonal: mean similarity exactly 0
    assert clean_by_class_similarity(emb, ["a", "a"], threshold=0.0).keep.all()
    assert not clean_by_class_similarity(emb, ["a", "a"], threshold=0.01).keep.any()
    antipodal = np.array([[1.0, 0.0], [-1.0, 0.0]])  # mean similarity exactly -1
    assert clean_by_class_similarity(antipodal, ["a", "a"], threshold=-1.0).keep.all()


def test_labels_must_match_the_embeddings():
    with pytest.raises(InputError, match="3 embeddings but 2 labels"):
        clean_by_class_similarity(np.eye(3), ["a", "b"])


def test_summary_names_the_classes_that_lost_most():
    # class a: 4 images along +x, 1 along -x (the 4 score (3 - 1) / 4 = 0.5: kept, inclusive)
    # class b: 8 images along +y, 2 along -y (the 8 score (7 - 2) / 9 = 0.56: kept)
    emb = np.vstack([np.tile([1.0, 0.0], (4, 1)), [[-1.0, 0.0]],
                     np.tile([0.0, 1.0], (8, 1)), np.tile([0.0, -1.0], (2, 1))])
    report = clean_by_class_similarity(emb, ["a"] * 5 + ["b"] * 10, threshold=0.5)
    assert report.keep.tolist() == [True] * 4 + [False] + [True] * 8 + [False] * 2
    text = report.summary()
    assert "kept 12 of 15" in text and "dropped 3 from 2 classes" in text
    assert text.index("b (2)") < text.index("a (1)")  # most dropped first
