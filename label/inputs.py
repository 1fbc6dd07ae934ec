"""What ``make label`` reads: the download manifest's stored images, the run's split, and label versions.

A label version is a folder ``{labels}/<version>/``; ``{labels}/latest`` names the newest one, as
``{runs}/latest`` does for training runs.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.contracts import ISSUES, LATEST_LABELS, MANIFEST, RUN_FILES, SPLIT, read_json, stored_rows
from data.core.errors import InputError
from data.core.runs import require_photo_run
from data.core.image_headers import over_limit

LATEST = LATEST_LABELS
UNSEEN = "unseen"  # the split of an image the run did not train, validate or test on
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def read_manifest(manifest: Path) -> pd.DataFrame:
    """The whole download manifest, checked against its contract.

    Raises:
        InputError: no manifest, not Parquet, or one without the columns a reader needs.
    """
    if not manifest.is_file():
        raise InputError(f"no download manifest at {manifest}: run `make download-images` first")
    return MANIFEST.read(manifest, "make download-images")


def read_version(version_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A label version's ``issues.parquet`` (checked against its contract) and ``summary.json``.

    Raises:
        InputError: either file is missing, unreadable or in the wrong shape (with what to run again).
    """
    table = ISSUES.read(version_dir / ISSUES.file_name, "make label")
    path = version_dir / "summary.json"
    if not path.is_file():
        raise InputError(f"{path} does not exist: is {version_dir} a finished label version? (`make label`)")
    return table, read_json(path, "make label")


def usable_images(rows: pd.DataFrame, images_dir: Path, run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest's stored images, one per key, with the run's split; and the stored rows left out.

    Returns:
        A frame with key, path, label, sha256 ("" when unknown), orig_width, orig_height (0 when unknown)
        and split (``unseen`` for an image the run's ``split.csv`` does not list); and one row (key, path,
        reason) per row marked stored whose file is missing (``missing_file``), lies outside ``images_dir``
        (``outside_images_folder``), announces more pixels than download stores (``too_many_pixels``) or
        whose key came earlier (``duplicate_key``). Rows the downloader did not store are its own report's business.
    """
    ok = stored_rows(rows) & rows["label"].notna()
    frame = rows[ok]
    root = images_dir.resolve()
    outside = frame["path"].map(lambda p: root not in (images_dir / str(p)).resolve().parents).astype(bool)
    exists = frame["path"].map(lambda p: (images_dir / str(p)).is_file()).astype(bool) & ~outside
    # a bomb is refused by its header, before a decoder allocates it (the limit download and train apply)
    huge = frame["path"].map(lambda p: bool(over_limit(images_dir / str(p)))).astype(bool) & exists
    duplicate = frame["key"].astype(str).duplicated(keep="first") & exists & ~huge
    left_out = pd.concat(
        [
            frame[outside].assign(reason="outside_images_folder"),
            frame[~exists & ~outside].assign(reason="missing_file"),
            frame[huge].assign(reason="too_many_pixels"),
            frame[duplicate].assign(reason="duplicate_key"),
        ]
    )[["key", "path", "reason"]].astype(str)
    frame = frame[exists & ~huge & ~duplicate]
    out = pd.DataFrame(
        {
            "key": frame["key"].astype(str),
            "path": frame["path"].astype(str),
            "label": frame["label"].astype(str),
            "sha256": frame["sha256"].fillna("").astype(str) if "sha256" in frame else "",
        }
    )
    for side in ("orig_width", "orig_height"):
        values = frame[side] if side in frame else pd.Series(0, index=frame.index)
        out[side] = pd.to_numeric(values, errors="coerce").fillna(0).astype(np.int64)
    out["split"] = out["key"].map(run_splits(run_dir)).fillna(UNSEEN)
    return out.reset_index(drop=True), left_out.reset_index(drop=True)


def run_splits(run_dir: Path) -> dict[str, str]:
    """The split of every key the run used (train, validation or test), from its ``split.csv``.

    Raises:
        InputError: ``run_dir`` is no finished run (no model, classes or split), or its split is unreadable:
            said at once, before any image is read.
    """
    require_photo_run(run_dir, files=("model", "classes", "split"))
    path = run_dir / RUN_FILES["split"]
    try:
        split = pd.read_csv(path, dtype=str)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path} is not a readable split.csv ({exc}); train the run again") from exc
    SPLIT.check(split.columns, path)
    return dict(zip(split["key"], split["split"]))


def class_difference(run_dir: Path, labels: pd.Series) -> str:
    """How the run's classes differ from the manifest's labels ("" when they are the same): its model was
    trained on other categories, so its opinions about these images mean less."""
    try:  # a classes.json that is no list is the model loader's to refuse
        classes = json.loads((run_dir / RUN_FILES["classes"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    trained, listed = set(map(str, classes if isinstance(classes, list) else [])), set(labels.astype(str))
    parts = [
        f"{what}: {', '.join(sorted(names)[:10])}"
        for what, names in (("only in the manifest", listed - trained), ("only in the run", trained - listed))
        if names
    ]
    return "; ".join(parts)


def new_version(run_dir: Path) -> str:
    """A fresh label version name: UTC time plus the run's id, so versions sort by time and name their run."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{run_dir.name}"


def check_version_name(name: str) -> str:
    """``name`` when it can be a folder name (letters, digits, ``.``, ``_``, ``-``), else ``InputError``."""
    if not _VERSION_NAME.match(name) or name == LATEST:
        raise InputError(f"label version {name!r} must be letters, digits, '.', '_' or '-' (and not {LATEST!r})")
    return name
