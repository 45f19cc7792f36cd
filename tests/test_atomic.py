"""imet_kit.atomic: each writer leaves the finished file and nothing else; a writer that fails
leaves the previous file untouched and no temporary; remove_temporaries clears what a killed
writer left behind, and only that."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from imet_kit.atomic import (
    atomic_path,
    atomic_save_model,
    atomic_save_npy,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    remove_temporaries,
)


def test_each_writer_writes_the_file_and_nothing_else(tmp_path):
    out = tmp_path / "deep" / "er"  # parents are created
    atomic_write_text("hello", out / "a.txt")
    atomic_write_json({"x": [1, 2], "p": tmp_path}, out / "b.json")  # non-JSON values as str
    atomic_write_csv(pd.DataFrame({"id": ["0012", "b"], "v": [1, 2]}), out / "c.csv")
    atomic_save_npy(np.arange(6).reshape(2, 3), out / "d.npy")
    assert sorted(os.listdir(out)) == ["a.txt", "b.json", "c.csv", "d.npy"]
    assert (out / "a.txt").read_text() == "hello"
    assert json.loads((out / "b.json").read_text()) == {"x": [1, 2], "p": str(tmp_path)}
    assert pd.read_csv(out / "c.csv", dtype=str).values.tolist() == [["0012", "1"], ["b", "2"]]
    np.testing.assert_array_equal(np.load(out / "d.npy"), np.arange(6).reshape(2, 3))


def test_a_model_is_saved_whole(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = atomic_save_model(model, tmp_path / "m.keras")
    assert os.listdir(tmp_path) == ["m.keras"]
    back = keras.saving.load_model(path)
    np.testing.assert_array_equal(back.get_weights()[0], model.get_weights()[0])


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json({"epoch": 1}, target)
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text('{"epoch": 2, "trunc')  # half written, then the writer dies
        raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["state.json"]
    with pytest.raises(TypeError):  # the library's own writer: it opens the file, then fails
        atomic_write_text(12, target)
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_temporary_names_are_hidden_and_keep_the_suffix_when_asked(tmp_path):
    with atomic_path(tmp_path / "x.npy", keep_suffix=True) as tmp:
        assert tmp.name == f".x.tmp{os.getpid()}.npy" and tmp.parent == tmp_path
        np.save(tmp, np.zeros(1))  # np.save would append .npy to a name without it
    with atomic_path(tmp_path / "y.json") as tmp:
        assert tmp.name == f".y.json.tmp{os.getpid()}"
        tmp.write_text("{}")
    assert sorted(os.listdir(tmp_path)) == ["x.npy", "y.json"]


def test_remove_temporaries_clears_only_what_killed_writers_left(tmp_path):
    left = [tmp_path / ".state.json.tmp1234", tmp_path / "fold0" / ".best.tmp99.keras",
            tmp_path / "plots" / ".history.tmp7.png"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".config.tmpfile", tmp_path / "x.tmp12",
            tmp_path / "fold0" / "best.keras", tmp_path / ".hidden"]
    for p in left + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    assert remove_temporaries(tmp_path, recursive=False) == [left[0]]
    assert sorted(remove_temporaries(tmp_path)) == sorted(left[1:])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in left)
    assert remove_temporaries(tmp_path / "missing") == []
