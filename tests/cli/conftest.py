"""Shared by the command tests: an embeddings folder as `imet-kit embed` writes it, without a
model. A fixture, since tests/ is not a package that test modules import from."""

import json

import numpy as np
import pandas as pd
import pytest


def _write_embeddings(folder, emb, ids, labels=None):
    folder.mkdir(parents=True)
    np.save(folder / "embeddings.npy", emb.astype(np.float32))
    table = {"id": ids, "path": [f"{i}.png" for i in ids]}
    if labels is not None:
        table["label"] = labels
    pd.DataFrame(table).to_csv(folder / "ids.csv", index=False)
    (folder / "progress.json").write_text(json.dumps({"n": len(ids), "done": len(ids)}))


@pytest.fixture(scope="session")
def write_embeddings():
    """``write_embeddings(folder, emb, ids, labels=None)``."""
    return _write_embeddings
