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
from data.core.contracts import (
    CATALOGUE,
    DOWNLOAD_REPORT,
    DROPPED,
    EXTRACT_REPORT,
    IMAGES,
    ISSUES,
    LABELS,
    MANIFEST,
    RUNS,
    label_version_dir,
)
from data.core.errors import InputError
from data.core.mapping import LABEL_MAPPING
from data.core.runs import resolve_run

log = logging.getLogger(__name__)

ISSUE_COLUMNS = ("key", "issue_type")  # all the report needs of ISSUES: it tolerates an older table


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
            mapping=cfg.path(LABEL_MAPPING),
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

    ``version`` is ``latest`` (the version ``make label`` last wrote), a version name under ``root`` (``[paths]
    labels``) or a folder: :func:`data.core.contracts.label_version_dir`. None, not an error, when there is
    none: the report only leaves the overlay out.
    """
    try:
        path = label_version_dir(root, version) / ISSUES.file_name
    except InputError:
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
