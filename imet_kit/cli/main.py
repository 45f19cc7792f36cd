"""`imet-kit` command line: subcommands -> config -> library calls.

Each subcommand lives in ``imet_kit/commands/<name>.py`` and defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; this module finds
them, so adding a command touches no other file. Errors a user can act on
(:class:`~imet_kit.errors.ImetKitError`, bad flags) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from imet_kit import __version__
from imet_kit.errors import ImetKitError

EXIT_USAGE = 2


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
        p.set_defaults(_run=mod.run)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if "-vv" not in (argv if argv is not None else sys.argv):
        # TensorFlow's C++ start-up chatter hides the lines a user needs (set before TF loads).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(getattr(args, "verbose", 0))
    try:
        return int(args._run(args) or 0)
    except ImetKitError as exc:
        sys.stderr.write(f"imet-kit {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # TrainingInterrupted carries 130 (SIGINT) or 143 (SIGTERM)
        hint = "; continue with --resume" if args.command == "train" else ""
        sys.stderr.write(f"imet-kit {args.command}: interrupted{hint}\n")
        return int(getattr(exc, "exit_code", 130))


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
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
