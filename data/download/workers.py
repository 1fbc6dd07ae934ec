"""Image work in worker processes: their start and end, and a ``ProcessPoolExecutor`` fed in small batches.

Every job handed to a process pool costs the event-loop thread a wake-up of the pool's own threads, and
those threads then compete with the loop for the GIL. Bodies that arrive in the same loop iteration
are therefore sent together (up to ``max_batch``), and their results are handed back one by one.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Callable, Iterator

import cv2

from data.core.errors import StageError
from data.download.image import ImageParams, ImageResult, process_batch
from data.download.records import DECODE_ERROR


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_with_parent(parent_pid: int) -> None:
    """End this worker as soon as ``parent_pid`` ends (even by ``kill -9``), so that no worker outlives it."""
    try:
        handle: int | None = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(0)
    except OSError:  # a kernel without pidfd: poll instead
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])  # a pidfd becomes readable when its process ends
        else:
            while _alive(parent_pid):
                time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def init_worker(max_pixels: int, parent_pid: int) -> None:
    """Worker-process initialiser: leave Ctrl-C to the parent, end with it, one OpenCV thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)  # read by OpenCV on first decode
    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # corrupt files are data, not logs


def start_pool(workers: int, max_pixels: int) -> ProcessPoolExecutor:
    """Start every worker now, with Ctrl-C and SIGTERM blocked in them.

    A signal sent to the whole process group (as a terminal sends Ctrl-C) then reaches only the parent,
    which stops the workers itself, cleanly; a worker also ends by itself when the parent is killed.
    Workers are forked while this process has a single thread (call this before the event loop starts):
    a fork is instant and inherits the imported modules, and with one thread there is no lock held by
    another thread to copy. Objects that exist now are frozen out of the garbage collector first, so that
    a worker's collections do not write to (and so copy) the pages it shares with this process. With
    other threads running, or outside Linux, workers come from a forkserver instead (slower to start, safe).
    """
    alone = threading.active_count() == 1
    method = "fork" if alone and sys.platform.startswith("linux") else "forkserver"  # macOS: fork is unsafe
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # a worker re-runs the parent's main module (e.g. data.download.stage) first: preload what it imports
        context.set_forkserver_preload(["data.download.workers", "data.download.engine", "data.download.shards"])
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(max_pixels, os.getpid()))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    gc.freeze()
    try:
        for _ in range(workers):  # the first submit starts the workers (fork: all of them at once)
            pool.submit(int)
    finally:
        gc.unfreeze()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pool


class WorkerCrashError(StageError, RuntimeError):
    """The image workers keep dying (e.g. killed for memory): the run stops rather than fail every image."""


class WorkerPool:
    """The image worker processes, replaced as a whole when one of them dies.

    A worker that dies (a decoder crash, the out-of-memory killer) breaks its whole
    ``ProcessPoolExecutor``: every job in flight on it fails with ``BrokenProcessPool``. The pool is then
    restarted, and the bodies that were in flight are run again one at a time in a separate one-process
    executor (:meth:`isolated`), so that the body that kills a worker by itself is found and fails alone.
    """

    def __init__(self, workers: int, max_pixels: int, max_restarts: int = 10) -> None:
        self.workers = workers
        self.max_pixels = max_pixels
        self.max_restarts = max_restarts
        self.restarts = 0
        self.executor = start_pool(workers, max_pixels)
        self._isolation: ProcessPoolExecutor | None = None
        self._isolation_lock = asyncio.Lock()  # binds to the running loop on first use

    def restart(self, broken: ProcessPoolExecutor) -> None:
        """Replace ``broken`` (once, however many jobs saw it break); too many restarts end the run."""
        if broken is not self.executor:
            return
        self.restarts += 1
        broken.shutdown(wait=False, cancel_futures=True)
        if self.restarts > self.max_restarts:
            raise WorkerCrashError(
                f"the image worker processes died {self.restarts} times; if the system is short of memory, "
                "lower download.workers or download.concurrency. Completed shards are saved: rerun to resume"
            )
        self.executor = start_pool(self.workers, self.max_pixels)

    async def isolated(
        self, job: Callable[..., list[ImageResult]], data: bytes, target: str, params: ImageParams
    ) -> ImageResult:
        """Run one body alone in a one-process executor; a decode error when that process dies on it."""
        async with self._isolation_lock:
            if self._isolation is None:
                self._isolation = start_pool(1, self.max_pixels)
            try:
                return (await asyncio.wrap_future(self._isolation.submit(job, [(data, target)], params)))[0]
            except BrokenProcessPool:
                self._isolation.shutdown(wait=False, cancel_futures=True)
                self._isolation = None
                return ImageResult(DECODE_ERROR, "the image worker process died on this body (decoder crash)")

    def shutdown(self) -> None:
        """Stop the workers: running jobs finish their (atomic) writes, queued ones are dropped."""
        for executor in (self.executor, self._isolation):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


@contextmanager
def worker_pool(workers: int, max_pixels: int) -> Iterator[WorkerPool]:
    """A :class:`WorkerPool`, shut down on exit."""
    pool = WorkerPool(workers, max_pixels)
    try:
        yield pool
    finally:
        pool.shutdown()


class ImageWorkers:
    """Await :func:`data.download.image.process_image` on a pool, batching the jobs of one loop iteration.

    ``job`` is the function the workers run on a batch (:func:`data.download.image.process_batch`).
    """

    def __init__(
        self,
        pool: WorkerPool,
        params: ImageParams,
        max_batch: int = 8,
        job: Callable[..., list[ImageResult]] = process_batch,
    ) -> None:
        self.pool = pool
        self.params = params
        self.max_batch = max_batch
        self.job = job
        self._batch: list[tuple[bytes, str, asyncio.Future[ImageResult]]] = []

    async def process(self, data: bytes, target: str) -> ImageResult:
        """Decode, resize and store one body at ``target`` in a worker process."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[ImageResult] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._flush)
        self._batch.append((data, target, result))
        if len(self._batch) >= self.max_batch:
            self._flush()
        executor = self.pool.executor
        try:
            return await result
        except BrokenProcessPool:  # a worker died with this body in flight, maybe because of another one
            self.pool.restart(executor)
            return await self.pool.isolated(self.job, data, target, self.params)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        jobs = [(data, target) for data, target, _ in batch]
        results = [result for _, _, result in batch]
        try:
            done = self.pool.executor.submit(self.job, jobs, self.params)
        except BrokenProcessPool as exc:  # broken before the failure reached its waiters: same path
            for result in results:
                if not result.done():
                    result.set_exception(exc)
            return
        loop = asyncio.get_running_loop()

        def wake(finished: Future) -> None:  # runs in the pool's thread
            try:
                loop.call_soon_threadsafe(_hand_out, finished, results)
            except RuntimeError:  # the loop is gone (run interrupted): nobody is waiting any more
                pass

        done.add_done_callback(wake)


def _hand_out(done: Future, results: list[asyncio.Future[ImageResult]]) -> None:
    """Give each waiting coroutine its own result (or the batch's exception)."""
    error = None if done.cancelled() else done.exception()
    for index, result in enumerate(results):
        if result.done():  # its coroutine was cancelled
            continue
        if done.cancelled():
            result.cancel()
        elif error is not None:
            result.set_exception(error)
        else:
            result.set_result(done.result()[index])
