"""``make label`` and ``make apply-labels`` end to end on a tiny model really trained on synthetic photos:
the version folder, the placeholder under three classes, planted flips, the embedding cache, the command
lines, the apply round trip into a new training run, and refused inputs that leave everything as it was."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from data.core.errors import ConfigError, InputError
from label.apply import apply_labels
from label.options import LabelOptions
from label.stage import find_issues
from tests.label.conftest import PLACEHOLDER_CLASSES

pytestmark = pytest.mark.slow


def _snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_label_writes_one_row_per_stored_image_and_finds_the_planted_issues(labelled):
    out = labelled.version_dir
    for name in ("issues.parquet", "summary.json", "review.html"):
        assert (out / name).is_file(), name
    assert (out.parent / "latest").read_text().strip() == "v1"
    table = pd.read_parquet(out / "issues.parquet").set_index("key")
    manifest = pd.read_parquet(labelled.manifest)
    stored = manifest.loc[manifest["status"] == "ok", "key"]
    assert sorted(table.index) == sorted(set(stored) - {"gonefile"})  # download failures: no row
    left_out = pd.read_csv(out / "left_out.csv")
    assert left_out[["key", "reason"]].values.tolist() == [["gonefile", "missing_file"]]

    placeholders = table.loc[list(labelled.placeholders)]
    assert placeholders["cluster"].nunique() == 1 and (placeholders["cluster"] >= 0).all()
    assert placeholders["cross_class"].all() and (placeholders["cluster_kind"] == "exact").all()
    assert (placeholders["issue_type"] == "cross_class_duplicate").all() and (placeholders["action"] == "drop").all()
    assert set(placeholders["cluster_labels"].iloc[0].split("|")) == set(PLACEHOLDER_CLASSES)
    assert (
        table.at[labelled.unreadable, "issue_type"] == "unreadable"
        and table.at[labelled.unreadable, "action"] == "drop"
    )
    assert "dark" in table.at[labelled.dark, "issues"].split(",")

    # planted flips, by a tiny model trained for seconds (the unit tests measure the method itself): ranked
    # worst by quality score, mostly flagged, with the true label suggested
    flips = table.loc[list(labelled.flipped)]
    shown = flips[["label", "suggested_label", "quality_score", "label_issue"]]
    worst = set(table["quality_score"].nsmallest(2 * len(flips)).index)
    assert len(worst & set(flips.index)) >= len(flips) - 2, shown
    assert flips["label_issue"].sum() >= len(flips) // 3, shown
    assert (flips["suggested_label"] == flips.index.map(labelled.flipped)).sum() >= len(flips) - 2, shown

    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(table) and summary["counts"]["cross_class_duplicate"] == 3
    assert summary["counts"]["label"] == int(table["label_issue"].sum())
    assert len(summary["noise_matrix"]["matrix"]) == len(summary["classes"]) == 8  # 7 and the one-image class
    assert summary["duplicates"]["cross_class_clusters"] >= 1 and summary["review"]["rows"] == summary["flagged"]
    # a thumbnail for every flagged image but the broken file, and for their look-alikes
    assert len(list((out / "thumbs").glob("*.jpg"))) >= summary["review"]["rows"] - 1


def test_outliers_grayscale_copies_and_starved_classes_are_flagged_and_health_adds_up(labelled):
    table = pd.read_parquet(labelled.version_dir / "issues.parquet").set_index("key")
    summary = json.loads((labelled.version_dir / "summary.json").read_text())
    shown = table[["label", "outlier_score", "colourfulness", "class_share", "issues"]]
    assert table.at[labelled.grey, "grayscale"] and "grayscale" in table.at[labelled.grey, "issues"], shown
    colourful = table.drop(index=[labelled.grey, *labelled.placeholders, labelled.dark, labelled.unreadable])
    assert not colourful["grayscale"].any(), colourful[colourful["grayscale"]]
    assert table.at[labelled.off_topic, "outlier"], shown.sort_values("outlier_score").head(8)
    # a tiny model trained for seconds spreads some classes wide: the noise picture is among the three least
    # typical images, and the flags stay few
    assert labelled.off_topic in table["outlier_score"].nsmallest(3).index, shown.sort_values("outlier_score").head(8)
    assert table["outlier"].sum() <= 0.08 * len(table), shown[table["outlier"]]
    rare_key, rare_label = labelled.rare
    assert table["class_imbalance"].sum() == 1 and table.at[rare_key, "class_imbalance"], shown
    assert summary["health"]["imbalanced_classes"] == [rare_label]
    for kind in ("outlier", "grayscale", "class_imbalance", "odd_aspect"):
        assert summary["counts"][kind] == int(table[kind].sum()), kind

    health = summary["health"]
    classes = health["by_class"]
    assert sum(c["images"] for c in classes.values()) == health["images"] == len(table)
    assert sum(c["label_issues"] for c in classes.values()) == health["label_issues"] == int(table["label_issue"].sum())
    weighted = sum(c["images"] * c["health"] for c in classes.values()) / health["images"]
    assert abs(weighted - health["data_set"]) < 1e-3 and 0.0 <= health["data_set"] <= 1.0
    assert health["data_set"] == round(1 - table["label_issue"].mean(), 4)
    assert summary["embedding"]["source"] == "model"  # a from-scratch run: its own penultimate layer


def test_a_second_run_reads_every_embedding_from_the_cache(labelled):
    options = LabelOptions(cache_dir=str(labelled.root / "cache" / "embeddings"), workers=2, min_side=16)
    second = find_issues(
        labelled.run_dir, labelled.manifest, labelled.images, labelled.version_dir.parent / "v2", options
    )
    embedding = second.summary["embedding"]
    assert embedding["computed"] == 0 and embedding["cache_hits"] == embedding["images"] == second.summary["images"] - 1
    first = pd.read_parquet(labelled.version_dir / "issues.parquet")
    again = pd.read_parquet(second.out_dir / "issues.parquet")
    pd.testing.assert_series_equal(first["label_issue"], again["label_issue"])
    assert (second.out_dir.parent / "latest").read_text().strip() == "v2"


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_the_command_lines_label_and_apply_the_automatic_policy(labelled):
    common = ["--set", f"paths.root={labelled.root}", "--set", "label.workers=2", "--set", "label.min_side=16"]
    proc = _run("label", *common, "--version", "cli")
    assert proc.returncode == 0, proc.stderr
    rows = len(pd.read_parquet(labelled.version_dir / "issues.parquet"))
    assert f"label: {rows} images" in proc.stdout and "review.html" in proc.stdout
    version = labelled.root / "processed" / "v1" / "labels" / "cli"
    assert json.loads((version / "config.resolved.json").read_text())["overrides"][1] == "label.workers=2"

    # the one-image class cannot be trained on: dropped with the junk (class_imbalance in auto_drop)
    drop = "label.auto_drop=[unreadable,cross_class_duplicate,low_information,class_imbalance]"
    proc = _run("label.apply", *common, "--set", "label.auto_threshold=0.5", "--set", drop)
    assert proc.returncode == 0, proc.stderr
    new = pd.read_parquet(version / "applied" / "manifest.parquet")
    assert (new["label_version"] == "cli").all()
    assert new.set_index("key").loc[[*labelled.placeholders, labelled.rare[0]], "status"].eq("dropped").all()
    assert f"make train SET=train.label_version={version.name}" in proc.stdout

    # make train SET=train.label_version=<it>: the dropped images are not trained on
    tiny = ["--set", "train.backbone=tiny", "--set", "train.weights=none", "--set", "train.image_size=32"]
    tiny += ["--set", "train.epochs=1", "--set", "train.batch_size=16", "--run-id", "on-cli"]
    proc = _run("train.train", *common, *tiny, "--set", "train.label_version=cli")
    assert proc.returncode == 0 and f"training on the data version {version / 'applied'}" in proc.stdout, proc.stderr
    split = pd.read_csv(labelled.root / "runs" / "on-cli" / "split.csv", dtype=str)
    stored = new[new["status"].eq("ok") & new["path"].map(lambda p: (labelled.images / str(p)).is_file())]
    assert set(split["key"]) == set(stored["key"]) and not set(split["key"]) & set(labelled.placeholders)

    for args, words in (
        (["label", *common, "--set", "label.no_such_kee=1"], ("no_such_kee", "unknown")),
        (["label", *common, "--run", "nope"], ("nope",)),
        (["label.apply", *common], ("nothing to apply",)),
        (["label.apply", *common, "--version", "missing"], ("missing", "make label")),
        (["train.train", *common, "--set", "train.label_version=missing"], ("missing", "make label")),
    ):
        proc = _run(*args)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
        assert all(word in errors[0] for word in words), errors


def test_apply_round_trip_writes_a_new_version_that_trains(labelled, tmp_path):
    from train.options import TrainOptions
    from train.train import train

    before = _digest(labelled.manifest)
    flipped = list(labelled.flipped)[:2]
    decisions = {k: {"action": "relabel", "label": labelled.flipped[k]} for k in flipped}
    decisions[labelled.placeholders[0]] = {"action": "drop"}
    decisions[labelled.dark] = {"action": "keep"}
    decisions[labelled.rare[0]] = {"action": "drop"}  # a one-image class cannot be split for training
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps({"label_version": "v1", "decisions": decisions}))
    result = apply_labels(labelled.version_dir, labelled.manifest, path, LabelOptions())
    assert _digest(labelled.manifest) == before  # the old manifest is never modified

    new = pd.read_parquet(result.manifest).set_index("key")
    old = pd.read_parquet(labelled.manifest).set_index("key")
    assert list(new.index) == list(old.index) and (new["label_version"] == "v1").all()
    assert [new.at[k, "label"] for k in flipped] == [labelled.flipped[k] for k in flipped]
    assert new.at[labelled.placeholders[0], "status"] == "dropped"
    assert new.at[labelled.dark, "label"] == old.at[labelled.dark, "label"]
    changes = pd.read_csv(result.out_dir / "changes.csv").set_index("key")
    assert sorted(changes.index) == sorted([*flipped, labelled.placeholders[0], labelled.rare[0]])
    assert changes.at[flipped[0], "old_label"] == old.at[flipped[0], "label"]
    assert changes.at[flipped[0], "new_label"] == labelled.flipped[flipped[0]]
    assert changes.at[labelled.placeholders[0], "action"] == "drop" and result.counts["relabel"] == 2

    # make label refuses to replace a version that holds a data version, and changes nothing
    snapshot = _snapshot(labelled.version_dir)
    with pytest.raises(InputError, match="already holds a data version"):
        find_issues(labelled.run_dir, labelled.manifest, labelled.images, labelled.version_dir, LabelOptions())
    assert _snapshot(labelled.version_dir) == snapshot

    # make train on the new version: relabelled images train under their new label, dropped ones not at all
    options = TrainOptions(backbone="tiny", weights="none", recipe="scratch", image_size=32, batch_size=16, epochs=1)
    run = train(result.manifest, tmp_path / "runs", options, images_dir=labelled.images)
    split = pd.read_csv(run.run_dir / "split.csv", dtype=str).set_index("key")
    assert labelled.placeholders[0] in old.index and labelled.placeholders[0] not in split.index
    assert [split.at[k, "label"] for k in flipped] == [labelled.flipped[k] for k in flipped]


def test_a_bad_decisions_file_is_rejected_and_nothing_is_written(labelled, tmp_path):
    path = tmp_path / "decisions.json"
    path.write_text(
        json.dumps(
            {"decisions": {"no-such-key": {"action": "drop"}, labelled.dark: {"action": "relabel", "label": "Toys"}}}
        )
    )
    snapshot = _snapshot(labelled.version_dir)
    with pytest.raises(InputError) as err:
        apply_labels(labelled.version_dir, labelled.manifest, path, LabelOptions())
    assert "'no-such-key'" in str(err.value) and "'Toys'" in str(err.value) and "nothing written" in str(err.value)
    assert _snapshot(labelled.version_dir) == snapshot
    with pytest.raises(ConfigError, match="auto_threshold"):
        apply_labels(labelled.version_dir, labelled.manifest, None, LabelOptions())
    assert _snapshot(labelled.version_dir) == snapshot
