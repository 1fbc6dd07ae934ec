"""Read every catalogue CSV on a thread pool and clean each file's columns where it was read.

Row-wise work (URL trim, category, name and link clean-up, the key of each URL) gives the same values file
by file as on the concatenation, so it is done in the reader threads, in parallel, instead of in one pass
after reading.

The merged file (``Amazon-Products.csv``) repeats the category files: its rows are in practice all dropped
as duplicates, and a dropped row needs only its URL and main category. So of it only those two columns are
parsed and cleaned ("lazy"); if some of its rows are kept after all, :func:`read_whole` reads it again in
full (see :func:`data.extract.stage.extract`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from data.extract.csv_reader import FileRead, read_catalogue_csv
from data.core.mapping import clean_category
from data.extract.text import clean_text_column, map_distinct
from data.extract.transform import clean_url, url_keys

LAZY_COLUMNS = ("image", "main_category")  # what decides whether a row is kept; the rest is read as missing


def prepare(read: FileRead, lazy: bool = False) -> FileRead:
    """Clean one file's columns in place and add its ``key`` column (``image`` then holds the URL).

    ``lazy``: only the URL and the main category, the columns that decide whether a row is kept.
    """
    table = read.table
    if read.error is not None or table is None:
        return read
    url = clean_url(table["image"])
    cleaned = {"image": url, "main_category": map_distinct(table["main_category"], clean_category, pa.string())}
    if not lazy:
        cleaned.update(name=clean_text_column(table["name"]), link=clean_url(table["link"]))
    for name, values in cleaned.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    keys = pa.nulls(len(table), pa.string()) if lazy else url_keys(pc.fill_null(url, ""))
    read.table = table.append_column("key", keys)
    return read


def read_prepared(path: Path, name: str, lazy: bool = False, use_threads: bool = True) -> FileRead:
    """Read one file (of a lazy one only :data:`LAZY_COLUMNS`) and :func:`prepare` it."""
    return prepare(read_catalogue_csv(path, name, use_threads, LAZY_COLUMNS if lazy else None), lazy)


def read_whole(path: Path, lazy_read: FileRead) -> FileRead:
    """Read a lazily read file again, every column, and :func:`prepare` it in full.

    Raises:
        ValueError: the file no longer has the records it had when it was read lazily.
    """
    read = read_prepared(path, lazy_read.file)
    same = (read.error, read.rows_read, read.row_numbers, read.malformed, read.encoding) == (
        lazy_read.error,
        lazy_read.rows_read,
        lazy_read.row_numbers,
        lazy_read.malformed,
        lazy_read.encoding,
    )
    if (
        not same
        or read.table is None
        or lazy_read.table is None
        or not read.table["image"].equals(lazy_read.table["image"])
    ):
        raise ValueError(f"{lazy_read.file} changed while it was being read")
    return read


def read_all(files: list[Path], names: list[str], lazy: list[bool], threads: int, progress=None) -> list[FileRead]:
    """:func:`read_prepared` for every file on ``threads`` threads; the result is in the order given.

    The lazy files are started first: the merged file is the largest, and starting it last would leave
    one thread working alone at the end. With several files, each is parsed on its reader thread alone:
    the files keep the cores busy, and pyarrow's own threading would only add overhead.
    """
    order = sorted(range(len(files)), key=lambda i: not lazy[i])
    reads: list[FileRead | None] = [None] * len(files)
    use_threads = len(files) == 1
    with ThreadPoolExecutor(threads) as pool:
        futures = {pool.submit(read_prepared, files[i], names[i], lazy[i], use_threads): i for i in order}
        for future, i in futures.items():
            reads[i] = future.result()
            if progress is not None:
                progress.update(1)
    return [r for r in reads if r is not None]  # every slot was filled above
