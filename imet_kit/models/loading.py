"""The one model loader: registers every imet_kit layer and loss (and the optional ``efn_*``
backbones' ``swish`` / ``FixedDropout``) before ``keras.saving.load_model``.

Files come from a run folder or ``model.save``; a file that is missing, cut short or not a Keras
model raises :class:`~imet_kit.errors.InputError` naming it, and a model that needs unsafe
deserialisation (a ``Lambda`` layer) is refused with a one-line reason, never executed.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from imet_kit.errors import InputError


def _register() -> None:
    from imet_kit.models import backbones, heads, losses, margins, xbm  # noqa: F401  (registration)

    try:
        import efficientnet.tfkeras  # noqa: F401  (registers swish, FixedDropout)
    except ImportError:  # an optional backbone that is not installed cannot be in the file either
        pass
    try:
        import keras_hub  # noqa: F401  (registers the layers of hub:<preset> backbones)
    except ImportError:
        pass


def _check_file(path: str | os.PathLike) -> Path:
    """Cheap checks before Keras reads the file: it exists, is a file and is a whole zip archive
    holding a model's ``config.json`` (a cut-short or foreign file gets a reason, not a zip or
    h5py traceback). Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"Model file '{path}' is a folder; expected a .keras file saved by "
                         f"imet-kit train or model.save().")
    if not path.is_file():
        raise InputError(f"Model file '{path}' does not exist; expected a .keras file saved by "
                         f"imet-kit train or model.save().")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        names = None
    if names is None:
        raise InputError(f"Model file '{path}' is not a Keras .keras archive (cut short, or another "
                         f"format). Retrain the fold, or point at the file model.save() wrote.")
    if "config.json" not in names:
        raise InputError(f"Model file '{path}' is a zip archive but no Keras model (it has no "
                         f"config.json). Point at the .keras file model.save() wrote.")
    return path


def load_model(path: str | os.PathLike, *, compile: bool = True):
    """Load a ``.keras`` model saved by imet_kit (or ``model.save``).

    Args:
        path: the ``.keras`` file.
        compile: restore the optimizer and loss too (for resuming training). A file whose
            optimizer uses a schedule needs :mod:`imet_kit.training.schedules` imported first;
            the training engine does so.

    Example:
        >>> import tempfile, os
        >>> from imet_kit.models.classifier import build_classifier
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> build_classifier("tiny_cnn", 3, input_size=32).save(path)
        >>> load_model(path).output_shape
        (None, 3)
    """
    path = _check_file(path)
    import keras

    _register()
    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise InputError(f"Model file '{path}' holds a Lambda layer (arbitrary code); imet_kit "
                             f"does not run code from model files. Rebuild the model without "
                             f"Lambda layers.") from None
        raise InputError(f"Model file '{path}' cannot be loaded: {first}") from None
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        first = (str(exc).splitlines() or ["unreadable"])[0]
        raise InputError(f"Model file '{path}' is damaged ({type(exc).__name__}: {first}). "
                         f"Retrain the fold, or restore the file.") from None
