"""``make download-images`` and ``make validate-urls``: fetch, check, resize and store every image URL.

One pass: downloading is the validation. For every input row the manifest gets exactly one row with a
status (``ok`` or a failure status) and a reason; images land in ``<out>/<label>/<key>.jpg``, written
atomically. Work is cut into shards whose results are saved as they complete, so a run killed at any
moment resumes where it stopped, retrying only what failed for a transient reason.

Usage::

    python -m data.download [--input catalogue.parquet] [--out DIR] [--retry-failed] [--limit N]
    python -m data.download --validate-only      # HEAD / ranged GET only, writes url_validation.parquet
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack


from data.core.config import Config
from data.core.interrupt import run_event_loop
from data.core.io import exclusive, write_json, write_parquet
from data.download.distribute import check_available, run_distributed
from data.download.output import (
    Target,
    download_target,
    remove_stale_temporaries,
    run_numbers,
    run_report,
    validation_target,
)
from data.download.engine import EngineJob, Progress, run_engine
from data.download.shards import (
    Columns,
    InputTable,
    PriorResults,
    Shard,
    arrow_schema,
    assemble,
    check_input,
    plan_shards,
    read_input,
    shard_path,
    shard_table,
)
from data.download.records import OK, RETRYABLE, DownloadOptions, InputRow, Record
from data.download.tasks import ShardDone, ShardJob, journal_path
from data.download.workers import WorkerPool, worker_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a run produced: the manifest (or validation file), its JSON report, and the report itself."""

    output: Path
    report_path: Path
    report: dict[str, Any]

    @property
    def ok(self) -> int:
        """URLs stored (or, for validation, URLs that answer with an image)."""
        return int(self.report["ok"])


@dataclass(frozen=True)
class _Job:
    """Everything a run needs, for downloads and validation alike."""

    target: Target
    table: InputTable
    options: DownloadOptions
    retry_failed: bool
    progress: bool
    pool: WorkerPool | None = None  # image workers of this process (local downloads only)

    @property
    def downloading(self) -> bool:
        return self.target.record_type is Record


def _log_input(table: InputTable) -> None:
    if table.duplicate_keys:
        log.warning(
            "%d input rows repeat a key already seen and are left out (%d with another URL or label), e.g. %s",
            len(table.duplicate_keys),
            len(table.conflicting_keys),
            ", ".join(table.duplicate_keys[:5]),
        )


def _move_image(source: Path, target: Path) -> bool:
    """Move a stored image to its new label's folder; whether it is now at ``target``.

    Idempotent: a run killed after the move (before its shard was saved) finds the file at ``target``.
    """
    if source != target and source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    return target.is_file()


def _plan(job: _Job) -> list[Shard]:
    """The shards of the run: prior results that are done are kept, images of relabelled URLs moved."""
    images = job.target.images_dir

    def is_done(row: InputRow, prev: dict[str, Any]) -> bool:
        if prev["status"] == OK:
            return not job.downloading or (
                prev["path"] == f"{row.folder}/{row.key}.jpg" and (images / prev["path"]).is_file()
            )
        return not job.retry_failed and prev["status"] not in RETRYABLE

    def carry(row: InputRow, prev: dict[str, Any]) -> dict[str, Any] | None:
        """A prior result of the same URL under another label: its image moves to the new label's folder."""
        record = {**prev, "label": row.label}
        if job.downloading and prev["status"] == OK:
            record["path"] = f"{row.folder}/{row.key}.jpg"
            moved = _move_image(images / prev["path"], images / record["path"])
            return record if moved else None  # the file is gone: fetch it again
        return record if is_done(row, record) else None

    prior = PriorResults(job.target.state_dir, arrow_schema(job.target.record_type))
    return plan_shards(job.table.rows, job.options.shard_size, prior, is_done, carry)


def _run(job: _Job) -> RunSummary:
    """Plan the shards, run what is left (here or distributed), assemble the output and write the report."""
    target, opts, schema = job.target, job.options, arrow_schema(job.target.record_type)
    shards = _plan(job)
    todo = sum(len(s.todo) for s in shards)
    relabelled = sum(len(s.carried) for s in shards)
    log.info(
        "%s: %d URLs in %d shards, %d to do, %d already done%s",
        target.stage,
        len(job.table.rows),
        len(shards),
        todo,
        len(job.table.rows) - todo,
        moved_note(relabelled),
    )
    written: dict[str, Any] = {"shards": 0, "bytes": 0, "resumed": 0, "task_rates": []}

    def finish(shard: Shard, rows: list[dict[str, Any]]) -> None:
        write_parquet(shard_path(target.state_dir, shard.index), shard_table(shard, rows, schema))
        written["shards"] += 1
        written["bytes"] += sum(r["bytes"] or 0 for r in rows)

    progress = Progress(todo, target.stage, enabled=job.progress and todo > 0)
    start = time.monotonic()
    try:
        if todo or any(s.rewrite for s in shards):
            _execute(job, shards, finish, progress, written)
    except asyncio.CancelledError:  # SIGTERM: same as Ctrl-C
        raise KeyboardInterrupt from None
    finally:
        progress.close()
        if opts.distributor != "local":  # a task killed mid-write leaves its temporary file (we hold the lock)
            remove_stale_temporaries(*target.temporaries)
    elapsed = time.monotonic() - start
    table = assemble(target.state_dir, shards, target.output, schema)
    for shard in shards:  # a journal of a distributed task killed in an earlier run is done with too
        journal_path(target.state_dir, shard.index).unlink(missing_ok=True)
    this_run = run_numbers(opts.distributor, todo, table.num_rows - todo, relabelled, progress, written, elapsed)
    report = run_report(target, job.table, table, this_run)
    write_json(target.report_path, report)
    return RunSummary(target.output, target.report_path, report)


def _execute(job: _Job, shards: list[Shard], finish: Any, progress: Progress, written: dict[str, Any]) -> None:
    """Run the planned shards in this process's event loop, or hand those with rows to do to a distributor."""
    engine = EngineJob(job.options, job.target.record_type, job.target.images_dir)
    if job.options.distributor == "local":
        run_event_loop(_engine(engine, shards, finish, progress, job.pool))
        return
    for shard in shards:  # nothing to fetch, only a result file to rewrite: no task needed
        if not shard.todo and shard.rewrite:
            finish(shard, list(shard.carried))

    def done(result: ShardDone) -> None:
        progress.advance(result.ok, result.failed)
        written["shards"] += 1
        written["bytes"] += result.bytes
        written["resumed"] += result.resumed

    shard_job = ShardJob(engine, job.target.state_dir, job.retry_failed)
    rates = run_distributed(job.options.distributor, shard_job, [s for s in shards if s.todo], done)
    written["task_rates"] = rates


async def _engine(engine: EngineJob, shards: list[Shard], finish: Any, progress: Progress, pool: WorkerPool | None):
    """The local path's event loop: SIGTERM cancels it (then it ends as Ctrl-C does)."""
    task = asyncio.current_task()
    assert task is not None, "called from inside the event loop"
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await run_engine(engine, shards, finish, progress, pool)


def _stage(
    target: Target,
    input_path: Path,
    options: DownloadOptions,
    *,
    columns: Columns = Columns(),
    retry_failed: bool = False,
    limit: int | None = None,
    progress: bool = True,
    config: Config | None = None,
) -> RunSummary:
    """The one body of both entry functions: hold the output, read the input, run, report."""
    check_available(options.distributor)  # before anything is written
    check_input(input_path, columns)  # before the lock creates the output folder: a refused run leaves nothing
    local_pool = target.record_type is Record and options.distributor == "local"
    # the workers start first, while this process has no other thread (see start_pool)
    pools = worker_pool(options.workers, options.max_pixels) if local_pool else contextlib.nullcontext()
    busy = f"another run is using {target.state_dir.parent}; wait for it or stop it"
    with exclusive(target.state_dir / ".lock", busy), pools as pool:
        remove_stale_temporaries(*target.temporaries)
        table = read_input(input_path, columns, limit)
        _log_input(table)
        if config is not None:
            config.save(target.config_file.parent, name=target.config_file.name)
        return _run(_Job(target, table, options, retry_failed, progress, pool))


class RunSettings(TypedDict, total=False):
    """The keyword settings of :func:`download_images` and :func:`validate_urls`."""

    columns: Columns  # names of the URL, key and label columns
    retry_failed: bool  # also retry permanent failures of earlier runs (transient ones are always retried)
    limit: int | None  # only the first ``limit`` input rows
    progress: bool  # show a progress bar (default True)
    config: Config | None  # the resolved configuration, saved beside the output once this run holds the folder
    # (a run refused because another one is busy changes nothing)


def download_images(
    input_path: Path,
    out_dir: Path,
    options: DownloadOptions = DownloadOptions(),
    **settings: Unpack[RunSettings],
) -> RunSummary:
    """Download every URL of ``input_path`` into ``out_dir/<label>/<key>.jpg`` (resumable).

    Args:
        input_path: Parquet or CSV file with a URL, a key and a label column.
        out_dir: image folder; also receives ``manifest.parquet``, ``download_report.json`` and ``.shards/``.
        options: the ``[download]`` configuration (``distributor`` says where the shards run).
        **settings: ``columns``, ``retry_failed``, ``limit``, ``progress``, ``config`` (see :class:`RunSettings`).

    Returns:
        The manifest path and the report (counts by status and by reason).
    """
    return _stage(download_target(out_dir), input_path, options, **settings)


def validate_urls(
    input_path: Path,
    result_path: Path,
    options: DownloadOptions = DownloadOptions(),
    **settings: Unpack[RunSettings],
) -> RunSummary:
    """Check every URL of ``input_path`` (HEAD, or a ranged GET of its first bytes) without storing images.

    Writes ``result_path`` (Parquet, one row per URL) and a JSON report beside it; resumable like a download,
    with the same ``settings`` (:class:`RunSettings`).
    """
    return _stage(validation_target(result_path), input_path, options, **settings)


def moved_note(count: int) -> str:
    """`` (N moved to a new label)`` for a summary line, or nothing."""
    return f" ({count} moved to a new label)" if count else ""
