"""The CLI skeleton: help, version, subcommand help, one-line errors."""

import subprocess
import sys

import pytest

from imet_kit import __version__
from imet_kit.cli.main import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("demo-data", "stats"):
        assert cmd in out


@pytest.mark.parametrize("cmd", ["demo-data", "stats"])
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "--" in capsys.readouterr().out


def test_bad_flag_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo-data", "x", "--size", "huge"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'huge'" in err


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "imet_kit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
