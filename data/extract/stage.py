"""Stage 1, extract + transform: the raw Kaggle CSVs -> one clean, labelled Parquet manifest.

Every record read ends either in ``catalogue.parquet`` or in ``dropped.parquet`` with its reason, and
``extract_report.json`` proves it: rows read = rows kept + rows dropped, per file and in total.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from data.core.cli import fail, setup_logging
from data.core.contracts import url_key
from data.core.io import write_json
from data.core.config import add_config_args, config_from_args
from data.extract.csv_reader import COLUMNS, FileRead
from data.extract.read import read_all, read_whole
from data.extract.write import build_catalogue, write_parquet
from data.extract.text import clean_category
from data.extract.transform import DROPPED_SCHEMA, REASONS, Split, classify, dropped_table

__all__ = ["ExtractError", "ExtractOptions", "extract", "load_mapping", "url_key"]

log = logging.getLogger("extract")


class ExtractError(RuntimeError):
    """The stage cannot run (no input, a bad mapping, an unmapped category with fail_on_unmapped)."""


@dataclass(frozen=True)
class ExtractOptions:
    """Inputs and switches of :func:`extract`."""

    raw_dir: Path
    out_dir: Path
    mapping: Path
    merged_file: str = "Amazon-Products.csv"
    fail_on_unmapped: bool = False
    threads: int = 4


def load_mapping(path: Path) -> dict[str, str]:
    """Read the reviewed ``main_category,label`` mapping; keys are normalised like the data."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [record for record in csv.reader(fh) if record]  # blank lines are skipped
    except FileNotFoundError as exc:
        raise ExtractError(f"label mapping not found: {path}") from exc
    if not rows or rows[0][:2] != ["main_category", "label"]:
        raise ExtractError(f"{path}: the header must be 'main_category,label'")
    pairs = [(clean_category(r[0]), r[1].strip() if len(r) > 1 else "") for r in rows[1:]]
    if any(key is None or not label for key, label in pairs):
        raise ExtractError(f"{path}: every row needs a main_category and a label")
    labels: dict[str, set[str]] = {}
    for key, label in pairs:
        labels.setdefault(key, set()).add(label)
    conflicts = sorted(key for key, values in labels.items() if len(values) > 1)
    if conflicts:
        raise ExtractError(f"{path}: categories mapped to two labels: {conflicts}")
    return dict(pairs)


def list_csv_files(raw_dir: Path, merged_file: str) -> list[Path]:
    """Every CSV below ``raw_dir``, sorted, with the merged file last so per-category provenance wins."""
    files = sorted(raw_dir.rglob("*.csv"), key=lambda p: (p.name == merged_file, str(p).lower()))
    if not files:
        raise ExtractError(
            f"no CSV files in {raw_dir}: run `make fetch-raw` (needs Kaggle credentials) "
            "or put the Kaggle CSV files there"
        )
    return files


def _combined(reads: list[FileRead]) -> tuple[pa.Table, np.ndarray]:
    """All usable tables as one, with each row's source file and record number; plus each row's file index."""
    names = pa.array([read.file for read in reads], pa.string())
    file_index = np.repeat(np.arange(len(reads)), [r.table.num_rows for r in reads]).astype(np.int32)
    if not reads:
        return pa.table(
            {
                c: pa.array([], pa.int64() if c == "source_row" else pa.string())
                for c in (*COLUMNS, "key", "source_row", "source_file")
            }
        ), file_index
    table = pa.concat_tables([r.table for r in reads])
    numbers = [
        np.asarray(r.row_numbers) if r.row_numbers is not None else np.arange(1, r.table.num_rows + 1) for r in reads
    ]
    table = table.append_column("source_row", pa.array(np.concatenate(numbers).astype(np.int64)))
    # A dictionary column: one string per file, not per row.
    return table.append_column("source_file", pa.DictionaryArray.from_arrays(file_index, names)), file_index


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


def _report(
    options: ExtractOptions,
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
    per_file = []
    for read in reads:
        row = per_usable.get(read.file, np.zeros(len(REASONS) + 1, np.int64))
        drops = {reason: int(n) for reason, n in zip(REASONS, row[:-1]) if n}
        drops.update(
            {
                k: v
                for k, v in (
                    ("malformed_row", len(read.malformed)),
                    ("unusable_file", read.rows_read - len(read.malformed) if read.error else 0),
                )
                if v
            }
        )
        per_file.append(
            {
                "file": read.file,
                "rows_read": read.rows_read,
                "rows_kept": int(row[-1]),
                "dropped": drops,
                "error": read.error,
                "encoding": read.encoding,
                "malformed_rows": [n for n, _ in read.malformed][:50],
            }
        )
    rows_read = sum(r.rows_read for r in reads)
    unmapped = dropped.filter(pc.equal(dropped["reason"], "unmapped_category"))["detail"]
    return {
        "raw_dir": str(options.raw_dir),
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


def _is_merged(options: ExtractOptions, name: str) -> bool:
    return Path(name).name == options.merged_file


def _usable(reads: list[FileRead]) -> list[FileRead]:
    return [r for r in reads if r.error is None and r.table is not None]


def _read(options: ExtractOptions, mapping: dict[str, str]) -> tuple[list[FileRead], pa.Table, np.ndarray, Split]:
    """Read, combine and classify every file.

    The merged file is read lazily (see :mod:`data.extract.read`) unless it is the only file; if any of its
    rows are kept, it is read again in full and the table rebuilt (same rows, so ``split`` still holds).
    """
    files = list_csv_files(options.raw_dir, options.merged_file)
    names = [str(p.relative_to(options.raw_dir)) for p in files]
    lazy = {n for n in names if _is_merged(options, n) and len(files) > 1}
    with tqdm(total=len(files), desc="reading CSV files", unit="file") as progress:
        reads = read_all(files, names, [n in lazy for n in names], options.threads, progress)
    usable = _usable(reads)
    table, file_index = _combined(usable)
    from_merged = np.array([_is_merged(options, r.file) for r in usable] + [False])[file_index]
    split = classify(table, mapping, from_merged)
    lazy_rows = from_merged if lazy else np.zeros_like(from_merged)  # the lazy files are the merged ones
    kept_lazy = {usable[i].file for i in np.unique(file_index[split.keep & lazy_rows])}
    if kept_lazy:
        paths = dict(zip(names, files))
        try:
            reads = [read_whole(paths[r.file], r) if r.file in kept_lazy else r for r in reads]
        except ValueError as exc:
            raise ExtractError(str(exc)) from exc
        table, file_index = _combined(_usable(reads))
    return reads, table, file_index, split


def _dropped(table: pa.Table, split: Split, reads: list[FileRead], target: Path | None) -> pa.Table:
    """Every dropped record, written to ``target`` if given."""
    dropped = pa.concat_tables([dropped_table(table, split), _unusable_rows(reads)])
    if target is not None:
        write_parquet(target, dropped)
    return dropped


def extract(options: ExtractOptions) -> dict:
    """Run extract + transform; write catalogue.parquet, dropped.parquet and extract_report.json.

    Returns:
        The report (also written to ``out_dir/extract_report.json``).
    """
    mapping = load_mapping(options.mapping)
    reads, table, file_index, split = _read(options, mapping)
    usable = _usable(reads)
    # Outputs are written only when the stage succeeds, so a refusal over unmapped categories writes none.
    writing = not (options.fail_on_unmapped and (split.code == REASONS.index("unmapped_category")).any())
    if writing:
        options.out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(1) as pool:  # the dropped rows are gathered and written while the kept ones are built
        dropped = pool.submit(_dropped, table, split, reads, options.out_dir / "dropped.parquet" if writing else None)
        kept = build_catalogue(table, split, mapping, options.out_dir / "catalogue.parquet" if writing else None)
        report = _report(options, reads, usable, split.code, file_index, kept, dropped.result())
    write_json(options.out_dir / "extract_report.json", report)
    if report["unmapped_categories"]:
        log.warning(
            "main categories missing from %s (rows dropped as 'unmapped_category'): %s; "
            "add them to the mapping to keep those rows",
            options.mapping,
            report["unmapped_categories"],
        )
        if options.fail_on_unmapped:
            raise ExtractError(f"unmapped main categories: {sorted(report['unmapped_categories'])}")
    return report


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


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool for this process, unless ARROW_DEFAULT_MEMORY_POOL chooses one.

    The default (mimalloc) hands freed pages back to the OS eagerly; with the many large short-lived
    buffers of this stage, that doubled its run time in system time. jemalloc reuses them, and with no
    decay (this process ends when the stage does) it never gives a freed page back to fault it in again.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        try:
            pa.jemalloc_set_decay_ms(-1)
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow build without jemalloc
            pass


def main(argv: list[str] | None = None) -> int:
    parser = add_config_args(argparse.ArgumentParser(prog="python -m data.extract.stage", description=__doc__))
    parser.add_argument("--raw", type=Path, help="folder of Kaggle CSV files (default: paths.raw)")
    parser.add_argument("--out", type=Path, help="output folder (default: paths.processed)")
    args = parser.parse_args(argv)
    setup_logging()
    _use_jemalloc()
    cfg = config_from_args(args)
    section = cfg.section("extract")
    options = ExtractOptions(
        raw_dir=args.raw or cfg.path("raw"),
        out_dir=args.out or cfg.path("processed"),
        mapping=cfg.path("label_mapping"),
        merged_file=section.get("merged_file", "Amazon-Products.csv"),
        fail_on_unmapped=bool(section.get("fail_on_unmapped", False)),
    )
    if not options.raw_dir.is_dir():
        fail(
            f"raw data folder {options.raw_dir} does not exist: run `make fetch-raw` (needs Kaggle "
            "credentials), or point at CSV files with SET=paths.raw=/path/to/csvs"
        )
    try:
        report = extract(options)
    except ExtractError as exc:
        fail(str(exc))
    cfg.save(options.out_dir)
    print(format_summary(report))
    print(f"  wrote {options.out_dir / 'catalogue.parquet'} (+ dropped.parquet, extract_report.json)")
    return 0 if report["accounting_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
