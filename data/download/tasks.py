"""A task: a few planned shards run in any process, or on any machine that sees the output folder.

A task runs its own event loop, HTTP session and image workers (:func:`data.download.engine.run_engine`)
on its shards, one queue through all of them as in the one-machine path (a shard's slowest URLs hold no
slot the next shard could use), writes each shard's result file as soon as it is complete and reports it.
Every finished row is also appended to its shard's journal (``shard-NNNNNN.journal.jsonl`` beside the result
files), so a task whose process dies (the out-of-memory killer, a lost node) and is started again resumes
from what its shards already stored instead of fetching it all again. The main process removes the
journals once the run's manifest is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from data.download.engine import EngineJob, Handler, Progress, run_engine
from data.download.records import OK, RETRYABLE, InputRow
from data.core.interrupt import run_event_loop
from data.core.io import write_parquet
from data.download.shards import Shard, arrow_schema, shard_path, shard_table
from data.download.workers import WorkerPool, worker_pool

log = logging.getLogger(__name__)

# Tests only: the path of a marker file. The first task to create it ends its process (os._exit) after
# journalling two rows, as a killed worker would; every later task finds the marker and runs normally.
EXIT_ONCE_ENV = "PC_DOWNLOAD_TEST_EXIT_ONCE"
_STOPPED: list[bool] = []  # this process was told to stop (SIGTERM while a task ran)


@dataclass(frozen=True)
class ShardJob:
    """What every task of a run shares (picklable): the engine's job, where results go, the rerun policy."""

    engine: EngineJob
    state_dir: Path
    retry_failed: bool = False


@dataclass(frozen=True)
class ShardDone:
    """What a task reports for each shard it wrote: its rows' outcomes and how many came from its journal."""

    index: int
    ok: int
    failed: int
    bytes: int
    resumed: int


@dataclass(frozen=True)
class TaskDone:
    """What a task returns: its shards, and its own rate (images stored per second of the task)."""

    shards: list[ShardDone]
    seconds: float

    @property
    def ok_per_s(self) -> float:
        return sum(s.ok for s in self.shards) / self.seconds if self.seconds else 0.0


Report = Callable[[ShardDone], None]


def journal_path(state_dir: Path, index: int) -> Path:
    """Where shard ``index`` journals its finished rows while it runs as a task."""
    return state_dir / f"shard-{index:06d}.journal.jsonl"


def _read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Journalled records by key; a line cut short by a killed process is left out."""
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records[record["key"]] = record
    return records


def _usable(record: dict[str, Any], row: InputRow, job: ShardJob) -> bool:
    """Whether a journalled record still stands for ``row``: same URL and label, final, its image present."""
    if (record.get("url"), record.get("label")) != (row.url, row.label):
        return False
    if record.get("status") == OK:
        return not job.engine.downloading or (job.engine.images_dir / str(record.get("path", ""))).is_file()
    return record.get("status") not in RETRYABLE and not job.retry_failed


def resume_from_journal(shard: Shard, job: ShardJob) -> tuple[Shard, int]:
    """``shard`` with the rows its journal already holds moved from ``todo`` to ``carried``; how many."""
    journal = _read_journal(journal_path(job.state_dir, shard.index))
    todo, carried = [], list(shard.carried)
    for row in shard.todo:
        record = journal.get(row.key)
        if record is not None and _usable(record, row, job):
            carried.append(record)
        else:
            todo.append(row)
    resumed = len(shard.todo) - len(todo)
    return dataclasses.replace(shard, todo=todo, carried=carried, rewrite=True), resumed


def _exit_once_for_tests(journalled: int) -> None:
    marker = os.environ.get(EXIT_ONCE_ENV)
    if not marker or journalled < 2:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(75)


def _journalling(journals: dict[str, IO[str]]) -> Any:
    """A handler decorator that appends each finished record to its shard's journal (one JSON line, flushed)."""
    count = [0]

    def wrap(handle: Handler) -> Handler:
        async def journalled(row: InputRow) -> Any:
            record = await handle(row)
            out = journals[row.key]
            out.write(json.dumps(vars(record)) + "\n")
            out.flush()
            count[0] += 1
            _exit_once_for_tests(count[0])
            return record

        return journalled

    return wrap


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM cancels the running shard (its image workers finish their atomic writes), as in the main
    process; only where signals can be handled (a Ray worker may run tasks off its main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None, "called from inside the event loop"

    def stop() -> None:
        _STOPPED.append(True)  # a task already queued to this process must not start after it
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _finisher(job: ShardJob, todo_keys: dict[int, set[str]], resumed: dict[int, int], report: Report | None):
    """The engine's ``finish``: write a complete shard's result file, then count and report it."""
    schema = arrow_schema(job.engine.record_type)
    done: list[ShardDone] = []

    def finish(shard: Shard, rows: list[dict[str, Any]]) -> None:
        write_parquet(shard_path(job.state_dir, shard.index), shard_table(shard, rows, schema))
        new = [r for r in rows if r["key"] in todo_keys[shard.index]]
        ok = sum(r["status"] == OK for r in new)
        size = sum(r["bytes"] or 0 for r in rows)
        done.append(ShardDone(shard.index, ok, len(new) - ok, size, resumed[shard.index]))
        if report is not None:
            report(done[-1])

    return finish, done


async def _run(job: ShardJob, shards: list[Shard], finish: Any, pool: WorkerPool | None, journals: Any) -> None:
    with _stop_on_sigterm():
        progress = Progress(0, "", enabled=False)
        await run_engine(job.engine, shards, finish, progress, pool, _journalling(journals))


def process_shards(job: ShardJob, shards: list[Shard], report: Report | None = None) -> TaskDone:
    """Run planned shards here: fetch (and store) what is left of them, write each one's result file.

    ``report`` is called with each shard as soon as its result file is written (progress for the main process).

    Raises:
        KeyboardInterrupt: the task was stopped (SIGTERM, Ctrl-C); the journals keep what it finished.
    """
    if _STOPPED:
        raise KeyboardInterrupt
    started = time.monotonic()
    todo_keys = {s.index: {row.key for row in s.todo} for s in shards}
    resumed_shards = [resume_from_journal(s, job) for s in shards]
    shards, resumed = [s for s, _ in resumed_shards], {s.index: n for s, n in resumed_shards}
    finish, done = _finisher(job, todo_keys, resumed, report)
    job.state_dir.mkdir(parents=True, exist_ok=True)
    opts = job.engine.options
    pool_context = worker_pool(opts.workers, opts.max_pixels) if job.engine.downloading else contextlib.nullcontext()
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(pool_context)
        journals: dict[str, IO[str]] = {}
        for shard in shards:
            out = stack.enter_context(open(journal_path(job.state_dir, shard.index), "a", encoding="utf-8"))
            journals.update((row.key, out) for row in shard.todo)
        try:
            run_event_loop(_run(job, shards, finish, pool, journals))
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
    return TaskDone(done, round(time.monotonic() - started, 3))
