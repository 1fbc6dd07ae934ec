"""`make demo` end to end on a small synthetic catalogue: every stage runs and leaves its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import cv2
import numpy as np
import pandas as pd

from data.core.config import REPO_ROOT
from develop.demo import demo_server, write_demo_catalogue


def test_demo_server_serves_decodable_images_and_the_planned_failures(tmp_path):
    with demo_server(port=0) as server:
        rows = write_demo_catalogue(tmp_path, server.base_url, per_class=3)
        frame = pd.read_csv(tmp_path / "Watches.csv")
        with urllib.request.urlopen(frame["image"].iloc[0]) as response:
            image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (160, 160)
        with urllib.request.urlopen(server.base_url + "/html/page.jpg") as response:
            assert response.headers["Content-Type"].startswith("text/html")
    merged = pd.read_csv(tmp_path / "Amazon-Products.csv")
    assert rows == 2 * len(merged) == 2 * (7 * 3 + 5)
    assert merged["name"].str.startswith("[SYNTHETIC DEMO]").all()


def test_demo_runs_every_stage_end_to_end(tmp_path):
    root = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "develop.demo",
            "--root",
            str(root),
            "--per-class",
            "12",
            "--set",
            "train.epochs=3",
            "--set",
            "train.fine_tune_epochs=1",
            "--set",
            "download.workers=1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("SYNTHETIC DEMO DATA") == 2
    processed = root / "processed" / "v1"
    report = json.loads((processed / "extract_report.json").read_text())
    assert report["accounting_ok"] and report["rows_kept"] == 7 * 12 + 3
    manifest = pd.read_parquet(processed / "images" / "manifest.parquet")
    assert len(manifest) == 7 * 12 + 3 and (manifest["status"] == "ok").sum() == 7 * 12
    assert (processed / "kaggle" / "dataset" / "dataset-metadata.json").is_file()
    run = root / "runs" / (root / "runs" / "latest").read_text().strip()
    assert (run / "model.keras").is_file() and (run / "classes.json").is_file()
    evaluation = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert 0.0 <= evaluation["accuracy"] <= 1.0
    # titles: a text run on the photo run's split, then the fusion of the two on the photo run's held-out rows
    text_run = root / "runs" / (root / "runs" / "latest-text").read_text().strip()
    assert (text_run / "text_model.npz").is_file()
    photo_split = pd.read_csv(run / "split.csv", dtype={"key": str}).set_index("key")["split"]
    text_split = pd.read_csv(text_run / "split.csv", dtype={"key": str}).set_index("key")["split"]
    assert (text_split[photo_split.index] == photo_split).all()
    fusion = json.loads(
        (root / "runs" / (root / "runs" / "latest-fusion").read_text().strip() / "metrics.json").read_text()
    )
    assert fusion["image_run"] == run.name and fusion["text_run"] == text_run.name
    assert fusion["validation"]["fusion"]["samples"] == (photo_split == "validation").sum()
    fusion_run = root / "runs" / (root / "runs" / "latest-fusion").read_text().strip()
    evaluation = json.loads((fusion_run / "evaluation" / "metrics.json").read_text())
    assert evaluation["modality"] == "both" and evaluation["samples"] == (photo_split == "test").sum()
