"""imet_kit.plots (the package module): save_figure writes the format the suffix names, renames a
finished file into place, and on failure keeps the previous file and leaves no temporary."""

import matplotlib
import matplotlib.pyplot as plt  # the Agg backend: tests/conftest.py sets MPLBACKEND
import pytest

from imet_kit.plots import save_figure


def _figure():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [2, 0, 1])
    return fig


def test_save_figure_writes_a_whole_png_and_closes_the_figure(tmp_path, check_png):
    out = save_figure(_figure(), tmp_path / "sub" / "a.png", dpi=50)
    assert out == tmp_path / "sub" / "a.png"
    assert check_png(out, min_side=100) == (150, 200)  # 4 x 3 inches at 50 dpi


def test_the_suffix_chooses_the_format(tmp_path):
    out = save_figure(_figure(), tmp_path / "a.svg")
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg"]


def test_a_failed_save_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = save_figure(_figure(), tmp_path / "a.png")
    before = target.read_bytes()

    def dies(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n half")  # killed mid-write
        raise OSError("No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies)
    with pytest.raises(OSError, match="No space left"):
        save_figure(_figure(), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert plt.get_fignums() == []  # closed even on failure
