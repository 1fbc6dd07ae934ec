"""The one way to write a file: atomically (whole or not at all), shareable (0644), JSON pretty-printed; and the
one way for a run to own a folder (an exclusive lock the kernel drops when the process ends, even on kill -9)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

from data.core.errors import BusyError, InputError
from data.core.interrupt import stop_if_ctrl_c

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FILE_MODE = 0o644  # outputs are data to share; mkstemp alone would leave them readable by the owner only


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_special(target: Path) -> None:
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise InputError(f"{target} exists and is not a regular file (a device, FIFO or socket): it was left alone")


def atomic_write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary path beside ``target`` (e.g. ``pq.write_table``), then rename it.

    A reader (or a resumed run after ``kill -9``) sees either no file or the whole file, never a part.
    A target that exists and is not a regular file (a device such as ``/dev/null``, a FIFO, a socket) is
    refused with ``InputError``: the rename would replace it, and it is not ours to replace.
    """
    _refuse_special(target)
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


def atomic_write_bytes(target: Path, payload: bytes, sync: bool = True) -> None:
    """Write ``payload`` to ``target`` atomically (see :func:`atomic_write_with`), synced to disk unless ``sync``
    is false (the downloader's many small images: a sync each would cost more than the rare rerun of one)."""

    def write(path: Path) -> None:
        with open(path, "wb") as fh:
            fh.write(payload)
            if sync:
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


def read_json_lenient(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable, not JSON or not an object.

    For optional files whose absence only leaves something out (a model card's provenance, a credentials file
    that may be elsewhere); a file a stage needs is read with :func:`data.core.contracts.read_json`, which
    refuses with the command to run.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return doc if isinstance(doc, dict) else None


def write_parquet(target: Path, table: "pa.Table | pd.DataFrame") -> None:
    """Write an Arrow table or a pandas frame (without its index) to ``target`` as Parquet, atomically."""
    import pandas as pd
    import pyarrow.parquet as pq

    if isinstance(table, pd.DataFrame):  # through pandas: its metadata keeps nullable Int64 and the like
        frame = table
        atomic_write_with(target, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        arrow = table
        atomic_write_with(target, lambda tmp: pq.write_table(arrow, tmp))


@contextmanager
def exclusive(lock_file: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created with its folder) or raise ``BusyError(busy)`` at once.

    The lock is not a file's content but the kernel's: it is released when the process ends, however it ends,
    so a killed run never leaves a stale lock behind. The (empty) file is removed when the block ends, error
    or Ctrl-C included, while still held; a run that opened it just before is told so by the file's identity
    and tries a fresh one, so two runs never hold two different files.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        with open(lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise BusyError(busy) from exc
            if not _still_there(handle, lock_file):
                continue  # the holder before us removed it as we opened it: take the new one
            try:
                yield
            finally:
                lock_file.unlink(missing_ok=True)
            return
    raise BusyError(busy)


def _still_there(handle: IO[str], path: Path) -> bool:
    """Whether ``path`` still names the file open in ``handle`` (not removed or replaced since)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino)


class _Saves(Protocol):
    def save(self, folder: Path) -> Any: ...


@contextmanager
def staged_dir(out_dir: Path, config: _Saves | None = None) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to fill; when the block ends, ``config.resolved.json`` is added
    (``config.save``) and the folder replaces ``out_dir`` whole. On any error it is removed and ``out_dir``
    stays as it was.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        os.chmod(tmp, 0o755)  # a shareable output folder, not mkdtemp's owner-only one
        yield tmp
        if config is not None:
            config.save(tmp)
        stop_if_ctrl_c()  # pressed and swallowed inside the block (TensorFlow): do not publish
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def staged_files(out_dir: Path, names: Sequence[str]) -> Iterator[Path]:
    """A private folder inside ``out_dir`` to write the files ``names`` into; when the block ends they are moved
    into ``out_dir`` in that order (put last the one that vouches for the others, e.g. a report). The folder is
    removed whatever happens, so on any error ``out_dir`` keeps its earlier files.

    For outputs that share their folder with another stage's (extract's three files sit beside download's
    ``images/``), which therefore cannot be swapped in whole like :func:`staged_dir`'s.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".staged-", suffix=".tmp"))
    try:
        yield staging
        stop_if_ctrl_c()
        for name in names:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
