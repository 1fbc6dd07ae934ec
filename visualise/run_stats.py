"""A training run's numbers: curves, test-split scores, calibration, highest losses, and the runs compared."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.contracts import EVALUATION_FILES, RUN_FILES, SPLIT, evaluation_dir
from data.core.errors import InputError
from data.core.contracts import read_json

log = logging.getLogger(__name__)

_SCORES = (
    "samples",
    "accuracy",
    "top3_accuracy",
    "macro_f1",
    "loss",
    "per_class",
    "most_confused",
    "confusion_matrix",
    "sanity",  # make evaluate's verdict: does the model beat a constant majority-class predictor
    "sources",  # a fusion run: what the photo, the title and the fusion score on the same rows
)


@dataclass(frozen=True)
class RunFiles:
    """What ``make train`` and ``make evaluate`` left in a run folder."""

    run_dir: Path
    metrics: dict[str, Any]
    options: dict[str, Any]
    classes: tuple[str, ...]
    split: pd.DataFrame
    evaluation: dict[str, Any]
    predictions: pd.DataFrame

    @classmethod
    def load(cls, run_dir: Path) -> "RunFiles":
        """Read a run folder.

        Raises:
            InputError: a file of the run is missing (with the command that writes it).
        """
        hint = f"make evaluate ARGS='--run {run_dir.name}'"
        metrics = read_json(run_dir / RUN_FILES["metrics"], "make train")
        options_file = run_dir / RUN_FILES["options"]
        options = read_json(options_file, "make train") if options_file.is_file() else {}
        classes_file = run_dir / RUN_FILES["classes"]
        try:
            classes = json.loads(classes_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{classes_file} is missing or not JSON: did the training run finish?") from exc
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InputError(f"{classes_file} is not a list of class names: did the training run finish?")
        split_file = run_dir / SPLIT.file_name
        if not split_file.is_file():
            raise InputError(f"{split_file} does not exist: did the training run finish?")
        split = _read_csv(split_file, "make train", dtype=str, keep_default_na=False)
        SPLIT.check(split.columns, split_file)
        evaluation = read_json(evaluation_dir(run_dir) / EVALUATION_FILES["metrics"], hint)
        predictions_file = evaluation_dir(run_dir) / EVALUATION_FILES["predictions"]
        if not predictions_file.is_file():
            raise InputError(f"{predictions_file} does not exist: run `{hint}` first")
        text = {"key": str, "label": str, "predicted": str, "path": str}
        predictions = _read_csv(predictions_file, hint, dtype=text)
        missing = {"key", "path", "label", "predicted", "confidence", "loss"} - set(predictions.columns)
        if missing:
            raise InputError(f"{predictions_file} lacks the column(s) {', '.join(sorted(missing))}: run `{hint}` again")
        for column in ("confidence", "loss"):
            if not pd.api.types.is_numeric_dtype(predictions[column]):
                raise InputError(f"{predictions_file}: column {column} is not numeric: run `{hint}` again")
        return cls(run_dir, metrics, options, tuple(classes), split, evaluation, predictions)


def _read_csv(path: Path, producer: str, **kwargs: Any) -> pd.DataFrame:
    """A CSV another stage wrote, or ``InputError`` naming it when it is not readable text in CSV form."""
    try:
        return pd.read_csv(path, **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path} is not a readable CSV file ({exc}); run `{producer}` again") from exc


def _r(value: Any) -> Any:
    return round(float(value), 4) if isinstance(value, (float, np.floating)) else value


def history(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's epochs (phase, epoch, seconds and every logged metric), values rounded for the JSON."""
    return [{k: _r(v) for k, v in sorted(record.items())} for record in metrics.get("history", [])]


def scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The test-split scores ``make evaluate`` computed."""
    return {k: evaluation[k] for k in _SCORES if k in evaluation} | {"split": evaluation.get("split", "test")}


def calibration(predictions: pd.DataFrame, bins: int) -> dict[str, Any]:
    """Reliability of the top-class probability: per confidence bin, the accuracy and the mean confidence.

    ECE (expected calibration error) is the bins' |accuracy - confidence| weighted by their share of images;
    MCE the largest gap. Bins are ``[i/bins, (i+1)/bins)``, the last one closed.
    """
    confidence = predictions["confidence"].to_numpy(float)
    correct = (predictions["predicted"] == predictions["label"]).to_numpy()
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        mask = index == b
        row: dict[str, Any] = {"low": round(b / bins, 4), "high": round((b + 1) / bins, 4), "count": int(mask.sum())}
        if mask.any():
            acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
            row.update(accuracy=round(acc, 4), confidence=round(conf, 4))
            ece += mask.mean() * abs(acc - conf)
            mce = max(mce, abs(acc - conf))
        else:
            row.update(accuracy=None, confidence=None)
        rows.append(row)
    n = len(predictions)
    return {
        "bins": rows,
        "ece": round(ece, 4),
        "mce": round(mce, 4),
        "images": int(n),
        "accuracy": round(float(correct.mean()), 4) if n else None,
        "mean_confidence": round(float(confidence.mean()), 4) if n else None,
    }


def top_losses(predictions: pd.DataFrame, count: int) -> list[dict[str, Any]]:
    """The ``count`` highest-loss images: given and predicted label, the prediction's and the label's probability."""
    worst = predictions.sort_values(["loss", "key"], ascending=[False, True], kind="stable").head(count)
    titles = worst["name"] if "name" in worst else pd.Series("", index=worst.index)  # text and fusion runs
    return [
        {
            "key": row.key,
            "path": row.path if isinstance(row.path, str) else "",
            "title": title if isinstance(title, str) else "",
            "label": row.label,
            "predicted": row.predicted,
            "confidence": round(float(row.confidence), 4),
            "p_label": round(float(np.exp(-row.loss)), 4),
            "loss": round(float(row.loss), 4) + 0.0,  # + 0.0: a certain right answer's -0.0 shows as 0.0
        }
        for row, title in zip(worst.itertuples(index=False), titles)
    ]


def recipe(options: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """A run's training recipe in a few words, from its ``options.json`` (and ``metrics.json``: a fusion run has
    no options).

    ``recipe`` = ``auto`` (or a run from before that option) means scratch without weights, else transfer.
    """
    metrics = metrics or {}
    modality = options.get("modality") or metrics.get("modality")
    if modality == "text":
        return "titles: hashed TF-IDF word and character n-grams, linear SVM"
    if modality == "both":
        return (
            f"late fusion of {metrics.get('image_run')} and {metrics.get('text_run')} "
            f"(photo weight {metrics.get('image_weight')})"
        )
    if not options:
        return "unknown"
    weights = str(options.get("weights", ""))
    name = str(options.get("recipe", "auto"))
    if name == "auto":
        name = "scratch" if weights.lower() in ("none", "", "random") else "transfer"
    head = f"{options.get('head', '?')} head"
    if name == "scratch":
        return f"scratch (every layer trained), {head}"
    tune = f", fine-tune {options.get('fine_tune_layers')} layers" if options.get("fine_tune_epochs") else ""
    return f"transfer ({weights}), {head}{tune}"


def _run_row(run_dir: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads((run_dir / RUN_FILES["metrics"]).read_text(encoding="utf-8"))
        options_file = run_dir / RUN_FILES["options"]
        options = json.loads(options_file.read_text(encoding="utf-8")) if options_file.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("run %s left out of the comparison: %s", run_dir.name, exc)
        return None
    evaluation_file = evaluation_dir(run_dir) / EVALUATION_FILES["metrics"]
    source, numbers = "validation", metrics.get("validation", {})
    if evaluation_file.is_file():
        try:
            source, numbers = "test", json.loads(evaluation_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
    return {
        "run_id": run_dir.name,
        "backbone": metrics.get("backbone", options.get("backbone")),
        "recipe": recipe(options, metrics),
        "image_size": metrics.get("image_size", options.get("image_size")),
        "epochs": len(metrics.get("history", [])),
        "scored_on": source,
        "accuracy": numbers.get("accuracy"),
        "macro_f1": numbers.get("macro_f1"),
        "seconds": metrics.get("seconds"),
    }


def compare_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One row per finished run under ``runs_dir`` (those with a metrics.json), by run id."""
    if not runs_dir.is_dir():
        return []
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and (p / RUN_FILES["metrics"]).is_file())
    return [row for row in map(_run_row, folders) if row is not None]
