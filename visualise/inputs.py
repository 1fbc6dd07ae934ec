"""Reading the other stages' outputs, through the contracts of :mod:`data.core.contracts`.

Every file a report needs is checked here once: a missing or malformed one ends as an ``InputError`` that
names the file and the command that writes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from data.core.config import Config
from data.core.contracts import CATALOGUE, DROPPED, EXTRACT_REPORT, IMAGES, LABELS, MANIFEST, RUNS
from data.core.runs import resolve_run

log = logging.getLogger(__name__)

ISSUES_FILE = "issues.parquet"
ISSUE_COLUMNS = ("key", "issue_type")
DOWNLOAD_REPORT = "download_report.json"


@dataclass(frozen=True)
class EdaInputs:
    """Where ``make eda`` reads: extract's three files, download's manifest and report, the image folder."""

    catalogue: Path
    dropped: Path
    extract_report: Path
    manifest: Path
    images: Path
    mapping: Path

    @classmethod
    def from_config(cls, cfg: Config) -> "EdaInputs":
        """The ``[paths]`` entries of the configuration."""
        return cls(
            catalogue=CATALOGUE.path(cfg),
            dropped=DROPPED.path(cfg),
            extract_report=cfg.path(EXTRACT_REPORT),
            manifest=MANIFEST.path(cfg),
            images=cfg.path(IMAGES),
            mapping=cfg.path("label_mapping"),
        )

    @property
    def download_report(self) -> Path:
        """download's JSON report, beside its manifest."""
        return self.manifest.parent / DOWNLOAD_REPORT


@dataclass(frozen=True)
class RunInputs:
    """Where ``make visualise`` reads: the run folder, the images, every run (to compare) and the labels."""

    run_dir: Path
    images: Path
    runs: Path
    labels: Path

    @classmethod
    def from_config(cls, cfg: Config, run: str) -> "RunInputs":
        """The ``[paths]`` entries, with ``run`` (latest, a run id or a folder) resolved.

        Raises:
            InputError: no such run (``RunNotFound``).
        """
        return cls(resolve_run(cfg.path(RUNS), run), cfg.path(IMAGES), cfg.path(RUNS), cfg.path(LABELS))


def label_issues(root: Path, version: str) -> tuple[pd.DataFrame | None, str]:
    """``make label``'s ``issues.parquet`` (key, issue_type) and where it came from; None when there is none.

    ``version`` is a folder name under ``root`` (``[paths] labels``) or ``latest``: the folder named by a
    ``latest`` file there, else the last folder (by name) holding an ``issues.parquet``.
    """
    if version == "latest":
        pointer = root / "latest"
        if pointer.is_file():
            version = pointer.read_text(encoding="utf-8").strip()
        else:
            found = sorted(p.parent.name for p in root.glob(f"*/{ISSUES_FILE}")) if root.is_dir() else []
            if not found:
                return None, ""
            version = found[-1]
    path = root / version / ISSUES_FILE
    if not path.is_file():
        return None, ""
    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError) as exc:
        log.warning("label issues not shown: %s is not readable Parquet (%s)", path, exc)
        return None, ""
    if not set(ISSUE_COLUMNS) <= set(names):
        log.warning("label issues not shown: %s lacks the columns %s", path, ", ".join(ISSUE_COLUMNS))
        return None, ""
    frame = pq.read_table(path, columns=list(ISSUE_COLUMNS)).to_pandas().astype(str)
    return frame.drop_duplicates().sort_values(list(ISSUE_COLUMNS), kind="stable").reset_index(drop=True), str(path)
