"""Devices: the distribution strategy, and what each ``--distribution`` needs of the Keras backend.

``tf.distribute`` exists only under the TensorFlow backend; under JAX :func:`get_strategy` returns
:class:`DataParallel` (``keras.distribution``) or :class:`OneDevice` and never starts TensorFlow (on
a GPU machine a started TensorFlow would claim the GPU's memory beside JAX). Precision and XLA defaults:
:mod:`imet_kit.training.precision`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping

from imet_kit.errors import ImetKitError, InputError, backend_mismatch, describe_choices
from imet_kit.training.hosts import MULTI_WORKER_BUG, process_count

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "tpu", "mirrored", "multi_worker")
DISTRIBUTIONS = ("auto", "none", "mirrored", "data-parallel")  # `imet-kit train --distribution`
_EXPORT_FIX = "use --format savedmodel (a run trained under JAX exports under TensorFlow too)"
# what needs one Keras backend: (field, value) -> (that backend, what it is built on, the way out)
NEEDS_BACKEND = {
    # data-parallel runs on both: MirroredStrategy under TensorFlow, DataParallel under JAX
    ("distribution", "mirrored"): ("tensorflow", "tf.distribute.MirroredStrategy",
                                   "use --distribution data-parallel, auto or none"),
    ("format", "onnx"): ("tensorflow", "tf2onnx over a tf.function of the model", _EXPORT_FIX),
    ("format", "tflite"): ("tensorflow", "Keras' LiteRT export", _EXPORT_FIX),  # savedmodel: any
}
_TF_KIND = {"none": "default", "data-parallel": "mirrored"}  # --distribution -> tf.distribute kind
_TPU_ENV = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


def _tf():
    import tensorflow as tf

    return tf


def keras_backend(backend: str | None = None) -> str:
    """``backend``, else the Keras backend of this process (``keras.backend.backend()``)."""
    if backend is None:
        import keras

        backend = keras.backend.backend()
    return backend


class OneDevice:
    """The strategy outside TensorFlow: one replica; the backend places the model itself (under
    JAX on its first GPU or TPU when it has one), so ``scope()`` changes nothing."""

    num_replicas_in_sync = 1
    even_batches = False  # every batch must split evenly over the replicas

    def scope(self):
        return contextlib.nullcontext()

    def fold_scope(self):
        """Held around a whole fold (build, fit, validation, OOF); nothing to hold here."""
        return contextlib.nullcontext()


class DataParallel(OneDevice):
    """``keras.distribution.DataParallel`` over ``devices`` (JAX): variables replicated on every
    device, each batch split along its first axis, gradients summed by XLA. Its ``scope()`` sets the
    distribution only while held (never process-wide), so it is held around the whole fold:
    building and loading the model, ``fit`` and every ``predict``. Batches must split evenly."""

    even_batches = True

    def __init__(self, devices: list[str]):
        import keras

        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        # the loaders shard rows over the processes themselves (imet_kit.training.hosts)
        self.distribution = keras.distribution.DataParallel(devices=self.devices,
                                                            auto_shard_dataset=False)

    def scope(self):
        return self.distribution.scope()

    fold_scope = scope


def backend_devices() -> list[str]:
    """``keras.distribution.list_devices()`` of the active backend: its GPUs or TPUs, else its
    CPUs; ``["cpu:0"]`` under a backend without a device list (torch, numpy in Keras 3.15). JAX
    lists every host's devices of its default platform (a CPU splits into N with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``).

    Under TensorFlow this starts its runtime (logical CPUs cannot be configured afterwards).
    """
    import keras

    try:
        return list(keras.distribution.list_devices())
    except (AttributeError, NotImplementedError):  # Keras' backend has no distribution_lib
        return ["cpu:0"]


def _jax_spreads(kind: str, devices: list[str]) -> bool:
    """Whether ``--distribution kind`` trains data-parallel over ``devices`` under JAX: always for
    ``data-parallel``; for ``auto`` over several GPUs / TPUs, or several hosts."""
    if kind != "auto":
        return kind == "data-parallel"
    return sum(not d.lower().startswith("cpu") for d in devices) > 1 or process_count() > 1


def tf_config_workers(env: Mapping[str, str] | None = None) -> int:
    """Number of chief + worker tasks in ``TF_CONFIG`` (0 if unset).

    Example:
        >>> tf_config_workers({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}}'})
        2
    """
    raw = (os.environ if env is None else env).get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError) as exc:
        raise InputError(f"TF_CONFIG is not valid JSON with a 'cluster' entry ({exc}); received {raw[:80]!r}.") from None
    return sum(len(cluster.get(k, [])) for k in ("chief", "worker"))


def tpu_requested(env: Mapping[str, str] | None = None) -> bool:
    """True where a TPU is announced (Colab / Kaggle / Cloud TPU VM); no network call."""
    env = os.environ if env is None else env
    return any(env.get(k) for k in _TPU_ENV) or os.path.exists("/dev/accel0")


def resolve_strategy_kind(kind: str = "auto", *, n_gpus: int = 0, tpu: bool = False,
                          workers: int = 0) -> str:
    """Which strategy ``kind`` means here: ``"auto"`` picks TPU, then multi-worker
    (``TF_CONFIG`` with > 1 task), then mirrored (> 1 GPU), else the default strategy.

    Example:
        >>> resolve_strategy_kind("auto", n_gpus=2), resolve_strategy_kind("auto", n_gpus=1)
        ('mirrored', 'default')
        >>> resolve_strategy_kind("data-parallel")  # TensorFlow's data parallelism
        'mirrored'
    """
    kind = _TF_KIND.get(kind, kind)
    if kind not in STRATEGIES:
        raise InputError(f"Unknown strategy {kind!r}. Expected one of: {describe_choices(STRATEGIES)}.")
    if kind != "auto":
        return kind
    if tpu:
        return "tpu"
    if workers > 1:
        return "multi_worker"
    return "mirrored" if n_gpus > 1 else "default"


def get_strategy(kind: str = "auto"):
    """A ``tf.distribute.Strategy``; build and compile the model inside ``strategy.scope()``.

    ``"mirrored"`` uses every GPU, or every logical CPU where there is no GPU (see
    :func:`configure_logical_cpus`; slower than no strategy on a real CPU, useful to test).
    ``batch_size`` stays the global batch: each of the N replicas gets ``batch_size / N`` rows.

    Args:
        kind: a ``--distribution`` name (``"auto"``, ``"none"``, ``"data-parallel"``: TensorFlow's
            ``MirroredStrategy`` or JAX's ``DataParallel``; ``"mirrored"``, refused under JAX) or
            ``"default"``, ``"tpu"``. Under JAX ``"auto"`` is data-parallel over several GPUs / TPUs or
            several hosts (:mod:`imet_kit.training.hosts`), never over one host's CPU devices
            (slower than one).
            ``"multi_worker"`` is refused (:data:`MULTI_WORKER_BUG`).

    Returns:
        The strategy; ``strategy.num_replicas_in_sync`` is the number of replicas. Under another
        Keras backend than TensorFlow: :class:`DataParallel` or :class:`OneDevice`.

    Example:
        >>> get_strategy("none").num_replicas_in_sync
        1
    """
    problem = backend_problem(kind)
    if problem:
        raise InputError(problem + ".")
    if keras_backend() != "tensorflow":
        resolve_strategy_kind(kind)  # an unknown name is still refused
        devices = backend_devices()
        if _jax_spreads(kind, devices):
            strategy = DataParallel(devices)
            logger.info("distribution DataParallel over %d device(s): %s", len(devices),
                        ", ".join(devices))
            return strategy
        return OneDevice()
    tf = _tf()
    gpus = tf.config.list_logical_devices("GPU")
    resolved = resolve_strategy_kind(kind, n_gpus=len(gpus), tpu=kind == "auto" and tpu_requested(),
                                     workers=tf_config_workers() if kind == "auto" else 0)
    if resolved == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise ImetKitError(f"A TPU was requested but cannot be reached: {exc}") from exc
    elif resolved == "multi_worker":
        raise InputError(MULTI_WORKER_BUG + ".")
    elif resolved == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        strategy = tf.distribute.get_strategy()
    logger.info("strategy %s (%s): %d replica(s)", resolved, type(strategy).__name__,
                strategy.num_replicas_in_sync)
    return strategy


def backend_problem(value: str, backend: str | None = None, field: str = "distribution") -> str | None:
    """Why ``--<field> value`` cannot run on the Keras backend (None: it can); see
    :data:`NEEDS_BACKEND` (backbones carry theirs: :func:`imet_kit.models.backbones.backend_problem`).

    Example:
        >>> "KERAS_BACKEND=tensorflow" in backend_problem("mirrored", "jax")
        True
        >>> backend_problem("data-parallel", "tensorflow") is None  # MirroredStrategy there
        True
        >>> backend_problem("onnx", "jax", field="format").split("; ")[0]
        "format: 'onnx' is tf2onnx over a tf.function of the model, which needs KERAS_BACKEND=tensorflow"
    """
    if (field, value) not in NEEDS_BACKEND:
        return None
    need, engine, fix = NEEDS_BACKEND[field, value]
    backend = keras_backend(backend)
    if backend != need:
        return backend_mismatch(f"{field}: {value!r}", engine, need, backend, fix)
    return None


def replica_count(kind: str) -> int:
    """How many replicas ``--distribution kind`` will train on here, without starting TensorFlow's
    devices (logical CPUs may still be configured afterwards); a TPU counts 1 (known once reached).

    Example:
        >>> replica_count("none")
        1
    """
    if keras_backend() != "tensorflow":
        if kind not in ("auto", "data-parallel"):
            return 1
        devices = backend_devices()
        return len(devices) if _jax_spreads(kind, devices) else 1
    kind = _TF_KIND.get(kind, kind)
    if kind not in ("auto", "mirrored"):
        return 1
    tf = _tf()

    def logical(device_type: str) -> int:
        return sum(len(tf.config.get_logical_device_configuration(d) or [d])
                   for d in tf.config.list_physical_devices(device_type))

    gpus = logical("GPU")
    if kind == "auto":
        return gpus if gpus > 1 and not tpu_requested() and tf_config_workers() <= 1 else 1
    return gpus or logical("CPU")


def distribution_problems(kind: str, batch_size: int, backend: str | None = None) -> list[str]:
    """Problems of ``--distribution kind`` with ``batch_size`` (the global batch) on this machine.

    Example:
        >>> distribution_problems("spread", 32)
        ["distribution: unknown 'spread', expected one of auto, none, mirrored, data-parallel"]
    """
    if kind not in DISTRIBUTIONS:
        return [f"distribution: unknown {kind!r}, expected one of {', '.join(DISTRIBUTIONS)}"]
    problem = backend_problem(kind, backend)
    if problem:
        return [problem]
    if kind == "auto" and keras_backend(backend) == "tensorflow" and tf_config_workers() > 1 \
            and not tpu_requested():
        return ["distribution: auto would pick " + MULTI_WORKER_BUG]
    processes = process_count() if kind == "none" and keras_backend(backend) == "jax" else 1
    if processes > 1:
        return [f"distribution: 'none' trains on one device, but this job has {processes} "
                f"processes that train one model together; use --distribution auto or "
                f"data-parallel"]
    n = replica_count(kind)
    if n > 1 and isinstance(batch_size, int) and batch_size >= 1 and batch_size % n:
        below, above = batch_size // n * n, -(-batch_size // n) * n
        near = f"{below} or {above}" if below else str(above)
        return [f"batch_size: {batch_size} does not split evenly over the {n} replicas of "
                f"--distribution {kind} (batch_size is the global batch, divided among devices); "
                f"expected a multiple of {n}, e.g. --batch-size {near}"]
    return []


def configure_logical_cpus(n: int) -> list:
    """Split the CPU into ``n`` logical devices (to test ``MirroredStrategy`` without GPUs).

    Must run before TensorFlow initialises its devices (before any tensor is made).
    """
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(n))
    except RuntimeError as exc:
        raise ImetKitError(
            f"configure_logical_cpus({n}) must run before TensorFlow initialises (before any "
            f"model or tensor is created); start a new process and call it first. ({exc})"
        ) from exc
    return tf.config.list_logical_devices("CPU")
