"""Text and number clean-up for catalogue columns, vectorised with Arrow.

Low-cardinality columns (categories, prices, ratings) are dictionary-encoded and each distinct value is
cleaned once in Python; free text (names, URLs) goes through Arrow compute kernels. Both follow the same
rules: Unicode NFKC, curly quotes straightened, runs of whitespace collapsed, ends trimmed, "" -> missing.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NOT_NUMBER = re.compile(r"[^0-9.]")


def to_number(value: str | None) -> float | None:
    """'₹32,999' -> 32999.0, '2,255' -> 2255.0, '4.2' -> 4.2; no number (e.g. 'Get') -> None."""
    if value is None:
        return None
    digits = _NOT_NUMBER.sub("", value)
    try:
        return float(digits)
    except ValueError:
        return None


def map_distinct(values: pa.ChunkedArray | pa.Array, func: Callable, out_type: pa.DataType) -> pa.Array:
    """Apply ``func`` once per distinct value of a low-cardinality column."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], encoded.type)
    mapped = pa.array([func(v) for v in encoded.dictionary.to_pylist()], out_type)
    return mapped.take(encoded.indices)


def clean_text_column(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """:func:`data.core.mapping.clean_str` for a high-cardinality column, with Arrow kernels.

    Most catalogue text is plain ASCII with single spaces, so each fix-up is applied only to the rows that
    need it (NFKC and quotes: non-ASCII rows; whitespace: rows with a run or a tab/newline).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if pc.any(non_ascii).as_py():
        fixed = pc.utf8_normalize(values.filter(non_ascii), "NFKC")
        fixed = pc.replace_substring(pc.replace_substring(fixed, "\u2018", "'"), "\u2019", "'")
        values = pc.replace_with_mask(values, non_ascii, fixed)
    # After NFKC every Unicode space is an ASCII one, so ASCII whitespace rules are enough from here.
    spaced = pc.fill_null(pc.match_substring_regex(values, r"\s\s|[\t\n\r\f\v]"), False)
    if pc.any(spaced).as_py():
        values = pc.replace_with_mask(
            values, spaced, pc.replace_substring_regex(values.filter(spaced), r"\s\s+|[\t\n\r\f\v]", " ")
        )
    return empty_to_null(trim_ascii(values))


def _has_edge_space(values: pa.Array) -> bool:
    """Whether any value may start or end with ASCII whitespace (an over-estimate is harmless)."""
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + len(values) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts  # a null's slot is empty as a rule; if not, it is merely checked too
    if values.buffers()[2] is None or not filled.any():
        return False
    data = np.frombuffer(values.buffers()[2], np.uint8)
    edges = np.concatenate([data[starts[filled]], data[ends[filled] - 1]])
    return bool(((edges == 32) | ((edges >= 9) & (edges <= 13))).any())  # exactly what Arrow trims


def trim_ascii(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``pc.ascii_trim_whitespace``, with no copy when no value needs trimming (the common case)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pc.ascii_trim_whitespace(values) if _has_edge_space(values) else values


def empty_to_null(values: pa.Array) -> pa.Array:
    """ "" -> missing, with no copy when there is no "" (the common case)."""
    empty = pc.equal(values, pa.scalar("", pa.string()))
    return pc.if_else(empty, pa.scalar(None, pa.string()), values) if pc.any(empty).as_py() else values
