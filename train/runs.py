"""Run folders: ``{runs}/<run_id>/`` with a ``{runs}/latest`` text file naming the newest one.

A run id is a UTC timestamp plus the backbone (``20240501-101500-resnet50``), so runs sort by time and say
what they trained. Evaluate, label and deploy resolve ``latest``, a run id or a folder path the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

from data.core.errors import InputError
from data.core.io import atomic_write_bytes

LATEST = "latest"


class RunNotFound(InputError, FileNotFoundError):
    """A run reference that names no run folder."""


def new_run_id(backbone: str) -> str:
    """A fresh run id: UTC timestamp (to the second) plus the backbone name."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{backbone}"


def mark_latest(runs_dir: Path, run_id: str) -> None:
    """Point ``{runs}/latest`` at ``run_id`` (a one-line text file, atomic)."""
    atomic_write_bytes(runs_dir / LATEST, (run_id + "\n").encode("utf-8"))


def resolve_run(runs_dir: Path, ref: str | Path = LATEST) -> Path:
    """The run folder named by ``ref``: ``latest``, a run id under ``runs_dir``, or a path to a run folder.

    Raises:
        RunNotFound: with a message for the user when no such run folder exists.
    """
    ref = str(ref)
    if ref == LATEST:
        pointer = runs_dir / LATEST
        if not pointer.is_file():
            raise RunNotFound(f"no training run yet: {pointer} does not exist (run `make train` first)")
        ref = pointer.read_text(encoding="utf-8").strip()
    candidate = Path(ref)
    for folder in (candidate, runs_dir / ref):
        if folder.is_dir():
            return folder
    raise RunNotFound(f"no run folder {ref!r} (looked in {runs_dir})")
