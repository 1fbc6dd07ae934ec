"""The title's opinion (label/title.py): planted contradictions found out-of-fold, and make label's columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from data.core.config import load_config
from data.core.contracts import ISSUES
from label.options import LabelOptions
from label.stage import find_issues
from label.title import TITLE_ISSUE, add_title_opinions, main, title_opinions
from tests.train.test_text import FILLER, write_catalogue
from train.text import TextOptions

TEXT = TextOptions(hash_bits=14)


def _titles(labels: list[str], classes: list[str], planted: set[int], seed: int = 0) -> list[str]:
    """A title per row made of its class's own words, or another class's for the ``planted`` rows."""
    rng = np.random.default_rng(seed)
    out = []
    for i, label in enumerate(labels):
        said = classes[(classes.index(label) + 1) % len(classes)] if i in planted else label
        stem = said.lower().replace("_", "")
        out.append(" ".join([*rng.choice(FILLER, 2), f"{stem}{rng.integers(3)}", f"{stem}kind", f"sku{i}"]))
    return out


def test_titles_that_name_another_class_are_flagged_out_of_fold(tmp_path):
    classes = ["Fashion", "sports_fitness", "stores"]
    labels = [c for c in classes for _ in range(60)]
    planted = set(range(0, 180, 20))  # 9 rows whose title says the next class
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", _titles(labels, classes, planted), labels)
    opinions = title_opinions(catalogue, TEXT, folds=5, threshold=0.6)
    flagged = set(np.flatnonzero(opinions[TITLE_ISSUE].to_numpy()))
    assert planted <= flagged and len(flagged - planted) <= 3
    assert (opinions.loc[list(planted), "title_label"] != opinions.loc[list(planted), "label"]).all()

    table = pd.DataFrame({"key": opinions["key"][:3], "issues": ["", "label", ""], "issue_type": ["", "label", ""]})
    joined, info = add_title_opinions(table, opinions)
    assert joined.loc[0, "issues"] == TITLE_ISSUE and joined.loc[0, "issue_type"] == TITLE_ISSUE
    assert joined.loc[1, "title"] == opinions.loc[1, "title"] and joined.loc[1, "issues"] == "label"
    assert info == {"titled": 3, TITLE_ISSUE: 1}


def test_the_command_writes_the_catalogue_opinions_before_any_download(tmp_path, capsys):
    classes = ["Fashion", "stores"]
    labels = [c for c in classes for _ in range(30)]
    catalogue = write_catalogue(tmp_path / "processed" / "catalogue.parquet", _titles(labels, classes, {3}), labels)
    code = main(["--set", f"paths.catalogue={catalogue}", "--set", f"paths.labels={tmp_path / 'labels'}"])
    assert code == 0, capsys.readouterr().err
    written = pd.read_parquet(tmp_path / "labels" / "titles" / "title_issues.parquet")
    assert len(written) == 60 and written[TITLE_ISSUE].dtype == bool
    assert json.loads((tmp_path / "labels" / "titles" / "summary.json").read_text())["rows"] == 60


def test_make_label_adds_the_title_columns_and_shows_titles_on_the_review_page(labelled, tmp_path):
    manifest = pd.read_parquet(labelled.manifest)
    stored = manifest[manifest["status"].eq("ok")].reset_index(drop=True)
    classes = sorted(stored["label"].unique())
    labels = stored["label"].tolist()
    planted = {5, 40, 77}
    titles = _titles(labels, classes, planted)
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", titles, labels)
    pd.read_parquet(catalogue).assign(key=stored["key"]).to_parquet(catalogue, index=False)
    options = LabelOptions(cache_dir=str(labelled.root / "cache" / "embeddings"), workers=2, min_side=16)
    out = tmp_path / "labels" / "v-titles"
    config = load_config(overrides=["label_title.threshold=0.6"])
    result = find_issues(
        labelled.run_dir, labelled.manifest, labelled.images, out, options, config=config, catalogue=catalogue
    )
    issues = pd.read_parquet(out / ISSUES.file_name)
    assert {"title", "title_label", "title_prob", TITLE_ISSUE} <= set(issues.columns)
    assert issues["title"].ne("").sum() >= len(stored) - 2  # every image with a catalogue row shows its title
    flagged = set(issues.loc[issues[TITLE_ISSUE], "key"])
    assert {stored.loc[i, "key"] for i in planted} <= flagged
    assert result.summary["titles"][TITLE_ISSUE] == len(flagged)
    page = (out / "review.html").read_text(encoding="utf-8")
    assert titles[5] in page and TITLE_ISSUE in page
