"""Write the catalogue while it is being built: a part is written on a writer thread as the next is built.

Building the kept rows and encoding them into Parquet take about as long as each other, and one follows
the other; in parts, they overlap. Each part becomes a row group of the one ``catalogue.parquet``, which
reads back as the same table.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data.core.io import atomic_write_with, write_parquet
from data.extract.transform import Triage, kept_table

ROWS_PER_PART = 150_000  # kept rows per part (and row group); fewer rows are built and written in one go
MAX_PARTS = 4


def part_bounds(keep: np.ndarray, rows_per_part: int = ROWS_PER_PART, max_parts: int = MAX_PARTS) -> list[int]:
    """Row boundaries that cut the table into parts with about the same number of kept rows each."""
    kept = np.flatnonzero(keep)
    parts = max(1, min(max_parts, len(kept) // rows_per_part))
    inner = [int(kept[len(kept) * k // parts]) for k in range(1, parts)]
    return [0, *inner, len(keep)]


def kept_parts(table: pa.Table, triage: Triage, mapping: dict[str, str], bounds: list[int]) -> Iterable[pa.Table]:
    """:func:`data.extract.transform.kept_table` part by part, the parts cut at ``bounds``."""
    for start, stop in zip(bounds[:-1], bounds[1:]):
        part = Triage(
            code=triage.code[start:stop],
            origin=triage.origin[start:stop],
            url=triage.url.slice(start, stop - start),
            main=triage.main.slice(start, stop - start),
        )
        yield kept_table(table.slice(start, stop - start), part, mapping)


def _write_parts(path: Path, parts: Iterable[pa.Table], built: list[pa.Table]) -> None:
    """Build the parts on this thread and write each, in order, on a writer thread."""
    writer: pq.ParquetWriter | None = None
    pending: list[Future] = []
    with ThreadPoolExecutor(1) as pool:
        try:
            for part in parts:
                built.append(part)
                if writer is None:
                    writer = pq.ParquetWriter(path, part.schema)
                pending.append(pool.submit(writer.write_table, part))
            for write in pending:
                write.result()
        finally:
            for write in pending:  # the writer is closed only once no write is running
                write.cancel() or write.exception()
            if writer is not None:
                writer.close()


def build_catalogue(
    table: pa.Table, triage: Triage, mapping: dict[str, str], target: Path | None, rows_per_part: int = ROWS_PER_PART
) -> pa.Table:
    """The catalogue table; written to ``target`` (if given) while it is built, when it is large enough."""
    bounds = part_bounds(triage.keep, rows_per_part)
    parts = kept_parts(table, triage, mapping, bounds)
    if len(bounds) == 2:
        kept = next(iter(parts))
        if target is not None:
            write_parquet(target, kept)
        return kept
    built: list[pa.Table] = []
    if target is None:
        built = list(parts)
    else:
        atomic_write_with(target, lambda path: _write_parts(path, parts, built))
    return pa.concat_tables(built)
