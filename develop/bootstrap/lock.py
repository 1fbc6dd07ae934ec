"""Regenerate poetry.lock on machines whose package index has no per-release JSON API.

Why this exists: Poetry's built-in PyPI source needs the JSON API, which some mirrors (and the
sandbox this project was built in) do not serve, while pip's "simple" index works. We lock in a
temporary copy of the project with an extra source whose URL is read from pip at run time, then
strip that source from the lock so the committed file is an ordinary PyPI lock. No index host name
is written into the repository. On the open internet plain `poetry lock` does the same job.

Run it through the tools virtualenv: `make lock`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def index_url() -> str:
    """The index pip would use: PIP_INDEX_URL if set, otherwise pip's default."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def main() -> int:
    poetry = Path(sys.executable).with_name("poetry")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("pyproject.toml", "poetry.toml", "README.md"):
            if (ROOT / name).exists():
                shutil.copy(ROOT / name, work / name)
        if (ROOT / "poetry.lock").exists():
            shutil.copy(ROOT / "poetry.lock", work / "poetry.lock")
        with open(work / "pyproject.toml", "a", encoding="utf-8") as fh:
            fh.write(f'\n[[tool.poetry.source]]\nname = "mirror"\nurl = "{index_url()}"\npriority = "primary"\n')
        subprocess.run([str(poetry), "lock"], cwd=work, check=True)
        lock = (work / "poetry.lock").read_text(encoding="utf-8")

    # Drop every [package.source] table the temporary source added.
    lock = re.sub(r"\n\[package\.source\]\n(?:[a-z_-]+ = .*\n)+", "\n", lock)
    from poetry.factory import Factory

    content_hash = Factory().create_poetry(ROOT).locker._get_content_hash()
    lock = re.sub(r'content-hash = "[0-9a-f]+"', f'content-hash = "{content_hash}"', lock)
    (ROOT / "poetry.lock").write_text(lock, encoding="utf-8")
    subprocess.run([str(poetry), "check", "--lock"], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
