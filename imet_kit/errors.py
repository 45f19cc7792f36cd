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


IMAGE_HINT = ("Expected readable PNG/JPEG/BMP/TIFF/WebP files: re-export or replace each file "
              "named, or remove it and its row from the CSV that lists it.")


class ImageReadError(ImetKitError, OSError):
    """An image file exists but cannot be read (corrupt, truncated, empty, not an image).

    Args:
        path: the file.
        reason: what is wrong with it, e.g. "the file is empty".
        others: ``(path, reason)`` of further unreadable files found in the same check; the
            message names the first few and counts the rest.

    The message ends with :data:`IMAGE_HINT`; the CLI shows :meth:`describe` with the hint that
    fits the command in use instead (``--skip-corrupt`` only where the command accepts it).
    """

    def __init__(self, path: str, reason: str = "", *, others=()) -> None:
        self.path = str(path)
        self.reason = reason
        self.others = [(str(p), r) for p, r in others]
        super().__init__(self.describe())

    def describe(self, hint: str | None = None) -> str:
        """The message, ending with ``hint`` (default :data:`IMAGE_HINT`)."""
        msg = f"Cannot read image '{self.path}'" + (f": {self.reason}" if self.reason else "")
        if self.others:
            named = ", ".join(f"'{p}' ({r})" for p, r in self.others[:3])
            rest = len(self.others) - 3
            msg += f"; {len(self.others)} more cannot be read either: {named}"
            msg += f" and {rest} more" if rest > 0 else ""
        return f"{msg}. {hint or IMAGE_HINT}"

    def __reduce__(self):  # keep path and reason when a worker process sends it back
        return _rebuild_image_error, (self.path, self.reason, self.others)


def _rebuild_image_error(path: str, reason: str, others) -> ImageReadError:
    return ImageReadError(path, reason, others=others)


class WeightsUnavailableError(ImetKitError, RuntimeError):
    """Pretrained weights could not be fetched (offline) and no local file was given."""


def describe_choices(choices) -> str:
    """Format a list of valid values for an error message."""
    return ", ".join(str(c) for c in choices)


def backend_mismatch(what: str, engine: str, need: str, backend: str, fix: str) -> str:
    """The one wording of "this piece runs on another Keras backend" (no final period): what was
    asked, what it is built on, the backend it needs, the one running, and the two ways out.

    Example:
        >>> backend_mismatch("pipeline: 'x'", "tf.data", "tensorflow", "jax", "use --pipeline y")
        "pipeline: 'x' is tf.data, which needs KERAS_BACKEND=tensorflow; this process runs KERAS_BACKEND=jax. Set KERAS_BACKEND=tensorflow, or use --pipeline y"
    """
    return (f"{what} is {engine}, which needs KERAS_BACKEND={need}; this process runs "
            f"KERAS_BACKEND={backend}. Set KERAS_BACKEND={need}, or {fix}")


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
