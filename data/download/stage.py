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
import fcntl
import logging
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from data.core.config import Config
from data.core.contracts import MANIFEST
from data.core.errors import BusyError
from data.core.io import write_json
from data.download.fetch import Fetcher
from data.download.image import ImageParams
from data.download.engine import Progress, download_handler, run_shards, validate_handler
from data.download.shards import (
    Columns,
    InputTable,
    PriorResults,
    Shard,
    arrow_schema,
    assemble,
    count_outcomes,
    plan_shards,
    read_input,
    shard_path,
    shard_table,
    write_table,
)
from data.download.records import OK, RETRYABLE, DownloadOptions, InputRow, Record, ValidationRecord
from data.download.workers import ImageWorkers, WorkerPool, worker_pool

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

    stage: str
    table: InputTable
    output: Path
    report_path: Path
    state_dir: Path
    record_type: type
    retry_failed: bool
    progress: bool
    pool: WorkerPool | None = None  # image workers (downloads only)


@contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    """Hold a lock on ``state_dir`` for the run (the kernel drops it even after ``kill -9``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BusyError(f"another run is using {state_dir.parent}; wait for it or stop it") from exc
        yield


def _remove_stale_temporaries(*patterns: tuple[Path, str]) -> None:
    """Temporary files of a killed run are never complete: remove them (we hold the lock)."""
    for folder, pattern in patterns:
        for tmp in folder.glob(pattern):
            tmp.unlink(missing_ok=True)


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


def _run(job: _Job, opts: DownloadOptions) -> RunSummary:
    """Plan the shards, run what is left, assemble the output and write the report."""
    schema = arrow_schema(job.record_type)
    downloading = job.record_type is Record

    def is_done(row: InputRow, prev: dict[str, Any]) -> bool:
        if prev["status"] == OK:
            return not downloading or (
                prev["path"] == f"{row.folder}/{row.key}.jpg" and (job.output.parent / prev["path"]).is_file()
            )
        return not job.retry_failed and prev["status"] not in RETRYABLE

    def carry(row: InputRow, prev: dict[str, Any]) -> dict[str, Any] | None:
        """A prior result of the same URL under another label: its image moves to the new label's folder."""
        record = {**prev, "label": row.label}
        if downloading and prev["status"] == OK:
            record["path"] = f"{row.folder}/{row.key}.jpg"
            moved = _move_image(job.output.parent / prev["path"], job.output.parent / record["path"])
            return record if moved else None  # the file is gone: fetch it again
        return record if is_done(row, record) else None

    shards = plan_shards(job.table.rows, opts.shard_size, PriorResults(job.state_dir, schema), is_done, carry)
    todo = sum(len(s.todo) for s in shards)
    relabelled = sum(len(s.carried) for s in shards)
    log.info(
        "%s: %d URLs in %d shards, %d to do, %d already done%s",
        job.stage,
        len(job.table.rows),
        len(shards),
        todo,
        len(job.table.rows) - todo,
        moved_note(relabelled),
    )
    written = {"shards": 0, "bytes": 0}

    def finish(shard: Shard, rows: list[dict[str, Any]]) -> None:
        write_table(shard_path(job.state_dir, shard.index), shard_table(shard, rows, schema))
        written["shards"] += 1
        written["bytes"] += sum(r["bytes"] or 0 for r in rows)

    progress = Progress(todo, job.stage, enabled=job.progress and todo > 0)
    start = time.monotonic()
    try:
        if todo or any(s.rewrite for s in shards):
            asyncio.run(_engine(shards, finish, opts, job, progress))
    except asyncio.CancelledError:  # SIGTERM: same as Ctrl-C
        raise KeyboardInterrupt from None
    finally:
        progress.close()
    elapsed = time.monotonic() - start
    table = assemble(job.state_dir, shards, job.output, schema)
    this_run = {
        "processed": todo,
        "already_done": table.num_rows - todo,
        "relabelled": relabelled,
        "ok": progress.ok,
        "failed": progress.failed,
        "elapsed_s": round(elapsed, 2),
        "urls_per_s": round(todo / elapsed, 1) if elapsed else 0.0,
        "ok_per_s": round(progress.ok / elapsed, 1) if elapsed else 0.0,
        "bytes": written["bytes"],
        "shards_written": written["shards"],
    }
    report = _report(job, table, this_run)
    write_json(job.report_path, report)
    return RunSummary(job.output, job.report_path, report)


def _report(job: _Job, table: pa.Table, this_run: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: totals, counts by status and by reason, duplicates, and this run's numbers."""
    by_status, by_reason = count_outcomes(table)
    ok = by_status.get(OK, 0)
    return {
        "stage": job.stage,
        "output": str(job.output),
        "input_rows": job.table.input_rows,
        "duplicate_keys": len(job.table.duplicate_keys),
        "conflicting_keys": len(job.table.conflicting_keys),
        "duplicate_key_examples": job.table.duplicate_keys[:20],
        "urls": table.num_rows,
        "ok": ok,
        "failed": table.num_rows - ok,
        "retryable_failed": sum(by_status.get(s, 0) for s in RETRYABLE),
        "by_status": by_status,
        "by_reason": by_reason,
        "this_run": this_run,
    }


async def _engine(shards: list[Shard], finish: Any, opts: DownloadOptions, job: _Job, progress: Progress) -> None:
    """The event-loop part of a run: one session, and a process pool when images are stored."""
    task = asyncio.current_task()
    assert task is not None, "called from inside the event loop"
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with Fetcher(opts) as fetcher:
        if job.record_type is ValidationRecord:
            await run_shards(shards, validate_handler(fetcher), finish, concurrency=opts.concurrency, progress=progress)
            return
        params = ImageParams(opts.image_size, opts.resize_mode, opts.jpeg_quality, opts.max_pixels, opts.upscale)
        assert job.pool is not None, "a download needs its worker pool"
        handler = download_handler(fetcher, ImageWorkers(job.pool, params), job.output.parent)
        await run_shards(shards, handler, finish, concurrency=opts.concurrency, progress=progress)


def download_images(
    input_path: Path,
    out_dir: Path,
    options: DownloadOptions = DownloadOptions(),
    *,
    columns: Columns = Columns(),
    retry_failed: bool = False,
    limit: int | None = None,
    progress: bool = True,
    config: Config | None = None,
) -> RunSummary:
    """Download every URL of ``input_path`` into ``out_dir/<label>/<key>.jpg`` (resumable).

    Args:
        input_path: Parquet or CSV file with a URL, a key and a label column.
        out_dir: image folder; also receives ``manifest.parquet``, ``download_report.json`` and ``.shards/``.
        options: the ``[download]`` configuration.
        columns: names of the URL, key and label columns.
        retry_failed: also retry permanent failures of earlier runs (transient ones are always retried).
        limit: only the first ``limit`` input rows.
        progress: show a progress bar.
        config: the resolved configuration, saved as ``out_dir/config.resolved.json`` once this run holds
            the folder (a run refused because another one is busy changes nothing).

    Returns:
        The manifest path and the report (counts by status and by reason).
    """
    state_dir = out_dir / ".shards"
    # the workers start first, while this process has no other thread (see start_pool)
    with _exclusive(state_dir), worker_pool(options.workers, options.max_pixels) as pool:
        _remove_stale_temporaries((out_dir, "*/.*.tmp"), (out_dir, ".*.tmp"), (state_dir, ".*.tmp"))
        table = read_input(input_path, columns, limit)
        _log_input(table)
        if config is not None:
            config.save(out_dir)
        job = _Job(
            "download-images",
            table,
            out_dir / MANIFEST.file_name,
            out_dir / "download_report.json",
            state_dir,
            Record,
            retry_failed,
            progress,
            pool,
        )
        return _run(job, options)


def validate_urls(
    input_path: Path,
    result_path: Path,
    options: DownloadOptions = DownloadOptions(),
    *,
    columns: Columns = Columns(),
    retry_failed: bool = False,
    limit: int | None = None,
    progress: bool = True,
    config: Config | None = None,
) -> RunSummary:
    """Check every URL of ``input_path`` (HEAD, or a ranged GET of its first bytes) without storing images.

    Writes ``result_path`` (Parquet, one row per URL) and a JSON report beside it; resumable like a download.
    """
    state_dir = result_path.parent / f".{result_path.stem}.shards"
    with _exclusive(state_dir):
        _remove_stale_temporaries((result_path.parent, f".{result_path.name}.*.tmp"), (state_dir, ".*.tmp"))
        table = read_input(input_path, columns, limit)
        _log_input(table)
        if config is not None:
            config.save(result_path.parent, name=f"{result_path.stem}.config.resolved.json")
        job = _Job(
            "validate-urls",
            table,
            result_path,
            result_path.with_suffix(".json"),
            state_dir,
            ValidationRecord,
            retry_failed,
            progress,
        )
        return _run(job, options)


def moved_note(count: int) -> str:
    """`` (N moved to a new label)`` for a summary line, or nothing."""
    return f" ({count} moved to a new label)" if count else ""
