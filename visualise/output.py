"""Writing a report folder whole or not at all, and the footer every report shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from data.core.config import Config
from data.core.errors import InputError
from data.core.io import staged_dir
from visualise.html import SIZE_TOKEN, esc, fmt

MB = 1_000_000


def json_bytes(doc: Any) -> bytes:
    """A report's JSON: sorted keys, no NaN (a NaN is a bug: it would make the file invalid JSON)."""
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def write_report_dir(target: Path, marker: str, fill: Callable[[Path], None], config: Config | None) -> None:
    """Build a report folder beside ``target`` with ``fill(tmp)`` and move it onto ``target`` in one step.

    A failed run leaves an earlier report exactly as it was; a ``target`` that exists without ``marker``
    (a report file this stage writes) is not ours and is never replaced.

    Raises:
        InputError: ``target`` exists and is not a report folder of this stage.
    """
    check_report_dir(target, marker)
    with staged_dir(target, config) as tmp:
        fill(tmp)


def check_report_dir(target: Path, marker: str) -> None:
    """Refuse a ``target`` this stage may not fill (called again before any work, so it answers at once).

    Raises:
        InputError: ``target`` exists without ``marker`` (a file, or a folder this stage did not write), or
            a file stands where one of its parent folders should be.
    """
    where = "choose another folder (--out, or SET=paths.reports=...)"
    if target.exists() and not (target / marker).is_file():
        raise InputError(f"{target} exists and is not a report folder (it has no {marker}); move it away or {where}")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{parent} is a file, so the report folder {target} cannot be made: {where}")
            break


def footer(budget_mb: float, sampling: list[str], seed: int) -> list[str]:
    """The footer lines: the size budget against this file's own size, what was sampled, how to rebuild."""
    return [
        f"Budget: this file is {SIZE_TOKEN} bytes (limit {fmt(budget_mb, 1)} MB, images embedded); a "
        f"full-size catalogue (551k rows, 100k+ images) builds in a few minutes on 2 cores "
        f"(<code>python -m bench.bench_report</code> measures it).",
        "Sampled: " + esc("; ".join(sampling)) + f" (seed {seed}).",
        "Self-contained and offline: nothing on this page is fetched from anywhere. The same inputs and seed "
        "give a byte-identical file; the build time is printed by the command, not stored here.",
    ]
