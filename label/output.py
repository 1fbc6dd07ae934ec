"""Outputs written whole or not at all: a folder is filled beside its target, then moved onto it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data.core.config import Config
from data.core.io import replace_dir


@contextmanager
def staged_dir(out_dir: Path, config: Config | None = None) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to fill; when the block ends, ``config.resolved.json`` is added
    and the folder replaces ``out_dir`` whole. On any error it is removed and ``out_dir`` stays as it was.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        os.chmod(tmp, 0o755)  # a shareable output folder, not mkdtemp's owner-only one
        yield tmp
        if config is not None:
            config.save(tmp)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
