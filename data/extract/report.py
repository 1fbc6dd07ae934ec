"""Extract's accounting: every record read is kept or dropped with a reason, per file and in total."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.extract.csv_reader import FileRead
from data.extract.transform import DROPPED_SCHEMA, REASONS

log = logging.getLogger("extract")


def _unusable_rows(reads: list[FileRead]) -> pa.Table:
    """Records lost before parsing: malformed ones, and every record of a file that cannot be used."""
    rows = []
    for read in reads:
        for number, problem in read.malformed:
            log.warning("%s: record %d is malformed: %s", read.file, number, problem)
            rows.append({"source_file": read.file, "source_row": number, "reason": "malformed_row", "detail": problem})
        if read.error:
            log.error("%s: %s", read.file, read.error)
            lost = read.rows_read - len(read.malformed)
            rows.extend(
                {"source_file": read.file, "source_row": n, "reason": "unusable_file", "detail": read.error}
                for n in (read.row_numbers or range(1, lost + 1))
            )
    return pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA)


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(values).to_pylist() if len(values) else []
    return dict(sorted((c["values"], c["counts"]) for c in counts if c["values"] is not None))


def _file_entry(read: FileRead, row: np.ndarray) -> dict:
    """One file's line of the report: ``row`` holds its drops per reason, then its kept rows."""
    drops = {reason: int(n) for reason, n in zip(REASONS, row[:-1]) if n}
    unusable = read.rows_read - len(read.malformed) if read.error else 0
    drops.update({k: v for k, v in (("malformed_row", len(read.malformed)), ("unusable_file", unusable)) if v})
    return {
        "file": read.file,
        "rows_read": read.rows_read,
        "rows_kept": int(row[-1]),
        "dropped": drops,
        "error": read.error,
        "encoding": read.encoding,
        "malformed_rows": [n for n, _ in read.malformed][:50],
    }


def _report(
    raw_dir: Path,
    reads: list[FileRead],
    usable: list[FileRead],
    codes: np.ndarray,
    file_index: np.ndarray,
    kept: pa.Table,
    dropped: pa.Table,
) -> dict:
    by_file = np.zeros((len(usable), len(REASONS) + 1), np.int64)  # last column: kept
    np.add.at(by_file, (file_index, np.where(codes == -1, len(REASONS), codes)), 1)
    per_usable = {read.file: row for read, row in zip(usable, by_file)}
    per_file = [_file_entry(read, per_usable.get(read.file, np.zeros(len(REASONS) + 1, np.int64))) for read in reads]
    rows_read = sum(r.rows_read for r in reads)
    unmapped = dropped.filter(pc.equal(dropped["reason"], "unmapped_category"))["detail"]
    return {
        "raw_dir": str(raw_dir),
        "files_read": len(reads),
        "files_failed": [{"file": r.file, "error": r.error} for r in reads if r.error],
        "rows_read": rows_read,
        "rows_kept": kept.num_rows,
        "rows_dropped": dropped.num_rows,
        "accounting_ok": rows_read == kept.num_rows + dropped.num_rows,
        "dropped_by_reason": dict(sorted(_counts(dropped["reason"]).items(), key=lambda kv: -kv[1])),
        "unmapped_categories": _counts(unmapped),
        "labels": _counts(kept["label"]),
        "files": per_file,
    }


def format_summary(report: dict) -> str:
    """The end-of-stage summary printed to the user."""
    lines = [
        f"extract: {report['files_read']} files, {len(report['files_failed'])} unusable",
        f"  rows read {report['rows_read']:,} = kept {report['rows_kept']:,} + dropped "
        f"{report['rows_dropped']:,}  [{'OK' if report['accounting_ok'] else 'MISMATCH'}]",
    ]
    lines += [f"    dropped {reason}: {n:,}" for reason, n in report["dropped_by_reason"].items()]
    lines += [f"  label {label}: {n:,}" for label, n in report["labels"].items()]
    return "\n".join(lines)
