"""Ray sessions and the shard runner shared by the Ray extraction and scoring.

:func:`run_shards` submits one Ray task per shard of contiguous rows, at
most ``window`` at once, and skips shards whose result is already cached.
Each task stores its result under the shard's cache key and returns the
key, so a retried task repeats the same atomic write and a restarted run
computes only the missing shards.

Ray is imported only by :func:`import_ray`, so this module imports without
Ray installed.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType

import torch

from lsi_app.progress import ProgressCallback
from lsi_app.store.cache import cache_key

logger = logging.getLogger(__name__)

#: Error message when Ray is not installed.
RAY_MISSING_MESSAGE = "the Ray engine needs the ray extra: pip install 'lsi-app[ray]'"

#: Rows (samples) per Ray task. ImageNet-size data (1.28M images) then give
#: 64 shards, enough to keep tens of workers busy and to balance uneven ones.
#: Each shard's features (2048 float32 per row, about 160 MB) stay small in
#: the object store, and a lost worker repeats at most one shard.
DEFAULT_SHARD_SIZE = 20_000

#: Retries of a task whose worker died (process crash, node lost). Ray does
#: not retry a task that raised an exception, because the same input would
#: raise again.
DEFAULT_MAX_RETRIES = 3

#: Environment variable that Ray reads once, at import. Ray 2.60 replaces a
#: ``_node_ip_address`` of ``127.0.0.1`` with the host's routable address,
#: and its gRPC servers then listen on all interfaces (checked with ``ss``
#: on Linux). With this variable set to ``"0"`` Ray resolves the node
#: address to ``127.0.0.1``, so a local cluster listens on loopback only.
LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

#: Called in the worker with the shard index before the shard is computed
#: (not when it is found in the cache). For instrumentation and fault tests.
ShardHook = Callable[[int], None]


def _default_gpus_per_worker() -> float:
    return 1.0 if torch.cuda.is_available() else 0.0


@dataclass(frozen=True)
class RayOptions:
    """Settings of the Ray cluster connection and of the tasks.

    Attributes
    ----------
    address : str or None, default=None
        Address of a running Ray cluster, such as ``"ray://head:10001"``
        or ``"auto"``. None starts a local cluster on this machine,
        listening on loopback, for the duration of the run.
    num_workers : int or None, default=None
        Tasks in flight at once. None uses every slot of the cluster
        (its CPUs divided by ``cpus_per_worker``, and its GPUs divided by
        ``gpus_per_worker`` when that is above 0). A local cluster gets
        ``num_workers * cpus_per_worker`` CPUs.
    shard_size : int, default=DEFAULT_SHARD_SIZE
        Samples per task.
    gpus_per_worker : float, default=1 when CUDA is available on the driver, else 0
        GPUs that each task requests; fractions share a GPU between
        tasks. With 0 the tasks run on CPU.
    cpus_per_worker : float, default=1.0
        CPUs that each task requests; torch in the task uses that many
        threads (at least 1).
    max_retries : int, default=DEFAULT_MAX_RETRIES
        Retries of a task whose worker died.
    """

    address: str | None = None
    num_workers: int | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    gpus_per_worker: float = field(default_factory=_default_gpus_per_worker)
    cpus_per_worker: float = 1.0
    max_retries: int = DEFAULT_MAX_RETRIES

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1 or None (use the whole cluster), got {self.num_workers}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1 sample, got {self.shard_size}")
        if not math.isfinite(self.gpus_per_worker) or self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0 (0 runs on CPU), got {self.gpus_per_worker}")
        if not math.isfinite(self.cpus_per_worker) or self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.address is not None and not self.address.strip():
            raise ValueError("address is empty; pass a Ray address such as 'ray://head:10001', or None for a local cluster")


class ShardFailedError(RuntimeError):
    """A shard's task raised, or its worker died more often than ``max_retries`` allows.

    The message names the shard and its rows. The shards that finished are
    cached, so running the same call again computes only the rest.
    """


@dataclass(frozen=True)
class Shard:
    """Contiguous rows ``start..stop-1`` of a run, with the cache key of their result."""

    index: int
    start: int
    stop: int
    key: str


def plan_shards(n_rows: int, shard_size: int, key_parts: Mapping) -> list[Shard]:
    """Split ``n_rows`` rows into contiguous shards and name each one's cache entry.

    The key of a shard is ``cache_key`` of ``key_parts`` plus the shard
    index and bounds, so the same run always gives the same keys.
    """
    shards = []
    for index, start in enumerate(range(0, n_rows, shard_size)):
        stop = min(start + shard_size, n_rows)
        key = cache_key({**key_parts, "shard": index, "start": start, "stop": stop})
        shards.append(Shard(index, start, stop, key))
    return shards


def import_ray(local: bool = True) -> ModuleType:
    """Import Ray, raising ImportError with the install command when it is missing.

    Parameters
    ----------
    local : bool, default=True
        When Ray is imported here for the first time in the process and
        the caller will start a local cluster, :data:`LOOPBACK_VARIABLE` is
        set to ``"0"`` (unless already set) so that the cluster listens on
        loopback only.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_VARIABLE, "0")
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING_MESSAGE) from None
    return ray


@contextmanager
def ray_session(options: RayOptions | None = None) -> Iterator[ModuleType]:
    """Connect to Ray for the duration of the ``with`` block and yield the ``ray`` module.

    When Ray is already initialised in this process, that session is used
    and left running. Otherwise the block connects to ``options.address``,
    or starts a local cluster without a dashboard and with worker logs kept
    out of the driver's output. On exit it shuts down only what it started:
    a connection is closed and the remote cluster keeps running.

    Raises
    ------
    ImportError
        When Ray is not installed, with :data:`RAY_MISSING_MESSAGE`.
    """
    options = options or RayOptions()
    ray = import_ray(local=options.address is None)
    if ray.is_initialized():
        yield ray
        return

    if options.address is not None:
        # NOTE: the tests use local clusters only; connecting to a running cluster by address has not been run.
        if os.environ.get(LOOPBACK_VARIABLE) == "0":
            logger.warning(
                "%s=0 is set in this process, so Ray registers this driver at 127.0.0.1 and workers on other "
                "nodes cannot reach it; connect to %s from a process without that variable",
                LOOPBACK_VARIABLE,
                options.address,
            )
        logger.info("connecting to the Ray cluster at %s", options.address)
        ray.init(address=options.address, log_to_driver=False)
    else:
        num_cpus = None if options.num_workers is None else max(1, math.ceil(options.num_workers * options.cpus_per_worker))
        logger.info("starting a local Ray cluster (%s CPUs)", "all" if num_cpus is None else num_cpus)
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            ignore_reinit_error=True,
            log_to_driver=False,
        )
    try:
        yield ray
    finally:
        ray.shutdown()
        logger.info("Ray session closed")


def cluster_slots(ray: ModuleType, options: RayOptions) -> int:
    """Return how many tasks the cluster can run at once with the requested resources per task."""
    resources = ray.cluster_resources()
    cpus = resources.get("CPU", 0.0)
    gpus = resources.get("GPU", 0.0)
    limits = [cpus / options.cpus_per_worker]
    if options.gpus_per_worker > 0:
        limits.append(gpus / options.gpus_per_worker)
    slots = int(min(limits))
    if slots >= 1:
        return slots
    message = (
        f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, too few for one task with "
        f"cpus_per_worker={options.cpus_per_worker:g} and gpus_per_worker={options.gpus_per_worker:g}; "
        "lower them (gpus_per_worker=0 runs on CPU) or add nodes"
    )
    if options.address is None:
        raise ValueError(message)
    # An autoscaling cluster may add nodes once tasks wait, so a remote cluster only gets a warning.
    logger.warning("%s; the tasks wait until the cluster has the resources", message)
    return 1


def worker_device(gpus_per_worker: float) -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs granted to the task.
    # NOTE: the tests run on CPU only, so tasks with gpus_per_worker > 0 have not been run.
    if gpus_per_worker > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def set_worker_threads(cpus_per_worker: float) -> None:
    # Ray reuses worker processes across tasks, so the thread count is set for each task.
    torch.set_num_threads(max(1, int(cpus_per_worker)))


def run_shards(
    ray: ModuleType,
    task: Callable,
    shards: Sequence[Shard],
    arguments: Callable[[Shard], tuple],
    is_cached: Callable[[str], bool],
    *,
    options: RayOptions,
    window: int,
    step: str,
    progress: ProgressCallback,
) -> int:
    """Run ``task`` for every shard not yet cached, at most ``window`` at once; return how many ran.

    ``task(*arguments(shard))`` must store the shard's result under
    ``shard.key`` and return the key. After a failure no further shard is
    submitted, the shards in flight are waited for (so their results are
    kept), and ShardFailedError is raised.
    """
    remote = ray.remote(task).options(
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker,
        max_retries=options.max_retries,
    )
    todo = [shard for shard in shards if not is_cached(shard.key)]
    n_done = len(shards) - len(todo)
    if n_done:
        logger.info("%s: %d of %d shards found in the cache, computing %d", step, n_done, len(shards), len(todo))
    progress(n_done / max(len(shards), 1), f"{step}: {n_done}/{len(shards)} shards")

    queue = iter(todo)
    pending: dict = {}
    failures: list[tuple[Shard, Exception]] = []
    while True:
        while not failures and len(pending) < window:
            shard = next(queue, None)
            if shard is None:
                break
            pending[remote.remote(*arguments(shard))] = shard
        if not pending:
            break
        ready, _ = ray.wait(list(pending), num_returns=1)
        for reference in ready:
            shard = pending.pop(reference)
            try:
                key = ray.get(reference)
            except ray.exceptions.RayError as error:
                logger.error("%s: shard %d (rows %d-%d) failed: %s", step, shard.index, shard.start, shard.stop - 1, error)
                failures.append((shard, error))
                continue
            if key != shard.key or not is_cached(key):
                raise ShardFailedError(
                    f"{step}: the worker of shard {shard.index} stored entry {key!r}, but the driver cannot find "
                    f"entry {shard.key!r} in the workspace; cache_root must be a folder that every Ray node "
                    "mounts at the same path (for example on NFS)"
                )
            n_done += 1
            progress(n_done / len(shards), f"{step}: {n_done}/{len(shards)} shards")

    if failures:
        shard, error = failures[0]
        raise ShardFailedError(
            f"{step}: shard {shard.index} (rows {shard.start}-{shard.stop - 1}) failed "
            f"({len(failures)} failed shards in all): {error}. The {n_done} finished shards of {len(shards)} "
            "are cached, so running the same command again computes only the others"
        ) from error
    return len(todo)
