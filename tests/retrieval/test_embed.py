"""imet_kit.retrieval.embed: exporting an embedding model, listing an image folder, embedding in
chunks to disk (ids.csv, embeddings.npy, progress.json), resuming only where the same job stopped,
and loading the result. The first test moved from test_search.py."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from imet_kit.errors import DataFileError, InputError
from imet_kit.retrieval.embed import (
    PARTIAL,
    embed_images,
    export_embedding_model,
    list_images,
    load_embeddings,
)


def test_export_embed_in_chunks_and_resume(tmp_path, tiny_embedding_model, write_images,
                                           monkeypatch):
    rng = np.random.default_rng(0)
    write_images(tmp_path / "imgs", 7, rng)
    ids, paths = list_images(tmp_path / "imgs")
    emb_model = export_embedding_model(tiny_embedding_model(), tmp_path / "m" / "emb.keras")
    out = embed_images(str(tmp_path / "m" / "emb.keras"), paths, ids, tmp_path / "out",
                       labels=list("aabbccd"), batch_size=2, chunk_size=3, progress=False)
    es = load_embeddings(out)
    assert es.ids == ids and es.labels.tolist() == list("aabbccd") and es.embeddings.shape == (7, 6)
    from imet_kit.data.images import read_image

    x = np.stack([cv2.resize(read_image(p), (16, 16), interpolation=cv2.INTER_AREA) for p in paths])
    np.testing.assert_allclose(es.embeddings, emb_model.predict(x.astype("float32"), verbose=0), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(es.embeddings, axis=1), 1.0, atol=1e-5)
    # Interrupted in the second chunk: a rerun computes only rows 3.. (row 0 keeps a marker).
    fresh = tmp_path / "again"
    _interrupt_after(emb_model, 2, monkeypatch)  # two batches of 2 + 1 = the first chunk of 3
    with pytest.raises(KeyboardInterrupt):
        embed_images(emb_model, paths, ids, fresh, labels=list("aabbccd"), batch_size=2,
                     chunk_size=3, progress=False)
    with pytest.raises(DataFileError, match="unfinished"):
        load_embeddings(fresh)
    partial = fresh / PARTIAL
    assert json.loads((partial / "progress.json").read_text())["done"] == 3
    mm = np.load(partial / "embeddings.npy", mmap_mode="r+")
    mm[0] = 7.0
    mm.flush()
    del mm
    monkeypatch.undo()
    embed_images(emb_model, paths, ids, fresh, labels=list("aabbccd"), batch_size=2, chunk_size=3,
                 progress=False)
    again = load_embeddings(fresh, mmap=False).embeddings
    assert (again[0] == 7.0).all() and not partial.exists()
    np.testing.assert_allclose(again[3:], es.embeddings[3:], atol=1e-6)


def _interrupt_after(model, calls, monkeypatch):
    """Make ``model.predict_on_batch`` raise KeyboardInterrupt after ``calls`` calls (Ctrl-C)."""
    real, count = model.predict_on_batch, [0]

    def predict_on_batch(x):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(x)

    monkeypatch.setattr(model, "predict_on_batch", predict_on_batch)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, tiny_embedding_model, write_images):
    """5 images embedded once; tests copy nothing, they only read or rerun into new folders."""
    root = tmp_path_factory.mktemp("emb")
    write_images(root / "imgs", 5, np.random.default_rng(2))
    ids, paths = list_images(root / "imgs")
    model = export_embedding_model(tiny_embedding_model())
    out = embed_images(model, paths, ids, root / "out", batch_size=4, chunk_size=2, progress=False)
    return model, ids, paths, out


def _mark_row0(out):
    mm = np.load(out / "embeddings.npy", mmap_mode="r+")
    mm[0] = 7.0
    mm.flush()
    del mm


def test_folder_layout(embedded):
    _, ids, paths, out = embedded
    table = pd.read_csv(out / "ids.csv", dtype=str)
    assert list(table.columns) == ["id", "path"]  # no labels given: no label column
    assert table["id"].tolist() == ids and table["path"].tolist() == paths
    state = json.loads((out / "progress.json").read_text())
    assert (state["n"], state["done"], state["dim"]) == (5, 5, 6)
    es = load_embeddings(out)
    assert es.labels is None and isinstance(es.embeddings, np.memmap)
    assert es.embeddings.dtype == np.float32
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_finished_job_rerun_computes_nothing_and_no_resume_recomputes(embedded, tmp_path):
    import shutil

    model, ids, paths, out = embedded
    work = tmp_path / "out"
    shutil.copytree(out, work)
    _mark_row0(work)
    embed_images(model, paths, ids, work, batch_size=4, chunk_size=2, progress=False)
    assert (load_embeddings(work).embeddings[0] == 7.0).all()  # nothing recomputed
    embed_images(model, paths, ids, work, batch_size=4, chunk_size=2, resume=False, progress=False)
    np.testing.assert_allclose(load_embeddings(work).embeddings, load_embeddings(out).embeddings,
                               atol=1e-6)


@pytest.mark.parametrize("done", [2, 5])  # killed after the first chunk, or finished
def test_the_same_images_in_another_order_start_over(embedded, tmp_path, done):
    import shutil

    model, ids, paths, out = embedded
    work = tmp_path / "out"
    shutil.copytree(out, work)
    _mark_row0(work)
    state = json.loads((work / "progress.json").read_text())
    (work / "progress.json").write_text(json.dumps({**state, "done": done}))
    # a resume would keep the old rows under the new order's ids: every row must match its id
    embed_images(model, paths[::-1], ids[::-1], work, batch_size=4, chunk_size=2, progress=False)
    es = load_embeddings(work)
    assert es.ids == ids[::-1]
    np.testing.assert_allclose(es.embeddings, load_embeddings(out).embeddings[::-1], atol=1e-6)


def test_custom_preprocess_is_used(embedded, tmp_path):
    model, ids, paths, _ = embedded
    seen = []

    def prep(img):
        seen.append(img.shape)
        return np.zeros((16, 16, 3), np.float32)  # every image the same: equal embeddings

    out = embed_images(model, paths, ids, tmp_path / "o", preprocess=prep, progress=False)
    emb = load_embeddings(out).embeddings
    assert seen == [(33, 31, 3)] * 5  # the RGB image as read, before any resize
    np.testing.assert_allclose(emb, np.repeat(emb[:1], 5, axis=0), atol=1e-6)


def test_embed_images_refuses_bad_arguments(embedded, tmp_path):
    model, ids, paths, _ = embedded
    with pytest.raises(InputError, match="5 paths, 4 ids"):
        embed_images(model, paths, ids[:4], tmp_path / "a")
    with pytest.raises(InputError, match="2 labels"):
        embed_images(model, paths, ids, tmp_path / "a", labels=["x", "y"])
    with pytest.raises(InputError, match="no images"):
        embed_images(model, [], [], tmp_path / "a")


def test_dynamic_input_size_needs_a_preprocess(tmp_path):
    import keras

    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(image)
    model = keras.Model(image, keras.layers.Dense(2, name="embedding")(x))
    with pytest.raises(InputError, match="pass preprocess="):
        embed_images(model, ["a.png"], ["a"], tmp_path / "o")


def test_list_images_sorted_by_name_images_only(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    ids, paths = list_images(tmp_path)
    assert ids == ["a", "b"] and [p.rsplit("/", 1)[-1] for p in paths] == ["a.JPG", "b.png"]
    with pytest.raises(DataFileError, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="No images"):
        list_images(tmp_path / "empty")


def test_load_embeddings_refuses_a_folder_it_did_not_write(tmp_path):
    with pytest.raises(DataFileError, match="is not an embeddings folder"):
        load_embeddings(tmp_path)


def test_export_refuses_a_bad_path_and_a_missing_layer(tiny_embedding_model, tmp_path):
    model = tiny_embedding_model()
    with pytest.raises(InputError, match="must end with '.keras'"):
        export_embedding_model(model, tmp_path / "emb.h5")
    with pytest.raises(InputError, match="no layer 'neck'. Expected one of: .*embedding"):
        export_embedding_model(model, layer_name="neck")
    assert not list(tmp_path.iterdir())
