"""Exceptions a user can act on.

Every error that comes from bad input derives from :class:`ImetKitError`; the CLI
turns it into a one-line message and exit code 2. Messages say what was expected,
what arrived and how to fix it.
"""

from __future__ import annotations


class ImetKitError(Exception):
    """Base class of the errors the CLI reports as one line (exit code 2)."""


class InputError(ImetKitError, ValueError):
    """Bad user input: a CSV, a flag, an argument."""


class DataFileError(InputError, FileNotFoundError):
    """A file or folder the user pointed at is missing or unreadable."""


class ImageReadError(ImetKitError, OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, not an image)."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        msg = f"Cannot decode image '{self.path}'"
        msg += f": {reason}" if reason else ""
        msg += ". Expected a readable PNG/JPEG/BMP/TIFF/WebP file; re-export or remove it"
        msg += " (or pass skip_corrupt=True / --skip-corrupt to skip and count such files)."
        super().__init__(msg)


class WeightsUnavailableError(ImetKitError, RuntimeError):
    """Pretrained weights could not be fetched (offline) and no local file was given."""


def describe_choices(choices) -> str:
    """Format a list of valid values for an error message."""
    return ", ".join(str(c) for c in choices)


class RunLockedError(ImetKitError, RuntimeError):
    """Another process holds the run folder (or the fold) this command would write."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM; what a resume needs is saved.

    ``exit_code`` is 130 for SIGINT and 143 for SIGTERM, as shells report them.
    """

    def __init__(self, signum: int = 2) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by signal {signum}")
