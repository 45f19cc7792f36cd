"""README and examples/ stay true: imports resolve, the quickstart runs end to end."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_python_compiles_and_its_imports_resolve():
    import importlib

    blocks = readme_python_blocks()
    assert blocks
    for code in blocks:
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name} in README"


def test_readme_names_the_commands_that_exist():
    from imet_kit.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    named = set(re.findall(r"^imet-kit ([a-z-]+)", (ROOT / "README.md").read_text(), flags=re.M))
    assert named <= commands, named - commands
    assert "bash tests/run.sh" in (ROOT / "README.md").read_text()
    assert "bash tests/run.sh" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_quickstart_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OOF F2" in out.stdout and "test F2" in out.stdout
    assert (tmp_path / "submission.csv").is_file()
