"""examples/quickstart.ipynb stays true: stored clean, uses only `from imet_kit import ...`, and
runs top to bottom (CI executes it with nbclient), drawing its figures inline and scoring the
submission it wrote."""

import ast
import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"
N_FIGURES = 6  # label frequency, folds, augmented batch, history, OOF threshold curve, gallery


def _read():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_notebook_is_stored_clean_and_uses_only_the_public_api():
    import imet_kit

    nb = _read()
    assert nb.metadata.kernelspec.name == "python3"
    cells = _code_cells(nb)
    assert all(not c.outputs and c.execution_count is None for c in cells), "stored with outputs"
    imported = set()
    for cell in cells:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "imet_kit":
                assert node.module == "imet_kit", f"from {node.module} import: not the public API"
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                assert not [a for a in node.names if a.name.startswith("imet_kit")], "import imet_kit.x"
    assert imported <= set(imet_kit.__all__), imported - set(imet_kit.__all__)
    assert {"make_demo_dataset", "load_dataset", "make_folds", "train", "predict",
            "evaluate", "plot_batch_grid", "plot_gallery"} <= imported
    assert [c for c in cells if "test-f2" in c.metadata.get("tags", [])], "the scoring cell's tag"


def _this_interpreter_as_python3(root: Path) -> Path:
    """A kernelspec dir whose `python3` is this interpreter: a user-level `python3` kernel
    (another Python, without imet_kit) must not be the one that runs the notebook."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    return root


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_with_figures_inline(tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell
    from sklearn.metrics import fbeta_score

    from imet_kit import read_annotations
    from imet_kit.data.labels import read_labels

    monkeypatch.setenv("JUPYTER_PATH", str(_this_interpreter_as_python3(tmp_path / "jupyter")))
    monkeypatch.setenv("QUICKSTART_EPOCHS", "2")  # the CI size: ~50 s on 2 cores, not ~80 s
    work = tmp_path / "cwd"
    work.mkdir()
    nb = _read()
    nb.cells.insert(0, new_code_cell("import sys; print('kernel:', sys.executable)"))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()

    outputs = [o for c in _code_cells(nb) for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert f"kernel: {sys.executable}" in nb.cells[0].outputs[0].text
    pngs = [base64.b64decode(o.data["image/png"]) for o in outputs
            if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pngs) == N_FIGURES
    assert all(p.startswith(PNG) and len(p) > 10_000 for p in pngs)  # whole, non-trivial figures

    # everything went under the notebook's working directory, nothing into the checkout
    out = work / "quickstart"
    assert (out / "submission.csv").is_file() and (out / "run" / "thresholds.json").is_file()
    assert not (ROOT / "examples" / "quickstart").exists()

    # the printed test F2 is the F2 of the submission it wrote (sklearn as the oracle)
    scored = [c for c in nb.cells if "test-f2" in c.metadata.get("tags", [])][0]
    text = "".join(o.get("text", "") for o in scored.outputs)
    f2 = float(re.search(r"^test F2: ([0-9.]+)$", text, flags=re.M).group(1))
    assert 0 < f2 <= 1
    space = read_labels(out / "data" / "labels.csv")
    truth = read_annotations(out / "data" / "holdout" / "test_labels.csv", space)
    sub = read_annotations(out / "submission.csv", space, allow_empty=True)
    pred = np.asarray(sub.y)[[sub.ids.index(i) for i in truth.ids]]
    oracle = fbeta_score(np.asarray(truth.y), pred, beta=2, average="samples", zero_division=0)
    assert f2 == pytest.approx(oracle, abs=5e-5)
