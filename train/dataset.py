"""``ImageDataSet``: the usable images, their labels and split, and tf.data pipelines over them.

Built from the download manifest (:meth:`ImageDataSet.from_manifest`), from a folder of images
(:meth:`ImageDataSet.from_folder`, ``train.images``) or from a run's saved ``split.csv`` and ``classes.json``
(:meth:`ImageDataSet.from_run`: evaluate, label and ``--resume`` read the split back instead of re-deriving
it). The split itself is in ``train/split.py``; ``train.split_file`` makes a new run keep an earlier one's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from data.core.contracts import RUN_FILES, SPLIT
from data.core.io import atomic_write_with, write_json
from train.errors import DataSetError
from train.screen import report_bad, screen_files
from train.sources import folder_rows, manifest_rows
from train.split import SPLITS, assign_split, carve_validation, split_counts, validate_ratios

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["DataSetError", "ImageDataSet", "SPLITS", "split_counts"]


@dataclass
class ImageDataSet:
    """The usable images, their labels and split.

    Attributes:
        frame: one row per image: key, path (relative to ``images_dir``), label, split, label_index.
        classes: class names, sorted; ``label_index`` indexes into it.
        images_dir: the folder ``path`` is relative to (``{images}``, or the ``train.images`` folder).
        summary: counts: source rows, rows used, rows dropped by reason, images per split and class.
    """

    frame: pd.DataFrame
    classes: tuple[str, ...]
    images_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    predefined_split: bool = False
    absent: tuple[Path, ...] = ()  # listed in the manifest as stored, but no file: left out, named by screened()

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
        """The data set of the download manifest: rows with status ``ok`` whose file exists.

        Args:
            manifest: ``{images}/manifest.parquet``.
            images_dir: folder the manifest's ``path`` column is relative to (default: the manifest's folder).
            ratios: train/validation/test shares.
            seed: seed of the split order.
            split_file: an earlier run's ``split.csv``: its images keep their split; new images are split anew.
        """
        validate_ratios(ratios)
        images_dir = Path(images_dir) if images_dir is not None else manifest.parent
        frame, summary = manifest_rows(manifest, images_dir)
        absent = tuple(Path(p) for p in summary.pop("absent"))
        if frame.empty:
            raise DataSetError(
                f"{manifest} lists no usable image ({summary['manifest_rows']} rows, {summary['dropped']})"
            )
        frame["split"] = assign_split(frame, ratios, seed, split_file)
        data = cls._from_frame(frame, images_dir, summary=summary)
        data.absent = absent
        return data

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 42,
        split_file: Path | None = None,
    ) -> "ImageDataSet":
        """The images of ``<label>/<file>`` (split by ``ratios``) or ``<split>/<label>/<file>`` (split kept).

        A ``<split>`` layout without ``validation/`` gets a validation split carved out of ``train/``.
        """
        validate_ratios(ratios)
        frame, summary = folder_rows(Path(folder))
        if frame.empty:
            raise DataSetError(f"train.images = {folder}: no usable image ({summary['dropped']})")
        predefined = "split" in frame
        if not predefined:
            frame["split"] = assign_split(frame, ratios, seed, split_file)
        elif not frame["split"].eq("validation").any():
            frame["split"] = carve_validation(frame, ratios, seed)
        data = cls._from_frame(frame, Path(folder), summary=summary)
        data.predefined_split = predefined
        return data

    @classmethod
    def from_run(cls, run_dir: Path, images_dir: Path) -> "ImageDataSet":
        """The data set exactly as a run saw it (its ``split.csv`` and ``classes.json``)."""
        split_csv, classes_json = run_dir / RUN_FILES["split"], run_dir / RUN_FILES["classes"]
        if not split_csv.is_file() or not classes_json.is_file():
            raise DataSetError(f"{run_dir} has no {split_csv.name} and {classes_json.name}: is it a training run?")
        try:
            frame = pd.read_csv(split_csv, dtype={c: str for c in SPLIT.columns})
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataSetError(f"{split_csv} is not a readable split.csv ({exc}): train the run again") from exc
        SPLIT.check(frame.columns, split_csv)
        try:
            classes = json.loads(classes_json.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataSetError(f"{classes_json} is not valid JSON ({exc}): train the run again") from exc
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataSetError(f"{classes_json} is not a list of class names: train the run again")
        unknown = sorted(set(frame["label"].astype(str)) - set(classes))
        if unknown:  # the two files of one run disagree: they were edited or mixed from two runs
            raise DataSetError(
                f"{split_csv} has labels that {classes_json} does not list ({', '.join(unknown[:5])}): "
                "train the run again"
            )
        return cls._from_frame(frame, Path(images_dir), tuple(classes))

    @classmethod
    def _from_frame(
        cls,
        frame: pd.DataFrame,
        images_dir: Path,
        classes: tuple[str, ...] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> "ImageDataSet":
        classes = classes or tuple(sorted(frame["label"].unique()))
        used = len(frame)
        frame = frame[list(SPLIT.columns)].astype(str).sort_values(["split", "label", "key"], kind="stable")
        frame = frame.reset_index(drop=True)
        frame["label_index"] = frame["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
        per_split = {s: frame[frame["split"] == s]["label"].value_counts().sort_index().to_dict() for s in SPLITS}
        counts = {
            "classes": list(classes),
            "splits": {s: int((frame["split"] == s).sum()) for s in SPLITS},
            "per_class": per_split,
        }
        full = {**(summary or {}), "used": int(used), **counts} if summary is not None else counts
        return cls(frame=frame, classes=classes, images_dir=images_dir, summary=full)

    def screened(self, policy: str = "skip") -> "ImageDataSet":
        """This data set without the images the pipeline cannot decode, counted as ``undecodable``.

        The split of the other images does not change. Runs the pre-pass of ``train/screen.py`` (loads
        TensorFlow); the unusable images (and the manifest's missing files) are named in the log, or with
        ``policy = "fail"`` in an ``InputError``.
        """
        paths = [self.images_dir / p for p in self.frame["path"]]
        started = time.perf_counter()
        bad = screen_files(paths)
        seconds = round(time.perf_counter() - started, 2)
        missing = {len(paths) + i: "missing file" for i in range(len(self.absent))}
        counts = report_bad([*paths, *self.absent], {**bad, **missing}, policy, "images")
        dropped = dict(self.summary.get("dropped", {}))
        dropped["missing_file"] = counts.get("missing file", 0)
        dropped["undecodable"] = counts.get("undecodable", 0)
        if counts.get("too_many_pixels"):
            dropped["too_many_pixels"] = counts["too_many_pixels"]
        frame = self.frame.drop(index=list(bad))
        summary = {**self.summary, "dropped": dropped, "screen_seconds": seconds}
        screened = self._from_frame(frame, self.images_dir, self.classes, summary)
        screened.predefined_split = self.predefined_split
        return screened

    def save(self, run_dir: Path) -> None:
        """Write ``split.csv`` and ``classes.json`` into a run folder."""
        columns = list(SPLIT.columns)
        atomic_write_with(run_dir / RUN_FILES["split"], lambda p: self.frame[columns].to_csv(p, index=False))
        write_json(run_dir / RUN_FILES["classes"], list(self.classes))

    def rows(self, split: str) -> pd.DataFrame:
        """The rows of one split (``train``, ``validation`` or ``test``), in a fixed order."""
        if split not in SPLITS:
            raise DataSetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return self.frame[self.frame["split"] == split]

    def files(self, split: str) -> list[Path]:
        """Image paths of one split (``images_dir / path``)."""
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
        augment: str = "none",
        shuffle: bool = False,
        seed: int = 0,
        with_labels: bool = True,
    ) -> "tf.data.Dataset":
        """Batches of ``(RGB 0-255 pixels, one-hot label)`` of one split (see ``train/pipeline.py``)."""
        from train.pipeline import image_dataset

        labels = self.labels(split) if with_labels else None
        files = self.files(split)
        return image_dataset(
            files, labels, len(self.classes), image_size, batch_size, augment=augment, shuffle=shuffle, seed=seed
        )

    def check_trainable(self, ratios: Sequence[float]) -> None:
        """Raise ``DataSetError`` before any model is built when these images cannot train a classifier.

        Two classes at least; every class with a training image, and (for a computed split) enough images
        to give one to each split with a share above 0; a non-empty validation split.
        """
        counts = self.frame.groupby("label")["split"].value_counts().unstack(fill_value=0)
        counts = counts.reindex(list(self.classes), fill_value=0)  # a class all of whose images were dropped
        if len(self.classes) < 2:
            raise DataSetError(
                f"only one class ({self.classes[0]!r}, {len(self.frame)} images) in {self.summary.get('source')}: "
                f"a classifier needs at least two; add images of another class"
            )
        needed = 1 if self.predefined_split else 1 + sum(1 for r in ratios[1:] if r > 0)
        totals = counts.sum(axis=1)
        in_train = counts["train"] if "train" in counts else pd.Series(0, index=counts.index)
        short = [c for c in counts.index if totals[c] < needed or in_train[c] == 0]
        if short:
            names = ", ".join(f"{c!r} ({int(totals[c])} images, {int(in_train[c])} in train)" for c in short)
            raise DataSetError(
                f"too few images for the split {list(ratios)}: {names}; each class needs at least {needed} "
                f"(one per split) and a training image: add images or leave the class out"
            )
        if not len(self.rows("validation")):
            raise DataSetError(f"the validation split is empty ({self.summary['splits']}): need more images")
