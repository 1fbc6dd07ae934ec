"""Read the Kaggle catalogue CSVs fast and exactly: every record is either parsed or reported.

The fast path is pyarrow's multi-threaded CSV reader with every column read as text. pyarrow can skip a
malformed record but cannot say which record it was, so a file that has any is read again with Python's
``csv`` module, which gives exact record numbers. Only broken files pay for the slow path.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from data.core.contracts import RAW_COLUMNS

COLUMNS = RAW_COLUMNS
REQUIRED = ("main_category", "sub_category", "image")


@dataclass
class FileRead:
    """What reading one file produced: a table of text columns plus everything that went wrong."""

    file: str
    table: pa.Table | None = None
    rows_read: int = 0  # records in the file (good and malformed)
    row_numbers: list[int] | None = None  # 1-based record number of each table row; None = 1..n
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (record number, problem)
    error: str | None = None  # the whole file could not be used
    encoding: str = "utf-8"


def _text_encoding(encoding: str) -> str:
    """The codec for Python's own reads: a UTF-8 byte-order mark is not part of the first column's name."""
    return "utf-8-sig" if encoding == "utf-8" else encoding


def _header(path: Path, encoding: str) -> list[str]:
    with open(path, newline="", encoding=_text_encoding(encoding)) as fh:
        return next(csv.reader(fh), [])


def _is_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB: no CSV text file has one (an image, an archive, a spreadsheet)."""
    with open(path, "rb") as fh:
        return b"\x00" in fh.read(8192)


def _read_fast(path: Path, present: list[str], encoding: str, use_threads: bool) -> tuple[pa.Table, int]:
    """pyarrow read of the ``present`` columns as strings; returns the table and the malformed count."""
    skipped = 0

    def on_invalid(_row: object) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 22, use_threads=use_threads),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            include_columns=present,
            column_types={c: pa.string() for c in present},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return table, skipped


def _read_exact(path: Path, present: list[str], encoding: str, result: FileRead) -> None:
    """Python ``csv`` read that records the number and problem of every malformed record."""
    with open(path, newline="", encoding=_text_encoding(encoding)) as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        width = len(header)
        index = [header.index(c) for c in present]
        columns: list[list[str | None]] = [[] for _ in present]
        numbers: list[int] = []
        count = 0
        for count, record in enumerate(reader, start=1):
            if len(record) != width:
                problem = f"expected {width} fields, found {len(record)} (line {reader.line_num})"
                result.malformed.append((count, problem))
                continue
            numbers.append(count)
            for values, i in zip(columns, index):
                values.append(record[i] if record[i] != "" else None)
    result.rows_read = count
    result.row_numbers = numbers
    result.table = pa.table({c: pa.array(v, pa.string()) for c, v in zip(present, columns)})


def read_catalogue_csv(
    path: Path, display_name: str | None = None, use_threads: bool = True, columns: tuple[str, ...] | None = None
) -> FileRead:
    """Read one catalogue CSV. Never raises for bad content: problems land in the returned record.

    UTF-8 (with or without a byte-order mark) is tried first, then cp1252, so a file saved by a spreadsheet
    program is still read; the encoding used is recorded. A binary file, or one that is text in neither
    encoding, comes back with ``error`` set. ``use_threads=False`` parses on the calling thread only:
    cheaper in CPU when many files are read side by side. ``columns``: parse only these of
    :data:`COLUMNS` (the others come out missing); every record is still checked and counted.
    """
    result = FileRead(file=display_name or path.name)
    try:
        if _is_binary(path):
            result.error = "binary file, not CSV text (it holds NUL bytes)"
            return result
        for encoding in ("utf-8", "cp1252"):
            result = FileRead(file=display_name or path.name, encoding=encoding)
            try:
                _read_with(path, encoding, result, use_threads, columns)
                return result
            except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
                problem = str(exc).splitlines()[0][:200]
    except OSError as exc:
        result.error = f"cannot read file: {exc.strerror or exc}"
        return result
    result.error = f"not text in UTF-8 or cp1252 ({problem})"
    return result


def _is_utf8(path: Path) -> bool:
    """Whether the whole file is valid UTF-8 (checked by Arrow on a memory map: no copy, no decoding)."""
    data = pa.memory_map(str(path)).read_buffer()
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, data.size], np.int64)), data])
    try:
        whole.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _read_with(
    path: Path, encoding: str, result: FileRead, use_threads: bool = True, columns: tuple[str, ...] | None = None
) -> None:
    header = _header(path, encoding)
    if not header:
        result.error = "empty file (no header row)"
        return
    if columns is not None and encoding == "utf-8" and not _is_utf8(path):
        # Arrow checks the text of the columns it parses only; a full read would find the bad bytes and
        # try the next encoding, so a partial read must not be the one to decide the encoding.
        columns = None
    present = [c for c in COLUMNS if c in header and (columns is None or c in columns)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        _read_exact(path, present or header[:1], encoding, result)
        result.error = f"missing required column(s): {', '.join(missing)} (found: {', '.join(header)})"
        return
    try:
        table, skipped = _read_fast(path, present, encoding, use_threads)
    except pa.ArrowInvalid:
        skipped = -1  # the fast reader gave up on the file; the exact reader says why, record by record
    if skipped == 0:
        result.table, result.rows_read = table, table.num_rows
    else:
        try:
            _read_exact(path, present, encoding, result)
        except csv.Error as exc:
            result.error = f"unparseable CSV: {exc}"
            return
    table = result.table
    assert table is not None, "both readers set the table"
    for column in COLUMNS:  # optional columns a file lacks are still in the output, as nulls
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
    result.table = table.select(list(COLUMNS))
