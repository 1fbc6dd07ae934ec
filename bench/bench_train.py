"""Benchmark: the frozen phase with the embedding cache vs the original recipe, on real product photos.

The original recipe runs the whole frozen backbone over every image in every epoch; ours runs it once
per image, caches the vectors on disk and trains the head on them. Both train the same head on the same
backbone, image size, split and number of epochs (no early stopping, no augmentation, no fine-tuning),
side by side in one process, then score the test split with ``train.evaluate``. A third row re-runs ours
with the cache already filled (a second experiment on the same backbone, e.g. another head).

Offline there are no imagenet weights: the default is ``--weights none`` (random backbone, so accuracy is
near chance for both), or pass a locally saved weights file with ``--weights PATH``.

    make bench-train        # or: .venv/bin/python -m bench.bench_train --backbone resnet50 --epochs 10
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

from data.core.config import REPO_ROOT

SAMPLE = REPO_ROOT.parent / "shared" / "data" / "amazon-products-images-sample"
WORK = REPO_ROOT / "bench" / "results" / "train"


def build_manifest(images: Path, work: Path) -> Path:
    """A download-stage manifest (status ok, paths relative to ``images``) for a folder of class folders."""
    rows = []
    for path in sorted(images.glob("*/*.jpg")):
        relative = path.relative_to(images).as_posix()
        payload = path.read_bytes()
        rows.append(
            {
                "key": hashlib.sha1(relative.encode("utf-8")).hexdigest()[:16],
                "url": f"file:{relative}",
                "label": path.parent.name,
                "status": "ok",
                "reason": "",
                "bytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
                "path": relative,
            }
        )
    manifest = work / "images" / "manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(manifest, index=False)
    return manifest


def run_contender(run_id: str, manifest: Path, images: Path, work: Path, options: Any) -> dict[str, Any]:
    """Train one contender's frozen phase, evaluate it on the test split, return the numbers for the table."""
    from train.evaluate import EvaluateOptions, evaluate
    from train.train import train

    started = time.perf_counter()
    result = train(manifest, work / "runs", options, images_dir=images, run_id=run_id)
    wall = time.perf_counter() - started
    test = evaluate(result.run_dir, images, EvaluateOptions(gallery_size=8))
    frozen = result.metrics["phases"]["frozen"]
    epochs = [r["seconds"] for r in result.metrics["history"] if r["phase"] == "frozen"]
    embedding = float(frozen.get("embedding_seconds", 0.0))
    phase_total = embedding + sum(epochs)
    return {
        "embedding": embedding,
        "median_epoch": statistics.median(epochs),
        "phase_total": phase_total,
        "amortized": phase_total / len(epochs),
        "epochs": len(epochs),
        "wall": wall,
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "hits": frozen.get("cache", {}).get("cache_hits"),
        "test_images": test["samples"],
    }


def table(rows: list[dict[str, Any]], args: argparse.Namespace, images: int) -> str:
    """The markdown table and the ratios."""
    weights = "none (random: offline, no imagenet)" if args.weights == "none" else args.weights
    lines = [
        f"Frozen phase, {args.backbone} @ {args.image_size} px, weights {weights}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {images} photos (80/10/10 split), {os.cpu_count()} CPU cores",
        "",
        "| recipe | one-time embedding (s) | median s / epoch | frozen phase total (s) | s / epoch incl. "
        "embedding | train() wall (s) | test accuracy | test macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['embedding']:.1f} | {r['median_epoch']:.3f} | {r['phase_total']:.1f} | "
            f"{r['amortized']:.2f} | {r['wall']:.1f} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} |"
        )
    base, cold = rows[0], rows[1]
    lines += [
        "",
        f"speed-up, s / epoch including the one-time embedding pass: "
        f"{base['amortized'] / cold['amortized']:.1f}x; steady state (head epoch vs backbone epoch): "
        f"{base['median_epoch'] / cold['median_epoch']:.0f}x; whole frozen phase: "
        f"{base['phase_total'] / cold['phase_total']:.1f}x (cold cache), "
        f"{base['phase_total'] / rows[2]['phase_total']:.1f}x (warm cache)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_train", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=SAMPLE, help="folder of class folders of photos")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="none", help="none (default offline), imagenet, or a weights file")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (runs, cache), emptied first")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (models: ~100 MB each)")
    args = parser.parse_args(argv)
    from data.core.cli import setup_logging
    from train.options import TrainOptions

    setup_logging(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices: one per model built
    shutil.rmtree(args.work, ignore_errors=True)
    manifest = build_manifest(args.images, args.work)
    common = TrainOptions(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        fine_tune_epochs=0,
        patience=args.epochs,
        recipe="transfer",  # the frozen phase even with --weights none (whose default is now from scratch)
        augment="none",
        cache_dir=str(args.work / "cache"),
    )
    rows = []
    for run_id, name, cached in (
        ("original", "original: backbone forward every epoch", False),
        ("cache-cold", "ours: embedding cache (cold)", True),
        ("cache-warm", "ours: embedding cache (warm, 2nd run)", True),
    ):
        options = dataclasses.replace(common, embedding_cache=cached)
        rows.append({**run_contender(run_id, manifest, args.images, args.work, options), "name": name})
    print(table(rows, args, len(pd.read_parquet(manifest))))
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
