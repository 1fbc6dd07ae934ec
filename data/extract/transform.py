"""The transform half of ``make extract``, column-wise in Arrow and NumPy (no per-row Python but the key).

Input: the concatenated table of every usable CSV, its text already cleaned file by file
(:mod:`data.extract.read`), with ``source_file`` and ``source_row``.
Output: the kept rows as manifest columns, and the dropped rows with a reason and a detail each.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.core.contracts import CATALOGUE, DROPPED
from data.core.mapping import clean_str
from data.extract.text import empty_to_null, map_distinct, to_number, trim_ascii

# Row drop reasons, in the order they are checked; the code of a row is its index here (-1 = kept).
REASONS = (
    "missing_image_url",
    "invalid_image_url",
    "missing_main_category",
    "unmapped_category",
    "duplicate_url",
    "merged_file_duplicate",
)
DUPLICATE, MERGED_DUPLICATE = 4, 5
DROPPED_SCHEMA = pa.schema(list(zip(DROPPED.columns, (pa.string(), pa.int64(), pa.string(), pa.string(), pa.string()))))


@dataclass
class Triage:
    """Every row's fate: ``code`` (-1 kept, else an index into REASONS) and the kept copy of a duplicate."""

    code: np.ndarray
    origin: np.ndarray
    url: pa.Array
    main: pa.Array

    @property
    def keep(self) -> np.ndarray:
        return self.code == -1


def _numpy(values: pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


def clean_url(values: pa.Array) -> pa.Array:
    """URLs are only trimmed; an empty one is missing."""
    return empty_to_null(trim_ascii(values))  # URLs are ASCII (RFC 3986): far cheaper than utf8_trim


def url_keys(urls: pa.Array) -> pa.Array:
    """:func:`url_key` of every URL of an array without nulls, as a string array."""
    sha1 = hashlib.sha1
    digests = [sha1(url).hexdigest() for url in urls.cast(pa.binary()).to_pylist()]
    return pc.utf8_slice_codeunits(pa.array(digests, pa.string()), 0, 16)


def _encode_urls(urls: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """Each row's distinct-URL id (-1: missing), whether its URL is valid, and the number of distinct URLs."""
    encoded = pc.dictionary_encode(urls)  # each distinct URL is checked once
    encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], encoded.type)
    ids = _numpy(pc.fill_null(encoded.indices, -1))
    valid = _numpy(pc.fill_null(pc.match_substring_regex(encoded.dictionary, r"^https?://[^\s/]+"), False))
    return ids, np.append(valid, False)[ids], len(encoded.dictionary)


def classify(table: pa.Table, mapping: dict[str, str], from_merged: np.ndarray) -> Triage:
    """Decide for every row whether it is kept, and if not, why; duplicates keep their first copy.

    ``table`` is already cleaned (see :mod:`data.extract.read`): ``image`` holds trimmed URLs and
    ``main_category`` normalised categories.
    """
    with ThreadPoolExecutor(1) as pool:  # encoding the URLs takes longest: it runs beside the other checks
        encoding = pool.submit(_encode_urls, table["image"])
        url = table["image"].combine_chunks()
        main = table["main_category"].combine_chunks()
        missing_url = _numpy(url.is_null())
        missing_main = _numpy(main.is_null())
        mapped = _numpy(pc.fill_null(pc.is_in(main, value_set=pa.array(list(mapping), pa.string())), False))
        ids, url_ok, distinct = encoding.result()
    code = np.full(len(url), -1, np.int8)
    for reason, mask in enumerate((missing_url, ~missing_url & ~url_ok, missing_main, ~missing_main & ~mapped)):
        code[(code == -1) & mask] = reason
    candidates = np.flatnonzero(code == -1)
    first = np.full(distinct, len(url), np.int64)
    np.minimum.at(first, ids[candidates], candidates)  # the first row of every distinct URL
    kept_copy = first[ids[candidates]]
    duplicates = candidates[kept_copy != candidates]
    code[duplicates] = np.where(from_merged[duplicates], MERGED_DUPLICATE, DUPLICATE)
    origin = np.full(len(url), -1, np.int64)
    origin[duplicates] = kept_copy[kept_copy != candidates]
    return Triage(code=code, origin=origin, url=url, main=main)


def kept_table(table: pa.Table, triage: Triage, mapping: dict[str, str]) -> pa.Table:
    """The manifest: kept rows with cleaned text, parsed numbers, a key and the reduced label."""
    keep = pa.array(triage.keep)  # a filter works chunk by chunk; a take on many chunks is far slower
    derived = ("url", "main_category", "label")  # built below from the triage and the mapping
    rows = table.select([c for c in CATALOGUE.columns if c not in derived]).filter(keep)
    rows = rows.append_column("url", triage.url.filter(keep))
    main = triage.main.filter(keep)
    numbers = {
        c: map_distinct(rows[c], to_number, pa.float64())
        for c in ("ratings", "no_of_ratings", "discount_price", "actual_price")
    }
    columns = {
        "main_category": main,
        "sub_category": map_distinct(rows["sub_category"], clean_str, pa.string()),
        "label": map_distinct(main, mapping.get, pa.string()),
        "source_file": rows["source_file"].cast(pa.string()),
        **numbers,
        "no_of_ratings": pc.cast(pc.round(numbers["no_of_ratings"]), pa.int64()),
    }
    return pa.table({name: columns[name] if name in columns else rows[name] for name in CATALOGUE.columns})


def dropped_table(table: pa.Table, triage: Triage) -> pa.Table:
    """Dropped rows: where they came from, why, and for a duplicate where its kept copy came from."""
    rows = np.flatnonzero(~triage.keep)
    code = triage.code[rows]
    reason = pa.DictionaryArray.from_arrays(pa.array(code, pa.int8()), pa.array(REASONS)).cast(pa.string())
    source_file = table["source_file"].take(rows).cast(pa.string())
    source_row = table["source_row"].take(rows)
    origin = np.maximum(triage.origin[rows], 0)
    where = pc.binary_join_element_wise(
        "duplicate of ",
        table["source_file"].take(origin).cast(pa.string()),
        ":",
        pc.cast(table["source_row"].take(origin), pa.string()),
        "",
    )
    is_duplicate = pa.array(code >= DUPLICATE)
    unmapped = pc.if_else(
        pa.array(code == REASONS.index("unmapped_category")), triage.main.take(rows), pa.scalar(None, pa.string())
    )
    detail = pc.if_else(is_duplicate, where, unmapped)
    return pa.table([source_file, source_row, reason, detail, triage.url.take(rows)], schema=DROPPED_SCHEMA)
