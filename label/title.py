"""The title's opinion of each catalogue row: ``title_disagrees`` when the title model confidently says another class.

    python -m label.title [--set label_title.threshold=0.9]    # catalogue only, before any download

The opinion is out-of-fold: the catalogue's titles are cut into ``label_title.folds`` folds (a normalised title
and its repeats in one fold), a title model (``train/text.py``, the ``[text]`` settings) is trained on the other
folds and scores the fold, so no row is judged by a model that saw its own label. A row disagrees when the
suggested class is not its label and its probability is at least ``label_title.threshold``. ``make label`` adds
the columns ``title``, ``title_label``, ``title_prob`` and ``title_disagrees`` to ``issues.parquet`` (joined on
the key), marks those images ``title_disagrees`` in ``issues`` (kept out of the automatic policy: a person
decides) and shows the title on the review page. Alone, this module writes ``{labels}/titles/title_issues.parquet``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.config import Config
from data.core.options import StageOptions
from data.core.contracts import CATALOGUE, LABELS
from data.core.errors import ConfigError
from data.core.io import staged_dir, write_json, write_parquet
from train.predict import TextModel, TextOptions, fit_temperature, normalise_title, softmax

log = logging.getLogger(__name__)

TITLE_ISSUE = "title_disagrees"
COLUMNS = ("title", "title_label", "title_prob", TITLE_ISSUE)
OUTPUT = "title_issues.parquet"


def title_opinions(catalogue: Path, text: TextOptions, folds: int = 5, threshold: float = 0.9) -> pd.DataFrame:
    """One row per catalogue row with a title: key, label and the :data:`COLUMNS` (out-of-fold opinions).

    Raises:
        ConfigError: fewer than 2 folds, or a threshold outside (0, 1].
        InputError: the catalogue is missing or has no name column.
    """
    if folds < 2 or not 0 < threshold <= 1:
        raise ConfigError("label_title.folds must be at least 2 and label_title.threshold in (0, 1]")
    frame = CATALOGUE.read(catalogue, "make extract", columns=("key", "name", "label"))
    if "name" not in frame:
        return pd.DataFrame(columns=["key", "label", *COLUMNS])
    group = [normalise_title(t, text.max_title_chars) for t in frame["name"]]
    frame = frame.assign(group=group)[[bool(g) for g in group]].reset_index(drop=True)
    classes = tuple(sorted(frame["label"].unique()))
    y = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    fold = np.array([int(hashlib.sha1(g.encode("utf-8")).hexdigest()[:8], 16) % folds for g in frame["group"]])
    scores = np.zeros((len(frame), len(classes)), np.float32)
    for k in range(folds):
        held, seen = fold == k, fold != k
        if not held.any() or len(np.unique(y[seen])) < 2:
            continue
        model = TextModel(classes, text).fit(frame.loc[seen, "name"].tolist(), y[seen])
        scores[held] = model.scores(frame.loc[held, "name"].tolist())
    probs = softmax(scores, fit_temperature(scores, y))  # one temperature, fitted on out-of-fold scores
    best = probs.argmax(axis=1)
    top = probs[np.arange(len(frame)), best]
    suggested = np.asarray(classes, dtype=object)[best]
    return pd.DataFrame(
        {
            "key": frame["key"],
            "label": frame["label"],
            "title": frame["name"],
            "title_label": suggested,
            "title_prob": top.round(4),
            TITLE_ISSUE: (suggested != frame["label"].to_numpy()) & (top >= threshold),
        }
    )


def add_title_opinions(table: pd.DataFrame, opinions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``make label``'s issue table with the title columns joined on the key and ``title_disagrees`` in
    ``issues`` (and ``issue_type`` where it had none); the counts for the summary."""
    joined = table.drop(columns=[c for c in COLUMNS if c in table]).merge(
        opinions[["key", *COLUMNS]].drop_duplicates("key"), on="key", how="left"
    )
    joined.index = table.index
    joined = joined.fillna({"title": "", "title_label": "", TITLE_ISSUE: False}).infer_objects()
    flagged = joined[TITLE_ISSUE].astype(bool)
    joined[TITLE_ISSUE] = flagged
    joined.loc[flagged, "issues"] = [f"{i},{TITLE_ISSUE}" if i else TITLE_ISSUE for i in joined.loc[flagged, "issues"]]
    joined.loc[flagged & joined["issue_type"].eq(""), "issue_type"] = TITLE_ISSUE
    return joined, {"titled": int(joined["title"].ne("").sum()), TITLE_ISSUE: int(flagged.sum())}


@dataclass(frozen=True)
class TitleCheckOptions(StageOptions):
    """The ``[label_title]`` section of data/config.toml."""

    SECTION = "label_title"

    enabled: bool = True
    folds: int = 5
    threshold: float = 0.9


def label_options(cfg: Config) -> tuple[TextOptions, TitleCheckOptions]:
    """The ``[text]`` options (how the title model is built) and ``[label_title]``."""
    return TextOptions.from_config(cfg), TitleCheckOptions.from_config(cfg)


def with_titles(table: pd.DataFrame, catalogue: Path | None, config: Config | None) -> tuple[pd.DataFrame, dict]:
    """``make label``'s hook: the title columns (empty without a catalogue with names, or when disabled)."""
    text, check = label_options(config) if config is not None else (TextOptions(), TitleCheckOptions())
    if not check.enabled or catalogue is None or not catalogue.is_file():
        empty = pd.DataFrame(columns=["key", *COLUMNS])
        table, info = add_title_opinions(table, empty)
        return table, {**info, "note": "no catalogue with titles" if check.enabled else "label_title.enabled = false"}
    keys = set(table["key"])
    opinions = title_opinions(catalogue, text, check.folds, check.threshold)
    log.info(
        "title opinions: %d catalogue rows, %d of the images' keys", len(opinions), opinions["key"].isin(keys).sum()
    )
    return add_title_opinions(table, opinions)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m label.title``): the catalogue's title opinions, before downloading."""
    parser = stage_parser("label.title", __doc__)
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args

        cfg = config_from_args(args)
        started = time.perf_counter()
        text, check = label_options(cfg)
        opinions = title_opinions(CATALOGUE.path(cfg), text, check.folds, check.threshold)
        out_dir = cfg.path(LABELS) / "titles"
        summary = {
            "rows": len(opinions),
            TITLE_ISSUE: int(opinions[TITLE_ISSUE].sum()),
            "by_label": opinions[opinions[TITLE_ISSUE]].groupby("label").size().to_dict(),
            "seconds": round(time.perf_counter() - started, 2),
        }
        with staged_dir(out_dir, cfg) as tmp:
            write_parquet(tmp / OUTPUT, opinions)
            write_json(tmp / "summary.json", summary)
        print(f"label.title: {summary['rows']} titled rows, {summary[TITLE_ISSUE]} whose title says another class")
        print(f"outputs: {out_dir / OUTPUT}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
