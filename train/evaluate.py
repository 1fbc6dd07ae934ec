"""``make evaluate``: score a trained run on its held-out test split.

    python -m train.evaluate [--config data/config.toml] [--run latest|RUN_ID|RUN_DIR] [--split test]

Writes ``{run}/evaluation/`` (``evaluation_<split>/`` for another split): metrics.json (accuracy, top-3,
macro-F1, per-class precision/recall/F1, most confused pairs, confusion matrix, the sanity gate's verdict,
skipped images by reason), per_class.csv, confusion_matrix.csv/.png, confused_pairs.csv, predictions.csv
(per image: prediction, confidence, loss) and gallery.png (the highest-loss images); the confusion matrix
also goes to TensorBoard (``logs/<split>``). The folder is built beside and swapped in whole. A text run
(``latest-text``) gets the same files without the gallery; a fusion run (``latest-fusion``) is scored on its
held-out rows with the photo and the title fused, and its report adds what each source scores on those rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import ConfigError, config_from_args
from data.core.options import StageOptions
from data.core.contracts import EVALUATION_FILES, IMAGES, RUNS, evaluation_dir
from data.core.figures import confusion_png
from data.core.images import thumbnail
from data.core.io import atomic_write_with, staged_dir, write_json
from data.core.runs import add_run_argument, resolve_run, run_images_dir, run_kind
from train.dataset import ImageDataSet
from train.errors import DataSetError, ModelNotUseful
from train.gate import describe, sanity_check
from train.metrics import classification_report, cross_entropy
from train.predict import Predictor
from train.reporting import gallery_png, log_png, write_png
from train.screen import BAD_IMAGE_POLICIES, readable_rows
from train.split import SPLITS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateOptions(StageOptions):
    """What to evaluate and how much to report (the ``[evaluate]`` section of data/config.toml)."""

    SECTION = "evaluate"
    CLI = {"run": "run", "split": "split"}

    run: str = "latest"
    split: str = "test"
    batch_size: int = 64
    gallery_size: int = 16
    top_confused: int = 10
    bad_images: str = "skip"
    strict: bool = False

    def check(self) -> None:
        """Raise ``ConfigError`` for an unknown split or policy, or a count below 1."""
        if self.split not in SPLITS:
            raise ConfigError(f"evaluate.split = {self.split!r} is not a split; choose one of {', '.join(SPLITS)}")
        if self.bad_images not in BAD_IMAGE_POLICIES:
            raise ConfigError(
                f"evaluate.bad_images = {self.bad_images!r}; choose one of {', '.join(BAD_IMAGE_POLICIES)}"
            )
        for key in ("batch_size", "gallery_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"evaluate.{key} must be at least 1")


def _gallery_image(path: Path, side: int = 160) -> np.ndarray:
    """An RGB thumbnail for the gallery (a grey square if the file cannot be read)."""
    image = thumbnail(path, side, reduced=False, interpolation=cv2.INTER_LINEAR)
    return np.full((side, side, 3), 128, np.uint8) if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _write_csv(target: Path, frame: pd.DataFrame, index: bool = False) -> None:
    atomic_write_with(target, lambda p: frame.to_csv(p, index=index))


def _write_outputs(
    out_dir: Path,
    report: dict[str, Any],
    predictions: pd.DataFrame,
    classes: tuple[str, ...],
    images_dir: Path,
    gallery_size: int,
) -> None:
    """Every file of the evaluation folder."""
    cm = np.asarray(report["confusion_matrix"])
    index = pd.Index(classes, name="true \\ predicted")
    _write_csv(out_dir / "confusion_matrix.csv", pd.DataFrame(cm, index=index, columns=classes), index=True)
    write_png(out_dir / "confusion_matrix.png", confusion_png(cm, classes, f"{report['split']} confusion matrix"))
    per_class = pd.DataFrame.from_dict(report["per_class"], orient="index").rename_axis("class").reset_index()
    _write_csv(out_dir / "per_class.csv", per_class)
    pairs = pd.DataFrame(report["most_confused"], columns=["true", "predicted", "count", "share_of_true"])
    _write_csv(out_dir / "confused_pairs.csv", pairs)
    _write_csv(out_dir / EVALUATION_FILES["predictions"], predictions)
    worst = predictions.sort_values("loss", ascending=False, kind="stable").head(gallery_size)
    images = [_gallery_image(images_dir / p) for p in worst["path"]]
    captions = [
        f"true: {t}\npred: {p} ({c:.2f})" for t, p, c in zip(worst["label"], worst["predicted"], worst["confidence"])
    ]
    write_png(out_dir / "gallery.png", gallery_png(images, captions))
    write_json(out_dir / EVALUATION_FILES["metrics"], report)


def _usable_rows(data: ImageDataSet, options: EvaluateOptions, run_name: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of the split whose image decodes (the others skipped and counted, or an error)."""
    rows = data.rows(options.split).reset_index(drop=True)
    if rows.empty:
        raise DataSetError(f"the {options.split} split of {run_name} is empty: nothing to evaluate")
    return readable_rows(rows, data.images_dir, options.bad_images, f"{options.split} images", run_name)


def evaluate(run_dir: Path, images_dir: Path, options: EvaluateOptions = EvaluateOptions()) -> dict[str, Any]:
    """Evaluate ``run_dir``'s model on one split of its saved ``split.csv``; returns the metrics written.

    Args:
        run_dir: a training run folder (model.keras, split.csv, classes.json).
        images_dir: folder the split's image paths are relative to (``{images}`` or the run's train.images).
        options: split, batch size, gallery size, number of confused pairs, bad-image policy.
    """
    options.check()
    kind = run_kind(run_dir)
    if kind == "text":  # a title run (make train-text): train/text_run.py scores it
        return _evaluate_text(run_dir, options)
    if kind == "both":  # a fusion run (train.modality = both): train/fusion.py scores it
        return _evaluate_fusion(run_dir, images_dir, options)
    predictor = Predictor.load(run_dir)
    data = ImageDataSet.from_run(run_dir, images_dir)
    rows, skipped = _usable_rows(data, options, run_dir.name)
    probs = predictor.predict_files([images_dir / p for p in rows["path"]], options.batch_size)
    y_true = rows["label_index"].to_numpy(dtype=np.int64)
    majority = int(np.bincount(data.labels("train"), minlength=len(data.classes)).argmax())
    report = {
        "run_id": run_dir.name,
        "split": options.split,
        "skipped": skipped,
        **classification_report(y_true, probs, predictor.classes, options.top_confused),
        "sanity": sanity_check(y_true, probs, predictor.classes, majority),
    }
    predictions = rows[["key", "path", "label"]].assign(
        predicted=[predictor.classes[i] for i in probs.argmax(axis=1)],
        confidence=probs.max(axis=1).round(4),
        loss=cross_entropy(y_true, probs).round(4),
    )
    target = evaluation_dir(run_dir, options.split)
    with staged_dir(target) as work:
        _write_outputs(work, report, predictions, predictor.classes, images_dir, options.gallery_size)
    png = confusion_png(np.asarray(report["confusion_matrix"]), predictor.classes, f"{options.split} confusion matrix")
    log_png(run_dir / "logs" / options.split, "confusion_matrix", png, step=0)
    log.info("evaluation written to %s", target)
    return report


def _evaluate_fusion(run_dir: Path, images_dir: Path, options: EvaluateOptions) -> dict[str, Any]:
    """The image evaluation's files for a fusion run, with each source's scores in the report."""
    from train.fusion import evaluate_fusion

    report, predictions, photos = evaluate_fusion(
        run_dir,
        images_dir,
        options.split,
        top_confused=options.top_confused,
        bad_images=options.bad_images,
        batch_size=options.batch_size,
    )
    target = evaluation_dir(run_dir, options.split)
    with staged_dir(target) as work:
        _write_outputs(work, report, predictions, tuple(report["per_class"]), photos, options.gallery_size)
    log.info("evaluation written to %s", target)
    return report


def _evaluate_text(run_dir: Path, options: EvaluateOptions) -> dict[str, Any]:
    """The image evaluation's files for a title run (no gallery: there are no images)."""
    from train.text_run import evaluate_text

    report, predictions = evaluate_text(run_dir, options.split, options.top_confused)
    target = evaluation_dir(run_dir, options.split)
    with staged_dir(target) as work:
        _write_outputs(work, report, predictions, tuple(report["per_class"]), run_dir, 0)
        (work / "gallery.png").unlink(missing_ok=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make evaluate``)."""
    parser = stage_parser("train.evaluate", __doc__)
    add_run_argument(parser, "evaluate")
    parser.add_argument("--split", default=None, help="which split to score: train, validation or test (default)")
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)
        options = EvaluateOptions.from_config(cfg, cli=args)
        run_dir = resolve_run(cfg.path(RUNS), options.run)
        report = evaluate(run_dir, run_images_dir(run_dir, cfg.path(IMAGES)), options)
        print(
            f"run: {run_dir}  split: {report['split']}  images: {report['samples']}  skipped: {report['skipped'] or 0}"
        )
        print(
            f"accuracy {report['accuracy']:.3f}  top-3 {report['top3_accuracy']:.3f}  "
            f"macro-F1 {report['macro_f1']:.3f}  loss {report['loss']:.3f}"
        )
        for name, scores in report.get("sources", {}).items():  # a fusion run: each source on the same rows
            print(f"  {name:>6}: accuracy {scores['accuracy']:.3f}  macro-F1 {scores['macro_f1']:.3f}")
        for pair in report["most_confused"][:3]:
            print(f"  confused: {pair['true']} -> {pair['predicted']} ({pair['count']}x)")
        print("\n".join(describe(report["sanity"], report["split"])))
        print(f"outputs: {evaluation_dir(run_dir, report['split'])}")
        if options.strict and not report["sanity"]["passed"]:
            raise ModelNotUseful(
                f"evaluate.strict: the model of {run_dir} does not clearly beat the majority-class baseline"
            )
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
