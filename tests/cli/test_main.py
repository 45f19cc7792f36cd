"""The CLI skeleton: help, version, subcommand help, and the one place exceptions become exit codes."""

import errno
import subprocess
import sys

import pytest

from imet_kit import __version__
from imet_kit.cli.main import main
from imet_kit.errors import IMAGE_HINT, ImageReadError, InputError

user_error = sys.modules["imet_kit.cli.main"].user_error


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


def test_no_command_is_one_line_exit_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give a command" in err and "predict" in err


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only errors a user can act on become one line; anything else is raised (exit 1)."""
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("imet_kit.data.stats.dataset_report", bug)
    with pytest.raises(ZeroDivisionError):
        main(["stats", "--data", str(tmp_path), "--no-plot"])


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/d/sub.csv"),
     "'/d/sub.csv': No space left on device. Free some space"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/x"), "'/ro/x': Permission denied. Choose a path"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), "A file is expected there, not a folder"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), "A file stands where the path needs a folder"),
    (OSError(errno.EROFS, "Read-only file system", ".tmp", None, "/ro/out.csv"), "'/ro/out.csv': Read-only"),
    (InputError("Bad flag.\nSecond line."), "Bad flag. Second line."),
    (ImportError("backend='faiss' needs faiss: pip install faiss-cpu"), "pip install faiss-cpu"),
])
def test_user_errors_are_one_line(exc, expected):
    msg = user_error(exc)
    assert expected in msg and "\n" not in msg


@pytest.mark.parametrize("exc", [ZeroDivisionError("x"), OSError("no errno"), KeyError("k"),
                                 ImportError("No module named 'x'"), OSError(errno.ECONNRESET, "reset")])
def test_bugs_are_not_user_errors(exc):
    assert user_error(exc) is None


def test_an_image_error_wrapped_by_tensorflow_is_found_with_the_commands_hint():
    """tf.data passes a loader's exception on as text (tf.errors.UnknownError: '... Traceback
    ... ImageReadError: ...'); the CLI finds it there, and in the exception chain."""
    inner = ImageReadError("data/train/a.png", "the PNG data is damaged")
    wrapped = type("UnknownError", (Exception,), {})(
        "{{function_node __wrapped__IteratorGetNext}} Error in user-defined function\n"
        "Traceback (most recent call last):\n  File \"dataset.py\", line 1, in load_batch\n"
        f"imet_kit.errors.ImageReadError: {inner}\n\t [[{{node PyFunc}}]]")
    msg = user_error(wrapped, "Remove its row from train.csv.")
    assert msg == "Cannot read image 'data/train/a.png': the PNG data is damaged. Remove its row from train.csv."
    try:
        try:
            raise inner
        except ImageReadError as exc:
            raise RuntimeError("while loading a batch") from exc
    except RuntimeError as chained:
        assert user_error(chained, "HINT").endswith("damaged. HINT")
    assert IMAGE_HINT in user_error(inner) and "skip" not in user_error(inner)


SWALLOWED = """
import gc, signal, sys, time
if sys.argv[1] == "hook":
    from imet_kit.cli.main import redeliver_lost_interrupts
    redeliver_lost_interrupts()
fired = []
def callback(phase, info):  # as jax's gc callback: Python code that runs inside a collection
    if phase == "start" and not fired:
        fired.append(signal.raise_signal(signal.SIGINT))  # the handler raises in here
gc.callbacks.append(callback)
try:
    gc.collect()
    for _ in range(200):  # 2 s of work after the collection
        time.sleep(0.01)
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""


@pytest.mark.parametrize("hook, printed", [("none", "lost"), ("hook", "delivered")])
def test_a_ctrl_c_swallowed_in_a_gc_callback_is_delivered_again(hook, printed):
    proc = subprocess.run([sys.executable, "-c", SWALLOWED, hook], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.split() == [printed]
    assert ("Exception ignored" in proc.stderr) == (hook == "none")  # Python's own behaviour
