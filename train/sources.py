"""Where the images come from: the download manifest, or a folder of ``<label>/<file>`` or
``<split>/<label>/<file>``; each gives one row per usable image (key, path, label, group[, split]).

Rows that cannot be used are dropped and counted by reason (not stored, missing file, duplicate key; in a
folder: outside or nested below a class folder, an unsupported format such as TIFF, a broken or looping
symlink, an empty class folder, each named in the log); undecodable images are left out afterwards by
``ImageDataSet.screened``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from data.core.contracts import MANIFEST, stored_rows
from train.errors import DataSetError
from train.screen import IMAGE_SUFFIXES, NAMED_IN_LOG, UNSUPPORTED_SUFFIXES
from train.split import SPLITS

log = logging.getLogger(__name__)

ROW_COLUMNS = ["key", "path", "label", "group"]


def manifest_rows(manifest: Path, images_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stored images of a download manifest, and the rows dropped by reason.

    Raises:
        DataSetError: no manifest.
        InputError: a manifest without the columns of the download contract.
    """
    if not manifest.is_file():
        raise DataSetError(f"no download manifest at {manifest}: run `make download-images` first")
    rows = pd.read_parquet(manifest)
    MANIFEST.check(rows.columns, manifest)
    dropped: dict[str, int] = {}
    ok = stored_rows(rows) & rows["label"].notna()
    dropped["not_ok"] = int((~ok).sum())
    frame = rows[ok].copy()
    root = Path(images_dir).resolve()
    outside = frame["path"].map(lambda p: root not in (images_dir / p).resolve().parents).astype(bool)
    if outside.any():  # a manifest path like ../../etc/passwd: never read
        dropped["outside_images_folder"] = int(outside.sum())
        log.warning(
            "left out %d manifest rows whose path leaves %s: %s",
            outside.sum(),
            images_dir,
            ", ".join(frame.loc[outside, "path"].astype(str).head(NAMED_IN_LOG)),
        )
        frame = frame[~outside]
    exists = frame["path"].map(lambda p: (images_dir / p).is_file())
    dropped["missing_file"] = int((~exists).sum())
    absent = [str(images_dir / p) for p in frame.loc[~exists, "path"]]  # named by ImageDataSet.screened
    frame = frame[exists]
    duplicate = frame["key"].duplicated(keep="first")
    dropped["duplicate_key"] = int(duplicate.sum())
    frame = frame[~duplicate].astype({"key": str, "label": str, "path": str})
    frame["group"] = frame["sha256"] if "sha256" in frame else frame["key"]
    frame = frame[ROW_COLUMNS].reset_index(drop=True)
    return frame, {"source": str(manifest), "manifest_rows": int(len(rows)), "dropped": dropped, "absent": absent}


def _layout(folder: Path) -> str:
    """``split`` when the folder's subfolders are split names, ``label`` when they are class names."""
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise DataSetError(f"train.images = {folder} has no subfolders: put each class's images in <label>/")
    named = [s for s in subfolders if s in SPLITS]
    if not named:
        return "label"
    others = [s for s in subfolders if s not in SPLITS]
    if others:
        raise DataSetError(
            f"train.images = {folder} mixes split folders ({', '.join(named)}) with {', '.join(others[:5])}: "
            f"unknown split name(s); use <split>/<label>/<file> with split one of {', '.join(SPLITS)}, "
            f"or <label>/<file> for every class"
        )
    if "train" not in named:
        raise DataSetError(f"train.images = {folder} has split folders but no train/: add train/<label>/<file>")
    return "split"


def _left_out(path: Path, depth: int, wanted: int) -> str | None:
    """Why ``path`` (``depth`` parts below the folder) is no training image; None when it is one, "" for an
    entry not worth a word (a folder, a hidden file such as .DS_Store)."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as exc:
            return "symlink_loop" if exc.errno == errno.ELOOP else "broken_symlink"
    if path.is_dir():
        return ""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        if path.name.startswith("."):
            return ""
        return "unsupported_format" if suffix in UNSUPPORTED_SUFFIXES else "not_an_image_file"
    if not path.is_file():
        return "not_a_regular_file"  # a FIFO or device named like a photo
    if depth != wanted:
        return "nested_too_deep" if depth > wanted else "outside_class_folder"
    return None


def _scan(folder: Path, depth: int) -> tuple[list[Path], dict[str, list[Path]]]:
    """The image files at a class folder's depth, and every other entry left out, by reason (a class folder
    with no image among them is ``empty_class_folder``)."""
    placed: list[Path] = []
    left: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts[:-1]):  # inside a hidden folder (.cache/, .git/): no class
            reason: str | None = "" if path.is_dir() else "in_hidden_folder"
        else:
            reason = _left_out(path, len(parts), depth)
        if reason is None:
            placed.append(path)
        elif reason:
            left.setdefault(reason, []).append(path)
    classes = folder.glob("*/*" if depth == 3 else "*")
    used = {p.parent for p in placed}
    empty = sorted(c for c in classes if c.is_dir() and not c.name.startswith(".") and c not in used)
    if empty:
        left["empty_class_folder"] = empty
    return placed, left


def _log_left_out(folder: Path, left: dict[str, list[Path]]) -> None:
    """Name what a folder holds besides training images, by reason (a few names each, then a count)."""
    for reason, paths in sorted(left.items()):
        names = ", ".join(str(p.relative_to(folder)) for p in paths[:NAMED_IN_LOG])
        more = f" and {len(paths) - NAMED_IN_LOG} more" if len(paths) > NAMED_IN_LOG else ""
        log.warning("left out of %s, %s (%d): %s%s", folder, reason, len(paths), names, more)


def folder_rows(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The images of a class-folder tree; with a ``split`` layout the rows keep their folder's split.

    Raises:
        DataSetError: no such folder, no subfolders, unknown split names, no image files.
    """
    if not folder.is_dir():
        raise DataSetError(f"train.images = {folder} is not a folder (give <label>/<file> or <split>/<label>/<file>)")
    layout = _layout(folder)
    depth = 3 if layout == "split" else 2
    placed, left = _scan(folder, depth)
    files = [*placed, *left.get("outside_class_folder", []), *left.get("nested_too_deep", [])]
    dropped: dict[str, int] = {"outside_class_folder": 0, **{reason: len(paths) for reason, paths in left.items()}}
    _log_left_out(folder, left)
    if not placed:
        raise DataSetError(
            f"train.images = {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}) in class folders"
        )
    relative = [p.relative_to(folder).as_posix() for p in placed]
    frame = pd.DataFrame(
        {
            "key": [hashlib.sha1(r.encode("utf-8")).hexdigest()[:16] for r in relative],
            "path": relative,
            "label": [p.parent.name for p in placed],
            # the content digest groups duplicate photos, as the manifest's sha256 does
            "group": [hashlib.sha256(p.read_bytes()).hexdigest() for p in placed],
        }
    )
    if layout == "split":
        frame["split"] = [p.parts[-3] for p in placed]
    return frame, {"source": str(folder), "layout": layout, "files": len(files), "dropped": dropped}
