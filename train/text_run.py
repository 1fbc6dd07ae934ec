"""``make train-text`` (``train.modality = text``): a title run folder, and ``make evaluate`` on one.

    python -m train.train --set train.modality=text      # = make train-text

Reads ``{catalogue}`` (``make extract``'s ``name`` and ``label``), drops rows without a title and, with
``text.distinct`` (default), repeated titles; splits with the image runs' rules (stratified by class,
ordered by a hash of seed + group, ``train.split``), where the group is the normalised title, so a title
and its duplicates never straddle two splits. Writes ``{runs}/<id>-text/`` like an image run
(config.resolved.json, options.json, classes.json, split.csv with the title, metrics.json with the
validation scores, the sanity gate and the speed) plus ``text_model.npz``, and points ``{runs}/latest-text``
at it (``latest`` stays the newest image run, which label, export and visualise need).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.config import Config
from data.core.contracts import CATALOGUE, RUN_FILES
from data.core.io import atomic_write_with, write_json
from data.core.runs import mark_latest
from train.errors import DataSetError, ModelNotUseful
from train.gate import sanity_check
from train.metrics import classification_report, cross_entropy
from train.options import TrainOptions
from train.runs import TrainResult, new_run_id, run_folder
from train.split import SPLITS, assign_split, split_counts
from train.text import TextModel, TextOptions, normalise_title

log = logging.getLogger(__name__)

LATEST_TEXT = "latest-text"


def load_titles(catalogue: Path, options: TextOptions) -> tuple[pd.DataFrame, dict[str, int]]:
    """The catalogue's titled rows (``key``, ``name``, ``label``, ``group``) and the rows left out by reason."""
    frame = CATALOGUE.read(catalogue, "make extract", columns=("key", "name", "label"))
    if "name" not in frame:
        raise DataSetError(f"{catalogue} has no name column: a text run needs the titles (run `make extract` again)")
    frame = frame.assign(group=[normalise_title(t, options.max_title_chars) for t in frame["name"]])
    left_out = {"no_title": int(frame["group"].eq("").sum())}
    frame = frame[frame["group"].ne("") & frame["label"].notna()]
    if options.distinct:
        before = len(frame)
        frame = frame.drop_duplicates("group", keep="first")
        left_out["duplicate_title"] = before - len(frame)
    return frame.reset_index(drop=True), left_out


def split_titles(frame: pd.DataFrame, train: TrainOptions) -> pd.Series:
    """Each row's split; every row of a title group takes the split of the group's first row."""
    split_file = Path(train.split_file) if train.split_file else None
    split = assign_split(frame[["key", "label", "group"]], train.split, train.seed, split_file)
    return split.groupby(frame["group"]).transform("first")


def check_trainable(frame: pd.DataFrame, ratios: tuple[float, float, float]) -> None:
    """``DataSetError`` unless two classes or more each have titles for every split."""
    counts = frame["label"].value_counts()
    if len(counts) < 2:
        raise DataSetError(f"a text run needs two classes or more; the catalogue has {list(counts.index)}")
    short = [f"{c} ({n})" for c, n in counts.items() if split_counts(int(n), ratios)[0] < 2]
    if short:
        raise DataSetError(f"too few distinct titles to train on in: {', '.join(short)} (at least 3 per class)")


def _report(model: TextModel, rows: pd.DataFrame, majority: int) -> tuple[dict[str, Any], np.ndarray]:
    y = rows["label_index"].to_numpy(np.int64)
    probs = model.predict_proba(rows["name"].tolist())
    report = classification_report(y, probs, model.classes)
    report["sanity"] = sanity_check(y, probs, model.classes, majority)
    return report, probs


def train_text(
    catalogue: Path,
    runs_dir: Path,
    train: TrainOptions,
    options: TextOptions,
    *,
    run_id: str | None = None,
    config: Config | None = None,
) -> TrainResult:
    """Train a title classifier on ``catalogue`` into ``{runs}/<run_id>``; returns the run and its metrics.

    Raises:
        ConfigError: a ``[text]`` value out of range.
        DataSetError: a catalogue without titles, with one class, or too few titles per class.
    """
    started = time.perf_counter()
    options.check()
    frame, left_out = load_titles(catalogue, options)
    check_trainable(frame, train.split)
    frame["split"] = split_titles(frame, train).to_numpy()
    if not frame["split"].eq("validation").any():
        raise DataSetError("no title landed in the validation split (too few distinct titles): add titles")
    classes = tuple(sorted(frame["label"].unique()))
    frame["label_index"] = frame["label"].map({c: i for i, c in enumerate(classes)})
    parts = {s: frame[frame["split"] == s] for s in SPLITS}
    model = TextModel(classes, options)
    fit_start = time.perf_counter()
    model.fit(parts["train"]["name"].tolist(), parts["train"]["label_index"].to_numpy())
    fit_s = time.perf_counter() - fit_start
    model.calibrate(parts["validation"]["name"].tolist(), parts["validation"]["label_index"].to_numpy())
    majority = int(np.bincount(parts["train"]["label_index"], minlength=len(classes)).argmax())
    predict_start = time.perf_counter()
    validation, _ = _report(model, parts["validation"], majority)
    predict_s = time.perf_counter() - predict_start
    if options.refit:  # the choices are made; validation's titles now also teach the model (test stays unseen)
        seen = pd.concat([parts["train"], parts["validation"]])
        model.fit(seen["name"].tolist(), seen["label_index"].to_numpy())
    run_id = run_id or new_run_id("text", runs_dir)
    metrics = {
        "run_id": run_id,
        "modality": "text",
        "recipe": "text",
        "backbone": "tfidf-linear-svm",
        "text": asdict(options),
        "temperature": round(model.temperature, 4),
        "data": {"rows": len(frame), "left_out": left_out, "splits": frame["split"].value_counts().to_dict()},
        "speed": {
            "train_titles": len(parts["train"]),
            "train_s": round(fit_s, 3),
            "train_titles_per_s": round(len(parts["train"]) / max(fit_s, 1e-9), 1),
            "predict_titles_per_s": round(len(parts["validation"]) / max(predict_s, 1e-9), 1),
        },
        "validation": {k: v for k, v in validation.items() if k != "sanity"},  # before the refit
        "sanity": validation["sanity"],
    }
    with run_folder(runs_dir, run_id, None) as folder:
        write_json(folder.work / RUN_FILES["classes"], list(classes))
        cols = ["key", "label", "split", "name"]
        atomic_write_with(
            folder.work / RUN_FILES["split"], lambda p: frame[cols].assign(path="").to_csv(p, index=False)
        )
        write_json(folder.work / RUN_FILES["options"], {**train.to_dict(), "modality": "text", "text": asdict(options)})
        if config is not None:
            config.save(folder.work)
        model.save(folder.work)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        write_json(folder.work / RUN_FILES["metrics"], metrics)
    if train.strict and not metrics["sanity"]["passed"]:
        raise ModelNotUseful(
            f"train.strict: the text model of {folder.final} does not clearly beat the majority-class baseline "
            f"({'; '.join(metrics['sanity']['findings'])}); the run is kept, {runs_dir / LATEST_TEXT} was not moved"
        )
    mark_latest(runs_dir, run_id, LATEST_TEXT)
    return TrainResult(folder.final, metrics)


def run_titles(run_dir: Path, split: str) -> pd.DataFrame:
    """A text run's rows of one split (key, name, label, label_index) from its split.csv."""
    frame = pd.read_csv(run_dir / RUN_FILES["split"], dtype={"key": str, "name": str}, keep_default_na=False)
    classes = list(pd.read_json(run_dir / RUN_FILES["classes"], typ="series"))
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise DataSetError(f"the {split} split of {run_dir.name} is empty: nothing to evaluate")
    return rows.assign(label_index=rows["label"].map({c: i for i, c in enumerate(classes)}))


def evaluate_text(run_dir: Path, split: str, top_confused: int = 10) -> tuple[dict[str, Any], pd.DataFrame]:
    """``make evaluate`` on a text run: the report (as for images) and one prediction row per title."""
    model = TextModel.load(run_dir)
    rows = run_titles(run_dir, split)
    train_labels = run_titles(run_dir, "train")["label_index"].to_numpy(np.int64)
    majority = int(np.bincount(train_labels, minlength=len(model.classes)).argmax())
    y = rows["label_index"].to_numpy(np.int64)
    probs = model.predict_proba(rows["name"].tolist())
    report = {
        "run_id": run_dir.name,
        "modality": "text",
        "split": split,
        "skipped": {},
        **classification_report(y, probs, model.classes, top_confused),
        "sanity": sanity_check(y, probs, model.classes, majority),
    }
    predictions = rows[["key", "name", "label"]].assign(
        path="",
        predicted=[model.classes[i] for i in probs.argmax(axis=1)],
        confidence=probs.max(axis=1).round(4),
        loss=cross_entropy(y, probs).round(4),
    )
    return report, predictions
