"""Input reading, shards and resumption for the downloader.

The input list (deduplicated by key, in input order) is cut into shards of ``shard_size`` rows. When a
shard's last URL is done, its result file ``<state>/shard-NNNNNN.parquet`` is written atomically; a
shard is therefore a unit that could run anywhere (e.g. as a Ray task). A rerun reads the shard files,
keeps what is done and plans only the rest; the final manifest is assembled from the shard files, each
input row exactly once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.core.contracts import url_key
from data.core.errors import InputError
from data.core.io import write_parquet
from data.download.records import InputRow

log = logging.getLogger(__name__)

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64()}


@dataclass(frozen=True)
class Columns:
    """Names of the URL, key and label columns of the input."""

    url: str = "url"
    key: str = "key"
    label: str = "label"


@dataclass
class InputTable:
    """The rows to process (unique keys, input order) and what was left out of them."""

    rows: list[InputRow]
    input_rows: int
    duplicate_keys: list[str] = field(default_factory=list)
    conflicting_keys: list[str] = field(default_factory=list)


@dataclass
class Shard:
    """One slice of the input: the rows still to do and the prior results that stay as they are."""

    index: int
    keys: list[str]
    todo: list[InputRow]
    kept: pa.Table | None = None  # None: nothing to do and the result file is already right
    rewrite: bool = False  # the result file is missing or stale even when nothing is left to do
    carried: list[dict[str, Any]] = field(default_factory=list)  # prior results moved to a new label


def safe_folder(label: str) -> str:
    """A folder name made from a label (unsafe characters become ``_``); "" when nothing is left."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")


def input_problem(row: InputRow) -> str | None:
    """Why a row cannot be stored under ``<folder>/<key>.jpg`` (None when it can)."""
    if not _SAFE_KEY.fullmatch(row.key):
        return "empty key" if not row.key else "unsafe key (allowed: letters, digits, _ . -)"
    if not row.folder:
        return "empty label"
    return None


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _check_columns(path: Path, names: list[str], columns: Columns) -> None:
    for name, role in ((columns.url, "URL"), (columns.label, "label")):
        if name not in names:
            raise InputError(f"{path} has no {role} column {name!r} (columns: {', '.join(map(str, names))})")


def check_input(path: Path, columns: Columns = Columns()) -> None:
    """Refuse a missing, empty or header-less input cheaply, before a run takes its output folder.

    A CSV's header line is read (no thread starts: the worker pool may still fork); a Parquet file only
    has its magic bytes checked here, the rest when :func:`read_input` reads it.
    """
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(
            f"{path} is empty (0 bytes): write the catalogue first (make extract) or pass a list "
            f"with {columns.url} and {columns.label} columns"
        )
    if _is_parquet(path):
        with path.open("rb") as handle:
            if handle.read(4) != b"PAR1":
                raise InputError(f"cannot read {path}: not a Parquet file (pass a .csv name for a CSV list)")
        return
    _check_columns(path, list(_read_frame(path, columns, rows=0).columns), columns)


def _read_frame(path: Path, columns: Columns, rows: int | None = None) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    try:
        if _is_parquet(path):
            names = set(pq.read_schema(path).names)
            wanted = [c for c in (columns.url, columns.key, columns.label) if c in names]
            return pd.read_parquet(path, columns=wanted)
        return pd.read_csv(path, dtype=str, keep_default_na=False, nrows=rows)
    except pd.errors.EmptyDataError as exc:
        raise InputError(
            f"{path} has no header line: write the catalogue first (make extract) or pass a CSV with "
            f"{columns.url} and {columns.label} columns"
        ) from exc
    except (OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _text(series: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(v).strip() for v in series]


def read_input(path: Path, columns: Columns = Columns(), limit: int | None = None) -> InputTable:
    """Read a Parquet or CSV list of URLs; a missing key column is filled with sha1(url)[:16]."""
    frame = _read_frame(path, columns)
    _check_columns(path, list(frame.columns), columns)
    if limit is not None:
        frame = frame.head(limit)
    urls, labels = _text(frame[columns.url]), _text(frame[columns.label])
    if columns.key in frame.columns:
        keys = _text(frame[columns.key])
    else:
        log.info("no key column %r: using sha1(url)[:16] as the key", columns.key)
        keys = [url_key(u) for u in urls]
    seen: dict[str, InputRow] = {}
    table = InputTable(rows=[], input_rows=len(frame))
    for key, url, label in zip(keys, urls, labels):
        row = InputRow(key, url, label, safe_folder(label))
        first = seen.get(key)
        if first is None:
            seen[key] = row
            table.rows.append(row)
            continue
        table.duplicate_keys.append(key)
        if (first.url, first.label) != (url, label):
            table.conflicting_keys.append(key)
    return table


def arrow_schema(record_type: type) -> pa.Schema:
    """The Parquet schema of a record dataclass (``int | None`` becomes a nullable int64)."""
    hints = typing.get_type_hints(record_type)
    cols = []
    for f in dataclasses.fields(record_type):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        cols.append(pa.field(f.name, _ARROW[hint]))
    return pa.schema(cols)


def shard_path(state_dir: Path, index: int) -> Path:
    """Where shard ``index`` keeps its results."""
    return state_dir / f"shard-{index:06d}.parquet"


def shard_table(shard: Shard, new_rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The complete result table of a shard: kept rows and new rows, in the shard's key order."""
    table = pa.Table.from_pylist(new_rows, schema=schema)
    if shard.kept is not None and shard.kept.num_rows:
        table = pa.concat_tables([shard.kept, table])
    position = {k: i for i, k in enumerate(table.column("key").to_pylist())}
    return table.take([position[k] for k in shard.keys])


def _read_table(path: Path, schema: pa.Schema) -> pa.Table | None:
    try:
        return pq.read_table(path, schema=schema)
    except (OSError, ValueError, pa.ArrowException) as exc:  # unreadable or older layout: redo its URLs
        log.warning("ignoring unusable shard result %s: %s", path, exc)
        return None


class PriorResults:
    """Results of earlier runs, read from the shard files of ``state_dir``."""

    def __init__(self, state_dir: Path, schema: pa.Schema) -> None:
        self.state_dir = state_dir
        self.schema = schema
        self._all: dict[str, dict[str, Any]] | None = None

    def for_shard(self, index: int, keys: list[str]) -> tuple[pa.Table, bool]:
        """Prior rows for ``keys``, and whether the shard's own file holds exactly those keys."""
        path = shard_path(self.state_dir, index)
        table = _read_table(path, self.schema) if path.is_file() else None
        if table is not None and table.column("key").to_pylist() == keys:
            return table, True
        everything = self._everything()
        return pa.Table.from_pylist([everything[k] for k in keys if k in everything], schema=self.schema), False

    def _everything(self) -> dict[str, dict[str, Any]]:
        """Every shard file's rows by key (built once, only when the shard layout changed); "ok" wins."""
        if self._all is None:
            self._all = {}
            files = sorted(self.state_dir.glob("shard-*.parquet"), key=lambda p: p.stat().st_mtime)
            for path in files:
                table = _read_table(path, self.schema)
                for row in table.to_pylist() if table is not None else []:
                    old = self._all.get(row["key"])
                    if old is None or old["status"] != "ok" or row["status"] == "ok":
                        self._all[row["key"]] = row
        return self._all


Carry = Callable[[InputRow, dict[str, Any]], dict[str, Any] | None]


def plan_shards(
    rows: list[InputRow],
    shard_size: int,
    prior: PriorResults,
    is_done: Callable[[InputRow, dict[str, Any]], bool],
    carry: Carry | None = None,
) -> list[Shard]:
    """Cut ``rows`` into shards; a prior result for the same URL and label that ``is_done`` is kept.

    A prior result for the same URL under another label goes through ``carry``, which returns the result
    for the new label (e.g. after moving the stored file) or None to fetch the URL again.
    """
    shards = []
    for index, start in enumerate(range(0, len(rows), shard_size)):
        chunk = rows[start : start + shard_size]
        keys = [r.key for r in chunk]
        table, exact = prior.for_shard(index, keys)
        columns = [c for c in ("key", "url", "label", "status", "path") if c in table.column_names]
        old = {r["key"]: r for r in table.select(columns).to_pylist()}
        kept, todo, carried = [], [], []
        whole: dict[str, dict[str, Any]] | None = None
        for row in chunk:
            prev = old.get(row.key)
            if prev is not None and prev["url"] == row.url:
                if prev["label"] == row.label and is_done(row, prev):
                    kept.append(row.key)
                    continue
                if prev["label"] != row.label and carry is not None:
                    whole = whole if whole is not None else {r["key"]: r for r in table.to_pylist()}
                    record = carry(row, whole[row.key])
                    if record is not None:
                        carried.append(record)
                        continue
            todo.append(row)
        shard = Shard(index, keys, todo, rewrite=not exact or bool(carried), carried=carried)
        if todo or shard.rewrite:
            shard.kept = table.filter(pc.is_in(table.column("key"), value_set=pa.array(kept, pa.string())))
        shards.append(shard)
    return shards


def assemble(state_dir: Path, shards: list[Shard], target: Path, schema: pa.Schema) -> pa.Table:
    """Concatenate the shard files into ``target`` (atomically): one row per planned key, in input order."""
    tables = [pq.read_table(shard_path(state_dir, s.index), schema=schema) for s in shards]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    planned = [k for s in shards for k in s.keys]
    got = table.column("key").to_pylist()
    if got != planned:
        raise RuntimeError(f"shard results do not match the plan ({len(got)} rows for {len(planned)} keys)")
    # through pandas so that the file records nullable integers as Int64 (pandas would read floats otherwise)
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    write_parquet(target, frame)
    return table


def count_outcomes(table: pa.Table) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Counts by status and, within each failure status, by reason (both sorted, largest first)."""
    frame = table.select(["status", "reason"]).to_pandas()
    by_status = {str(k): int(v) for k, v in frame["status"].value_counts().items()}
    by_reason: dict[str, dict[str, int]] = {}
    for (status, reason), n in frame[frame["status"] != "ok"].value_counts().items():
        by_reason.setdefault(str(status), {})[str(reason)] = int(n)
    return by_status, by_reason
