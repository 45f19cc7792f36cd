"""Using an export of :mod:`imet_kit.multilabel.export` as a server would: the images its
artefact takes, the artefact run in its own runtime (TensorFlow, onnxruntime, LiteRT), and the
probabilities binarised with the ``thresholds.json`` written beside it.

Example:
    >>> x = serving_images(["img/a.png"], 32, "crop")  # doctest: +SKIP
    >>> probs = run_artefact("export/onnx/model.onnx", "onnx", x)  # doctest: +SKIP
    >>> labels = binarize_exported(probs, "export/onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from imet_kit.errors import InputError

INPUT_NAME = "image"
OUTPUT_NAME = "probs"


def serving_images(paths: list[str], size: int, resize: str = "crop") -> np.ndarray:
    """Images as the artefact takes them: ``uint8 (n, size, size, 3)`` RGB, each decoded and
    resized by the run's eval transform (the pixels ``predict`` feeds its models).
    """
    from imet_kit.data.dataset import ImageDataset

    ds = ImageDataset(list(paths), None, size=size, batch_size=max(1, len(paths)), augment=None,
                      shuffle=False, resize=resize)
    return ds.load_batch(0)[0]


def run_artefact(path: str | os.PathLike, fmt: str, images: np.ndarray) -> np.ndarray:
    """Probabilities of an exported artefact in its own runtime (TF, onnxruntime, LiteRT)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # held: its variables die with the object
        return loaded.serve(images).numpy()
    if fmt not in ("onnx", "tflite"):
        raise InputError(f"Unknown export format {fmt!r}. Expected one of: savedmodel, onnx, tflite.")
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError("running an ONNX export needs onnxruntime: pip install "
                              "'imet_kit[export]' (or pip install onnxruntime).") from exc
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TF's own interpreter, deprecated in favour of LiteRT but still there
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    interp = Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], images.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def binarize_exported(probs: np.ndarray, folder: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Binary ``(n, C)`` labels from an artefact's probabilities by the rule and thresholds of
    ``folder/thresholds.json`` (``mode``: global, class or group; default the run's choice), the
    labels ``predict`` gives from the same probabilities."""
    from imet_kit.multilabel.thresholds import binarize, binarize_groups

    folder = Path(folder)
    t = json.loads((folder / "thresholds.json").read_text())
    mode = mode or t["mode"]
    if mode not in ("global", "class", "group") or mode not in t:
        raise InputError(f"Threshold mode {mode!r} is not in '{folder / 'thresholds.json'}'. Expected "
                         f"one of: {', '.join(m for m in ('global', 'class', 'group') if m in t)}.")
    if mode != "group":
        thr = t["global"]["threshold"] if mode == "global" else np.asarray(t["class"]["thresholds"])
        return binarize(probs, thr, t["min_labels"], t["max_labels"])
    labels = json.loads((folder / "labels.json").read_text())
    names, g = labels["group_names"], t["group"]
    index = [names.index(n) for n in labels["groups"]]
    return binarize_groups(probs, index, [g["thresholds"][n] for n in names],
                           [g["min_labels"][n] for n in names], [g["max_labels"][n] for n in names])
