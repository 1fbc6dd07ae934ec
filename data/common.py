"""Small helpers every stage shares: logging that coexists with tqdm, atomic writes, JSON reports."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm


def url_key(url: str) -> str:
    """The stable key of an image: the first 16 hex digits of the SHA-1 of its URL.

    Extract writes it into the catalogue and download derives it when an input has no key column: one
    definition, so both agree.
    """
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


class TqdmHandler(logging.Handler):
    """A logging handler that writes through ``tqdm.write`` so log lines do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger once, for command-line entry points (never at import time)."""
    root = logging.getLogger()
    if any(isinstance(h, TqdmHandler) for h in root.handlers):
        return
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)


FILE_MODE = 0o644  # outputs are data to share; mkstemp alone would leave them readable by the owner only


def atomic_write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary path beside ``target`` (e.g. ``pq.write_table``), then rename it.

    A reader (or a resumed run after ``kill -9``) sees either no file or the whole file, never a part.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, FILE_MODE)
        writer(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: Path, payload: bytes) -> None:
    """Write ``payload`` to ``target`` atomically (see :func:`atomic_write_with`), synced to disk."""
    def write(path: Path) -> None:
        with open(path, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write_with(target, write)


def replace_dir(src: Path, target: Path) -> None:
    """Move the finished folder ``src`` onto ``target`` (same file system), replacing any old one.

    The old folder is first renamed aside, so at every moment ``target`` is either the old or the new
    folder, never a half-written one.
    """
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(target: Path, doc: Any) -> None:
    """Write a JSON document atomically, pretty-printed."""
    atomic_write_bytes(target, (json.dumps(doc, indent=2, default=str) + "\n").encode("utf-8"))


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    """Print a one-paragraph error for the user and exit without a stack trace."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
