"""``make visualise`` on two tiny real training runs of the demo data: every number of report.json checked
against the run folder, label issues marked when ``make label``'s file is there, the projector export
readable by TensorBoard's own reader."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from data.core.errors import InputError
from visualise.inputs import RunInputs
from visualise.options import VisualiseOptions
from visualise.report import visualise_run

pytestmark = pytest.mark.slow  # trains two tiny models (once per session)


@pytest.fixture(scope="module")
def issues(demo_runs):
    """A ``make label`` output in its contract's shape (key, issue_type), written as that stage writes it."""
    split = pd.read_csv(demo_runs.run_dir / "split.csv")
    predictions = pd.read_csv(demo_runs.run_dir / "evaluation" / "predictions.csv")
    worst = predictions.sort_values("loss", ascending=False)["key"].iloc[0]
    others = split.loc[split["key"] != worst, "key"].iloc[:3].tolist()  # never the worst image itself
    frame = pd.DataFrame(
        {"key": [worst, *others, others[0]], "issue_type": ["label", "label", "duplicate", "junk", "duplicate"]}
    )
    folder = demo_runs.root / "labels" / "v2"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "issues.parquet", index=False)
    (folder.parent / "latest").write_text("v2\n", encoding="utf-8")  # as make label points at its newest version
    yield frame, worst
    (folder / "issues.parquet").unlink()
    (folder.parent / "latest").unlink()


@pytest.fixture(scope="module")
def report_built(demo_runs, issues, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / demo_runs.run_dir.name
    options = VisualiseOptions(map_per_class=10, top_losses=8)
    doc = visualise_run(RunInputs.from_config(demo_runs.config(), "latest"), out, options, config=demo_runs.config())
    return out, doc, options


def test_curves_scores_and_calibration_match_the_run_folder(demo_runs, report_built):
    out, doc, options = report_built
    metrics = json.loads((demo_runs.run_dir / "metrics.json").read_text())
    evaluation = json.loads((demo_runs.run_dir / "evaluation" / "metrics.json").read_text())
    predictions = pd.read_csv(demo_runs.run_dir / "evaluation" / "predictions.csv")
    assert doc["run"]["run_id"] == demo_runs.run_dir.name == out.name
    assert [(r["phase"], r["epoch"]) for r in doc["history"]] == [(r["phase"], r["epoch"]) for r in metrics["history"]]
    assert [r["loss"] for r in doc["history"]] == [round(r["loss"], 4) for r in metrics["history"]]
    e = doc["evaluation"]
    for key in ("accuracy", "macro_f1", "top3_accuracy", "confusion_matrix", "per_class", "most_confused"):
        assert e[key] == evaluation[key], key
    assert np.asarray(e["confusion_matrix"]).sum() == len(predictions) == doc["calibration"]["images"]

    c = doc["calibration"]
    assert sum(b["count"] for b in c["bins"]) == len(predictions) and len(c["bins"]) == options.calibration_bins
    correct = predictions["predicted"] == predictions["label"]
    assert c["accuracy"] == round(correct.mean(), 4) == round(evaluation["accuracy"], 4)
    edges = np.linspace(0, 1, options.calibration_bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (predictions["confidence"] >= low) & (
            (predictions["confidence"] < high) if high < 1 else (predictions["confidence"] <= high)
        )
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - predictions.loc[inside, "confidence"].mean())
    assert c["ece"] == pytest.approx(ece, abs=1e-4)


def test_highest_losses_and_label_issues(demo_runs, report_built, issues):
    _, doc, options = report_built
    frame, worst = issues
    predictions = pd.read_csv(demo_runs.run_dir / "evaluation" / "predictions.csv")
    expected = predictions.sort_values(["loss", "key"], ascending=[False, True]).head(options.top_losses)
    assert [r["key"] for r in doc["top_losses"]] == expected["key"].tolist()
    for row, (_, want) in zip(doc["top_losses"], expected.iterrows()):
        assert row["label"] == want["label"] and row["predicted"] == want["predicted"]
        assert row["p_label"] == pytest.approx(math.exp(-want["loss"]), abs=1e-3)
    assert doc["top_losses"][0]["key"] == worst and doc["top_losses"][0]["issue"] == "label"
    li = doc["label_issues"]
    assert li["source"].endswith("v2/issues.parquet") and li["rows"] == len(frame.drop_duplicates())
    assert li["by_type"] == frame.drop_duplicates()["issue_type"].value_counts().sort_index().to_dict()
    assert sum(r["count"] for r in li["by_type_and_class"]) == len(frame.drop_duplicates())


def test_embedding_map_and_projector_export(demo_runs, report_built, issues):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
    from tensorboard.plugins.projector.projector_plugin import _read_tensor_tsv_file

    out, doc, options = report_built
    split = pd.read_csv(demo_runs.run_dir / "split.csv")
    m = doc["embedding"]
    counts = split["label"].value_counts()
    assert m["sample_per_class"] == {k: min(options.map_per_class, int(v)) for k, v in counts.sort_index().items()}
    assert m["points"] == sum(m["sample_per_class"].values()) == len(m["points_xy"]["pca"])
    sampled = {k for k, _, _ in m["points_xy"]["pca"]}
    assert sampled <= set(split["key"])
    assert m["flagged"] == len(sampled & set(issues[0]["key"]))
    assert 0 < sum(m["pca_variance_share"]) <= 1.0001

    folder = out / doc["projector"]["folder"]
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), ProjectorConfig())
    embedding = config.embeddings[0]
    tensor = _read_tensor_tsv_file(str(folder / embedding.tensor_path))  # TensorBoard's own reader
    assert tensor.shape == (m["points"], doc["projector"]["dimensions"]) == tuple(embedding.tensor_shape)
    metadata = pd.read_csv(folder / embedding.metadata_path, sep="\t", dtype=str, keep_default_na=False)
    assert list(metadata.columns) == ["key", "label", "split", "issue", "path"] and len(metadata) == m["points"]
    assert set(metadata["key"]) == sampled
    import cv2

    sprite = cv2.imread(str(folder / embedding.sprite.image_path))
    side = embedding.sprite.single_image_dim[0]
    assert sprite.shape[0] == sprite.shape[1] == side * math.ceil(math.sqrt(m["points"]))


def test_runs_are_compared(demo_runs, report_built):
    _, doc, _ = report_built
    rows = {r["run_id"]: r for r in doc["comparison"]}
    assert set(rows) == {demo_runs.run_dir.name, demo_runs.other_run.name}
    first = rows[demo_runs.run_dir.name]
    evaluation = json.loads((demo_runs.run_dir / "evaluation" / "metrics.json").read_text())
    assert first["scored_on"] == "test" and first["accuracy"] == evaluation["accuracy"]
    other = rows[demo_runs.other_run.name]
    validation = json.loads((demo_runs.other_run / "metrics.json").read_text())["validation"]
    assert other["scored_on"] == "validation" and other["macro_f1"] == validation["macro_f1"]
    assert "deep head" in other["recipe"] and first["backbone"] == other["backbone"] == "tiny"


def test_byte_identical_and_no_overlay_without_label_issues(demo_runs, report_built, tmp_path):
    out, doc, options = report_built
    again = tmp_path / "again"
    visualise_run(RunInputs.from_config(demo_runs.config(), demo_runs.run_dir.name), again, options)
    for name in (
        "report.html",
        "report.json",
        "projector/tensors.tsv",
        "projector/metadata.tsv",
        "projector/sprite.png",
    ):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert doc["budget"]["html_bytes"] == (out / "report.html").stat().st_size < 25_000_000
    bare = visualise_run(
        RunInputs.from_config(demo_runs.config(f"paths.labels={tmp_path / 'no-labels'}"), "latest"),
        tmp_path / "bare",
        options,
    )
    assert bare["label_issues"] == {"source": None} and bare["embedding"]["flagged"] == 0
    assert all(r["issue"] == "" for r in bare["top_losses"])


def test_a_run_without_evaluation_is_refused_with_the_command_to_run(demo_runs, tmp_path):
    inputs = RunInputs.from_config(demo_runs.config(), demo_runs.other_run.name)
    with pytest.raises(InputError, match="make evaluate"):
        visualise_run(inputs, tmp_path / "out", VisualiseOptions())
    assert not (tmp_path / "out").exists()


def test_command_line(demo_runs, tmp_path):
    base = [sys.executable, "-m", "visualise.report", "--set", f"paths.root={demo_runs.root}"]
    base += ["--set", f"paths.processed={demo_runs.processed}", "--set", f"paths.reports={tmp_path}"]
    base += ["--set", "visualise.map_per_class=5"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(base, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"run {demo_runs.run_dir.name}" in done.stdout and "projector:" in done.stdout
    assert (tmp_path / demo_runs.run_dir.name / "report.html").is_file()
    missing = subprocess.run(
        [*base, "--run", "nope"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: no run folder 'nope'")
