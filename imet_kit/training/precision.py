"""Precision and XLA defaults, decided from the devices the active Keras backend computes on.

The devices come from ``keras.distribution.list_devices()`` (``["gpu:0", ...]``, else
``["cpu:0", ...]``), that is from the backend that will run the model: ``tensorflow-cpu`` never
sees a GPU that JAX sees, so asking TensorFlow left a JAX GPU run in float32 without XLA.

Defaults are measured, not assumed. On the 2-core CPU box we develop on (FACTS.md), TensorFlow
with ``jit_compile=True`` made an EfficientNet-B0 train step 10-14x slower and ``mixed_bfloat16``
20-36 % slower (``mixed_float16`` has no fast CPU kernels), so on CPU precision stays float32 and
TensorFlow's XLA off; JAX without jit was about 2x slower than with it (small_cnn 64 px: 50-84
vs 110-190 img/s), so JAX keeps jit on everywhere. On a GPU with tensor cores (compute capability
>= 7.0) ``mixed_float16`` is the standard speed-up and on a TPU ``mixed_bfloat16``; XLA is left
to Keras (``"auto"``) there.

Example:
    >>> detect_device(["gpu:0", "gpu:1"]), default_precision("gpu", [(8, 0)])
    ('gpu', 'mixed_float16')
    >>> default_jit_compile("cpu", "tensorflow"), default_jit_compile("cpu", "jax")
    (False, True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from imet_kit.errors import InputError, describe_choices
from imet_kit.training.devices import backend_devices, keras_backend, tpu_requested

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_TENSOR_CORES = (7, 0)  # Volta: the first GPUs where float16 matmuls are fast


def detect_device(devices: Sequence[str] | None = None) -> str:
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: the kind of ``devices`` (``"gpu:0"``-style names;
    default :func:`backend_devices`, and a TPU announced in the environment counts as one).

    Example:
        >>> detect_device(["cpu:0"]), detect_device(["tpu:0", "tpu:1"])
        ('cpu', 'tpu')
    """
    if devices is None:
        if tpu_requested():  # TensorFlow sees a Cloud TPU only once connected to it
            return "tpu"
        devices = backend_devices()
    kinds = {str(d).split(":")[0].lower() for d in devices}
    if "tpu" in kinds:
        return "tpu"
    return "gpu" if kinds & {"gpu", "cuda", "rocm"} else "cpu"


def gpu_capabilities(backend: str | None = None) -> list[tuple[int, int]]:
    """CUDA compute capability of each GPU the backend sees (``[]`` where it does not say)."""
    backend = keras_backend(backend)
    caps = []
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            caps.append(tuple(tf.config.experimental.get_device_details(gpu)
                              .get("compute_capability", (0, 0))))
    elif backend == "jax":
        import jax

        for gpu in jax.devices():
            cap = str(getattr(gpu, "compute_capability", "") or "")  # "8.0" on CUDA devices
            if gpu.platform == "gpu" and cap.replace(".", "").isdigit():
                caps.append(tuple(int(p) for p in cap.split(".")[:2]))
    return caps


def default_precision(device: str | None = None,
                      capabilities: Sequence[tuple[int, int]] | None = None) -> str:
    """The measured default policy for a device kind; on GPUs, ``capabilities`` (default
    :func:`gpu_capabilities`) decide: mixed float16 where every GPU has tensor cores.

    Example:
        >>> default_precision("cpu"), default_precision("tpu"), default_precision("gpu", [(6, 1)])
        ('float32', 'mixed_bfloat16', 'float32')
    """
    device = device or detect_device()
    if device == "tpu":
        return "mixed_bfloat16"
    if device == "gpu":
        caps = gpu_capabilities() if capabilities is None else list(capabilities)
        return "mixed_float16" if caps and min(caps) >= _TENSOR_CORES else "float32"
    return "float32"


def default_jit_compile(device: str | None = None, backend: str | None = None) -> bool | str:
    """``jit_compile`` for ``model.compile``: on CPU ``False`` under TensorFlow (XLA measured
    10-14x slower there) and ``True`` under JAX (about 2x slower without); ``"auto"`` (Keras decides)
    on GPU / TPU.

    Example:
        >>> default_jit_compile("gpu", "jax"), default_jit_compile("gpu", "tensorflow")
        ('auto', 'auto')
    """
    if (device or detect_device()) != "cpu":
        return "auto"
    return keras_backend(backend) == "jax"


def set_precision(policy: str = "auto") -> str:
    """Set Keras' global dtype policy by name; ``"auto"`` uses :func:`default_precision`.

    Call before building the model. A mixed policy requested on a CPU is applied
    with a warning (it is slower there).

    Returns:
        The policy name now in force.

    Example:
        >>> set_precision("float32")
        'float32'
    """
    if policy not in PRECISIONS:
        raise InputError(f"Unknown precision {policy!r}. Expected one of: {describe_choices(PRECISIONS)}.")
    import keras

    device = detect_device()
    name = default_precision(device) if policy == "auto" else policy
    if name != "float32" and device == "cpu":
        logger.warning("%s on a CPU was measured 20-36%% slower than float32 (bfloat16) "
                       "or lacks fast kernels (float16); use float32 on CPU.", name)
    keras.mixed_precision.set_global_policy(name)
    logger.info("dtype policy %s (%s backend, %s)", name, keras_backend(), device)
    return name
