"""Strategy auto-detection, precision / XLA defaults, and MirroredStrategy on two logical CPUs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from imet_kit.errors import ImetKitError, InputError
from imet_kit.training.devices import (
    default_jit_compile,
    default_precision,
    get_strategy,
    resolve_strategy_kind,
    set_precision,
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


def test_cpu_defaults_are_the_measured_ones():
    assert default_precision("cpu") == "float32"
    assert default_precision("tpu") == "mixed_bfloat16"
    assert default_jit_compile("cpu") is False
    assert default_jit_compile("gpu") == "auto"
    assert get_strategy("auto").num_replicas_in_sync == 1  # this CPU-only machine
    assert set_precision("auto") == "float32"
    with pytest.raises(InputError, match="Unknown precision"):
        set_precision("fp16")


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
