"""Where a job's independent pieces run: in this process, or across a Ray cluster.

A job splits its heavy work into tasks that share nothing but read-only inputs: the probes'
cross-fitting folds and seeds (``thresher score``, ``thresher evaluate``), shards of image files
(``thresher embed``). A runner maps a function over those tasks (``map_unordered``; Ray's also ``map`` in task
order, and ``actor_map_unordered`` for workers that hold a model):

* :class:`LocalRunner` (the default) runs them one after the other in this process, exactly as the
  jobs did before runners existed.
* :class:`RayRunner` (``--ray``) sends them to Ray workers: a local Ray instance over this
  machine's cores (``--ray`` alone), or an existing cluster (``--ray auto`` reads ``RAY_ADDRESS``
  or finds the head started by ``ray start --head``; ``--ray HOST:6379`` joins that cluster from
  one of its nodes; ``--ray ray://HOST:10001`` connects from outside through Ray Client, which
  needs ``ray[client]``). The shared inputs are put in Ray's object store once (zero-copy for NumPy arrays on
  one node) instead of being pickled into every task. A task a lost worker was running is
  retried (Ray's ``max_retries``); a task that raises fails the job with its own error, and
  Ctrl-C cancels the tasks still pending.

Results never depend on the runner: every task carries its own seed, and probes train with one
intra-op thread, so a score run on Ray gives the same numbers as a local one (tested bit for bit).

Every node of a cluster needs Thresher installed (``pip install 'thresher[ray]'``, or the Docker
image) and, for ``thresher embed``, the workspace's image files under the same paths. Only the
process that ran the command writes to the workspace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: ``--ray`` with no address: start a Ray instance on this machine for the job's duration.
LOCAL_RAY = "local"

#: How many probe tasks share one GPU when the cluster has GPUs (a probe is a small matrix).
PROBES_PER_GPU = 4

#: CPUs given to each model-holding worker when the cluster has no GPU (torch's intra-op
#: threads inside the worker; Ray sets OMP_NUM_THREADS to the worker's CPUs).
CPUS_PER_ACTOR = 4


class RunnerError(RuntimeError):
    """The runner cannot start or reach its workers; the message says what to do."""


@dataclass(frozen=True)
class RunnerSpec:
    """What the user asked for: ``kind`` ``"local"`` or ``"ray"``; ``address`` for Ray
    (``"local"``: a fresh instance on this machine; ``"auto"``; ``"ray://host:port"``;
    ``"host:port"``); ``workers``: at most this many tasks at once (None: what the cluster has)."""

    kind: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"unknown runner {self.kind!r}; use 'local' or 'ray'")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--ray-workers must be at least 1, got {self.workers}")


def parse_runner(ray: str | None, workers: int | None = None) -> RunnerSpec:
    """The spec for the CLI's ``--ray [ADDRESS]`` (None: not given) and ``--ray-workers N``."""
    if ray is None:
        if workers is not None:
            raise ValueError("--ray-workers needs --ray (the local runner runs one task at a time)")
        return RunnerSpec()
    address = ray.strip() or LOCAL_RAY
    return RunnerSpec("ray", address, workers)


def make_runner(spec: RunnerSpec | None) -> Runner:
    if spec is None or spec.kind == "local":
        return LocalRunner()
    return RayRunner(spec.address or LOCAL_RAY, workers=spec.workers)


class LocalRunner:
    """Runs tasks in order, in this process."""

    kind = "local"

    def map_unordered(self, fn: Callable[..., Any], tasks: Sequence[tuple], *, shared: tuple = (),
                      gpu_share: float = 0.0) -> Iterator[tuple[int, Any]]:
        """``(index, fn(*shared, *tasks[index]))`` as each finishes (here: in order). The same
        loop as ``backend.scoring.probes.serial_tasks``, kept here so that importing the runner
        (the app imports the jobs that take one) does not import torch."""
        for index, task in enumerate(tasks):
            yield index, fn(*shared, *task)

    def describe(self) -> dict[str, Any]:
        return {"kind": "local"}

    def close(self) -> None:
        return None

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RayRunner:
    """Runs tasks as Ray remote functions; see the module docstring.

    ``address``: ``"local"`` starts a Ray instance on this machine (shut down by :meth:`close`);
    anything else is passed to ``ray.init(address=...)``. When Ray is already initialised in this
    process (a test session, a notebook), that connection is used and left open.
    ``workers``: at most this many tasks in flight (None: as many as the cluster schedules).
    """

    kind = "ray"

    def __init__(self, address: str = LOCAL_RAY, *, workers: int | None = None):
        self.ray = _import_ray()
        self.address = address
        self.workers = workers
        self._owns = False
        if self.ray.is_initialized():
            log.warning("Ray is already initialised in this process: using that connection, not %r", address)
            self.address = "this process's Ray connection"
        else:
            self._connect()
            self._owns = True
        try:
            resources = self.ray.cluster_resources()
            alive = [node for node in self.ray.nodes() if node.get("Alive")]
        except Exception:
            self.close()
            raise
        self.cpus = int(resources.get("CPU", 0))
        self.gpus = int(resources.get("GPU", 0))
        self.nodes = len(alive)
        #: the most CPUs one node offers: a worker asking for more could never be scheduled
        self.node_cpus = max((int(node.get("Resources", {}).get("CPU", 0)) for node in alive), default=self.cpus)
        log.info("Ray cluster: %d node(s), %d CPU(s), %d GPU(s)", self.nodes, self.cpus, self.gpus)

    def _connect(self) -> None:
        # address "local" makes ray.init start a fresh instance even when `ray start` left one
        # running (without an address it would join that one)
        kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
        if self.address != LOCAL_RAY:
            _check_reachable(os.environ.get("RAY_ADDRESS", "auto") if self.address == "auto" else self.address)
        try:
            self.ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, self.ray.exceptions.RayError) as exc:
            where = "a local Ray instance" if self.address == LOCAL_RAY else f"the Ray cluster at {self.address!r}"
            raise RunnerError(
                f"could not start or reach {where}: {_first_line(exc)}. Start a cluster with `ray start --head` "
                "(then pass --ray auto), check the address and, with token authentication, that RAY_AUTH_TOKEN "
                "is the cluster's; or drop --ray to run in this process"
            ) from exc

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple], *, shared: tuple = (),
            gpu_share: float = 0.0) -> list[Any]:
        """``[fn(*shared, *task) for task in tasks]``, computed by Ray workers."""
        results: list[Any] = [None] * len(tasks)
        for index, value in self.map_unordered(fn, tasks, shared=shared, gpu_share=gpu_share):
            results[index] = value
        return results

    def map_unordered(self, fn: Callable[..., Any], tasks: Sequence[tuple], *, shared: tuple = (),
                      gpu_share: float = 0.0) -> Iterator[tuple[int, Any]]:
        """``(index, fn(*shared, *tasks[index]))`` in the order the workers finish.

        Algorithm
        ---------
        1. Put each shared input in the object store once; tasks receive references, which Ray
           resolves to the values (read-only, zero-copy NumPy on the same node).
        2. Submit up to ``workers`` tasks (all when None), each asking for one CPU, or a
           ``gpu_share`` of a GPU when > 0 and the cluster has GPUs.
        3. As each finishes, yield it and submit the next. A task's exception is raised here as
           Ray re-raises it (an instance of the original class, so callers' handlers still
           match); Ctrl-C or an abandoned iterator cancels what is still pending.
        """
        ray = self.ray
        shared_refs = [ray.put(value) for value in shared]
        options: dict[str, Any] = {"num_cpus": 1}
        if gpu_share > 0 and self.gpus > 0:
            options = {"num_cpus": 1, "num_gpus": gpu_share}
        remote = ray.remote(**options)(fn)
        limit = self.workers or len(tasks)
        pending: dict[Any, int] = {}
        submitted = 0
        try:
            while submitted < len(tasks) or pending:
                while submitted < len(tasks) and len(pending) < limit:
                    pending[remote.remote(*shared_refs, *tasks[submitted])] = submitted
                    submitted += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(done[0])
                yield index, self._result(done[0], index, len(tasks))
        finally:
            for ref in pending:  # never masks the error or interrupt that got us here
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def actor_map_unordered(self, make: type, make_args: tuple, method: str, tasks: Sequence[tuple], *,
                            gpu: bool = False) -> Iterator[tuple[int, Any]]:
        """``(index, make(*make_args).<method>(*tasks[index]))`` as workers finish, where each
        worker builds ``make(*make_args)`` once (a model) and then serves many tasks.

        Algorithm
        ---------
        1. Start the workers (Ray actors): one per GPU when ``gpu`` and the cluster has GPUs,
           else one per ``CPUS_PER_ACTOR`` CPUs (at least one); ``workers`` caps either count.
        2. Give each idle worker the next task; yield results as they come; a worker that dies
           fails the job (Ray restarts nothing that holds a model half-way through a shard).
        3. Stop the workers when done, failed or interrupted.
        """
        ray = self.ray
        use_gpu = gpu and self.gpus > 0
        n_workers = self.gpus if use_gpu else max(1, self.cpus // CPUS_PER_ACTOR)
        n_workers = max(1, min(n_workers, self.workers or n_workers, len(tasks) or 1))
        cpus = 1 if use_gpu else max(1, min(CPUS_PER_ACTOR, self.node_cpus))
        actor_class = ray.remote(num_cpus=cpus, num_gpus=1 if use_gpu else 0)(make)
        actors = [actor_class.remote(*make_args) for _ in range(n_workers)]
        idle = list(actors)
        pending: dict[Any, tuple[int, Any]] = {}
        submitted = 0
        try:
            while submitted < len(tasks) or pending:
                while submitted < len(tasks) and idle:
                    actor = idle.pop()
                    pending[getattr(actor, method).remote(*tasks[submitted])] = (submitted, actor)
                    submitted += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                index, actor = pending.pop(done[0])
                idle.append(actor)
                yield index, self._result(done[0], index, len(tasks))
        finally:
            # Ray cannot force-cancel an actor's call; killing the actor ends its pending calls.
            # Cleanup never masks the error or interrupt that got us here.
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)

    def _result(self, ref: Any, index: int, n_tasks: int) -> Any:
        """The task's value. A task's own exception is raised as it was raised in the task (not
        Ray's wrapper, whose text is the remote traceback); a worker or object Ray lost becomes a
        RunnerError that says what to do."""
        errors = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from exc
            raise RunnerError(f"task {index + 1} of {n_tasks} failed on a Ray worker: {_first_line(exc)}") from exc
        except errors.ActorDiedError as exc:
            raise RunnerError(
                f"a Ray worker could not start or died during task {index + 1} of {n_tasks} ({_first_line(exc)}); "
                "check that every node has Thresher, the model's weights and the device asked for, and read "
                "the Ray logs (/tmp/ray/session_latest/logs); or drop --ray"
            ) from exc
        except errors.RayError as exc:
            raise RunnerError(
                f"Ray lost task {index + 1} of {n_tasks} ({type(exc).__name__}: {_first_line(exc)}); a worker "
                "killed for memory is the usual cause (pass fewer --ray-workers or give the nodes more memory); "
                "a node without Thresher installed is another. Rerun the command, or drop --ray "
                "(embed keeps the shards it stored)"
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.address, "nodes": self.nodes, "cpus": self.cpus,
                "gpus": self.gpus, "workers": self.workers}

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
            self._owns = False

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` / ``ray://host:port`` nobody listens on: ``ray.init`` itself
    retries such an address for minutes. ``auto`` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RunnerError(f"nothing answers at the Ray address {address!r} ({exc}); start the head node "
                          "with `ray start --head` and pass the address it prints, or drop --ray to run "
                          "in this process") from exc


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RunnerError("--ray needs Ray: pip install 'thresher[ray]' (or pip install ray) on every "
                          "node, or drop --ray to run in this process") from exc
    return ray


#: Either runner; jobs take one and call ``map_unordered`` / ``describe`` (embed: ``actor_map_unordered``).
Runner = LocalRunner | RayRunner
