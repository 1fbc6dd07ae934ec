"""``train.modality = both``: late fusion of a title run and a photo run, the weight chosen on validation.

    python -m train.train --set train.modality=both [--set fusion.image_run=latest fusion.text_run=latest-text]

Fused probabilities are a weighted geometric mean, ``p ~ p_image**w * p_text**(1 - w)``, renormalised; ``w``
runs over a grid from 0 (title alone) to 1 (photo alone). The better source on validation (accuracy, then
log-loss) is the default; a mix replaces it only when it fixes clearly more of that source's validation rows than
it breaks, at its weight and at both neighbouring ones (a one-sided sign test on the rows where they disagree,
p < ``MIN_GAIN_P``), and among such mixes the most accurate wins. A mix that wins by a row or two, or only on a
knife edge of the grid, is noise fitted to one split and is refused (in the fusion benchmark an unguarded choice
fell below the better source on test). Rows are the photo run's validation and test rows whose product has a
title in ``{catalogue}``, less those whose title the text run trained on (that would flatter the title).
Writes ``{runs}/<id>-fusion/`` (``fusion.json``, ``metrics.json`` with what each source and the fusion score on
validation and test, ``classes.json``, ``split.csv``, ``config.resolved.json``) and points ``{runs}/latest-fusion``
at it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.config import Config
from data.core.options import StageOptions
from data.core.contracts import CATALOGUE, RUN_FILES
from data.core.errors import InputError
from data.core.io import write_json
from data.core.runs import mark_latest, resolve_run, run_images_dir, run_kind
from train.errors import DataSetError
from train.metrics import classification_report
from train.runs import TrainResult, new_run_id, run_folder

log = logging.getLogger(__name__)

FUSION_FILE = RUN_FILES["fusion"]
LATEST_FUSION = "latest-fusion"
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))
MIN_GAIN_P = 0.3  # a mix must beat the better source on validation at this one-sided sign-test level


@dataclass(frozen=True)
class FusionOptions(StageOptions):
    """The ``[fusion]`` section of data/config.toml."""

    SECTION = "fusion"

    image_run: str = "latest"
    text_run: str = "latest-text"
    run: str = "latest-fusion"  # the fusion run whose weight make predict and make serve use


def align(probs: np.ndarray, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """``probs`` over classes ``source`` re-ordered to ``target`` (a class the source lacks gets 0)."""
    out = np.zeros((probs.shape[0], len(target)), np.float32)
    where = {c: i for i, c in enumerate(source)}
    for j, name in enumerate(target):
        if name in where:
            out[:, j] = probs[:, where[name]]
    return out


def fuse(image: np.ndarray, text: np.ndarray, weight: float) -> np.ndarray:
    """The weighted geometric mean of two probability tables (same class order), renormalised."""
    logp = weight * np.log(np.clip(image, 1e-7, 1.0)) + (1.0 - weight) * np.log(np.clip(text, 1e-7, 1.0))
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _score(y: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    accuracy = float((probs.argmax(axis=1) == y).mean()) if len(y) else 0.0
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean()) if len(y) else 0.0
    return accuracy, loss


def choose_weight(y: np.ndarray, image: np.ndarray, text: np.ndarray, *, min_gain_p: float = MIN_GAIN_P) -> float:
    """The grid weight to fuse with, chosen on ``y``: the better single source (accuracy, then log-loss), unless a
    mix fixes clearly more of its rows than it breaks, at its own weight and at both neighbouring ones (a one-sided
    sign test on the worst of the three, p < ``min_gain_p``); then the most accurate such mix (its worst
    neighbour's accuracy, then its log-loss)."""
    from scipy.stats import binomtest

    probs = [fuse(image, text, w) for w in WEIGHTS]
    scores = [_score(y, p) for p in probs]
    right = [p.argmax(axis=1) == y for p in probs]
    base = max((0, len(WEIGHTS) - 1), key=lambda i: (scores[i][0], -scores[i][1], -i))
    net = []  # (gains - losses, gains, losses) against the better source, per weight
    for r in right:
        gains, losses = int((r & ~right[base]).sum()), int((right[base] & ~r).sum())
        net.append((gains - losses, gains, losses))
    best: tuple[float, float, float] | None = None
    for i in range(1, len(WEIGHTS) - 1):
        _, gains, losses = min(net[i - 1 : i + 2])
        if gains <= losses or binomtest(gains, gains + losses, 0.5, alternative="greater").pvalue >= min_gain_p:
            continue
        key = (-min(s[0] for s in scores[i - 1 : i + 2]), scores[i][1], WEIGHTS[i])
        if best is None or key < best:
            best = key
    return float(best[2]) if best else float(WEIGHTS[base])


def compare(y: np.ndarray, image: np.ndarray, text: np.ndarray, weight: float, classes: Sequence[str]) -> dict:
    """Accuracy and macro-F1 of each source and of the fusion on the same rows."""
    out = {}
    for name, probs in (("image", image), ("text", text), ("fusion", fuse(image, text, weight))):
        report = classification_report(y, probs, classes)
        out[name] = {k: report[k] for k in ("samples", "accuracy", "macro_f1", "loss")}
    return out


def paired_rows(image_run: Path, text_run: Path, catalogue: Path) -> pd.DataFrame:
    """The photo run's rows with a title, less the titles the text run trained on (key, path, label, split, name)."""
    from train.text import normalise_title

    split = pd.read_csv(image_run / RUN_FILES["split"], dtype={"key": str})
    names = CATALOGUE.read(catalogue, "make extract", columns=("key", "name"))
    if "name" not in names:
        raise DataSetError(f"{catalogue} has no name column: fusion needs the titles")
    rows = split.merge(names.drop_duplicates("key"), on="key", how="inner")
    rows = rows[rows["name"].fillna("").str.strip().ne("")]
    text_split = pd.read_csv(text_run / RUN_FILES["split"], dtype={"name": str}, keep_default_na=False)
    seen = {normalise_title(t) for t in text_split.loc[text_split["split"] == "train", "name"]}
    held_out = ~rows["name"].map(normalise_title).isin(seen) & rows["split"].isin(["validation", "test"])
    return rows[held_out].reset_index(drop=True)


def _probabilities(
    rows: pd.DataFrame, image_run: Path, text_run: Path, images_dir: Path, batch_size: int = 64
) -> tuple:
    """The photo model's and the title model's probabilities for ``rows``, both in the photo model's class order."""
    from train.predict import Predictor
    from train.text import TextModel

    predictor, text = Predictor.load(image_run), TextModel.load(text_run)
    image = predictor.predict_files([images_dir / p for p in rows["path"]], batch_size)
    titles = align(text.predict_proba(rows["name"].tolist()), text.classes, predictor.classes)
    return predictor.classes, image, titles


def train_fusion(
    runs_dir: Path,
    catalogue: Path,
    images_dir: Path,
    options: FusionOptions,
    *,
    run_id: str | None = None,
    config: Config | None = None,
) -> TrainResult:
    """Choose the fusion weight of two runs on validation and save it as a fusion run."""
    image_run, text_run = resolve_run(runs_dir, options.image_run), resolve_run(runs_dir, options.text_run)
    if run_kind(text_run) != "text" or run_kind(image_run) == "text":
        raise InputError(
            f"fusion.text_run must name a text run and fusion.image_run a photo run ({text_run}, {image_run})"
        )
    rows = paired_rows(image_run, text_run, catalogue)
    if not rows["split"].eq("validation").any():
        raise DataSetError(
            f"no validation row of {image_run.name} has a title the text run did not train on: train the text run "
            f"on the photo run's split (make train-text SET=train.split_file={image_run / RUN_FILES['split']})"
        )
    classes, image, text = _probabilities(rows, image_run, text_run, run_images_dir(image_run, images_dir))
    index = {c: i for i, c in enumerate(classes)}
    y = rows["label"].map(index).to_numpy(np.int64)
    val, test = rows["split"].eq("validation").to_numpy(), rows["split"].eq("test").to_numpy()
    weight = choose_weight(y[val], image[val], text[val])
    metrics = {
        "modality": "both",
        "image_run": image_run.name,
        "text_run": text_run.name,
        "image_weight": weight,
        "validation": compare(y[val], image[val], text[val], weight, classes),
        "test": compare(y[test], image[test], text[test], weight, classes) if test.any() else {},
    }
    run_id = run_id or new_run_id("fusion", runs_dir)
    with run_folder(runs_dir, run_id, None) as folder:
        doc = {"image_run": str(image_run.resolve()), "text_run": str(text_run.resolve()), "image_weight": weight}
        write_json(folder.work / FUSION_FILE, {**doc, "classes": list(classes)})
        write_json(folder.work / RUN_FILES["classes"], list(classes))
        rows[["key", "path", "label", "split", "name"]].to_csv(folder.work / RUN_FILES["split"], index=False)
        if config is not None:
            config.save(folder.work)
        write_json(folder.work / RUN_FILES["metrics"], {"run_id": run_id, **metrics})
    mark_latest(runs_dir, run_id, LATEST_FUSION)
    return TrainResult(folder.final, {"run_id": run_id, **metrics})


def read_fusion(run_dir: Path) -> dict[str, Any]:
    """A fusion run's ``fusion.json`` (image_run, text_run, image_weight, classes)."""
    path = run_dir / FUSION_FILE
    if not path.is_file():
        raise InputError(f"{run_dir} has no {FUSION_FILE}: is it a fusion run? (make train SET=train.modality=both)")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def evaluate_fusion(
    run_dir: Path,
    images_dir: Path,
    split: str,
    *,
    top_confused: int = 10,
    bad_images: str = "skip",
    batch_size: int = 64,
) -> tuple[dict[str, Any], pd.DataFrame, Path]:
    """``make evaluate`` on a fusion run: its held-out rows of ``split`` scored by the fused model, beside what each
    source scores on the same rows; the report, one prediction row per product and the photos' folder.

    Raises:
        DataSetError: the split has no rows in the fusion run (it holds only validation and test rows), or none of
            its photos can be read.
    """
    from train.gate import sanity_check
    from train.metrics import cross_entropy
    from train.screen import readable_rows

    doc = read_fusion(run_dir)
    image_run, text_run, weight = Path(doc["image_run"]), Path(doc["text_run"]), float(doc["image_weight"])
    for run in (image_run, text_run):
        if not run.is_dir():
            raise InputError(f"{run_dir.name} fuses {run}, which is gone: train the fusion again (make train-fusion)")
    rows = pd.read_csv(run_dir / RUN_FILES["split"], dtype={"key": str, "name": str}, keep_default_na=False)
    rows = rows[rows["split"] == split].reset_index(drop=True)
    if rows.empty:
        why = (
            "a fusion run holds only validation and test rows"
            if split == "train"
            else "no such row of the photo run has a title the text run did not train on (train the text run with "
            "train.split_file=<the photo run's split.csv>, as make demo does)"
        )
        raise DataSetError(f"{run_dir.name} has no {split} rows: {why}")
    photos = run_images_dir(image_run, images_dir)
    rows, skipped = readable_rows(rows, photos, bad_images, f"{split} images", run_dir.name)
    classes, image, titles = _probabilities(rows, image_run, text_run, photos, batch_size)
    fused = fuse(image, titles, weight)
    y = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    train_labels = pd.read_csv(image_run / RUN_FILES["split"]).query("split == 'train'")["label"]
    majority = classes.index(train_labels.mode().iloc[0]) if len(train_labels) else 0
    report = {
        "run_id": run_dir.name,
        "modality": "both",
        "split": split,
        "image_weight": weight,
        "skipped": skipped,
        **classification_report(y, fused, classes, top_confused),
        "sources": compare(y, image, titles, weight, classes),
        "sanity": sanity_check(y, fused, classes, majority),
    }
    predictions = rows[["key", "path", "name", "label"]].assign(
        predicted=[classes[i] for i in fused.argmax(axis=1)],
        confidence=fused.max(axis=1).round(4),
        loss=cross_entropy(y, fused).round(4),
        image_predicted=[classes[i] for i in image.argmax(axis=1)],
        text_predicted=[classes[i] for i in titles.argmax(axis=1)],
    )
    return report, predictions, photos


def summary_lines(result: TrainResult) -> list[str]:
    """What ``make train`` prints for a fusion run."""
    m = result.metrics
    lines = [
        f"run: {result.run_dir}  (fusion of {m['image_run']} and {m['text_run']}, photo weight {m['image_weight']})"
    ]
    for split in ("validation", "test"):
        for name, s in m.get(split, {}).items():
            lines.append(
                f"{split} {name:>6}: accuracy {s['accuracy']:.3f}  macro-F1 {s['macro_f1']:.3f}  ({s['samples']} rows)"
            )
    lines.append(f"next: make evaluate ARGS='--run {LATEST_FUSION}'")
    return lines
