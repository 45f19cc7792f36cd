"""Strategy auto-detection, MirroredStrategy on two logical CPUs, and `train --distribution`
(batches that fit the replicas; mirrored OOF equal to one device's). Precision / XLA defaults:
test_precision.py."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from imet_kit.errors import ImetKitError, InputError
from imet_kit.training.devices import (
    DataParallel,
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
    if keras_backend() == "tensorflow":  # data-parallel: MirroredStrategy over this one CPU
        assert type(get_strategy("data-parallel")).__name__ == "MirroredStrategy"
        with pytest.raises(InputError, match=r"keras-team/keras#20585"):
            get_strategy("multi_worker")
    else:  # keras.distribution places the model; no tf.distribute strategy, TensorFlow not started
        import keras

        assert type(get_strategy("auto")) is OneDevice  # never data-parallel over CPU devices
        dp = get_strategy("data-parallel")
        assert isinstance(dp, DataParallel) and dp.even_batches
        assert dp.num_replicas_in_sync == len(keras.distribution.list_devices())
        with dp.fold_scope():
            assert keras.distribution.distribution() is dp.distribution
        assert keras.distribution.distribution() is None  # held only inside the scope
        with pytest.raises(InputError, match="Set KERAS_BACKEND=tensorflow, or use --distribution "
                                             "data-parallel, auto or none.$"):
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
    from imet_kit.training.hosts import fit_loaders_to_replicas

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


def test_even_batches_cut_training_and_pad_evaluation(tmp_path):
    """JAX's DataParallel shards every batch evenly: evaluation repeats its last row to fill the
    last batch, and unpad() takes the repeats off the predictions."""
    from imet_kit.training.hosts import fit_loaders_to_replicas, unpad

    train, val = _loader(tmp_path, 9, augment="none", seed=3), _loader(tmp_path, 9)
    fit_loaders_to_replicas([train, val], 2, even=True)
    assert [len(train[i][0]) for i in range(len(train))] == [4, 4]  # the short batch is dropped
    batches = [val[i] for i in range(len(val))]
    assert [len(x) for x, _ in batches] == [4, 4, 2] and val.padding == 1
    rows = np.concatenate([x[:, 0, 0, 0] for x, _ in batches])
    assert rows.tolist() == [*range(9), 8]  # the last row once more
    assert np.array_equal(np.concatenate([y for _, y in batches])[-1], np.eye(9)[8])
    assert unpad(val, rows).tolist() == list(range(9))
    ten = _loader(tmp_path, 10)
    fit_loaders_to_replicas([ten], 2, even=True)
    assert [len(ten[i][0]) for i in range(len(ten))] == [4, 4, 2] and ten.padding == 0
    fit_loaders_to_replicas([ten], 1, even=True)  # one device: nothing to split
    assert not ten.even and ten.padding == 0


TRAIN_TWICE = textwrap.dedent("""
    import contextlib, io, json, os, sys
    import numpy as np
    MULTI = "data-parallel"  # TensorFlow: MirroredStrategy; JAX: keras.distribution.DataParallel
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        from imet_kit.training.devices import configure_logical_cpus
        configure_logical_cpus(2)  # before TensorFlow initialises (JAX: XLA_FLAGS)
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
    out = {"devices": len(keras.distribution.list_devices())}
    for name, dist in (("multi", MULTI), ("none", "none")):
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            rc = main(["train", "--data", f"{root}/data", "--out", f"{root}/{name}",
                       "--backbone", "tiny_nobn", "--weights", "none", "--image-size", "32",
                       "--batch-size", "8", "--augment", "light", "--lr", "0.003", "--dropout",
                       "0", "--folds", "2", "--fold", "1", "--epochs", "2", "--no-tensorboard",
                       "--distribution", dist])
        out[name] = {"rc": rc, "log": log.getvalue(),
                     "oof": np.load(f"{root}/{name}/fold1/oof.npy").tolist()}
    print(json.dumps(out))
""")


def _train_twice(tmp_path, backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # JAX: 2 CPU devices
    proc = subprocess.run([sys.executable, "-c", TRAIN_TWICE, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["multi"]["rc"] == out["none"]["rc"] == 0
    assert "training on 16 images, validating on 17" in out["multi"]["log"]
    assert "replicas" not in out["none"]["log"]
    assert np.shape(out["multi"]["oof"]) == np.shape(out["none"]["oof"]) == (17, 49)
    return out


@pytest.mark.tf_only(reason=TF_DISTRIBUTE)
def test_data_parallel_on_two_logical_tf_cpus_gives_one_devices_oof(tmp_path):
    """`--distribution data-parallel` under TensorFlow (MirroredStrategy over 2 logical CPUs).
    Fold 1: 16 training images (no short batch to drop) and 17 validation images (a last batch
    of 1 under 2 replicas: predict would give a replica an empty batch without the fold-in)."""
    out = _train_twice(tmp_path, "tensorflow")
    assert "MirroredStrategy over 2 replicas, global batch 8 = 4 per replica" in out["multi"]["log"]
    # measured 1.2e-7: two half-batch gradients summed, in another order than one batch's
    np.testing.assert_allclose(out["multi"]["oof"], out["none"]["oof"], atol=1e-5, rtol=0)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra")
def test_data_parallel_on_two_jax_cpu_devices_gives_one_devices_oof(tmp_path):
    """`--distribution data-parallel` under JAX (keras.distribution.DataParallel) on 2 CPU
    devices (XLA_FLAGS): the 17
    validation images end in a batch of 1, padded to 2 (a batch of 1 cannot be sharded in 2),
    and the repeat is taken off the OOF."""
    out = _train_twice(tmp_path, "jax")
    assert out["devices"] == 2
    assert "DataParallel over 2 replicas, global batch 8 = 4 per replica" in out["multi"]["log"]
    # measured 0 apart: XLA splits one batch's sums over the devices; tolerance as for mirrored
    np.testing.assert_allclose(out["multi"]["oof"], out["none"]["oof"], atol=1e-5, rtol=0)
