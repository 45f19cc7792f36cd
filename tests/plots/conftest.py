"""Checks shared by the figure tests: a written figure is a whole, decodable PNG, alone in its
folder (the atomic writer left no temporary), and pyplot keeps no figure open afterwards."""

import numpy as np
import pytest


def _check_png(path, *, min_side=200):
    """Decode ``path``; return its (height, width). Fails on a partial or blank image."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes every row: a truncated file raises here
        pixels = np.asarray(im.convert("L"))
    assert min(pixels.shape) >= min_side, pixels.shape
    assert pixels.std() > 1, "the figure is blank"
    siblings = sorted(p.name for p in path.parent.iterdir())
    assert siblings == [path.name], siblings  # no temporary left beside it
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == [], "a figure was left open"
    return pixels.shape


@pytest.fixture(scope="session")
def check_png():
    """``check_png(path, min_side=200) -> (height, width)``."""
    return _check_png
