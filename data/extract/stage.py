"""Stage 1, extract + transform: the raw Kaggle CSVs -> one clean, labelled Parquet manifest.

Every record read ends either in ``catalogue.parquet`` or in ``dropped.parquet`` with its reason, and
``extract_report.json`` proves it: rows read = rows kept + rows dropped, per file and in total.
"""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from data.core.cli import run, stage_parser
from data.core.config import config_from_args
from data.core.options import StageOptions
from data.core.contracts import CATALOGUE, DROPPED, EXTRACT_REPORT_FILE, url_key
from data.core.errors import InputError
from data.core.mapping import LABEL_MAPPING, load_mapping
from data.core.io import staged_files, write_json, write_parquet
from data.extract.csv_reader import COLUMNS, FileRead
from data.extract.read import read_all, read_whole
from data.extract.write import build_catalogue
from data.extract.report import _report, _unusable_rows, format_summary
from data.extract.transform import REASONS, Triage, classify, dropped_table

__all__ = ["ExtractError", "ExtractOptions", "extract", "url_key"]

log = logging.getLogger("extract")
REPORT_FILE = EXTRACT_REPORT_FILE


class ExtractError(InputError):
    """The stage cannot run (no input, a bad mapping, an unmapped category with fail_on_unmapped)."""


@dataclass(frozen=True)
class ExtractOptions(StageOptions):
    """Inputs and switches of :func:`extract`: the ``[extract]`` section, ``[paths]`` and ``--raw`` / ``--out``."""

    SECTION = "extract"
    CLI = {"raw": "raw_dir", "out": "out_dir"}
    PATHS = {"raw_dir": "raw", "out_dir": "processed", "mapping": LABEL_MAPPING}
    LOCAL = ("threads",)

    raw_dir: Path
    out_dir: Path
    mapping: Path
    fail_on_unmapped: bool = False
    merged_file: str = "Amazon-Products.csv"
    threads: int = 4


def list_csv_files(raw_dir: Path, merged_file: str) -> list[Path]:
    """Every CSV below ``raw_dir``, sorted, with the merged file last so per-category provenance wins."""
    # Any letter case of .csv: a file saved as DATA.CSV is still a catalogue file, never silently skipped.
    found = (p for p in raw_dir.rglob("*") if p.suffix.lower() == ".csv" and p.is_file())
    files = sorted(found, key=lambda p: (p.name == merged_file, str(p).lower()))
    if not files:
        raise ExtractError(
            f"no CSV files in {raw_dir}: run `make fetch-raw` (needs Kaggle credentials) "
            "or put the Kaggle CSV files there"
        )
    return files


def _combined(reads: list[FileRead]) -> tuple[pa.Table, np.ndarray]:
    """All usable tables as one, with each row's source file and record number; plus each row's file index."""
    tables = [r.table for r in reads if r.table is not None]  # usable reads: every one has its table
    names = pa.array([read.file for read in reads], pa.string())
    file_index = np.repeat(np.arange(len(reads)), [t.num_rows for t in tables]).astype(np.int32)
    if not reads:
        return pa.table(
            {
                c: pa.array([], pa.int64() if c == "source_row" else pa.string())
                for c in (*COLUMNS, "key", "source_row", "source_file")
            }
        ), file_index
    table = pa.concat_tables(tables)
    numbers = [
        np.asarray(r.row_numbers) if r.row_numbers is not None else np.arange(1, t.num_rows + 1)
        for r, t in zip(reads, tables)
    ]
    table = table.append_column("source_row", pa.array(np.concatenate(numbers).astype(np.int64)))
    # A dictionary column: one string per file, not per row.
    return table.append_column("source_file", pa.DictionaryArray.from_arrays(file_index, names)), file_index


def _is_merged(options: ExtractOptions, name: str) -> bool:
    return Path(name).name == options.merged_file


def _usable(reads: list[FileRead]) -> list[FileRead]:
    return [r for r in reads if r.error is None and r.table is not None]


def _read(options: ExtractOptions, mapping: dict[str, str]) -> tuple[list[FileRead], pa.Table, np.ndarray, Triage]:
    """Read, combine and classify every file.

    The merged file is read lazily (see :mod:`data.extract.read`) unless it is the only file; if any of its
    rows are kept, it is read again in full and the table rebuilt (same rows, so the triage still holds).
    """
    files = list_csv_files(options.raw_dir, options.merged_file)
    names = [str(p.relative_to(options.raw_dir)) for p in files]
    lazy = {n for n in names if _is_merged(options, n) and len(files) > 1}
    with tqdm(total=len(files), desc="reading CSV files", unit="file") as progress:
        reads = read_all(files, names, [n in lazy for n in names], options.threads, progress)
    usable = _usable(reads)
    table, file_index = _combined(usable)
    from_merged = np.array([_is_merged(options, r.file) for r in usable] + [False])[file_index]
    triage = classify(table, mapping, from_merged)
    lazy_rows = from_merged if lazy else np.zeros_like(from_merged)  # the lazy files are the merged ones
    kept_lazy = {usable[i].file for i in np.unique(file_index[triage.keep & lazy_rows])}
    if kept_lazy:
        paths = dict(zip(names, files))
        try:
            reads = [read_whole(paths[r.file], r) if r.file in kept_lazy else r for r in reads]
        except ValueError as exc:
            raise ExtractError(str(exc)) from exc
        table, file_index = _combined(_usable(reads))
    return reads, table, file_index, triage


def _dropped(table: pa.Table, triage: Triage, reads: list[FileRead], target: Path | None) -> pa.Table:
    """Every dropped record, written to ``target`` if given."""
    dropped = pa.concat_tables([dropped_table(table, triage), _unusable_rows(reads)])
    if target is not None:
        write_parquet(target, dropped)
    return dropped


def extract(options: ExtractOptions) -> dict:
    """Run extract + transform; write catalogue.parquet, dropped.parquet and extract_report.json.

    The three files are written into a staging folder and moved into ``out_dir`` together at the end, so a
    run that fails or is refused (``fail_on_unmapped``, no usable file) leaves the folder's earlier outputs
    exactly as they were.

    Returns:
        The report (also written to ``out_dir/extract_report.json``).

    Raises:
        ExtractError: no usable input file, a bad mapping, or an unmapped category with ``fail_on_unmapped``.
    """
    mapping = load_mapping(options.mapping)
    reads, table, file_index, triage = _read(options, mapping)
    usable = _usable(reads)
    if not usable:
        problems = "; ".join(f"{r.file}: {r.error}" for r in reads[:5])
        raise ExtractError(f"none of the {len(reads)} CSV files in {options.raw_dir} can be used ({problems})")
    refused = options.fail_on_unmapped and bool((triage.code == REASONS.index("unmapped_category")).any())
    outputs = (DROPPED.file_name, CATALOGUE.file_name, REPORT_FILE)  # the report last: it vouches for both
    with contextlib.nullcontext() if refused else staged_files(options.out_dir, outputs) as staging:
        with ThreadPoolExecutor(1) as pool:  # dropped rows are gathered and written while the kept ones are built
            dropped = pool.submit(_dropped, table, triage, reads, staging and staging / DROPPED.file_name)
            kept = build_catalogue(table, triage, mapping, staging and staging / CATALOGUE.file_name)
            report = _report(options.raw_dir, reads, usable, triage.code, file_index, kept, dropped.result())
        if refused:
            raise ExtractError(
                f"unmapped main categories {sorted(report['unmapped_categories'])} ({report['rows_dropped']:,} rows "
                f"would be dropped); add them to {options.mapping} or set extract.fail_on_unmapped=false; "
                f"nothing was written"
            )
        assert staging is not None, "a run that is not refused writes"
        write_json(staging / REPORT_FILE, report)
    if report["unmapped_categories"]:
        log.warning(
            "main categories missing from %s (rows dropped as 'unmapped_category'): %s; "
            "add them to the mapping to keep those rows",
            options.mapping,
            report["unmapped_categories"],
        )
    return report


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
    """Command-line entry point (``make extract``)."""
    parser = stage_parser("data.extract", __doc__)
    parser.add_argument("--raw", type=Path, help="folder of Kaggle CSV files (default: paths.raw)")
    parser.add_argument("--out", type=Path, help="output folder (default: paths.processed)")
    args = parser.parse_args(argv)

    def body() -> int:
        _use_jemalloc()
        cfg = config_from_args(args)
        options = ExtractOptions.from_config(cfg, cli=args)
        if not options.raw_dir.is_dir():
            raise ExtractError(
                f"raw data folder {options.raw_dir} does not exist: run `make fetch-raw` (needs Kaggle "
                "credentials), or point at CSV files with SET=paths.raw=/path/to/csvs"
            )
        report = extract(options)
        cfg.save(options.out_dir)
        print(format_summary(report))
        print(f"  wrote {options.out_dir / CATALOGUE.file_name} (+ {DROPPED.file_name}, {REPORT_FILE})")
        return 0 if report["accounting_ok"] else 1

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
