"""Dynamic batching: concurrent requests share one model call, computed off the event loop.

Handlers put items on a bounded asyncio queue and await a future. One batcher coroutine waits until an
inference thread is free, takes the first waiting item, then gathers more until ``max_batch_size`` or
until ``batch_timeout`` seconds have passed since the first, and hands the batch to the thread pool.
While a batch runs, new requests queue up and form the next batch, so under load batches fill on their
own and an idle server adds at most ``batch_timeout`` to a lone request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from deploy.metrics import Metrics

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue has no room for a request's images: answer 503 with Retry-After."""


@dataclass
class _Item:
    payload: Any
    future: "asyncio.Future[Any]"


class Batcher:
    """Collects payloads into batches for ``run_batch`` (a function of a list, returning one result each).

    A result that is an exception instance is raised in its own request only.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        metrics: Metrics,
        *,
        max_batch_size: int,
        batch_timeout: float,
        max_queue: int,
        workers: int,
    ) -> None:
        self._run_batch = run_batch
        self._metrics = metrics
        self.max_batch_size, self.batch_timeout = max_batch_size, batch_timeout
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue)
        self._free = asyncio.Semaphore(workers)
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="inference")
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batcher coroutine on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        """Stop collecting, cancel what waits, and let the threads go."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, payloads: Sequence[Any]) -> list["asyncio.Future[Any]"]:
        """Queue every payload of one request, or none of them.

        Raises:
            QueueFull: fewer free places than payloads.
        """
        if self._queue.maxsize - self._queue.qsize() < len(payloads):
            raise QueueFull(f"{self._queue.qsize()} images are waiting (serve.max_queue = {self._queue.maxsize})")
        loop = asyncio.get_running_loop()
        futures = []
        for payload in payloads:
            item = _Item(payload, loop.create_future())
            self._queue.put_nowait(item)
            futures.append(item.future)
        self._metrics.queue_depth.set(self._queue.qsize())
        return futures

    async def _take(self, deadline: float) -> _Item | None:
        """The next item, waiting until ``deadline`` (loop time) at most."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._free.acquire()
            batch = [await self._queue.get()]
            deadline = loop.time() + self.batch_timeout
            while len(batch) < self.max_batch_size and (item := await self._take(deadline)) is not None:
                batch.append(item)
            self._metrics.queue_depth.set(self._queue.qsize())
            batch = [item for item in batch if not item.future.done()]  # requests that timed out or left
            if not batch:
                self._free.release()
                continue
            task = loop.create_task(self._infer(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _infer(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._run_batch, [item.payload for item in batch]
            )
        except Exception as exc:  # a failed model call fails the requests of this batch, not the server
            log.exception("inference failed for a batch of %d", len(batch))
            results = [exc] * len(batch)
        finally:
            self._free.release()
        self._metrics.batch_size.observe(len(batch))
        self._metrics.inference_seconds.observe(time.perf_counter() - started)
        for item, result in zip(batch, results):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
