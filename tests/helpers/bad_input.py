"""How the bad-input tests run a stage and judge its refusal: as the user runs it (``python -m <stage>`` from
the repository root), and then one ``error:`` line naming the input, exit 2, no traceback, and every folder
it may not change exactly as it was (names and bytes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data.core.config import REPO_ROOT


def run_stage(module: str, *args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m module args...`` in the repository root, output captured, no stdin."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def one_clear_line(proc: subprocess.CompletedProcess, *words: str, code: int = 2) -> str:
    """Assert the stage ended with ``code``, no traceback and exactly one ``error:`` line holding ``words``."""
    tail = proc.stderr[-3000:]
    assert proc.returncode == code, tail
    assert "Traceback" not in proc.stderr, tail
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, tail
    for word in words:
        assert str(word) in errors[0], f"{word!r} not in {errors[0]!r}"
    return errors[0]


def snapshot(*folders: Path, ignore: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) in ``folders``, hidden ones included; nothing for a missing one."""
    found: dict[str, bytes | None] = {}
    for folder in folders:
        if folder.is_file():
            found[str(folder)] = folder.read_bytes()
            continue
        if folder.is_dir():
            found[str(folder)] = None  # so a folder that appears, even empty, is a change
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.name not in ignore:
                found[str(path)] = path.read_bytes() if path.is_file() else None
    return found
