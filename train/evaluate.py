"""``make evaluate``: score a trained run on its held-out test split.

    python -m train.evaluate [--config data/config.toml] [--run latest|RUN_ID|RUN_DIR] [--split test]

Writes ``{run}/evaluation/`` (``evaluation_<split>/`` for another split): metrics.json (accuracy, top-3,
macro-F1, per-class precision/recall/F1, most confused pairs, confusion matrix), per_class.csv,
confusion_matrix.csv/.png, confused_pairs.csv, predictions.csv (per image: prediction, confidence, loss)
and gallery.png (the highest-loss images); the confusion matrix also goes to TensorBoard (``logs/test``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from data.core.cli import fail, setup_logging
from data.core.io import atomic_write_with, write_json
from data.core.config import ConfigError, add_config_args, config_from_args

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateOptions:
    """What to evaluate and how much to report (the ``[evaluate]`` section of data/config.toml)."""

    split: str = "test"
    batch_size: int = 64
    gallery_size: int = 16
    top_confused: int = 10


def _thumbnail(path: Path, side: int = 160) -> np.ndarray:
    """An RGB thumbnail of an image file (grey if it cannot be read)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return np.full((side, side, 3), 128, np.uint8)
    scale = side / max(image.shape[:2])
    image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
    from train.reporting import confusion_png, gallery_png, write_png

    cm = np.asarray(report["confusion_matrix"])
    _write_csv(
        out_dir / "confusion_matrix.csv",
        pd.DataFrame(cm, index=pd.Index(classes, name="true \\ predicted"), columns=classes),
        index=True,
    )
    write_png(out_dir / "confusion_matrix.png", confusion_png(cm, classes, "test confusion matrix"))
    per_class = pd.DataFrame.from_dict(report["per_class"], orient="index").rename_axis("class").reset_index()
    _write_csv(out_dir / "per_class.csv", per_class)
    _write_csv(
        out_dir / "confused_pairs.csv",
        pd.DataFrame(report["most_confused"], columns=["true", "predicted", "count", "share_of_true"]),
    )
    _write_csv(out_dir / "predictions.csv", predictions)
    worst = predictions.sort_values("loss", ascending=False, kind="stable").head(gallery_size)
    images = [_thumbnail(images_dir / p) for p in worst["path"]]
    captions = [
        f"true: {t}\npred: {p} ({c:.2f})" for t, p, c in zip(worst["label"], worst["predicted"], worst["confidence"])
    ]
    write_png(out_dir / "gallery.png", gallery_png(images, captions))
    write_json(out_dir / "metrics.json", report)


def evaluate(run_dir: Path, images_dir: Path, options: EvaluateOptions = EvaluateOptions()) -> dict[str, Any]:
    """Evaluate ``run_dir``'s model on one split of its saved ``split.csv``; returns the metrics written.

    Args:
        run_dir: a training run folder (model.keras, split.csv, classes.json).
        images_dir: folder the split's image paths are relative to (``{processed}/images``).
        options: split, batch size, gallery size, number of confused pairs.
    """
    import keras

    from train.dataset import DataSetError, ImageDataSet
    from train.metrics import classification_report, cross_entropy
    from train.reporting import confusion_png, log_png

    if not (run_dir / "model.keras").is_file():
        raise DataSetError(f"{run_dir} has no model.keras (did the training run finish?)")
    data = ImageDataSet.from_run(run_dir, images_dir)
    rows = data.rows(options.split)
    if rows.empty:
        raise DataSetError(f"the {options.split} split of {run_dir.name} is empty")
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    image_size = int(model.input_shape[1])
    probs = model.predict(data.tf_dataset(options.split, image_size, options.batch_size), verbose=0)
    y_true = data.labels(options.split)
    report = classification_report(y_true, probs, data.classes, options.top_confused)
    report = {"run_id": run_dir.name, "split": options.split, **report}
    predictions = (
        rows[["key", "path", "label"]]
        .reset_index(drop=True)
        .assign(
            predicted=[data.classes[i] for i in probs.argmax(axis=1)],
            confidence=probs.max(axis=1).round(4),
            loss=cross_entropy(y_true, probs).round(4),
        )
    )
    out_dir = run_dir / ("evaluation" if options.split == "test" else f"evaluation_{options.split}")
    _write_outputs(out_dir, report, predictions, data.classes, images_dir, options.gallery_size)
    log_png(
        run_dir / "logs" / options.split,
        "confusion_matrix",
        confusion_png(np.asarray(report["confusion_matrix"]), data.classes, f"{options.split} confusion matrix"),
        step=0,
    )
    log.info("evaluation written to %s", out_dir)
    return report


def options_from_section(section: dict[str, Any]) -> EvaluateOptions:
    """``EvaluateOptions`` from an ``[evaluate]`` mapping (without ``run``); unknown keys raise ``ConfigError``."""
    known = set(EvaluateOptions.__dataclass_fields__)
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"[evaluate] has unknown key(s) {unknown}; known: run, {', '.join(sorted(known))}")
    return EvaluateOptions(**section)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (``make evaluate``)."""
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    add_config_args(parser)
    parser.add_argument("--run", default=None, help="latest (default), a run id or a run folder")
    parser.add_argument(
        "--split", choices=("train", "validation", "test"), default=None, help="which split to score (default: test)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    from train.dataset import DataSetError
    from train.runs import RunNotFound, resolve_run

    try:
        cfg = config_from_args(args)
        section = cfg.section("evaluate")
        ref = args.run or section.pop("run", "latest")
        section.pop("run", None)
        if args.split:
            section["split"] = args.split
        options = options_from_section(section)
        run_dir = resolve_run(cfg.path("runs"), ref)
        report = evaluate(run_dir, cfg.path("processed") / "images", options)
    except (ConfigError, DataSetError, RunNotFound) as exc:
        fail(str(exc))
    print(f"run: {run_dir}  split: {report['split']}  images: {report['samples']}")
    print(
        f"accuracy {report['accuracy']:.3f}  top-3 {report['top3_accuracy']:.3f}  "
        f"macro-F1 {report['macro_f1']:.3f}  loss {report['loss']:.3f}"
    )
    for pair in report["most_confused"][:3]:
        print(f"  confused: {pair['true']} -> {pair['predicted']} ({pair['count']}x)")
    print(f"outputs: {run_dir / ('evaluation' if report['split'] == 'test' else 'evaluation_' + report['split'])}")


if __name__ == "__main__":
    main()
