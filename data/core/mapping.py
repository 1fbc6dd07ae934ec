"""The reviewed label mapping (``[paths] label_mapping``, ``main_category,label``), read by extract (to label
each row) and by ``make eda`` (to show which category went where), and the text rules its keys share with the
catalogue's categories, so both normalise a category the same way."""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from data.core.errors import InputError

LABEL_MAPPING = "label_mapping"  # its [paths] entry
_SPACES = re.compile(r"\s+")


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


def load_mapping(path: Path) -> dict[str, str]:
    """Read the reviewed ``main_category,label`` mapping; keys are normalised like the data.

    Raises:
        InputError: the file is missing, not a UTF-8 CSV, lacks the header, has an empty cell or maps one
            category to two labels.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [record for record in csv.reader(fh) if record]  # blank lines are skipped
    except FileNotFoundError as exc:
        raise InputError(f"label mapping not found: {path}") from exc
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise InputError(f"label mapping {path} is not a UTF-8 CSV file (main_category,label): {exc}") from exc
    if not rows or rows[0][:2] != ["main_category", "label"]:
        raise InputError(f"{path}: the header must be 'main_category,label'")
    pairs = [(clean_category(r[0]), r[1].strip() if len(r) > 1 else "") for r in rows[1:]]
    if any(key is None or not label for key, label in pairs):
        raise InputError(f"{path}: every row needs a main_category and a label")
    checked = [(key, label) for key, label in pairs if key is not None]  # all of them, after the check above
    labels: dict[str, set[str]] = {}
    for key, label in checked:
        labels.setdefault(key, set()).add(label)
    conflicts = sorted(key for key, values in labels.items() if len(values) > 1)
    if conflicts:
        raise InputError(f"{path}: categories mapped to two labels: {conflicts}")
    return dict(checked)
