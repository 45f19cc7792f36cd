"""Many hosts under JAX: the same ``imet-kit train`` started on every host trains one model; and
how loaders share batches among devices and processes (:func:`fit_loaders_to_replicas`).

A launcher (SLURM's ``srun``, a Kubernetes indexed Job, or two shells on one machine) starts the
same command on each host with the standard variables of ``keras.distribution.initialize``::

    KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234   # the coordinator (process 0); a comma list is
    KERAS_DISTRIBUTION_NUM_PROCESSES=2            # also accepted, its first entry is used
    KERAS_DISTRIBUTION_PROCESS_ID=0               # 0 .. N-1, different on each host

or with ``--coordinator``, ``--num-processes`` and ``--process-id``. Then:

- ``keras.distribution.DataParallel`` spans every device of every host; the global batch
  (``--batch-size``) is split evenly, each process decoding only its share of each batch's rows
  (:class:`~imet_kit.data.dataset.ImageDataset` ``process_index`` / ``process_count``), so the
  batches are the ones one process would train on. Augmentation is seeded per batch share (each
  process draws its own), so with augmentation a run is the same in distribution as one process's,
  and without it the same up to summation order (measured 6e-8 on the OOF, tests/training/test_hosts.py).
- Validation F2, the out-of-fold predictions and the fold's predict gather every process's rows
  (:func:`predict_all`).
- Only process 0 writes the run folder. The others work in a private copy of it (made before
  process 0 writes anything: a barrier waits for it), so every process takes the same decisions
  (resume from the same epoch, skip the same finished folds) and none writes beside process 0.
  The run folder must be on storage every host sees when resuming.

TensorFlow's multi-worker strategy is refused (:data:`MULTI_WORKER_BUG`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imet_kit.errors import ImetKitError, InputError

logger = logging.getLogger(__name__)

ENV = {"coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
       "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
       "process_id": "KERAS_DISTRIBUTION_PROCESS_ID"}
MULTI_WORKER_BUG = ("MultiWorkerMirroredStrategy (TF_CONFIG with several workers) fails inside "
                    "Keras 3's fit (keras-team/keras#20585); unset TF_CONFIG and train each host's "
                    "folds with --fold k into one shared --out instead")
FLAGS = {"coordinator": "--coordinator", "num_processes": "--num-processes",
         "process_id": "--process-id"}


def process_index() -> int:
    """This process's index among a multi-process JAX job's (0 otherwise)."""
    return int(_jax().process_index()) if _jax() else 0


def process_count() -> int:
    """How many processes train together (1 outside a multi-process JAX job). Under JAX this
    starts its backend: join the job first (:func:`initialize`)."""
    return int(_jax().process_count()) if _jax() else 1


def _jax():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    return jax


@dataclass(frozen=True)
class Hosts:
    """Where this process stands among the processes of one training job."""

    coordinator: str | None = None
    count: int = 1
    index: int = 0

    @property
    def many(self) -> bool:
        return self.count > 1

    @property
    def writer(self) -> bool:
        """Process 0 writes the run folder."""
        return self.index == 0


def _int(value, name: str, source: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"{source} must be a whole number for {name}; received {value!r}.") from None


def hosts_from(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, env: Mapping[str, str] | None = None) -> Hosts:
    """The job's processes from the flags, else the ``KERAS_DISTRIBUTION_*`` variables.

    Example:
        >>> hosts_from(env={})
        Hosts(coordinator=None, count=1, index=0)
        >>> hosts_from("node0:1234", 2, 1, env={}).many
        True
    """
    env = os.environ if env is None else env
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    value, source = {}, {}
    for key, flag_value in given.items():
        from_env = env.get(ENV[key], "").strip()
        value[key] = flag_value if flag_value is not None else (from_env or None)
        source[key] = FLAGS[key] if flag_value is not None else ENV[key]
    if value["num_processes"] is None:
        if value["process_id"] is not None:
            raise InputError(f"{source['process_id']} is set but the number of processes is not; "
                             f"pass --num-processes N (or set {ENV['num_processes']}) on every host.")
        return Hosts(coordinator=value["coordinator"])
    count = _int(value["num_processes"], "the number of processes", source["num_processes"])
    if count < 1:
        raise InputError(f"{source['num_processes']} must be >= 1; received {count}.")
    if count == 1:
        return Hosts(coordinator=value["coordinator"])
    if not value["coordinator"]:
        raise InputError(f"{count} processes need the coordinator's address (process 0's "
                         f"HOST:PORT); pass --coordinator HOST:PORT or set {ENV['coordinator']}.")
    if value["process_id"] is None:
        raise InputError(f"{count} processes need each one's id; pass --process-id 0..{count - 1} "
                         f"(a different one on each host) or set {ENV['process_id']}.")
    index = _int(value["process_id"], "the process id", source["process_id"])
    if not 0 <= index < count:
        raise InputError(f"{source['process_id']} must be in 0..{count - 1} for {count} processes; "
                         f"received {index}.")
    return Hosts(coordinator=str(value["coordinator"]).strip(), count=count, index=index)


def initialize(hosts: Hosts) -> None:
    """Join the job's processes (``keras.distribution.initialize``); before any JAX computation.
    Nothing to do for one process."""
    if not hosts.many:
        return
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise InputError(f"{hosts.count} processes train one model under KERAS_BACKEND=jax only "
                         f"(keras.distribution); this process runs KERAS_BACKEND={backend}, where "
                         + MULTI_WORKER_BUG + ".")
    try:
        keras.distribution.initialize(hosts.coordinator, hosts.count, hosts.index)
    except Exception as exc:  # noqa: BLE001 - JAX raises RuntimeError / XlaRuntimeError / ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImetKitError(
            f"Process {hosts.index} of {hosts.count} could not join the job at {hosts.coordinator} "
            f"({first}). Start process 0 with the same --coordinator and --num-processes, check "
            f"that its port is reachable from this host, and start each process once.") from exc


def fit_loaders_to_replicas(loaders, replicas: int, even: bool = False,
                            processes: tuple[int, int] = (0, 1)) -> list:
    """Tell each :class:`~imet_kit.data.dataset.ImageDataset` among ``loaders`` (or wrapped in one's
    ``images``) how many replicas share a batch: training drops its last short batch, evaluation
    keeps every row but never leaves a replica an empty batch; with ``even`` (JAX's DataParallel)
    every batch splits evenly: evaluation pads its last one (remove the padding from predictions
    with :func:`unpad`), and ``processes`` (this process's index, how many)
    share each batch's rows among several hosts. Returns the loaders it could not tell (a tf.data
    pipeline keeps its short last batch)."""
    import keras

    from imet_kit.data.dataset import ImageDataset

    untold = []
    for loader in loaders:  # anything else (arrays, labels) is not a loader: left alone
        inner = getattr(loader, "images", loader)
        if isinstance(inner, ImageDataset):
            inner.replicas, inner.even = int(replicas), bool(even) and replicas > 1
            inner.process_index, inner.process_count = map(int, processes) if inner.even else (0, 1)
        elif isinstance(loader, keras.utils.PyDataset) or \
                type(loader).__module__.startswith(("tensorflow", "imet_kit.data.tfdata")):
            untold.append(loader)
    if untold and replicas > 1:
        logger.warning("%d loader(s) are not ImageDatasets and keep a short last batch under %d "
                       "replicas", len(untold), replicas)
    return untold


def unpad(loader, predictions):
    """``predictions`` of ``loader`` (an :class:`ImageDataset`, one wrapping it as ``images``, or
    anything else) without the rows it repeated to fill its last batch (:attr:`ImageDataset.padding`).

    Example:
        >>> unpad([[1.0], [2.0]], np.zeros((2, 3))).shape  # not an ImageDataset: unchanged
        (2, 3)
    """
    pad = getattr(getattr(loader, "images", loader), "padding", 0)
    if not isinstance(pad, int) or not pad:
        return predictions
    return predictions[: len(predictions) - pad]


def barrier(name: str) -> None:
    """Wait until every process of the job reaches ``name`` (one process: returns at once)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def predict_all(model, x, **kwargs) -> np.ndarray:
    """``model.predict(x)`` over every process's share of the rows, the same on every process and
    in the rows' order, without the rows a loader repeated to fill its last batch
    (:func:`unpad`).

    Under one process this is ``model.predict``. Under several, Keras' predict cannot fetch an
    output that spans other hosts' devices, so each batch runs through a jitted stateless call of
    the model and is gathered (``jax.experimental.multihost_utils.process_allgather``).
    """
    if process_count() <= 1:
        return unpad(x, model.predict(x, **kwargs))
    import jax
    import keras
    from jax.experimental import multihost_utils

    distribution = keras.distribution.distribution()
    if distribution is None or not isinstance(x, keras.utils.PyDataset):
        raise InputError(f"predict_all under {process_count()} processes takes a loader of this "
                         f"process's rows (an ImageDataset told by fit_loaders_to_replicas) inside "
                         f"the DataParallel scope (imet_kit.training.devices); received "
                         f"{type(x).__name__}" + ("" if distribution else " outside the scope") + ".")
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]
    forward = jax.jit(lambda t, f, b: model.stateless_call(t, f, b, training=False)[0])
    out = []
    for i in range(len(x)):
        batch = x[i]
        batch = batch[0] if isinstance(batch, tuple) else batch
        layout = distribution.get_data_layout(batch.shape).backend_layout
        global_batch = jax.make_array_from_process_local_data(layout, np.asarray(batch))
        out.append(np.asarray(multihost_utils.process_allgather(
            forward(trainable, frozen, global_batch), tiled=True)))
    return unpad(x, np.concatenate(out) if out else np.zeros((0,), np.float32))


@contextlib.contextmanager
def run_folder_of_this_process(out: str | os.PathLike, hosts: Hosts) -> Iterator[Path]:
    """The run folder this process writes: ``out`` for process 0; for the others a private copy
    of it (the same decisions, nothing written beside process 0), removed afterwards. Every
    process waits until the copies are made before process 0 may change ``out``."""
    out = Path(out)
    if not hosts.many:
        yield out
        return
    if hosts.writer:
        barrier("imet_kit: run folder copied")
        yield out
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"imet_kit-process{hosts.index}-"))
    try:
        mine = scratch / out.name
        if out.is_dir():
            shutil.copytree(out, mine, ignore=shutil.ignore_patterns("tensorboard", "plots"))
        barrier("imet_kit: run folder copied")
        yield mine
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
