"""`imet-kit` command line: subcommands -> config -> library calls.

Each subcommand lives in ``imet_kit/cli/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int`` (optionally ``IMAGE_HINT``, how to fix an
unreadable image with that command); this module finds them, so adding a command touches no
other file.

This is the one place where exceptions become exit codes (:func:`user_error`): errors a user
can act on print one line, ``imet-kit CMD: error: ...``, and exit 2; Ctrl-C exits 130; anything
else is a bug and keeps its traceback (exit 1). Errors a user can act on are

* :class:`~imet_kit.errors.ImetKitError` (bad input, checked where it enters);
* an :class:`~imet_kit.errors.ImageReadError` that TensorFlow wrapped into a
  ``tf.errors.*`` while a data loader ran (found in the message or the exception chain);
* an ``OSError`` with an errno about the environment: a full disk, no permission, a
  read-only file system, a folder where a file belongs or the other way round.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys
from collections.abc import Sequence

from imet_kit import __version__
from imet_kit.cli import _quiet
from imet_kit.errors import IMAGE_HINT, ImageReadError, ImetKitError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# errno -> how to fix it (an OSError with one of these is the environment's, not a bug)
_OS_FIXES = {
    errno.ENOSPC: "Free some space or write to another disk, then rerun",
    errno.EDQUOT: "Free some space or write elsewhere, then rerun",
    errno.EACCES: "Choose a path you may read and write, or change its permissions",
    errno.EPERM: "Choose a path you may read and write, or change its permissions",
    errno.EROFS: "Choose a path on a writable disk",
    errno.EISDIR: "A file is expected there, not a folder: give a file path",
    errno.ENOTDIR: "A file stands where the path needs a folder: choose another path",
    errno.ENOENT: "Check the path; its folder may be missing or impossible to create there",
    errno.EEXIST: "Remove it or choose another path",
    errno.ENAMETOOLONG: "Choose a shorter path",
    errno.EIO: "Check the disk, then rerun",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _command_modules():
    from imet_kit import cli as commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 50))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imet-kit",
        description="Multi-label fine-grained image classification (iMet F2) and retrieval.",
    )
    parser.add_argument("--version", action="version", version=f"imet-kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="more logging (-v info, -vv debug)")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _image_hint=getattr(mod, "IMAGE_HINT", None))
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or while handling (each once)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _wrapped_image_error(exc: BaseException, hint: str | None) -> str | None:
    """The ImageReadError message in ``exc``'s chain or, as TensorFlow passes a data loader's
    exception on (a ``tf.errors.UnknownError`` holding its traceback as text), in its text."""
    for e in _chain(exc):
        if isinstance(e, ImageReadError):
            return e.describe(hint)
    for e in _chain(exc):
        m = re.search(r"ImageReadError: (Cannot read image .*)", str(e))
        if m:
            line = m.group(1).strip()
            if hint and line.endswith(IMAGE_HINT):
                line = line[: -len(IMAGE_HINT)] + hint
            return line
    return None


def user_error(exc: BaseException, image_hint: str | None = None) -> str | None:
    """The one-line message for an error a user can act on; None for a bug (keep the traceback).

    Args:
        exc: the exception a command raised.
        image_hint: how to fix an unreadable image with this command (the module's
            ``IMAGE_HINT``); default :data:`imet_kit.errors.IMAGE_HINT`.

    Example:
        >>> user_error(OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"))
        "'/data/out.csv': No space left on device. Free some space or write to another disk, then rerun."
        >>> user_error(ZeroDivisionError("a bug")) is None
        True
    """
    if isinstance(exc, ImageReadError):
        msg = exc.describe(image_hint)
    elif isinstance(exc, ImetKitError):
        msg = str(exc)
    elif isinstance(exc, ImportError) and "pip install" in str(exc):  # an optional dependency
        msg = str(exc)
    else:
        msg = _wrapped_image_error(exc, image_hint)
    if msg is None and isinstance(exc, OSError) and exc.errno in _OS_FIXES:
        where = exc.filename2 or exc.filename  # os.replace(tmp, target): the target
        reason = exc.strerror or os.strerror(exc.errno)
        msg = (f"'{os.fsdecode(where)}': " if where else "") + f"{reason}. {_OS_FIXES[exc.errno]}."
    return None if msg is None else " ".join(msg.split("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if "-vv" not in argv:
        # TensorFlow's C++ start-up chatter hides the lines a user needs (set before TF loads).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0"):
        _quiet.install()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            names = ", ".join(mod.NAME for mod in _command_modules())
            sys.stderr.write(f"imet-kit: error: give a command, one of: {names} "
                             f"(see imet-kit --help)\n")
            return EXIT_USAGE
        _setup_logging(getattr(args, "verbose", 0))
        try:
            return int(args._run(args) or 0)
        except KeyboardInterrupt as exc:  # TrainingInterrupted: 130 (SIGINT) or 143 (SIGTERM)
            hint = "; continue with --resume" if args.command == "train" else ""
            sys.stderr.write(f"imet-kit {args.command}: interrupted{hint}.\n")
            return int(getattr(exc, "exit_code", EXIT_INTERRUPTED))
        except Exception as exc:
            msg = user_error(exc, args._image_hint)
            if msg is None:
                raise
            sys.stderr.write(f"imet-kit {args.command}: error: {msg}\n")
            return EXIT_USAGE
    finally:
        _quiet.uninstall()



def redeliver_lost_interrupts() -> None:
    """Deliver again a Ctrl-C / SIGTERM that Python swallowed in a callback.

    A signal handled while a gc callback or a ``__del__`` runs raises there, where Python can only
    print "Exception ignored in: ..." and carry on: the interrupt is lost. jax adds a gc callback,
    and TensorFlow imports jax whenever it is installed (``tensorflow.lite.python.util``), so with
    the ``jax`` extra a Ctrl-C while a TensorFlow run starts could be lost this way. This
    ``sys.unraisablehook`` signals the main thread again a moment later, once out of the hook (a
    signal raised at once would be handled, and lost, inside the hook itself); one landing in a
    callback again comes back here. :class:`GracefulInterrupts` keeps its own hook for the signals
    it has already flagged.
    """
    import _thread
    import signal
    import threading

    previous = sys.unraisablehook

    def hook(info) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            signum = getattr(info.exc_value, "signum", signal.SIGINT)
            again = threading.Timer(0.01, _thread.interrupt_main, args=(signum,))
            again.daemon = True
            again.start()
        else:
            previous(info)

    sys.unraisablehook = hook


def entry() -> None:
    """The ``imet-kit`` console script: :func:`main`, then exit with its code.

    After an interrupt the process leaves with ``os._exit`` once its output is flushed: the
    interpreter's normal shutdown would tear down TensorFlow's and the data loader's threads
    mid-flight, which aborts (SIGABRT, "exception not rethrown") instead of exiting 130 / 143.
    Everything a resume needs is already on disk by then.
    """
    import signal

    from imet_kit.errors import TrainingInterrupted

    def on_sigterm(signum, frame):  # as Ctrl-C does by default: unwind, then exit 143
        raise TrainingInterrupted(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    redeliver_lost_interrupts()
    try:
        code = main()
    except KeyboardInterrupt as exc:  # a signal before main's own handler or after it returned
        code = int(getattr(exc, "exit_code", 130))
    for s in (signal.SIGINT, signal.SIGTERM):  # the work is done: a late signal must not turn
        signal.signal(s, signal.SIG_IGN)       # its exit code into a kill during shutdown
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
