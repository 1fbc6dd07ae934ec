"""``ImageDataSet``: the images of the download manifest, split once, deterministically, per class.

The split is *stratified* (each class is cut train/validation/test by the same ratios) and *deterministic*:
inside a class, images are ordered by ``sha1(seed:sha256)`` (their content; the key when the manifest has no
hash), so the same manifest and seed always give the same split, whatever the row order, and duplicate
photos stay together. It is saved with each run as ``split.csv`` (key, path, label, split)
beside ``classes.json`` (sorted class names); evaluate, label and later runs read it back instead of
re-deriving it, and ``train.split_file`` makes a new run keep an earlier run's assignment.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from data.core.io import atomic_write_with, write_json

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_COLUMNS = ["key", "path", "label", "split"]


class DataSetError(ValueError):
    """Input data that cannot be trained on (no manifest, no images, an empty split), for the user."""


def _rank(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode("utf-8")).hexdigest()


def split_counts(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` images of one class go to train, validation and test.

    Validation and test get their rounded share, and at least one image each (when their ratio is not 0)
    as soon as the class has three images; train keeps the rest and never ends up empty.
    """
    _, r_val, r_test = ratios
    n_val, n_test = round(n * r_val), round(n * r_test)
    if n >= 3:
        n_val = max(n_val, 1 if r_val > 0 else 0)
        n_test = max(n_test, 1 if r_test > 0 else 0)
    while n_val + n_test >= n and n_val + n_test > 0:  # keep at least one training image
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def stratified_split(frame: pd.DataFrame, ratios: Sequence[float], seed: int) -> pd.Series:
    """The split name of every row of ``frame`` (columns key, label, optional group), stratified by label.

    Rows sharing a ``group`` (the image's sha256: the same photo listed under several products) always land
    in the same split, so a duplicate photo cannot leak from train into test.
    """
    validate_ratios(ratios)
    groups = frame["group"] if "group" in frame else frame["key"]
    groups = groups.where(groups.fillna("").astype(str).ne(""), frame["key"]).astype(str)
    result = pd.Series("train", index=frame.index, dtype=object)
    for _, members in groups.groupby(frame["label"], sort=True):
        unique = sorted(members.unique(), key=lambda g: _rank(g, seed))
        _, n_val, n_test = split_counts(len(unique), ratios)
        chosen = {g: "test" for g in unique[:n_test]}
        chosen.update({g: "validation" for g in unique[n_test : n_test + n_val]})
        result.loc[members.index] = members.map(lambda g: chosen.get(g, "train")).to_numpy()
    return result


def validate_ratios(ratios: Sequence[float]) -> None:
    """Raise ``DataSetError`` unless ``ratios`` are three non-negative numbers summing to 1 with train > 0."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6 or ratios[0] <= 0:
        raise DataSetError(f"train.split must be [train, validation, test] ratios summing to 1, got {ratios}")


@dataclass
class ImageDataSet:
    """The usable images, their labels and split, and tf.data pipelines over them.

    Attributes:
        frame: one row per image: key, path (relative to ``images_dir``), label, split, label_index.
        classes: class names, sorted; ``label_index`` indexes into it.
        images_dir: the folder ``path`` is relative to (``{processed}/images``).
        summary: counts: manifest rows, rows used, rows dropped by reason, images per split and class.
    """

    frame: pd.DataFrame
    classes: tuple[str, ...]
    images_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_manifest(
        cls,
        manifest: Path,
        images_dir: Path | None = None,
        *,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 42,
        split_file: Path | None = None,
    ) -> "ImageDataSet":
        """Build the data set from the download manifest: rows with status ``ok`` whose file exists.

        Args:
            manifest: ``{processed}/images/manifest.parquet``.
            images_dir: folder the manifest's ``path`` column is relative to (default: the manifest's folder).
            ratios: train/validation/test shares.
            seed: seed of the split order.
            split_file: an earlier run's ``split.csv``: its images keep their split; new images are split anew.
        """
        if not manifest.is_file():
            raise DataSetError(f"no download manifest at {manifest}: run `make download-images` first")
        images_dir = Path(images_dir) if images_dir is not None else manifest.parent
        rows = pd.read_parquet(manifest)
        missing = {"key", "label", "status", "path"} - set(rows.columns)
        if missing:
            raise DataSetError(f"{manifest} lacks the column(s) {sorted(missing)} of the download manifest")
        frame, dropped = _usable_rows(rows, images_dir)
        if frame.empty:
            raise DataSetError(f"{manifest} lists no stored image ({len(rows)} rows, dropped: {dropped})")
        frame["split"] = _assign_split(frame, ratios, seed, split_file)
        data = cls._from_frame(frame, images_dir)
        data.summary = {"manifest_rows": int(len(rows)), "used": int(len(frame)), "dropped": dropped, **data.summary}
        return data

    @classmethod
    def from_run(cls, run_dir: Path, images_dir: Path) -> "ImageDataSet":
        """The data set exactly as a run saw it (its ``split.csv`` and ``classes.json``)."""
        frame = pd.read_csv(run_dir / "split.csv", dtype={"key": str, "path": str, "label": str, "split": str})
        classes = tuple(json.loads((run_dir / "classes.json").read_text(encoding="utf-8")))
        return cls._from_frame(frame, Path(images_dir), classes)

    @classmethod
    def _from_frame(
        cls, frame: pd.DataFrame, images_dir: Path, classes: tuple[str, ...] | None = None
    ) -> "ImageDataSet":
        classes = classes or tuple(sorted(frame["label"].unique()))
        frame = frame[SPLIT_COLUMNS].astype(str).sort_values(["split", "label", "key"], kind="stable")
        frame = frame.reset_index(drop=True)
        frame["label_index"] = frame["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
        per_split = {s: frame[frame["split"] == s]["label"].value_counts().sort_index().to_dict() for s in SPLITS}
        summary = {
            "classes": list(classes),
            "splits": {s: int((frame["split"] == s).sum()) for s in SPLITS},
            "per_class": per_split,
        }
        return cls(frame=frame, classes=classes, images_dir=images_dir, summary=summary)

    def save(self, run_dir: Path) -> None:
        """Write ``split.csv`` and ``classes.json`` into a run folder."""
        atomic_write_with(run_dir / "split.csv", lambda p: self.frame[SPLIT_COLUMNS].to_csv(p, index=False))
        write_json(run_dir / "classes.json", list(self.classes))

    def rows(self, split: str) -> pd.DataFrame:
        """The rows of one split (``train``, ``validation`` or ``test``), in a fixed order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return self.frame[self.frame["split"] == split]

    def files(self, split: str) -> list[Path]:
        """Absolute-or-relative image paths of one split (``images_dir / path``)."""
        return [self.images_dir / p for p in self.rows(split)["path"]]

    def labels(self, split: str) -> np.ndarray:
        """Class indices of one split, aligned with :meth:`files`."""
        return self.rows(split)["label_index"].to_numpy(dtype=np.int64)

    def class_weights(self) -> dict[int, float]:
        """``n / (classes x count)`` per class over the training split (1.0 for a class with no image)."""
        counts = np.bincount(self.labels("train"), minlength=len(self.classes))
        total = counts.sum()
        return {i: float(total / (len(self.classes) * c)) if c else 1.0 for i, c in enumerate(counts)}

    def tf_dataset(
        self,
        split: str,
        image_size: int,
        batch_size: int,
        *,
        augment: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        with_labels: bool = True,
    ) -> "tf.data.Dataset":
        """Batches of ``(RGB 0-255 pixels, one-hot label)`` of one split (see ``train/pipeline.py``)."""
        from train.pipeline import image_dataset

        labels = self.labels(split) if with_labels else None
        return image_dataset(
            self.files(split),
            labels,
            len(self.classes),
            image_size,
            batch_size,
            augment=augment,
            shuffle=shuffle,
            seed=seed,
        )


def _usable_rows(rows: pd.DataFrame, images_dir: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep rows stored successfully whose file is there; count the others by reason."""
    dropped: dict[str, int] = {}
    ok = rows["status"].eq("ok") & rows["path"].fillna("").astype(str).ne("") & rows["label"].notna()
    dropped["not_ok"] = int((~ok).sum())
    frame = rows[ok].copy()
    exists = frame["path"].map(lambda p: (images_dir / p).is_file())
    dropped["missing_file"] = int((~exists).sum())
    frame = frame[exists]
    duplicate = frame["key"].duplicated(keep="first")
    dropped["duplicate_key"] = int(duplicate.sum())
    frame = frame[~duplicate].astype({"key": str, "label": str, "path": str})
    if dropped["missing_file"]:
        log.warning("%d manifest rows marked ok have no image file under %s", dropped["missing_file"], images_dir)
    frame["group"] = frame["sha256"] if "sha256" in frame else frame["key"]
    return frame[["key", "path", "label", "group"]].reset_index(drop=True), dropped


def _assign_split(frame: pd.DataFrame, ratios: Sequence[float], seed: int, split_file: Path | None) -> pd.Series:
    """Split names for ``frame``: from ``split_file`` where it knows the key, else stratified anew."""
    if split_file is None:
        return stratified_split(frame, ratios, seed)
    if not Path(split_file).is_file():
        raise DataSetError(f"train.split_file {split_file} does not exist")
    previous = pd.read_csv(split_file, dtype={"key": str, "split": str}).set_index("key")["split"]
    split = frame["key"].map(previous)
    new = split.isna()
    if new.any():
        split[new] = stratified_split(frame[new], ratios, seed)
    log.info(
        "split from %s: %d images kept their split, %d new ones split anew",
        split_file,
        int((~new).sum()),
        int(new.sum()),
    )
    return split
