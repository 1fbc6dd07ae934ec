"""``make predict`` with titles: ``FILES="titles.csv photos/"``, a title alone, a photo alone, or both.

A CSV input has a ``name`` column (the title) and optionally a ``path`` column (a photo of the same product,
relative to the CSV's folder or absolute). Each row is answered by the model its inputs allow, and the
output says which: ``text:<run>`` for a title alone (``fusion.text_run``, default ``latest-text``),
``image:<run>`` for a photo alone (``--run``, default ``latest``), ``fusion:<run>`` for both (the weight of
``fusion.run``, default ``latest-fusion``; without a fusion run, equal weights, said in the log). Image files
and folders given beside the CSV are answered by the photo model, as without titles. A row that has neither
a usable title nor a readable photo keeps its place in the CSV with the reason in ``skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.config import Config
from data.core.contracts import RUNS
from data.core.errors import InputError
from data.core.io import atomic_write_with
from data.core.runs import RunNotFound, resolve_run
from train.screen import screen_files

log = logging.getLogger(__name__)

DEFAULT_WEIGHT = 0.5  # photo weight when no fusion run says better


def is_title_input(item: str | Path) -> bool:
    """Whether a predict input is a CSV of titles (and not an image, a folder or an @list)."""
    return str(item).lower().endswith(".csv")


def read_titles(path: Path) -> pd.DataFrame:
    """A titles CSV as rows of ``name`` and ``path`` ("" where absent); ``InputError`` when it cannot be used."""
    if not path.is_file():
        raise InputError(f"{path} does not exist (a titles CSV needs a name column)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path} is not a UTF-8 CSV with a header and a name column ({exc})") from exc
    if "name" not in frame:
        raise InputError(f"{path} has no name column (columns: {', '.join(frame.columns) or 'none'})")
    paths = frame["path"] if "path" in frame else pd.Series("", index=frame.index)
    where = [str(Path(p) if Path(p).is_absolute() else path.parent / p) if p.strip() else "" for p in paths]
    return pd.DataFrame({"name": frame["name"].str.strip(), "image": where, "source_file": str(path)})


def _models(cfg: Config, image_ref: str, need_image: bool, need_text: bool, need_both: bool) -> dict[str, Any]:
    """The runs the rows need: the photo predictor, the title model, the fusion weight."""
    from train.fusion import FusionOptions, read_fusion
    from train.text import TextModel

    fusion = FusionOptions.from_config(cfg)
    fusion_ref = fusion.run
    runs = cfg.path(RUNS)
    out: dict[str, Any] = {"weight": DEFAULT_WEIGHT, "fusion": None}
    if need_image:
        from train.predict import Predictor

        out["image"] = Predictor.load(resolve_run(runs, image_ref))
    if need_text:
        out["text"] = TextModel.load(resolve_run(runs, fusion.text_run))
        out["text_run"] = resolve_run(runs, fusion.text_run).name
    if need_both:
        try:
            run = resolve_run(runs, fusion_ref)
            out["weight"], out["fusion"] = float(read_fusion(run)["image_weight"]), run.name
        except (RunNotFound, InputError):
            log.warning(
                "no fusion run (%s): title and photo weigh the same (train one: train.modality=both)", fusion_ref
            )
    return out


def _top(classes: Sequence[str], probs: np.ndarray, k: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for rank, i in enumerate(np.argsort(-probs, kind="stable")[:k], start=1):
        row[f"class_{rank}"], row[f"prob_{rank}"] = classes[i], round(float(probs[i]), 6)
    return row


def classify_rows(rows: pd.DataFrame, models: dict[str, Any], k: int, batch_size: int) -> pd.DataFrame:
    """One output row per input row (``name``, ``image``): top-k, the model that answered, or why skipped."""
    from train.fusion import align, fuse

    image: Any = models.get("image")
    text: Any = models.get("text")
    classes = image.classes if image is not None else text.classes
    has_image = rows["image"].ne("").to_numpy()
    bad = screen_files([Path(p) for p in rows.loc[has_image, "image"]]) if has_image.any() else {}
    bad_rows = {int(np.flatnonzero(has_image)[i]): why for i, why in bad.items()}
    usable = np.array([bool(p) and i not in bad_rows for i, p in enumerate(rows["image"])])
    image_probs = np.zeros((len(rows), len(classes)), np.float32)
    if usable.any():
        image_probs[usable] = image.predict_files([Path(p) for p in rows.loc[usable, "image"]], batch_size)
    titled = rows["name"].ne("").to_numpy()
    text_probs = np.zeros_like(image_probs)
    if titled.any():
        text_probs[titled] = align(text.predict_proba(rows.loc[titled, "name"].tolist()), text.classes, classes)
    out = []
    for i, row in enumerate(rows.itertuples(index=False)):
        base = {"path": row.image or row.source_file, "name": row.name}
        if usable[i] and titled[i]:
            who = f"fusion:{models['fusion'] or 'equal-weights'}"
            probs = fuse(image_probs[i : i + 1], text_probs[i : i + 1], models["weight"])[0]
        elif usable[i]:
            who, probs = f"image:{image.run_dir.name}", image_probs[i]
        elif titled[i]:
            who, probs = f"text:{models['text_run']}", text_probs[i]
        else:
            why = bad_rows.get(i, "no title and no photo")
            out.append({**base, "model": "", "skipped": f"no title; photo: {why}" if i in bad_rows else why})
            continue
        out.append({**_top(classes, probs, k), **base, "model": who, "skipped": ""})
    if all(r["skipped"] for r in out):
        named = "; ".join(f"{r['path']}: {r['skipped']}" for r in out[:3])
        raise InputError(f"none of the {len(out)} rows has a usable title or photo ({named})")
    frame = pd.DataFrame(out)
    ranked = [c for c in frame.columns if c.startswith(("class_", "prob_"))]
    return frame[["path", *ranked, "name", "model", "skipped"]]


def predict_titles(cfg: Config, options: Any, inputs: Sequence[str], out: Path | None) -> int:
    """``make predict`` when a titles CSV is among the inputs; writes the CSV and prints a summary."""
    from train.predict import check_out, collect_images

    csvs = [Path(i) for i in inputs if is_title_input(i)]
    others = [i for i in inputs if not is_title_input(i)]
    rows = pd.concat([read_titles(p) for p in csvs], ignore_index=True)
    if others:
        files = pd.DataFrame({"name": "", "image": [str(p) for p in collect_images(others)], "source_file": ""})
        rows = pd.concat([files, rows], ignore_index=True)
    has_image, titled = rows["image"].ne(""), rows["name"].ne("")
    models = _models(cfg, options.run, bool(has_image.any()), bool(titled.any()), bool((has_image & titled).any()))
    target = check_out(out or csvs[0].with_name(csvs[0].stem + ".predictions.csv"))
    frame = classify_rows(rows, models, options.top_k, options.batch_size)
    atomic_write_with(target, lambda p: frame.to_csv(p, index=False))
    for row in frame.head(10).itertuples(index=False):
        shown = (row.name or row.path)[:60]
        print(
            f"  {shown}: {row.class_1} ({row.prob_1:.2f}) by {row.model}" if not row.skipped else f"  {shown}: skipped"
        )
    counts = frame["model"].str.split(":").str[0].replace("", "skipped").value_counts().to_dict()
    print(f"predict: {len(frame)} rows {counts}; wrote {target}")
    return 0
