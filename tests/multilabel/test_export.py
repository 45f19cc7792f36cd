"""Export: each format, loaded in its own runtime (TF SavedModel signature, onnxruntime, the
TFLite interpreter), gives predict's probabilities on the images predict uses, within 1e-4."""

import json
import shutil

import numpy as np
import pytest

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset
from imet_kit.data.folder import find_images
from imet_kit.errors import InputError
from imet_kit.multilabel.export import (
    ARTEFACTS,
    check_converter,
    export_run,
    in_graph_views,
    plan_export,
)
from imet_kit.multilabel.predict import predict
from imet_kit.multilabel.serving import binarize_exported, serving_images
from imet_kit.training.rundir import RunDir

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    make_demo_dataset(data, n_train=30, n_test=6, seed=2)
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--folds", "2", "--epochs", "1",
                 *TINY]) == 0
    return data, run


def _images(data, ids, run):
    config = RunDir(run).load_config()
    return serving_images(find_images(data / "test", ids, what="test images"), config.image_size,
                          config.resize)


def _serve(path, fmt, x):
    """The artefact in its own runtime, written out here rather than through the library."""
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        out = loaded.signatures["serving_default"](image=tf.constant(x))  # what TF Serving calls
        return next(iter(out.values())).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image"]
        assert session.get_inputs()[0].type == "tensor(uint8)"
        return session.run(["probs"], {"image": x})[0]
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    interp = Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    assert inp["dtype"] == np.uint8
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


ONNX_TFLITE = "ONNX and LiteRT export go through TensorFlow (tf2onnx, Keras' LiteRT exporter)"


@pytest.mark.parametrize("fmt", ["savedmodel",
                                 pytest.param("onnx", marks=pytest.mark.tf_only(reason=ONNX_TFLITE)),
                                 pytest.param("tflite", marks=pytest.mark.tf_only(reason=ONNX_TFLITE))])
def test_each_format_reproduces_predict_in_its_runtime(trained, tmp_path, fmt):
    data, run = trained
    res = export_run(run, tmp_path / "exp", fmt, tta=2)
    assert res.artefact == tmp_path / "exp" / ARTEFACTS[fmt] and res.artefact.exists()
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4
    pred = predict(run, data, tta=2, progress=False)
    x = _images(data, pred.ids, run)
    assert x.dtype == np.uint8 and x.shape == (6, 32, 32, 3)
    served = _serve(res.artefact, fmt, x)
    np.testing.assert_allclose(served, pred.probs, atol=1e-4, rtol=0)
    # a server binarising with the files beside the artefact gets predict's labels
    np.testing.assert_array_equal(binarize_exported(served, res.out), pred.labels.astype(bool))
    space = RunDir(run).load_space()
    labels = json.loads((res.out / "labels.json").read_text())
    assert labels["names"] == list(space.names) and labels["attribute_ids"] == list(range(space.n_classes))
    run_thr = json.loads((run / "thresholds.json").read_text())
    thr = json.loads((res.out / "thresholds.json").read_text())
    assert (thr["mode"], thr["min_labels"], thr["max_labels"]) == \
        (run_thr["mode"], run_thr["min_labels"], run_thr["max_labels"])
    assert thr["global"]["threshold"] == run_thr["global"]["threshold"] and "rule" in thr
    manifest = json.loads((res.out / "export.json").read_text())
    assert manifest["tta_views"] == ["identity", "flip"] and manifest["folds"] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary left


def test_fold_subset_and_refit_weighting_match_predict(trained, tmp_path):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "full").mkdir()
    shutil.copy(copy / "fold1" / "best.keras", copy / "full" / "best.keras")  # a stand-in refit
    res = export_run(copy, tmp_path / "exp", "savedmodel", folds=[0])
    assert res.plan.refit and res.plan.folds == [0]
    pred = predict(copy, data, folds=[0], progress=False)  # 0.5 * fold0 + 0.5 * full
    only_fold = predict(copy, data, folds=[0], refit=False, progress=False)
    assert not np.allclose(pred.probs, only_fold.probs, atol=1e-4)  # the refit really counts
    served = _serve(res.artefact, "savedmodel", _images(data, pred.ids, copy))
    np.testing.assert_allclose(served, pred.probs, atol=1e-4, rtol=0)
    assert not plan_export(copy, "savedmodel", refit=False).refit


def test_in_graph_views_take_flips_and_refuse_crops():
    assert in_graph_views(1) == ["identity"] and in_graph_views(2) == ["identity", "flip"]
    with pytest.raises(InputError, match="--tta 3 needs the view 'crop_tl'.*--tta 1 to 2"):
        in_graph_views(3)
    with pytest.raises(InputError, match="--tta 2 needs the view 'crop_tl'.*--tta 1 to 1"):
        in_graph_views(2, flip=False)  # no mirrored views: the second is already a crop
    with pytest.raises(InputError, match="TTA count must be between 1 and 12"):
        in_graph_views(0)
    assert in_graph_views(2, resize="squash") == ["identity", "flip"]
    with pytest.raises(InputError, match="--tta 3 needs the view 'shift_l', a shift / zoom"):
        in_graph_views(3, resize="pad")  # on the square, but a warp the graph does not copy


def test_plan_refuses_what_it_cannot_export(trained, tmp_path):
    _, run = trained
    with pytest.raises(InputError, match="Unknown export format 'pt'"):
        plan_export(run, "pt")
    with pytest.raises(InputError, match="Fold 3 has no model"):
        plan_export(run, "savedmodel", folds=[3])  # any format: savedmodel runs on every backend
    empty = tmp_path / "run"
    shutil.copytree(run, empty, ignore=shutil.ignore_patterns("*.keras"))
    with pytest.raises(InputError, match="has no trained fold"):
        plan_export(empty, "savedmodel")


def test_a_stacked_run_exports_first_level_probabilities_and_says_so(trained, tmp_path):
    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "stack").mkdir()
    (copy / "stack" / "model.npz").write_bytes(b"")
    (copy / "stack" / "thresholds.json").write_text("{}")
    assert plan_export(copy, "savedmodel").stacked
    assert not plan_export(run, "savedmodel").stacked


@pytest.mark.tf_only(reason=ONNX_TFLITE)
def test_missing_converter_names_the_pip_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'imet_kit\[export\]'"):
        check_converter("onnx")
    check_converter("savedmodel")  # TensorFlow's own converters need nothing more
    check_converter("tflite")



@pytest.mark.tf_only(reason=ONNX_TFLITE)
def test_onnx_takes_only_the_image_when_a_model_holds_constants(trained, tmp_path):
    # a Normalization layer with a fixed mean and variance (every Keras EfficientNet has one):
    # Keras' own ONNX export made those captured tensors ONNX inputs that onnxruntime demands
    import keras

    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("fold1"))
    n_classes = RunDir(run).load_space().n_classes
    x = keras.Input((32, 32, 3))
    h = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0, 2900.0, 2800.0])(x)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(h))
    keras.Model(x, keras.layers.Dense(n_classes, activation="sigmoid")(h)).save(copy / "fold0" / "best.keras")
    res = export_run(copy, tmp_path / "exp", "onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(res.artefact), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    pred = predict(copy, data, progress=False)
    np.testing.assert_allclose(_serve(res.artefact, "onnx", _images(data, pred.ids, copy)), pred.probs,
                               atol=1e-4, rtol=0)


def test_onnx_and_tflite_are_refused_in_one_line_under_another_backend(trained, monkeypatch):
    """Under JAX the plan refuses onnx / tflite before anything loads (savedmodel stays: Keras
    exports a JAX model too). Under TensorFlow the test plays a JAX process."""
    import keras

    _, run = trained
    if keras.backend.backend() == "tensorflow":
        monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for fmt, engine in (("onnx", "tf2onnx over a tf.function of the model"),
                        ("tflite", "Keras' LiteRT export")):
        with pytest.raises(InputError) as err:
            plan_export(run, fmt)
        assert str(err.value) == (
            f"format: {fmt!r} is {engine}, which needs KERAS_BACKEND=tensorflow; this process runs "
            f"KERAS_BACKEND={keras.backend.backend()}. Set KERAS_BACKEND=tensorflow, or use "
            f"--format savedmodel (a run trained under JAX exports under TensorFlow too).")
    assert plan_export(run, "savedmodel").fmt == "savedmodel"
