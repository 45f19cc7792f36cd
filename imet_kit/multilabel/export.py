"""Export a run for serving: one artefact, raw images in, the ensemble's probabilities out.

One Keras functional model, ``uint8 (B, S, S, 3) RGB -> float32 -> each fold model x the in-graph
TTA views -> average`` (with ``RUN/full/best.keras``: ``predict``'s ``0.5 * mean(folds) + 0.5 *
full``), written by ``model.export`` (SavedModel, TFLite) or tf2onnx (ONNX). Its input is the
image **already resized** by the run's eval transform (``image_size``, ``resize``;
:func:`~imet_kit.multilabel.serving.serving_images`), so the artefact reproduces ``predict`` to
float precision; only views of the resized square go in-graph (identity, flip), the crop views
need the original image. ``RUN/stack`` (scikit-learn) cannot go in-graph: the artefact returns the
first-level probabilities, with the first-level thresholds. ``OUT/`` holds the artefact
(``saved_model/``, ``model.onnx``, ``model.tflite``), ``labels.json`` (ids, names, groups in
output order), ``thresholds.json`` (the run's thresholds and rule) and ``export.json``; it is
built beside ``OUT``, then renamed.

Example:
    >>> export_run("runs/demo", "export/onnx", "onnx", tta=2).artefact  # doctest: +SKIP
    PosixPath('export/onnx/model.onnx')
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imet_kit.atomic import TMP_MARK
from imet_kit.data.augment import TTA_SPECS, available_views, tta_views
from imet_kit.errors import InputError, describe_choices
from imet_kit.multilabel.predict import check_folds
from imet_kit.multilabel.serving import INPUT_NAME, OUTPUT_NAME, run_artefact
from imet_kit.multilabel.stack import stack_dir
from imet_kit.training.devices import backend_problem
from imet_kit.training.refit import full_model_path
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

FORMATS = ("savedmodel", "onnx", "tflite")
ARTEFACTS = {"savedmodel": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}
_KERAS_FORMATS = {"savedmodel": "tf_saved_model", "tflite": "litert"}  # onnx: _export_onnx
_CONVERTERS = {"onnx": ("tf2onnx", "onnx")}  # modules (= pip packages) beyond tensorflow
RULE = ("Per image: the labels with p > threshold, at most max_labels of them (highest p first), "
        "plus the min_labels highest-p labels always. Mode global: one threshold; class: one per "
        "label; group: threshold, min_labels, max_labels per group of labels.json, rule per group.")
STACK_NOTE = ("RUN/stack (a second-level scikit-learn model) cannot go in-graph: the artefact "
              "returns the first-level probabilities, and thresholds.json holds the run's "
              "first-level thresholds")


@dataclass
class ExportPlan:
    """What goes into the artefact, checked before TensorFlow loads."""

    run: RunDir
    fmt: str
    folds: list[int]
    refit: bool
    views: list[str]
    size: int
    resize: str
    stacked: bool  # the run has RUN/stack, which the artefact leaves out


@dataclass
class ExportResult:
    """Where the export went and what it holds."""

    out: Path
    artefact: Path
    plan: ExportPlan
    max_abs_diff: float | None = None  # the artefact in its runtime vs the Keras ensemble
    warnings: list[str] = field(default_factory=list)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format {fmt!r}. Expected one of: {describe_choices(FORMATS)}.")
    if problem := backend_problem(fmt, field="format"):  # onnx, tflite: TensorFlow's; savedmodel: any
        raise InputError(problem + ".")
    return fmt


def _in_graph(view: str) -> bool:
    spec = TTA_SPECS[view]
    return spec.scale == 1.0 and spec.dx == spec.dy == 0.0 and spec.zoom == 1.0  # identity, flip


def in_graph_views(tta: int, *, flip: bool = True, resize: str = "crop") -> list[str]:
    """``predict``'s first ``tta`` views, refusing those not reproducible from the resized input.

    >>> in_graph_views(2)
    ['identity', 'flip']
    """
    views = tta_views(tta, flip=flip, resize=resize)
    bad = next((v for v in views if not _in_graph(v)), None)
    if bad is not None:
        able = [v for v in available_views(flip, resize) if _in_graph(v)]
        why = (f"a crop of the image fitted to {TTA_SPECS[bad].scale:.4g}x the input side, which "
               f"cannot be cut from an input already resized to it" if TTA_SPECS[bad].scale != 1.0
               else "a shift / zoom of the square by OpenCV's warpAffine, which the graph does not "
                    "reproduce exactly")
        raise InputError(f"--tta {tta} needs the view '{bad}', {why}. Export supports --tta 1 to "
                         f"{len(able)} ({', '.join(able)}); use imet-kit predict for more views.")
    return views


def check_converter(fmt: str) -> None:
    """ImportError naming the ``pip install`` when the converter of ``fmt`` is missing."""
    for module in _CONVERTERS.get(check_format(fmt), ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None
            found = False
        if not found:
            raise ImportError(f"--format {fmt} needs {module}: pip install 'imet_kit[export]' "
                              f"(or pip install {module}).")


def plan_export(run: str | os.PathLike, fmt: str, *, folds: list[int] | None = None,
                refit: bool = True, tta: int = 1) -> ExportPlan:
    """Check a run and the options of an export (no TensorFlow) and say what goes in."""
    from imet_kit.training.engine import resolve_size

    check_format(fmt)
    run_dir = RunDir(run)
    run_dir.require()
    config = run_dir.load_config()
    if config.task != "multilabel":
        raise InputError(f"Run '{run_dir.path}' is a {config.task!r} run; export takes a "
                         f"multilabel run (retrieval runs export embeddings with imet-kit embed).")
    views = in_graph_views(tta, flip=config.flip, resize=config.resize)
    chosen = None if folds is None else sorted(set(folds))
    check_folds(run_dir, chosen, refit)  # predict's check
    use_refit = bool(refit) and full_model_path(run_dir).is_file()
    chosen = run_dir.trained_folds() if chosen is None else chosen
    if not chosen and not use_refit:
        raise InputError("No model to export: pass at least one fold.")
    stacked = all((stack_dir(run_dir) / f).is_file() for f in ("model.npz", "thresholds.json"))
    return ExportPlan(run_dir, fmt, chosen, use_refit, views, resolve_size(config), config.resize, stacked)


def build_ensemble(plan: ExportPlan):
    """The functional model ``uint8 image -> probabilities`` of a plan."""
    import keras

    from imet_kit.models.loading import load_model

    image = keras.Input((plan.size, plan.size, 3), dtype="uint8", name=INPUT_NAME)
    x = keras.ops.cast(image, "float32")
    views = [keras.ops.flip(x, axis=2) if TTA_SPECS[v].flip else x for v in plan.views]

    def mean(xs):
        return xs[0] if len(xs) == 1 else keras.layers.Average()(xs)

    named = {f"fold{k}": plan.run.fold_dir(k) / "best.keras" for k in plan.folds}
    named.update({"full_model": full_model_path(plan.run)} if plan.refit else {})
    outs = []
    for name, path in named.items():
        model = load_model(path, compile=False)
        model.name = name  # every fold model is "imet_classifier"; one graph needs unique names
        outs.append(mean([model(v) for v in views]))
    fold_outs = outs[:len(plan.folds)]
    probs = mean(fold_outs) if fold_outs else None
    if plan.refit:  # predict's weighting: 0.5 * mean(folds) + 0.5 * full
        probs = outs[-1] if probs is None else mean([probs, outs[-1]])
    probs = keras.layers.Identity(name=OUTPUT_NAME, dtype="float32")(probs)
    return keras.Model(image, probs, name="imet_export")


def labels_payload(space) -> dict:
    return {"attribute_ids": space.ids.tolist(), "names": list(space.names),
            "groups": list(space.groups), "group_names": list(space.group_names)}


def thresholds_payload(thresholds: dict) -> dict:
    """The run's thresholds without the sweep curves, plus the rule that applies them."""
    out = {"mode": thresholds.get("mode", "global"), "min_labels": thresholds["min_labels"],
           "max_labels": thresholds["max_labels"]}
    for mode in ("global", "class", "group"):
        if mode in thresholds:
            out[mode] = {k: v for k, v in thresholds[mode].items() if k != "curve"}
    out["rule"] = RULE
    return out


def _export_onnx(model, path: Path, size: int) -> None:
    """ONNX through tf2onnx with the image as the only input, the output named ``probs``.

    Not ``model.export(format="onnx")``: Keras 3.15 hands tf2onnx 1.17 a function whose every
    non-resource input becomes an ONNX input, the tensors it captured included (a Normalization
    layer's mean and variance: every Keras EfficientNet), so onnxruntime demands them as inputs.
    Freezing with the image alone as input turns them into constants.
    """
    import tensorflow as tf
    import tf2onnx

    with contextlib.suppress(ImportError):  # Keras' numpy-2 patch of tf2onnx (np.object, np.cast)
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()
    spec = tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME)
    fn = tf.function(lambda image: model(image, training=False), input_signature=[spec])
    concrete = fn.get_concrete_function()
    inp, out = concrete.inputs[0].name, concrete.outputs[0].name
    tf_log, level = logging.getLogger("tensorflow"), logging.getLogger("tensorflow").level
    tf_log.setLevel(logging.ERROR)  # tf2onnx's freezing warns of the TF1 APIs it uses
    try:
        tf2onnx.convert.from_graph_def(tf2onnx.tf_loader.from_function(concrete, [inp], [out]),
                                       input_names=[inp], output_names=[out], output_path=str(path),
                                       tensors_to_rename={inp: INPUT_NAME, out: OUTPUT_NAME})
    finally:
        tf_log.setLevel(level)


def _manifest(plan: ExportPlan, n_classes: int, diff: float | None) -> dict:
    import keras
    import tensorflow as tf

    return {"format": plan.fmt, "artefact": ARTEFACTS[plan.fmt], "run": str(plan.run.path),
            "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, plan.size, plan.size, 3],
                      "layout": "NHWC, RGB, 0-255, resized as the run's eval transform does "
                                "(imet_kit.multilabel.serving.serving_images)"},
            "image_size": plan.size, "resize": plan.resize,
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, n_classes],
                       "meaning": "sigmoid probabilities in labels.json order"},
            "folds": plan.folds, "refit": plan.refit, "tta_views": plan.views,
            "stack": STACK_NOTE if plan.stacked else None, "max_abs_diff_vs_keras": diff,
            "versions": {"keras": keras.__version__, "tensorflow": tf.__version__}}


def check_out(out: str | os.PathLike, run: RunDir, force: bool) -> None:
    """``out`` is new, or replaceable (``force``) without taking the run folder with it."""
    out, here = Path(out), Path(os.path.realpath(run.path))
    if os.path.realpath(out) in {str(here), *map(str, here.parents)}:
        raise InputError(f"--out '{out}' is the run folder or holds it; choose a new folder, for "
                         f"example '{run.path / 'export'}'.")
    if os.path.lexists(out) and not force:
        raise InputError(f"--out '{out}' exists; pass --force to replace it, or choose another path.")


def export_run(run: str | os.PathLike, out: str | os.PathLike, fmt: str, *,
               folds: list[int] | None = None, refit: bool = True, tta: int = 1,
               force: bool = False, verify: bool = True) -> ExportResult:
    """Export a run's fold ensemble as one serving artefact in ``out/``.

    Args:
        run: the run folder of `imet-kit train` (task multilabel).
        out: folder to create; it must not exist unless ``force``.
        fmt: ``savedmodel``, ``onnx`` or ``tflite``.
        folds: a subset of the trained folds (default all).
        refit: include ``RUN/full/best.keras`` when present, weighted as ``predict`` does.
        tta: the first ``tta`` TTA views in-graph (1 or 2: identity, flip).
        force: replace an existing ``out``.
        verify: run the artefact in its runtime on two images and compare with the Keras ensemble.

    Returns:
        An :class:`ExportResult`.
    """
    plan = plan_export(run, fmt, folds=folds, refit=refit, tta=tta)
    out = Path(out)
    check_out(out, plan.run, force)
    check_converter(fmt)
    from imet_kit.multilabel.oof import load_thresholds

    space = plan.run.load_space()
    thresholds = load_thresholds(plan.run) if plan.run.thresholds_path.is_file() else None
    notes = [f"{STACK_NOTE}."] if plan.stacked else []
    if thresholds is None:
        notes.append(f"run '{plan.run.path}' has no thresholds.json (training did not finish); "
                        f"thresholds.json is not written.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        diff = _write_artefact(plan, tmp, verify)
        (tmp / "labels.json").write_text(json.dumps(labels_payload(space), indent=2))
        if thresholds is not None:
            (tmp / "thresholds.json").write_text(json.dumps(thresholds_payload(thresholds), indent=2))
        (tmp / "export.json").write_text(json.dumps(_manifest(plan, space.n_classes, diff), indent=2))
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in notes:  # the CLI prints them; a notebook finds them in the result
        log.info(line)
    return ExportResult(out, out / ARTEFACTS[fmt], plan, diff, notes)


def _write_artefact(plan: ExportPlan, folder: Path, verify: bool) -> float | None:
    """Build, export and (``verify``) check the artefact; returns its max deviation from Keras."""
    import keras

    keras.backend.clear_session()
    model = build_ensemble(plan)
    x = np.random.default_rng(0).integers(0, 256, (2, plan.size, plan.size, 3), dtype=np.uint8)
    expected = model.predict(x, verbose=0)  # also builds it: the ONNX exporter needs a called model
    path = folder / ARTEFACTS[plan.fmt]
    with warnings.catch_warnings():  # Keras' tf2onnx patch trips numpy's np.object FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        if plan.fmt == "onnx":
            _export_onnx(model, path, plan.size)
        else:
            model.export(str(path), format=_KERAS_FORMATS[plan.fmt], verbose=False)
    if not verify or (plan.fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None):
        return None
    diff = float(np.abs(run_artefact(path, plan.fmt, x) - expected).max())
    if not diff <= 1e-4:
        raise RuntimeError(f"The {plan.fmt} export differs from the Keras ensemble by {diff:.3g} "
                           f"(> 1e-4) on the same images; this is a bug, please report it.")
    return diff


def _replace_folder(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (``force``) is moved aside, then removed."""
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    if os.path.lexists(out):
        os.replace(out, old)
    os.replace(tmp, out)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif os.path.lexists(old):
        old.unlink()
