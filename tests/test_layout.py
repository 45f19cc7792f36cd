"""The house's shape: imports run one way, down the floors; no cycles; modules stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "imet_kit"

# cli -> multilabel / retrieval -> training -> data / folds / models -> plots / config / errors
FLOORS = {
    "errors": 0, "config": 0, "atomic": 0, "plots": 0,
    "data": 1, "folds": 1, "models": 1,
    "training": 2,
    "multilabel": 3, "retrieval": 3,
    "cli": 4, "__init__": 4, "__main__": 4,
}


def _floor(module: str) -> tuple[str, int]:
    top = module.split(".")[1] if "." in module else "__init__"
    return top, FLOORS[top]


def _imports() -> list[tuple[str, str, int]]:
    rows = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
                if node.module == "imet_kit":
                    targets = [f"imet_kit.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t.startswith("imet_kit.") or t == "imet_kit":
                    rows.append((name, t, node.lineno))
    return rows


def test_no_relative_imports_so_every_import_names_its_floor():
    bad = [f"{p.relative_to(PKG)}:{n.lineno}" for p in PKG.rglob("*.py")
           for n in ast.walk(ast.parse(p.read_text()))
           if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not bad, bad


def test_imports_run_down_the_floors():
    up = []
    for src, dst, line in _imports():
        if dst in ("imet_kit",) or dst.endswith(("__version__",)):
            continue
        s_top, s = _floor(src)
        d_top, d = _floor(dst)
        if s_top != d_top and d > s:
            up.append(f"{src}:{line} imports {dst} (floor {s} -> {d})")
        if s_top != d_top and d == s and s in (1, 3):
            # data / folds / models, and multilabel / retrieval, are siblings that do not lean on
            # each other, except through an explicit allowance below
            if (s_top, d_top) not in {("data", "folds"), ("models", "data")}:
                up.append(f"{src}:{line} imports its sibling {dst}")
    assert not up, "\n".join(up)


def test_no_module_is_over_about_300_lines():
    big = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 330}
    assert not big, big


def test_no_import_cycles():
    tool = PKG.parents[1] / "shared" / "tools" / "import_graph.py"
    if not tool.is_file():
        pytest.skip("shared/tools/import_graph.py is not beside the checkout")
    out = subprocess.run([sys.executable, str(tool), str(PKG)], capture_output=True, text=True,
                         cwd=PKG.parent).stdout
    assert "cycle" not in out, out


def test_importing_the_package_does_not_import_tensorflow():
    code = ("import sys, imet_kit; from imet_kit import train, predict, evaluate, load_dataset, "
            "make_folds; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out
