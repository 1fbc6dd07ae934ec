"""The files that pass between stages: their ``[paths]`` names, file names and columns, in one place.

A stage finds an input or output through :func:`path` (the ``[paths]`` entry of ``data/config.toml``) and
checks a table it reads with :meth:`Table.check`, so the producer and the consumer cannot drift apart;
``tests/core/test_contracts.py`` runs each boundary (extract -> download -> train/evaluate, download ->
publish) on real files.

    extract   raw CSVs                -> catalogue.parquet, dropped.parquet, extract_report.json
    download  catalogue.parquet       -> images/<label>/<key>.jpg, images/manifest.parquet
    publish   images/                 -> kaggle/ (images.zip, manifest.csv, dataset-metadata.json)
    train     images/manifest.parquet -> runs/<run id>/ (model.keras, classes.json, split.csv, metrics.json)
    export    runs/<run id>/          -> exports/<model>/<version>/ (saved_model.pb, model_card.json, tflite/;
                                         file and signature names in deploy/layout.py) -> serve
    label     manifest + runs/<run id>/ -> labels/<version>/ (issues.parquet, summary.json, review.html)
    apply     labels/<version>/       -> labels/<version>/applied/ (manifest.parquet + label_version, changes.csv)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from data.core.config import Config


def url_key(url: str) -> str:
    """The stable key of an image: the first 16 hex digits of the SHA-1 of its URL.

    Extract writes it into the catalogue and download derives it when an input has no key column: one
    definition, so both agree.
    """
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Table:
    """A Parquet file one stage writes and another reads: its ``[paths]`` entry, file name and columns."""

    path_key: str
    file_name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]  # what a reader needs; the writer always writes every column

    def path(self, cfg: "Config") -> Path:
        """Where the configuration puts this file."""
        return cfg.path(self.path_key)

    def read(self, path: Path, producer: str, columns: Iterable[str] | None = None) -> "pd.DataFrame":
        """This table's file at ``path`` (only ``columns`` of it, those the file has), checked against the contract.

        Raises:
            InputError: the file is missing, is not Parquet, or lacks a required column; the line names the file
                and ``producer``, the command that writes it.
        """
        import pyarrow.parquet as pq

        if not path.is_file():
            raise InputError(f"{path} does not exist: run `{producer}` first (or point [paths] at its output)")
        unreadable = f"{path} is not a readable Parquet file ({{}}); run `{producer}` again"
        try:
            names = pq.read_schema(path).names
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError: not Parquet, truncated
            raise InputError(unreadable.format(exc)) from exc
        self.check(names, path)
        try:
            return pq.read_table(
                path, columns=None if columns is None else [c for c in columns if c in names]
            ).to_pandas()
        except (OSError, ValueError) as exc:  # a readable footer over a damaged body
            raise InputError(unreadable.format(exc)) from exc

    def check(self, columns: Iterable[str], source: Path | str) -> None:
        """Raise :class:`InputError` naming ``source`` and the missing columns when a reader cannot use it."""
        missing = [c for c in self.required if c not in set(columns)]
        if missing:
            raise InputError(
                f"{source} lacks the column(s) {', '.join(missing)} that a {self.file_name} "
                f"needs; was it written by the stage before this one?"
            )


# fetch-raw (or a hand-made folder) -> extract: the columns of the Kaggle CSV files that extract reads.
RAW_COLUMNS = (
    *("name", "main_category", "sub_category", "image", "link"),
    *("ratings", "no_of_ratings", "discount_price", "actual_price"),
)
CATALOGUE = Table(
    "catalogue",
    "catalogue.parquet",
    (
        "key",
        "url",
        "name",
        "main_category",
        "sub_category",
        "label",
        "source_file",
        "source_row",
        "link",
        "ratings",
        "no_of_ratings",
        "discount_price",
        "actual_price",
    ),
    required=("key", "url", "label"),
)
DROPPED = Table(
    "dropped",
    "dropped.parquet",
    ("source_file", "source_row", "reason", "detail", "url"),
    required=("source_file", "source_row", "reason"),
)
MANIFEST = Table(
    "manifest",
    "manifest.parquet",
    (
        "key",
        "url",
        "label",
        "status",
        "reason",
        "http_status",
        "attempts",
        "bytes",
        "orig_width",
        "orig_height",
        "width",
        "height",
        "sha256",
        "elapsed_s",
        "path",
    ),
    required=("key", "label", "status", "path"),
)
# A manifest row's status for a stored image; every other status is a failure with its reason (the list is
# download's, data/download/records.py). Publish, train, label and eda keep only these rows.
OK = "ok"


def stored_rows(manifest: "pd.DataFrame") -> "pd.Series":
    """Which manifest rows name a stored image: status :data:`OK` and a path (the rows a reader may open)."""
    return manifest["status"].eq(OK) & manifest["path"].fillna("").astype(str).ne("")


# download: beside manifest.parquet in the images folder; eda reads its counts.
DOWNLOAD_REPORT = "download_report.json"
# extract: beside catalogue.parquet (its [paths] entry is EXTRACT_REPORT below); eda reads it.
EXTRACT_REPORT_FILE = "extract_report.json"
SPLIT = Table("", "split.csv", ("key", "path", "label", "split"), required=("key", "path", "label", "split"))
# label -> apply-labels / visualise: {labels}/<version>/issues.parquet, one row per stored image; issue_type is
# its main issue ("" for none), issues every type that applies (comma-separated); see label/table.py.
ISSUES = Table(
    "",
    "issues.parquet",
    (
        *("key", "path", "label", "split", "sha256", "orig_width", "orig_height", "issue_type", "issues", "action"),
        *("suggested_label", "suggested_prob", "given_prob", "quality_score", "label_issue", "cleanlab_default"),
        *("oof_label", "oof_given_prob", "knn_label", "knn_agreement", "knn_voters", "nearest_key"),
        *("nearest_similarity", "cluster", "cluster_size", "cluster_kind", "cluster_labels", "cross_class"),
        *("cross_split", "unreadable", "dark", "light", "blurry", "low_information", "odd_size", "odd_aspect"),
        *("brightness", "contrast", "sharpness", "entropy", "width", "height", "dhash"),
        *("outlier", "outlier_score", "grayscale", "colourfulness", "class_imbalance", "class_share", "similar_keys"),
        *("title", "title_label", "title_prob", "title_disagrees"),  # label/title.py: the title's opinion
    ),
    required=("key", "path", "label", "issue_type", "issues", "action", "suggested_label", "suggested_prob"),
)
# apply-labels: {labels}/<version>/applied/ holds the new data version; {labels}/latest names the newest version.
APPLIED = "applied"
LATEST_LABELS = "latest"
# apply-labels: {labels}/<version>/applied/changes.csv beside manifest.parquet (MANIFEST's columns + label_version)
CHANGES = Table(
    "",
    "changes.csv",
    ("key", "path", "old_label", "new_label", "action", "reason", "source", "issues")
    + ("suggested_label", "suggested_prob", "quality_score", "knn_agreement"),
    required=("key", "old_label", "new_label", "action"),
)

# Folders and single files named in [paths] (besides the tables above).
IMAGES = "images"  # {processed}/images: <label>/<key>.jpg and manifest.parquet
EXTRACT_REPORT = "extract_report"
KAGGLE = "kaggle"
RUNS = "runs"
LABELS = "labels"
EXPORTS = "exports"
REPORTS = "reports"
PATH_KEYS = (
    CATALOGUE.path_key,
    DROPPED.path_key,
    MANIFEST.path_key,
    IMAGES,
    EXTRACT_REPORT,
    KAGGLE,
    RUNS,
    LABELS,
    EXPORTS,
    REPORTS,
)

# Files inside a training run folder, which evaluate, label, visualise and deploy read.
RUN_FILES = {
    "model": "model.keras",
    "classes": "classes.json",
    "split": SPLIT.file_name,
    "metrics": "metrics.json",
    "options": "options.json",
    "config": "config.resolved.json",
    "backbone_weights": "backbone.weights.h5",  # from-scratch runs: reusable as train.weights=<this file>
    "text_model": "text_model.npz",  # a text run's title model (make train-text), instead of model.keras
    "text_model_legacy": "text_model.pkl",  # what text runs wrote before text_model.npz: a pickle, never read
    "fusion": "fusion.json",  # a fusion run's two runs and weight (train.modality = both), instead of model.keras
}
# make evaluate: runs/<run id>/evaluation/ (the test split; evaluation_<split>/ for another), read by visualise.
EVALUATION = "evaluation"
EVALUATION_FILES = {"metrics": "metrics.json", "predictions": "predictions.csv"}


def evaluation_dir(run_dir: Path, split: str = "test") -> Path:
    """Where ``make evaluate`` writes its scores of ``split`` in a run folder."""
    return run_dir / (EVALUATION if split == "test" else f"{EVALUATION}_{split}")


def label_version_dir(labels_dir: Path, ref: str) -> Path:
    """The label version folder named by ``ref``: ``latest``, a version name under ``labels_dir``, or a folder.

    Raises:
        InputError: no such label version (with what to run first).
    """
    if ref == LATEST_LABELS:
        pointer = labels_dir / LATEST_LABELS
        if not pointer.is_file():
            raise InputError(f"no label version yet: {pointer} does not exist (run `make label` first)")
        ref = pointer.read_text(encoding="utf-8").strip()
    for folder in (Path(ref), labels_dir / ref):
        if (folder / ISSUES.file_name).is_file():
            return folder
    raise InputError(f"no label version {ref!r} with an {ISSUES.file_name} (looked in {labels_dir}; run `make label`)")


def applied_manifest(labels_dir: Path, ref: str) -> Path:
    """The manifest of the data version ``make apply-labels`` wrote for label version ``ref``.

    Raises:
        InputError: no such label version, or one not applied yet (with what to run).
    """
    folder = label_version_dir(labels_dir, ref)
    manifest = folder / APPLIED / MANIFEST.file_name
    if not manifest.is_file():
        raise InputError(f"label version {folder} has no data version yet: run `make apply-labels` first")
    return manifest


def read_json(path: Path, producer: str) -> dict[str, Any]:
    """A JSON object another stage wrote (a report, a summary, a run's metrics).

    Raises:
        InputError: missing, not JSON, or not an object; the line names the file and ``producer``.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist: run `{producer}` first") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); run `{producer}` again") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path} is not a JSON object; run `{producer}` again")
    return doc
