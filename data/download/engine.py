"""The asynchronous engine of the downloader: many URLs in flight across shards, none waiting for another.

Worker tasks take URLs from one bounded queue that runs through every shard in order, so a slow URL
holds one worker, never a batch. A shard's results are handed to ``finish`` as soon as its last URL is
done. There are twice as many worker tasks as requests allowed in flight (``download.concurrency``,
enforced per attempt by the fetcher): while some tasks wait for a retry's backoff or for their image to
be processed, the others keep every request slot busy. Decoding, resizing and encoding run in a process
pool; a task keeps its body until the pool is done with it, so at most ``2 x concurrency`` bodies are in
memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from tqdm import tqdm

from data.download.fetch import Fetcher, check_url
from data.download.image import ImageParams
from data.download.shards import Shard, input_problem
from data.download.records import INVALID_INPUT, INVALID_URL, OK, DownloadOptions, InputRow, Record, ValidationRecord
from data.download.workers import ImageWorkers, WorkerPool

Handler = Callable[[InputRow], Awaitable[Any]]
Finish = Callable[[Shard, list[dict[str, Any]]], None]
TASKS_PER_REQUEST = 2  # rows in progress per request slot (see the module docstring)


class Progress:
    """A tqdm bar over URLs with the live success ratio; ``tqdm`` itself shows the rate."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.bar = tqdm(
            total=total, desc=desc, unit="url", disable=not enabled, dynamic_ncols=True, smoothing=0.05, mininterval=0.5
        )
        self.ok = 0
        self.failed = 0
        self._shown = 0.0

    def update(self, status: str) -> None:
        """Count one finished URL."""
        if status == OK:
            self.ok += 1
        else:
            self.failed += 1
        self.bar.update(1)
        now = time.monotonic()
        if now - self._shown > 0.5:
            self._shown = now
            self._show()

    def advance(self, ok: int, failed: int) -> None:
        """Count a batch of finished URLs at once (a shard finished elsewhere)."""
        self.ok += ok
        self.failed += failed
        self.bar.update(ok + failed)
        self._show()

    def close(self) -> None:
        """Show the final counts and close the bar."""
        self._show()
        self.bar.close()

    def _show(self) -> None:
        ratio = self.ok / max(1, self.ok + self.failed)
        self.bar.set_postfix_str(f"ok {self.ok} ({ratio:.1%}) failed {self.failed}", refresh=False)


async def run_shards(
    shards: list[Shard], handle: Handler, finish: Finish, *, concurrency: int, progress: Progress
) -> None:
    """Run ``handle`` on every row to do, calling ``finish(shard, rows)`` once per shard that needs it.

    Args:
        shards: the plan; shards with nothing to do are only (re)written when ``rewrite`` is set. A shard's
            ``carried`` rows (prior results under a new label) join its new rows.
        handle: coroutine turning one input row into a record dataclass.
        finish: called in the event loop with a shard and the new rows (as dicts) when it is complete.
        concurrency: requests in flight (the fetcher enforces it); ``TASKS_PER_REQUEST`` times as many rows
            are in progress at once.
        progress: counts every finished row.
    """
    for shard in shards:
        if not shard.todo and shard.rewrite:
            finish(shard, list(shard.carried))
    active = [s for s in shards if s.todo]
    pending: dict[int, list[dict[str, Any]]] = {s.index: list(s.carried) for s in active}
    workers = min(TASKS_PER_REQUEST * concurrency, sum(len(s.todo) for s in active))
    queue: asyncio.Queue[tuple[Shard, InputRow] | None] = asyncio.Queue(maxsize=workers + 1)

    async def produce() -> None:
        for shard in active:
            for row in shard.todo:
                await queue.put((shard, row))
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            shard, row = item
            record = await handle(row)
            progress.update(record.status)
            done = pending[shard.index]
            done.append(dict(vars(record)))
            if len(done) == len(shard.carried) + len(shard.todo):
                finish(shard, pending.pop(shard.index))

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for _ in range(workers):
                group.create_task(work())
    except BaseExceptionGroup as failed:  # the first failure (e.g. WorkerCrashError) ends the run as itself
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


@dataclass(frozen=True)
class EngineJob:
    """What the engine needs to run shards anywhere (picklable: a distributed task gets one)."""

    options: DownloadOptions
    record_type: type  # Record (download) or ValidationRecord (validate-urls)
    images_dir: Path  # stored images go to <images_dir>/<folder>/<key>.jpg

    @property
    def downloading(self) -> bool:
        return self.record_type is Record


async def run_engine(
    job: EngineJob,
    shards: list[Shard],
    finish: Finish,
    progress: Progress,
    pool: WorkerPool | None = None,
    wrap: Callable[[Handler], Handler] | None = None,
) -> None:
    """The event-loop part of a run: one HTTP session and, when images are stored, ``pool``'s workers.

    ``wrap`` may decorate the row handler (a distributed task journals every record through it).
    """
    opts = job.options
    async with Fetcher(opts) as fetcher:
        if job.downloading:
            params = ImageParams(opts.image_size, opts.resize_mode, opts.jpeg_quality, opts.max_pixels, opts.upscale)
            assert pool is not None, "a download needs its worker pool"
            handler = download_handler(fetcher, ImageWorkers(pool, params), job.images_dir)
        else:
            handler = validate_handler(fetcher)
        if wrap is not None:
            handler = wrap(handler)
        await run_shards(shards, handler, finish, concurrency=opts.concurrency, progress=progress)


def _new_record(record_type: type, row: InputRow) -> Any:
    """A record for ``row``: ``ok`` so far, or the status and reason of a row that must not be requested."""
    record = record_type(row.key, row.url, row.label, OK)
    problem = input_problem(row)
    if problem:
        record.status, record.reason = INVALID_INPUT, problem
        return record
    problem = check_url(row.url)
    if problem:
        record.status, record.reason = INVALID_URL, problem
    return record


def download_handler(fetcher: Fetcher, workers: ImageWorkers, out_dir: Path) -> Handler:
    """A handler that fetches a row's URL and stores ``<out_dir>/<folder>/<key>.jpg`` through ``workers``."""

    async def handle(row: InputRow) -> Record:
        start = time.monotonic()
        record: Record = _new_record(Record, row)
        if record.status != OK:
            return record
        fetched = await fetcher.fetch(row.url)
        record.status, record.reason, record.http_status = fetched.status, fetched.reason, fetched.http_status
        record.attempts, record.bytes = fetched.attempts, fetched.size or 0
        relative = f"{row.folder}/{row.key}.jpg"
        if fetched.status == OK:
            assert fetched.body is not None, "an ok GET always carries its body"
            image = await workers.process(fetched.body, str(out_dir / relative))
            record.status, record.reason = image.status, image.reason
            record.orig_width, record.orig_height = image.orig_width, image.orig_height
            record.width, record.height, record.sha256 = image.width, image.height, image.sha256
            record.path = relative if image.status == OK else ""
        if record.status != OK:  # a file left by an interrupted earlier run must not outlive its failure
            (out_dir / relative).unlink(missing_ok=True)
        record.elapsed_s = round(time.monotonic() - start, 4)
        return record

    return handle


def validate_handler(fetcher: Fetcher) -> Handler:
    """A handler that only checks a row's URL (HEAD, or a ranged GET of its first bytes)."""

    async def handle(row: InputRow) -> ValidationRecord:
        record: ValidationRecord = _new_record(ValidationRecord, row)
        if record.status != OK:
            return record
        probed = await fetcher.probe(row.url)
        record.status, record.reason, record.http_status = probed.status, probed.reason, probed.http_status
        record.attempts, record.content_type, record.bytes = probed.attempts, probed.content_type, probed.size
        record.elapsed_s = round(probed.elapsed_s, 4)
        return record

    return handle
