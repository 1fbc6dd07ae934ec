"""Where the shards of a run go past this process: several local processes, or Ray tasks on a cluster.

Both distributors cut the planned shards into tasks of a few consecutive shards and run
:func:`data.download.tasks.process_shards` on each of them elsewhere (its own event loop, HTTP session and
image workers), writing into the output folder the workers share. Each shard is reported to the main
process as soon as its result file is written (the progress bar moves per shard); the main process then
assembles the manifest exactly as the one-machine path does, so the result is the same file for file. A
task whose process dies is run again and resumes from its shards' journals; after too many deaths the run
stops with a :class:`WorkerCrashError` (completed shards are kept for a rerun). ``download.distributor =
"local"`` never comes here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from typing import Any, Callable, Iterator

from data.core.errors import StageError
from data.download.shards import Shard
from data.download.tasks import ShardDone, ShardJob, TaskDone, process_shards
from data.download.workers import WorkerCrashError, exit_with_parent

log = logging.getLogger(__name__)

OnDone = Callable[[ShardDone], None]
MAX_TASK_RETRIES = 3  # a task runs again this many times after its process died
TASKS_PER_SLOT = 2  # tasks per process (or Ray slot) when download.shards_per_task = 0: a task ends with its
# slowest URLs, and a second one in the same slot keeps it busy meanwhile
RAY_INSTALL = "make install-distributed (or: poetry install --with distributed)"


class DistributorUnavailable(StageError):
    """The distributor asked for is not installed here."""


def check_available(name: str) -> None:
    """Raise :class:`DistributorUnavailable` (before anything runs) when ``name`` cannot work here."""
    if name != "ray":
        return
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise DistributorUnavailable(
            f'download.distributor = "ray" needs Ray, which is not installed: run {RAY_INSTALL}, '
            'or choose download.distributor = "processes" or "local"'
        ) from exc


def run_distributed(name: str, job: ShardJob, shards: list[Shard], on_done: OnDone) -> list[float]:
    """Run every shard that has rows to do on the distributor ``name``; ``on_done`` once for each shard written.

    Returns each task's rate (images stored per second of the task).

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM; the tasks are stopped first (their journals keep their work).
        WorkerCrashError: a task died more than ``MAX_TASK_RETRIES`` times.
    """
    seen: set[int] = set()

    def once(done: ShardDone) -> None:  # a task run again reports the shards it had written again
        if done.index not in seen:
            seen.add(done.index)
            on_done(done)

    with _sigterm_interrupts():
        if name == "processes":
            return _run_processes(job, shards, once, seen)
        if name == "ray":
            return _run_ray(job, shards, once)
        raise ValueError(f"unknown distributor {name!r}")


def task_groups(shards: list[Shard], slots: int, per_task: int = 0) -> list[list[Shard]]:
    """Consecutive shards, ``per_task`` to a task (0: ``TASKS_PER_SLOT`` tasks for each of ``slots``)."""
    size = per_task or max(1, math.ceil(len(shards) / (TASKS_PER_SLOT * max(1, slots))))
    return [shards[i : i + size] for i in range(0, len(shards), size)]


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the main process as Ctrl-C does (the local path's engine does the same)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------- processes
_EVENTS: Any = None  # in a shard process: the queue its finished shards are reported on


def _init_process(parent_pid: int, environment: dict[str, str], events: Any) -> None:
    """A shard process leaves Ctrl-C to the main process (which stops it), ends with it, reports on ``events``
    and has the environment of now (a forkserver started earlier in this process has the one of its start)."""
    global _EVENTS
    _init_helper(parent_pid)
    os.environ.clear()
    os.environ.update(environment)
    _EVENTS = events


def _process_task(job: ShardJob, shards: list[Shard]) -> TaskDone:
    return process_shards(job, shards, _EVENTS.put)


def _run_processes(job: ShardJob, shards: list[Shard], on_done: OnDone, seen: set[int]) -> list[float]:
    """Tasks in a pool of processes; a pool broken by a dead process is replaced and what is left runs again."""
    count = job.engine.options.processes or os.cpu_count() or 1
    # forkserver: this process may already run threads (tqdm's monitor, a server), which fork must not copy
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["data.download.tasks"])
    manager = SyncManager(ctx=context)  # a queue served by its own process: a dying client cannot jam it
    manager.start(_init_helper, (os.getpid(),))
    try:
        return _run_pools(job, shards, on_done, seen, (context, manager.Queue(), count))
    finally:
        manager.shutdown()


def _init_helper(parent_pid: int) -> None:
    """The queue's process, like a shard process, leaves Ctrl-C to the main process and ends with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _run_pools(job: ShardJob, shards: list[Shard], on_done: OnDone, seen: set[int], setup: Any) -> list[float]:
    """Up to ``MAX_TASK_RETRIES`` + 1 pools, each running what is left (``seen``: the shards reported)."""
    context, events, count = setup
    rates: list[float] = []
    for _ in range(MAX_TASK_RETRIES + 1):
        left = [s for s in shards if s.index not in seen]
        if not left:
            return rates
        groups = task_groups(left, count, job.engine.options.shards_per_task)
        args = (os.getpid(), dict(os.environ), events)
        executor = ProcessPoolExecutor(min(count, len(groups)), context, initializer=_init_process, initargs=args)
        futures = [executor.submit(_process_task, job, group) for group in groups]
        try:
            rates += _collect(futures, events, on_done)
        except BrokenProcessPool:
            log.warning("a shard process died: what its tasks left runs again (their journals keep their rows)")
        except BaseException:
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()  # SIGTERM: the shards in progress stop after their atomic writes
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        _drain(events, on_done)
    if any(s.index not in seen for s in shards):
        raise WorkerCrashError(
            f"shard processes died {MAX_TASK_RETRIES + 1} times; if the system is short of memory, lower "
            "download.processes, download.workers or download.concurrency. Completed shards are saved: "
            "rerun to resume"
        )
    return rates


def _collect(futures: list[Future], events: Any, on_done: OnDone) -> list[float]:
    """Report shards as their tasks write them, until every task has ended; the tasks' rates."""
    pending = set(futures)
    while pending:
        _drain(events, on_done, wait=0.2)
        for future in [f for f in pending if f.done()]:
            pending.discard(future)
            future.result()  # a task's error (BrokenProcessPool, a StageError) ends the run as itself
    return [f.result().ok_per_s for f in futures]


def _drain(events: Any, on_done: OnDone, wait: float = 0.0) -> None:
    """Hand every reported shard to ``on_done`` (waiting up to ``wait`` s for the first)."""
    try:
        on_done(events.get(timeout=wait) if wait else events.get_nowait())
        while True:
            on_done(events.get_nowait())
    except queue.Empty:
        return


# ------------------------------------------------------------------------------------------------- ray
def _run_ray(job: ShardJob, shards: list[Shard], on_done: OnDone) -> list[float]:
    """Tasks on the Ray cluster at ``RAY_ADDRESS`` (one started here when it is unset), retried when they die."""
    import ray
    from ray.util.queue import Queue

    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    cpus = job.engine.options.task_cpus
    slots = int(ray.cluster_resources().get("CPU", 1) / cpus)
    log.info("ray: %s, %d task slots", os.environ.get("RAY_ADDRESS") or "a local cluster", slots)
    task = ray.remote(num_cpus=cpus, max_retries=MAX_TASK_RETRIES)(_ray_task)
    events = Queue()
    job_ref = ray.put(job)
    groups = task_groups(shards, slots, job.engine.options.shards_per_task)
    pending = {task.remote(job_ref, group, events): group[0].index for group in groups}
    rates: list[float] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            for done in events.get_nowait_batch(events.qsize()):
                on_done(done)
            for ref in ready:
                rates.append(_ray_result(ray, ref, pending.pop(ref)).ok_per_s)
        for done in events.get_nowait_batch(events.qsize()):
            on_done(done)
        return rates
    except BaseException:
        for ref in pending:
            ray.cancel(ref)  # a KeyboardInterrupt in the task: its image workers finish their writes
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
        raise
    finally:
        events.shutdown()
        if started_here:
            ray.shutdown()


def _ray_task(job: ShardJob, shards: list[Shard], events: Any) -> TaskDone:
    return process_shards(job, shards, events.put)


def _ray_result(ray: Any, ref: Any, first: int) -> TaskDone:
    """A task's result; a stage error raised in a task ends the run as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        raise KeyboardInterrupt from None
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, StageError):
            raise exc.cause from None
        if isinstance(exc.cause, KeyboardInterrupt):  # Ctrl-C reached the task before this process
            raise KeyboardInterrupt from None
        raise
    except ray.exceptions.WorkerCrashedError as exc:
        raise WorkerCrashError(
            f"the Ray task from shard {first} died {MAX_TASK_RETRIES + 1} times; if its node is short of memory, "
            "lower download.workers or download.concurrency. Completed shards are saved: rerun to resume"
        ) from exc
