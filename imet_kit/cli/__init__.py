"""`imet-kit` command line: :mod:`imet_kit.cli.main` and one module per subcommand.

Each subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; :func:`imet_kit.cli.main.main` finds them, so adding a command touches
no other file.
"""

from imet_kit.cli.main import entry, main

__all__ = ["entry", "main"]
