"""Image work in worker processes: their start and end, and a ``ProcessPoolExecutor`` fed in small batches.

Every job handed to a process pool costs the event-loop thread a wake-up of the pool's own threads, and
those threads then compete with the loop for the GIL. Bodies that arrive in the same loop iteration
are therefore sent together (up to ``max_batch``), and their results are handed back one by one.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

import cv2

from data.dl_image import ImageParams, ImageResult, process_batch


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_with(parent_pid: int) -> None:
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
    _exit_with(parent_pid)
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)  # read by OpenCV on first decode
    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # corrupt files are data, not logs


def start_pool(workers: int, max_pixels: int) -> ProcessPoolExecutor:
    """Start every worker now, with Ctrl-C and SIGTERM blocked in them.

    A signal sent to the whole process group (as a terminal sends Ctrl-C) then reaches only the parent,
    which stops the workers itself, cleanly; a worker also ends by itself when the parent is killed.
    Workers come from a forkserver that imported the image code once: spawn would import everything per
    worker, fork would copy the locks of this process's threads.
    """
    context = multiprocessing.get_context("forkserver")
    # a worker re-runs the parent's main module (e.g. data.download) first: preload what it imports
    context.set_forkserver_preload(["data.dl_workers", "data.dl_pipeline", "data.dl_shards"])
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                               initargs=(max_pixels, os.getpid()))
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        for _ in range(workers):  # each submit to a pool without an idle worker spawns one
            pool.submit(int)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pool


class ImageWorkers:
    """Await :func:`data.dl_image.process_image` on a pool, batching the jobs of one loop iteration."""

    def __init__(self, pool: ProcessPoolExecutor, params: ImageParams, max_batch: int = 8) -> None:
        self.pool = pool
        self.params = params
        self.max_batch = max_batch
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
        return await result

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        jobs = [(data, target) for data, target, _ in batch]
        done = self.pool.submit(process_batch, jobs, self.params)
        loop = asyncio.get_running_loop()
        results = [result for _, _, result in batch]

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
