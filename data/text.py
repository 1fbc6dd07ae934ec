"""Text and number clean-up for catalogue columns, vectorised with Arrow.

Low-cardinality columns (categories, prices, ratings) are dictionary-encoded and each distinct value is
cleaned once in Python; free text (names, URLs) goes through Arrow compute kernels. Both follow the same
rules: Unicode NFKC, curly quotes straightened, runs of whitespace collapsed, ends trimmed, "" -> missing.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

_SPACES = re.compile(r"\s+")
_NOT_NUMBER = re.compile(r"[^0-9.]")


def clean_str(value: str | None) -> str | None:
    """One value: NFKC, straight quotes, single spaces, trimmed; empty -> None."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", value).replace("\u2018", "'").replace("\u2019", "'")
    text = _SPACES.sub(" ", text).strip()
    return text or None


def clean_category(value: str | None) -> str | None:
    """A category as a mapping key: :func:`clean_str`, lower case."""
    text = clean_str(value)
    return text.lower() if text else None


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


def clean_text_column(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """:func:`clean_str` for a high-cardinality column, with Arrow kernels."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    # NFKC changes nothing in pure ASCII, which most catalogue text is: normalise only the rest.
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if pc.any(non_ascii).as_py():
        fixed = pc.utf8_normalize(values.filter(non_ascii), "NFKC")
        values = pc.replace_with_mask(values, non_ascii, fixed)
    text = pc.replace_substring(pc.replace_substring(values, "\u2018", "'"), "\u2019", "'")
    # Collapse runs: a single ordinary space is by far the most common match, so leave it alone.
    text = pc.replace_substring_regex(text, r"\s\s+|[\t\n\r\f\v]", " ")
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
