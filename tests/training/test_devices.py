"""Strategy auto-detection, MirroredStrategy on two logical CPUs, and `train --distribution`
(batches that fit the replicas; mirrored OOF equal to one device's). Precision / XLA defaults:
test_precision.py."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imet_kit.errors import ImetKitError, InputError
from imet_kit.training.devices import (
    OneDevice,
    get_strategy,
    keras_backend,
    resolve_strategy_kind,
    tf_config_workers,
    tpu_requested,
)


def test_auto_resolution_order():
    assert resolve_strategy_kind("auto") == "default"
    assert resolve_strategy_kind("auto", n_gpus=1) == "default"
    assert resolve_strategy_kind("auto", n_gpus=4) == "mirrored"
    assert resolve_strategy_kind("auto", n_gpus=4, workers=2) == "multi_worker"
    assert resolve_strategy_kind("auto", n_gpus=4, workers=2, tpu=True) == "tpu"
    assert resolve_strategy_kind("mirrored") == "mirrored"
    assert resolve_strategy_kind("none", n_gpus=4) == "default"
    with pytest.raises(InputError, match="Unknown strategy 'gpu'"):
        resolve_strategy_kind("gpu")


def test_tf_config_and_tpu_detection_from_the_environment():
    assert tf_config_workers({}) == 0
    cfg = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    assert tf_config_workers({"TF_CONFIG": json.dumps(cfg)}) == 3
    with pytest.raises(InputError, match="TF_CONFIG"):
        tf_config_workers({"TF_CONFIG": "{not json"})
    assert tpu_requested({"TPU_NAME": "local"})
    assert tpu_requested({}) == os.path.exists("/dev/accel0")


def test_strategies_on_this_cpu_machine():
    assert get_strategy("auto").num_replicas_in_sync == 1
    assert get_strategy("none").num_replicas_in_sync == 1
    with pytest.raises(InputError, match="Unknown strategy 'gpu'"):
        get_strategy("gpu")
    if keras_backend() == "tensorflow":
        with pytest.raises(InputError, match="needs KERAS_BACKEND=jax"):
            get_strategy("data-parallel")
        with pytest.raises(InputError, match=r"keras-team/keras#20585"):
            get_strategy("multi_worker")
    else:  # the backend places the model; no tf.distribute strategy, TensorFlow not started
        assert isinstance(get_strategy("auto"), OneDevice)
        with pytest.raises(InputError, match="not wired into imet-kit train yet; use "
                                             "--distribution auto or none"):
            get_strategy("data-parallel")
        with pytest.raises(InputError, match="Set KERAS_BACKEND=tensorflow, or use --distribution "
                                             "auto or none.$"):
            get_strategy("mirrored")


TF_DISTRIBUTE = "tf.distribute strategies exist only under the TensorFlow backend"


@pytest.mark.tf_only(reason=TF_DISTRIBUTE)
def test_logical_cpus_cannot_be_configured_after_tensorflow_started():
    import tensorflow as tf

    from imet_kit.training.devices import configure_logical_cpus

    tf.constant(1.0)  # TF is initialised from here on
    with pytest.raises(ImetKitError, match="new process"):
        configure_logical_cpus(2)


SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from imet_kit.training.devices import configure_logical_cpus, get_strategy
    cpus = configure_logical_cpus(2)  # before TensorFlow initialises
    import keras
    import tensorflow as tf
    from imet_kit.multilabel.callbacks import F2Callback
    from imet_kit.models.losses import AsymmetricLoss
    from imet_kit.models import build_classifier
    from imet_kit.training.schedules import WarmupCosineSchedule

    strategy = get_strategy("mirrored")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    y = (rng.random((32, 5)) < 0.3).astype("float32")
    with strategy.scope():
        model = build_classifier("tiny_cnn", 5, input_size=32, pooling="gem", embedding_dim=16)
        model.compile(optimizer=keras.optimizers.Adam(WarmupCosineSchedule(1e-2, 4, 1)),
                      loss=AsymmetricLoss())
    before = model.get_layer("logits").get_weights()[0].copy()
    f2 = F2Callback((x[:16], y[:16]))
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[f2])
    after = model.get_layer("logits").get_weights()[0]
    print(json.dumps({
        "cpus": len(cpus),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": type(strategy).__name__,
        "variable": type(model.get_layer("logits").kernel.value).__name__,
        "loss": hist.history["loss"],
        "val_f2": hist.history["val_f2"],
        "changed": bool(np.abs(after - before).max() > 0),
        "auto_replicas": get_strategy("auto").num_replicas_in_sync,
    }))
""")


@pytest.mark.tf_only(reason=TF_DISTRIBUTE)
def test_one_epoch_under_mirrored_strategy_on_two_logical_cpus():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cpus"] == 2 and out["replicas"] == 2 and out["strategy"] == "MirroredStrategy"
    assert "Mirrored" in out["variable"]
    assert len(out["loss"]) == 1 and out["loss"][0] > 0 and out["changed"]
    assert 0.0 <= out["val_f2"][0] <= 1.0
    assert out["auto_replicas"] == 1  # auto never mirrors over CPUs: slower than no strategy


@pytest.mark.parametrize("module", ["imet_kit.training.devices"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- train --distribution: loaders that fit the replicas, and the same OOF as one device ------
def _loader(tmp_path, n, **kwargs):
    import cv2
    import numpy as np

    from imet_kit.data.dataset import ImageDataset

    paths = []
    for i in range(n):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], np.full((33, 31, 3), i, np.uint8))  # pixel value = row number
    return ImageDataset(paths, np.eye(n, dtype="float32"), size=32, batch_size=4, **kwargs)


def test_with_replicas_training_drops_its_short_batch_and_evaluation_keeps_every_row(tmp_path):
    from imet_kit.training.devices import fit_loaders_to_replicas

    train, val = _loader(tmp_path, 9, augment="none", seed=3), _loader(tmp_path, 9)
    assert (len(train), len(val)) == (3, 3)  # one device: 4 + 4 + 1 each
    assert fit_loaders_to_replicas([train, val, val.y, None], 2) == []  # labels are not loaders
    assert train.replicas == val.replicas == 2
    assert len(train) == 2 and [len(train[i][0]) for i in range(2)] == [4, 4]
    sizes = [len(val[i][0]) for i in range(len(val))]
    assert sizes == [4, 5]  # the lone last row joins the batch before: no replica gets nothing
    rows = np.concatenate([val[i][0][:, 0, 0, 0] for i in range(len(val))])
    assert rows.tolist() == list(range(9))  # every row, in order
    val.replicas = 3  # a last batch of 1 < 3 rows folds in; one of >= replicas rows stays
    assert [len(val[i][0]) for i in range(len(val))] == [4, 5]
    ten = _loader(tmp_path, 10)
    ten.replicas = 2
    assert [len(ten[i][0]) for i in range(len(ten))] == [4, 4, 2]


TRAIN_TWICE = textwrap.dedent("""
    import contextlib, io, json, sys
    import numpy as np
    from imet_kit.training.devices import configure_logical_cpus
    configure_logical_cpus(2)  # before TensorFlow initialises
    import keras
    from imet_kit.cli.main import main
    from imet_kit.data.demo import make_demo_dataset
    from imet_kit.models.backbones import BACKBONES, BackboneSpec

    def tiny_cnn_without_batchnorm(input_shape, weights, name):
        # BatchNorm normalises each replica's half batch (Keras' synchronized=False): measured
        # 1.6e-2 apart from one device with tiny_cnn; without it the sums are the same
        inputs = x = keras.Input(input_shape)
        for i, filters in enumerate((8, 16, 32)):
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                    name=f"conv{i}")(x)
        return keras.Model(inputs, x, name=name)

    BACKBONES["tiny_nobn"] = BackboneSpec("tiny_nobn", tiny_cnn_without_batchnorm, 32, "0-1",
                                          "imet_kit", (), "test")
    root = sys.argv[1]
    make_demo_dataset(f"{root}/data", n_train=33, n_test=2, seed=1)
    out = {}
    for dist in ("mirrored", "none"):
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            rc = main(["train", "--data", f"{root}/data", "--out", f"{root}/{dist}",
                       "--backbone", "tiny_nobn", "--weights", "none", "--image-size", "32",
                       "--batch-size", "8", "--augment", "light", "--lr", "0.003", "--dropout",
                       "0", "--folds", "2", "--fold", "1", "--epochs", "2", "--no-tensorboard",
                       "--distribution", dist])
        out[dist] = {"rc": rc, "log": log.getvalue(),
                     "oof": np.load(f"{root}/{dist}/fold1/oof.npy").tolist()}
    print(json.dumps(out))
""")


@pytest.mark.tf_only(reason=TF_DISTRIBUTE)
def test_mirrored_on_two_logical_cpus_gives_one_devices_oof(tmp_path):
    """Fold 1: 16 training images (no short batch to drop) and 17 validation images (a last batch
    of 1 under 2 replicas: predict would give a replica an empty batch without the fold-in)."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", TRAIN_TWICE, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mirrored"]["rc"] == out["none"]["rc"] == 0
    assert "training on 16 images, validating on 17" in out["mirrored"]["log"]
    assert "MirroredStrategy over 2 replicas, global batch 8 = 4 per replica" in out["mirrored"]["log"]
    assert "replicas" not in out["none"]["log"]
    mirrored, one = np.asarray(out["mirrored"]["oof"]), np.asarray(out["none"]["oof"])
    assert mirrored.shape == one.shape == (17, 49)
    # measured 1.2e-7: two half-batch gradients summed, in another order than one batch's
    np.testing.assert_allclose(mirrored, one, atol=1e-5, rtol=0)
