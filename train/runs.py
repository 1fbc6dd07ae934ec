"""Run folders: ``{runs}/<run_id>/`` with a ``{runs}/latest`` text file naming the newest finished one.

A run id is a UTC timestamp plus the backbone (``20240501-101500-resnet50``), so runs sort by time and say
what they trained. Every stage that reads a run names it the same way (``latest``, a run id or a folder) and
finds it with :func:`data.core.runs.resolve_run`.

A run is built in ``{runs}/.incomplete/<run_id>/`` and renamed to ``{runs}/<run_id>/`` only when its model
is saved, so every run folder holds a model. A run refused before its first epoch leaves nothing; one
interrupted later keeps its checkpoints there for ``--resume <run_id>``. Only a finished run moves ``latest``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from data.core.errors import BusyError
from data.core.runs import LATEST, resolve_run
from train.errors import TrainingDiverged

log = logging.getLogger(__name__)

INCOMPLETE = ".incomplete"


@dataclass(frozen=True)
class TrainResult:
    """Where a training run went and its metrics (empty on a non-chief multi-worker task)."""

    run_dir: Path
    metrics: dict[str, Any]


def new_run_id(backbone: str, runs_dir: Path | None = None) -> str:
    """A fresh run id: UTC timestamp (to the second) plus the backbone name (``-2``, ... when taken)."""
    base = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{backbone}"
    candidate, n = base, 1
    while runs_dir is not None and ((runs_dir / candidate).exists() or (runs_dir / INCOMPLETE / candidate).exists()):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def resolve_resume(runs_dir: Path, ref: str) -> Path:
    """The folder ``--resume`` continues: an interrupted run (``.incomplete/<id>``) or a finished one."""
    if ref != LATEST and (runs_dir / INCOMPLETE / ref).is_dir():
        return runs_dir / INCOMPLETE / ref
    return resolve_run(runs_dir, ref)


@dataclass
class RunFolder:
    """Where a run writes (``work``) and where it ends (``final``)."""

    work: Path
    final: Path
    created: bool

    def epochs_done(self) -> bool:
        return (self.work / "checkpoints" / "history.jsonl").is_file()


@contextlib.contextmanager
def run_folder(runs_dir: Path, run_id: str, resume: Path | None, chief: bool = True) -> Iterator[RunFolder]:
    """Hold a run's folder for a ``with`` block; on success the work folder becomes ``{runs}/<run_id>``.

    Raises:
        BusyError: a new run whose id is already taken (finished or interrupted).
    """
    if not chief:  # a non-chief multi-worker task writes nothing that lasts
        scratch = Path(tempfile.mkdtemp(prefix="train-worker-"))
        if resume is not None and (resume / "checkpoints").is_dir():  # restore the chief's state, as it does
            shutil.copytree(resume / "checkpoints", scratch / "checkpoints")
        try:
            yield RunFolder(scratch, scratch, True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if resume is not None:
        folder = RunFolder(resume, runs_dir / resume.name, False)
    else:
        folder = RunFolder(runs_dir / INCOMPLETE / run_id, runs_dir / run_id, True)
        if folder.final.exists() or folder.work.exists():
            raise BusyError(f"run id {run_id!r} is taken in {runs_dir}: choose another --run-id or --resume it")
        folder.work.mkdir(parents=True)
    try:
        yield folder
    except BaseException as exc:
        diverged = isinstance(exc, TrainingDiverged)  # NaN weights: nothing worth resuming
        if folder.created and (not folder.epochs_done() or diverged):
            shutil.rmtree(folder.work, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.work.parent.rmdir()  # .incomplete/, when no other interrupted run is in it
        elif folder.work != folder.final and not diverged:
            log.warning("run %s interrupted: continue it with --resume %s", run_id, folder.final.name)
        raise
    if folder.work != folder.final:
        os.replace(folder.work, folder.final)
        with contextlib.suppress(OSError):
            folder.work.parent.rmdir()
