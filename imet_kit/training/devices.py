"""Devices: ``tf.distribute`` strategy, mixed precision and XLA defaults.

Defaults are measured, not assumed. On the 2-core CPU box we develop on (FACTS.md),
``jit_compile=True`` made an EfficientNet-B0 train step 10-14x slower and
``mixed_bfloat16`` 20-36 % slower (``mixed_float16`` has no fast CPU kernels), so
on CPU both stay off. On a GPU with tensor cores (compute capability >= 7.0)
``mixed_float16`` is the standard speed-up and on a TPU ``mixed_bfloat16``;
XLA is left to Keras (``"auto"``) there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

from imet_kit.errors import ImetKitError, InputError, describe_choices

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "tpu", "mirrored", "multi_worker")
DISTRIBUTIONS = ("auto", "none", "mirrored", "data-parallel")  # `imet-kit train --distribution`
_BACKEND_OF = {"mirrored": "tensorflow", "data-parallel": "jax"}
MULTI_WORKER_BUG = ("MultiWorkerMirroredStrategy (TF_CONFIG with several workers) fails inside "
                    "Keras 3's fit (keras-team/keras#20585); unset TF_CONFIG and train each host's "
                    "folds with --fold k into one shared --out instead")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_TPU_ENV = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


def _tf():
    import tensorflow as tf

    return tf


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
    """
    kind = "default" if kind == "none" else kind
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
        kind: a ``--distribution`` name (``"auto"``, ``"none"``, ``"mirrored"``; ``"data-parallel"``
            is the JAX backend's and refused here) or ``"default"``, ``"tpu"``.
            ``"multi_worker"`` is refused (:data:`MULTI_WORKER_BUG`).

    Returns:
        The strategy; ``strategy.num_replicas_in_sync`` is the number of replicas.

    Example:
        >>> get_strategy("none").num_replicas_in_sync
        1
    """
    problem = backend_problem(kind)
    if problem:
        raise InputError(problem + ".")
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


def backend_problem(kind: str, backend: str | None = None) -> str | None:
    """Why ``--distribution kind`` cannot run on the Keras backend (None: it can).

    Example:
        >>> "KERAS_BACKEND=jax" in backend_problem("data-parallel", "tensorflow")
        True
    """
    need = _BACKEND_OF.get(kind)
    if need is None:
        return None
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend == need:
        return None if need == "tensorflow" else (
            "distribution: 'data-parallel' under JAX is not wired into imet-kit train yet; use "
            "KERAS_BACKEND=tensorflow with --distribution mirrored")
    engine = {"mirrored": "tf.distribute.MirroredStrategy",
              "data-parallel": "keras.distribution.DataParallel"}[kind]
    other = "mirrored" if kind == "data-parallel" else "data-parallel"
    return (f"distribution: {kind!r} is {engine}, which needs KERAS_BACKEND={need}; this process "
            f"runs KERAS_BACKEND={backend}. Set KERAS_BACKEND={need}, or use --distribution "
            f"{other}, auto or none")


def replica_count(kind: str) -> int:
    """How many replicas ``--distribution kind`` will train on here, without starting TensorFlow's
    devices (logical CPUs may still be configured afterwards); a TPU counts 1 (known once reached).

    Example:
        >>> replica_count("none")
        1
    """
    kind = "default" if kind == "none" else kind
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
    if kind == "auto" and tf_config_workers() > 1 and not tpu_requested():
        return ["distribution: auto would pick " + MULTI_WORKER_BUG]
    n = replica_count(kind)
    if n > 1 and isinstance(batch_size, int) and batch_size >= 1 and batch_size % n:
        below, above = batch_size // n * n, -(-batch_size // n) * n
        near = f"{below} or {above}" if below else str(above)
        return [f"batch_size: {batch_size} does not split evenly over the {n} replicas of "
                f"--distribution {kind} (batch_size is the global batch, divided among devices); "
                f"expected a multiple of {n}, e.g. --batch-size {near}"]
    return []


def fit_loaders_to_replicas(loaders, replicas: int) -> list:
    """Tell each :class:`~imet_kit.data.dataset.ImageDataset` among ``loaders`` (or wrapped in one's
    ``images``) how many replicas share a batch: training drops its last short batch, evaluation
    keeps every row but never leaves a replica an empty batch. Returns the loaders it could not
    tell (a tf.data pipeline keeps its short last batch)."""
    import keras

    from imet_kit.data.dataset import ImageDataset

    untold = []
    for loader in loaders:  # anything else (arrays, labels) is not a loader: left alone
        inner = getattr(loader, "images", loader)
        if isinstance(inner, ImageDataset):
            inner.replicas = int(replicas)
        elif isinstance(loader, keras.utils.PyDataset) or \
                type(loader).__module__.startswith(("tensorflow", "imet_kit.data.tfdata")):
            untold.append(loader)
    if untold and replicas > 1:
        logger.warning("%d loader(s) are not ImageDatasets and keep a short last batch under %d "
                       "replicas", len(untold), replicas)
    return untold


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


def detect_device() -> str:
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: what this process will compute on."""
    if tpu_requested():
        return "tpu"
    return "gpu" if _tf().config.list_physical_devices("GPU") else "cpu"


def default_precision(device: str | None = None) -> str:
    """The measured default policy for a device kind (see the module docstring).

    Example:
        >>> default_precision("cpu"), default_precision("tpu")
        ('float32', 'mixed_bfloat16')
    """
    device = device or detect_device()
    if device == "tpu":
        return "mixed_bfloat16"
    if device == "gpu":
        tf = _tf()
        caps = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0))
                for g in tf.config.list_physical_devices("GPU")]
        return "mixed_float16" if caps and min(caps) >= (7, 0) else "float32"
    return "float32"


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

    name = default_precision() if policy == "auto" else policy
    if name != "float32" and detect_device() == "cpu":
        logger.warning("%s on a CPU was measured 20-36%% slower than float32 (bfloat16) "
                       "or lacks fast kernels (float16); use float32 on CPU.", name)
    keras.mixed_precision.set_global_policy(name)
    logger.info("dtype policy %s", name)
    return name


def default_jit_compile(device: str | None = None) -> bool | str:
    """``jit_compile`` for ``model.compile``: ``False`` on CPU (XLA measured 10-14x
    slower there), ``"auto"`` (Keras decides) on GPU / TPU.

    Example:
        >>> default_jit_compile("cpu")
        False
    """
    return False if (device or detect_device()) == "cpu" else "auto"
