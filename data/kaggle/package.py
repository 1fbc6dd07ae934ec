"""Build the folder that is published to Kaggle, from the download stage's ``images/`` folder.

The folder holds ``images.zip`` (``<label>/<key>.jpg`` for every stored image; Kaggle unpacks it into an
``images/`` folder), ``manifest.csv`` (one row per image), ``README.md`` (the dataset description: class
counts and provenance), ``LICENSE.txt`` and ``dataset-metadata.json``. It is built in a temporary folder
and renamed into place; the images folder is only read.
"""

from __future__ import annotations

import filecmp
import logging
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from data.core.contracts import stored_rows
from data.core.errors import StageError
from data.core.io import staged_dir, write_json
from data.kaggle.metadata import LICENSES, METADATA_FILE, build_metadata

log = logging.getLogger(__name__)

ARCHIVE = "images.zip"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same images give the same archive bytes

# manifest.csv columns, in order, with their type and description (those present are written).
_COLUMNS = {
    "key": ("string", "16-hex-character id of the image URL (sha1 prefix); the file name"),
    "label": ("string", "one of the 7 reduced product classes; the folder name"),
    "path": ("string", "path of the image in this dataset: images/<label>/<key>.jpg"),
    "url": ("string", "the product image URL it was downloaded from"),
    "name": ("string", "product name from the source catalogue"),
    "main_category": ("string", "original main_category of the source catalogue"),
    "sub_category": ("string", "original sub_category of the source catalogue"),
    "width": ("integer", "stored width in pixels"),
    "height": ("integer", "stored height in pixels"),
    "orig_width": ("integer", "width of the downloaded original in pixels"),
    "orig_height": ("integer", "height of the downloaded original in pixels"),
    "bytes": ("integer", "size of the downloaded original in bytes"),
    "sha256": ("string", "SHA-256 of the downloaded original"),
}


class PackageError(StageError):
    """The images folder cannot be packaged (missing, empty); the message says what to do."""


@dataclass(frozen=True)
class DatasetSpec:
    """What the published dataset is called and how it is licensed (the ``[publish]`` section)."""

    owner: str
    slug: str
    title: str
    subtitle: str
    license: str = "CC0-1.0"
    keywords: tuple[str, ...] = ()
    source: str = "lokeshparab/amazon-products-dataset"

    def metadata(self, description: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``dataset-metadata.json`` document of this dataset with ``description`` and ``resources``."""
        return build_metadata(
            owner=self.owner,
            slug=self.slug,
            title=self.title,
            subtitle=self.subtitle,
            license_name=self.license,
            description=description,
            resources=resources,
            keywords=list(self.keywords),
        )


@dataclass(frozen=True)
class StagedDataset:
    """The built folder and what is in it."""

    folder: Path
    metadata: dict[str, Any]
    files: dict[str, int]  # file name -> bytes, as they will be uploaded
    classes: dict[str, int]  # label -> images
    skipped: dict[str, int] = field(default_factory=dict)  # manifest rows left out, by reason

    @property
    def images(self) -> int:
        return sum(self.classes.values())


def select_images(images_dir: Path) -> tuple[pd.DataFrame, dict[str, int], int]:
    """The manifest rows whose image is stored, the rows left out by reason, and the manifest's row count."""
    manifest_path = images_dir / "manifest.parquet"
    if not manifest_path.is_file():
        raise PackageError(
            f"no image manifest at {manifest_path}: run `make download-images` first, "
            "or point at an images folder with --images DIR"
        )
    manifest = pd.read_parquet(manifest_path)
    ok = stored_rows(manifest)
    skipped = {str(k): int(v) for k, v in manifest.loc[~ok, "status"].fillna("unknown").value_counts().items()}
    rows = manifest.loc[ok].copy()
    root = images_dir.resolve()
    files = [(images_dir / p).resolve() for p in rows["path"].astype(str)]
    present = [f.is_relative_to(root) and f.is_file() for f in files]
    missing = len(present) - sum(present)
    if missing:
        log.warning("%d manifest rows marked ok have no image file under %s: left out", missing, images_dir)
        skipped["missing_file"] = missing
    rows = rows.loc[present].sort_values("path").reset_index(drop=True)
    if rows.empty:
        raise PackageError(f"no stored images in {manifest_path} (rows by status: {skipped}): nothing to publish")
    return rows, skipped, len(manifest)


def _with_catalogue(rows: pd.DataFrame, catalogue: Path | None) -> pd.DataFrame:
    if catalogue is None or not catalogue.is_file():
        return rows
    available = set(pq.read_schema(catalogue).names)
    extra = [c for c in ("name", "main_category", "sub_category") if c in available and c not in rows.columns]
    if "key" not in available or not extra:
        return rows
    cat = pd.read_parquet(catalogue, columns=["key", *extra]).drop_duplicates("key")
    return rows.merge(cat, on="key", how="left")


def write_archive(rows: pd.DataFrame, images_dir: Path, target: Path) -> None:
    """``images.zip`` with every selected image as ``<label>/<key>.jpg`` (stored: JPEGs do not deflate)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for rel in tqdm(rows["path"].astype(str), desc="archive", unit="img", leave=False):
            info = zipfile.ZipInfo(rel.replace(os.sep, "/"), date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, (images_dir / rel).read_bytes())


def _manifest_csv(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    out = rows.copy()
    out["path"] = "images/" + out["path"].astype(str).str.replace(os.sep, "/")
    columns = [c for c in _COLUMNS if c in out.columns]
    fields = [{"name": c, "type": _COLUMNS[c][0], "description": _COLUMNS[c][1]} for c in columns]
    return out[columns], fields


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}-{high}"


def describe(
    spec: DatasetSpec, classes: dict[str, int], skipped: dict[str, int], total: int, rows: pd.DataFrame
) -> str:
    """The dataset description (README.md): contents, class counts and provenance."""
    table = "\n".join(f"| {label} | {n} |" for label, n in sorted(classes.items()))
    left_out = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none"
    sizes = ""
    if {"width", "height"} <= set(rows.columns) and rows["width"].notna().any():
        sizes = f" Stored sizes: {_span(rows['width'])} x {_span(rows['height'])} px."
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return f"""# {spec.title}

{spec.subtitle.rstrip(".")}.

## Contents

- `{ARCHIVE}` (unpacked by Kaggle into `images/`): {sum(classes.values())} JPEG product photos, \
one folder per class: `images/<label>/<key>.jpg`.{sizes}
- `manifest.csv`: one row per image (key, label, path, source URL, sizes, SHA-256).
- `LICENSE.txt`: the licence of this dataset ({spec.license}).

## Classes

| class | images |
|---|---|
{table}

## Provenance

The photos were downloaded from the product image URLs of the Kaggle dataset
[{spec.source}](https://www.kaggle.com/datasets/{spec.source}) (the Amazon India product catalogue),
and each product was labelled by mapping its `main_category` to one of 7 reduced classes. Of the
{total} image URLs tried, {sum(classes.values())} are included; left out by reason: {left_out}.
Built on {stamp} by the Product-Categorization pipeline (`make download-images`, `make publish-kaggle`).
The photos were published by the sellers on Amazon; check that your use respects their rights.
"""


def license_text(name: str) -> str:
    """LICENSE.txt for the chosen licence name."""
    url = LICENSES.get(name, "")
    where = f"\nThe full text: {url}\n" if url else "\n"
    return (
        f"This dataset (the archive of images, manifest.csv and README.md) is released under {name}.{where}"
        "The product photos were published by their sellers on Amazon; the catalogue they come from is "
        "described in README.md.\n"
    )


def _resources(fields: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [
        {"path": ARCHIVE, "description": "the product photos, one folder per class: <label>/<key>.jpg"},
        {
            "path": "manifest.csv",
            "description": "one row per image: id, label, path, source URL, sizes",
            "schema": {"fields": fields},
        },
        {"path": "README.md", "description": "what is in the dataset, class counts and provenance"},
        {"path": "LICENSE.txt", "description": "the licence of this dataset"},
    ]


def _fill(tmp: Path, rows: pd.DataFrame, images_dir: Path, spec: DatasetSpec, description: str) -> dict[str, Any]:
    write_archive(rows, images_dir, tmp / ARCHIVE)
    table, fields = _manifest_csv(rows)
    table.to_csv(tmp / "manifest.csv", index=False)
    (tmp / "README.md").write_text(description, encoding="utf-8")
    (tmp / "LICENSE.txt").write_text(license_text(spec.license), encoding="utf-8")
    meta = spec.metadata(description, _resources(fields))
    write_json(tmp / METADATA_FILE, meta)
    return meta


def _keep_unchanged_times(new: Path, old: Path) -> None:
    """Give rebuilt files that did not change their old times: the client resumes an interrupted upload only
    for a file of the same name, size and modification time."""
    if not old.is_dir():
        return
    for path in new.iterdir():
        before = old / path.name
        if before.is_file() and filecmp.cmp(path, before, shallow=False):
            st = before.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def stage_dataset(images_dir: Path, target: Path, spec: DatasetSpec, catalogue: Path | None = None) -> StagedDataset:
    """Build the upload folder ``target`` from ``images_dir`` (only rows with status "ok").

    Args:
        images_dir: the download stage's folder (``<label>/<key>.jpg`` and ``manifest.parquet``).
        target: the folder to (re)create; built beside it and renamed into place.
        spec: names, licence and provenance of the dataset.
        catalogue: ``catalogue.parquet``; when it exists, product names and categories join the manifest.
    """
    rows, skipped, total = select_images(images_dir)
    rows = _with_catalogue(rows, catalogue)
    classes = {str(k): int(v) for k, v in rows["label"].value_counts().sort_index().items()}
    description = describe(spec, classes, skipped, total, rows)
    with staged_dir(target) as tmp:
        meta = _fill(tmp, rows, images_dir, spec, description)
        _keep_unchanged_times(tmp, target)
    files = {p.name: p.stat().st_size for p in sorted(target.iterdir()) if p.name != METADATA_FILE}
    return StagedDataset(folder=target, metadata=meta, files=files, classes=classes, skipped=skipped)
