"""Every docstring example in the package runs, so none can rot (STYLE.md: docs and comments)."""

import doctest
import importlib
import pkgutil

import pytest

import imet_kit

MODULES = sorted(m.name for m in pkgutil.walk_packages(imet_kit.__path__, "imet_kit.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
