"""Where a download or validation run writes, and how it holds that place for itself.

A run owns its output folder for its whole length through a lock on its shard folder
(:func:`data.core.io.exclusive`: the kernel drops it when the process ends, even by ``kill -9``; on a
network file system it needs working locks, as NFSv4 has). Holding it, the run may remove the temporary
files a killed run left, since none of them can still be in the middle of a write.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from data.core.contracts import DOWNLOAD_REPORT, MANIFEST
from data.download.records import OK, RETRYABLE, Record, ValidationRecord
from data.download.shards import InputTable, count_outcomes


@dataclass(frozen=True)
class Target:
    """Where one kind of run writes: its output table, report, shard state, configuration and temporaries."""

    stage: str
    record_type: type
    output: Path
    report_path: Path
    state_dir: Path
    config_file: Path
    temporaries: tuple[tuple[Path, str], ...]

    @property
    def images_dir(self) -> Path:
        """The folder stored images' paths are relative to."""
        return self.output.parent


def download_target(out_dir: Path) -> Target:
    """``make download-images``: images, ``manifest.parquet`` and the report in ``out_dir``, state in ``.shards/``."""
    state_dir = out_dir / ".shards"
    temporaries = ((out_dir, "*/.*.tmp"), (out_dir, ".*.tmp"), (state_dir, ".*.tmp"))
    return Target(
        "download-images",
        Record,
        out_dir / MANIFEST.file_name,
        out_dir / DOWNLOAD_REPORT,
        state_dir,
        out_dir / "config.resolved.json",
        temporaries,
    )


def validation_target(result_path: Path) -> Target:
    """``make validate-urls``: ``result_path`` and its report beside it, state in ``.<name>.shards/``."""
    state_dir = result_path.parent / f".{result_path.stem}.shards"
    temporaries = ((result_path.parent, f".{result_path.name}.*.tmp"), (state_dir, ".*.tmp"))
    config_file = result_path.parent / f"{result_path.stem}.config.resolved.json"
    return Target(
        "validate-urls",
        ValidationRecord,
        result_path,
        result_path.with_suffix(".json"),
        state_dir,
        config_file,
        temporaries,
    )


def remove_stale_temporaries(*patterns: tuple[Path, str]) -> None:
    """Temporary files of a killed run are never complete: remove them (we hold the lock)."""
    for folder, pattern in patterns:
        for tmp in folder.glob(pattern):
            tmp.unlink(missing_ok=True)


def run_report(target: Target, source: InputTable, table: pa.Table, this_run: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: totals, counts by status and by reason, duplicates, and this run's numbers."""
    by_status, by_reason = count_outcomes(table)
    ok = by_status.get(OK, 0)
    return {
        "stage": target.stage,
        "output": str(target.output),
        "input_rows": source.input_rows,
        "duplicate_keys": len(source.duplicate_keys),
        "conflicting_keys": len(source.conflicting_keys),
        "duplicate_key_examples": source.duplicate_keys[:20],
        "urls": table.num_rows,
        "ok": ok,
        "failed": table.num_rows - ok,
        "retryable_failed": sum(by_status.get(s, 0) for s in RETRYABLE),
        "by_status": by_status,
        "by_reason": by_reason,
        "this_run": this_run,
    }


def run_numbers(
    distributor: str, todo: int, done: int, relabelled: int, progress: Any, written: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    """The report's numbers of this run alone."""
    rates = written["task_rates"]
    return {
        "distributor": distributor,
        "processed": todo,
        "already_done": done,
        "relabelled": relabelled,
        "resumed_from_journal": written["resumed"],
        "task_ok_per_s": round(statistics.median(rates), 1) if rates else None,
        "tasks": len(rates) if rates else None,
        "ok": progress.ok,
        "failed": progress.failed,
        "elapsed_s": round(elapsed, 2),
        "urls_per_s": round(todo / elapsed, 1) if elapsed else 0.0,
        "ok_per_s": round(progress.ok / elapsed, 1) if elapsed else 0.0,
        "bytes": written["bytes"],
        "shards_written": written["shards"],
    }
