"""Naming a training run: ``latest`` (the default), a run id under ``{runs}``, or a run folder.

Every stage that reads a run (evaluate, predict, label, export, visualise, fusion, ``--resume``) takes it
from its options' ``run`` (``--run``, or ``<section>.run``) and finds the folder with :func:`resolve_run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data.core.contracts import RUN_FILES, read_json
from data.core.errors import InputError
from data.core.io import atomic_write_bytes

LATEST = "latest"


class RunNotFound(InputError, FileNotFoundError):
    """A run reference that names no run folder."""


def add_run_argument(parser: argparse.ArgumentParser, section: str) -> None:
    """``--run``: which run a stage reads; left out, ``<section>.run`` (itself ``latest`` by default)."""
    parser.add_argument("--run", help=f"latest (default: {section}.run), a run id or a run folder")


def resolve_run(runs_dir: Path, ref: str | Path = LATEST) -> Path:
    """The run folder named by ``ref``: ``latest``, a run id under ``runs_dir``, or a path to a run folder.

    ``latest-text`` and ``latest-fusion`` name the newest title and fusion runs the same way.

    Raises:
        RunNotFound: with a message for the user when no such run folder exists.
    """
    ref = str(ref)
    if ref == LATEST or (ref.startswith(LATEST + "-") and (runs_dir / ref).is_file()):  # latest-text, latest-fusion
        pointer = runs_dir / ref
        if not pointer.is_file():
            raise RunNotFound(f"no training run yet: {pointer} does not exist (run `make train` first)")
        ref = pointer.read_text(encoding="utf-8").strip()
    candidate = Path(ref)
    for folder in (candidate, runs_dir / ref):
        if folder.is_dir():
            return folder
    raise RunNotFound(f"no run folder {ref!r} (looked in {runs_dir})")


def mark_latest(runs_dir: Path, run_id: str, pointer: str = LATEST) -> None:
    """Point ``{runs}/<pointer>`` (``latest``, ``latest-text``, ``latest-fusion``) at ``run_id``: a one-line text
    file, written atomically, that :func:`resolve_run` follows."""
    atomic_write_bytes(runs_dir / pointer, (run_id + "\n").encode("utf-8"))


def run_images_dir(run_dir: Path, default: Path) -> Path:
    """The folder a run's ``split.csv`` paths are relative to: its ``train.images`` folder, else ``default``."""
    options = run_dir / RUN_FILES["options"]
    if options.is_file():
        images = read_json(options, "make train").get("images") or ""
        if isinstance(images, str) and images:
            return Path(images)
    return default


def run_kind(run_dir: Path) -> str:
    """``both`` for a fusion run, ``text`` for a title run (one from before text_model.npz too), else ``image``:
    told by the model file the run folder holds."""
    if (run_dir / RUN_FILES["fusion"]).is_file():
        return "both"
    if any((run_dir / RUN_FILES[k]).is_file() for k in ("text_model", "text_model_legacy")):
        return "text"
    return "image"


def require_photo_run(run_dir: Path, *, files: tuple[str, ...] = ("model", "classes")) -> None:
    """Raise ``InputError`` unless ``run_dir`` is a finished photo run (``RUN_FILES`` keys ``files`` present); a
    text or fusion run is named as such, with what to pass instead."""
    kind = run_kind(run_dir)
    if kind != "image":
        name = "a text (title) run" if kind == "text" else "a fusion run"
        raise InputError(
            f"{run_dir.name} is {name}, which has no photo model: give a photo run (--run latest, or a photo run's id)"
        )
    missing = [RUN_FILES[k] for k in files if not (run_dir / RUN_FILES[k]).is_file()]
    if missing:
        raise InputError(f"{run_dir} has no {', '.join(missing)}: did its training run finish? (make train)")
