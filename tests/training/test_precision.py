"""Precision and XLA defaults from the devices the Keras backend lists: pure decisions with the
device list injected, the wiring to keras.distribution.list_devices, and the JAX backend with
TensorFlow unimportable."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError
from imet_kit.training import precision
from imet_kit.training.optim import jit_compile
from imet_kit.training.precision import (
    default_jit_compile,
    default_precision,
    detect_device,
    set_precision,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("devices, kind", [
    (["cpu:0"], "cpu"), (["cpu:0", "cpu:1"], "cpu"), (["gpu:0"], "gpu"), (["gpu:0", "gpu:1"], "gpu"),
    (["cuda:0"], "gpu"), (["tpu:0", "tpu:1", "tpu:2", "tpu:3"], "tpu"), ([], "cpu")])
def test_the_device_kind_is_read_from_keras_device_names(devices, kind):
    assert detect_device(devices) == kind


@pytest.mark.parametrize("backend, devices, caps, policy, jit", [
    ("tensorflow", ["cpu:0"], [], "float32", False),       # XLA measured 10-14x slower on CPU
    ("jax", ["cpu:0", "cpu:1"], [], "float32", True),       # JAX without jit: about 2x slower
    ("jax", ["gpu:0"], [(8, 0)], "mixed_float16", "auto"),  # the case tensorflow-cpu missed
    ("tensorflow", ["gpu:0", "gpu:1"], [(7, 0), (9, 0)], "mixed_float16", "auto"),
    ("jax", ["gpu:0", "gpu:1"], [(8, 6), (6, 1)], "float32", "auto"),  # one GPU without tensor cores
    ("jax", ["gpu:0"], [], "float32", "auto"),              # capability unknown: no gamble
    ("jax", ["tpu:0"], [], "mixed_bfloat16", "auto"),
])
def test_defaults_are_pure_functions_of_backend_and_devices(backend, devices, caps, policy, jit):
    device = detect_device(devices)
    assert default_precision(device, caps) == policy
    assert default_jit_compile(device, backend) == jit


def test_defaults_come_from_the_active_backends_device_list(monkeypatch):
    """A backend that lists a GPU gets mixed precision and XLA "auto", whatever TensorFlow sees."""
    monkeypatch.setattr(precision, "tpu_requested", lambda: False)
    monkeypatch.setattr(keras.distribution, "list_devices", lambda device_type=None: ["gpu:0"])
    monkeypatch.setattr(precision, "gpu_capabilities", lambda backend=None: [(9, 0)])
    try:
        assert detect_device() == "gpu"
        assert set_precision("auto") == "mixed_float16"
        assert keras.mixed_precision.dtype_policy().name == "mixed_float16"
        assert jit_compile(TrainConfig(jit_compile="auto")) == "auto"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_on_this_cpu_machine_the_measured_cpu_defaults_apply():
    backend = keras.backend.backend()
    assert precision.backend_devices()[0].startswith("cpu:")
    assert detect_device() == "cpu" and precision.gpu_capabilities() == []
    assert set_precision("auto") == "float32"
    assert default_jit_compile() is (backend == "jax")
    assert jit_compile(TrainConfig(jit_compile="auto")) is (backend == "jax")
    with pytest.raises(InputError, match="Unknown precision 'fp16'"):
        set_precision("fp16")


JAX_WITHOUT_TF = textwrap.dedent("""
    import json, sys
    sys.modules["tensorflow"] = None  # any import of TensorFlow now raises ImportError
    from imet_kit.training import devices, precision
    print(json.dumps({
        "device": precision.detect_device(), "policy": precision.set_precision("auto"),
        "jit": precision.default_jit_compile(),
        "replicas": devices.get_strategy("auto").num_replicas_in_sync,
        "auto": devices.distribution_problems("auto", 7), "none": devices.replica_count("none"),
        "mirrored": devices.distribution_problems("mirrored", 8),
    }))
""")


def test_under_jax_the_defaults_and_the_strategy_need_no_tensorflow():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", JAX_WITHOUT_TF], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["device"] == "cpu" and out["policy"] == "float32" and out["jit"] is True
    assert out["replicas"] == 1 and out["auto"] == [] and out["none"] == 1
    (mirrored,) = out["mirrored"]
    assert ("'mirrored' is tf.distribute.MirroredStrategy, which needs KERAS_BACKEND=tensorflow; "
            "this process runs KERAS_BACKEND=jax") in mirrored


@pytest.mark.parametrize("module", ["imet_kit.training.precision"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
