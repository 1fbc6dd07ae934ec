"""Benchmark: the pretrained EfficientNet-Lite0 transfer path on real photos, against training from scratch.

Grocery photos (43 classes, the data set's own train/validation/test split), one contender after the
other, each in its own process (its own CPU seconds and peak memory), all scored on the test split:

0. ``embed``: the frozen backbone's 1280-d vectors of every image, computed once into an embedding cache
   keyed exactly as ``make train``'s frozen phase keys it (so (2) and (3) find them there; timed apart);
1. ``logreg``: scikit-learn's logistic regression (C = 1) on the cached training vectors (the floor);
2. ``frozen``: ``make train`` with ``train.fine_tune_epochs=0`` (the head on the cached vectors);
3. ``transfer``: ``make train`` frozen phase, then fine-tuning of the backbone's top, within
   ``--budget-s`` seconds of training *including* the embedding pass of step 0;
4. ``ours``: ``make train`` from scratch (small_resnet), 5. ``keras_io``: the keras-io from-scratch recipe
   (both from bench/bench_scratch.py), each given the wall time of (3) including the embedding pass.

    .venv/bin/python -m bench.bench_transfer                                # the README's table
    .venv/bin/python -m bench.bench_transfer --contenders logreg,frozen     # the quick part only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_scratch import GROCERY, _cpu_seconds, run_measured, train_and_score
from data.core.config import REPO_ROOT

WORK = REPO_ROOT / "bench" / "results" / "transfer"
CONTENDERS = ("logreg", "frozen", "transfer", "ours", "keras_io")
TITLES = {
    "logreg": "(1) logistic regression on the cached EfficientNet-Lite0 vectors (floor)",
    "frozen": "(2) make train, frozen phase only (head on cached vectors)",
    "transfer": "(3) make train, frozen + fine-tuning (the default recipe)",
    "ours": "(4) make train from scratch (small_resnet), same wall time as (3)",
    "keras_io": "(5) keras-io from-scratch recipe, same wall time as (3)",
}


def _files(images: Path, split: str, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    files = sorted(images.glob(f"{split}/*/*.jpg"))
    return files, np.asarray([classes.index(f.parent.name) for f in files])


def _cache(args: argparse.Namespace) -> tuple[Any, Any]:
    """The frozen phase's backbone and its embedding cache (the same key ``train/phases.py`` uses)."""
    from train.backbones import build_backbone, weights_fingerprint
    from train.embeddings import EmbeddingCache

    backbone = build_backbone("efficientnet_lite0", args.image_size, "imagenet")
    meta = {"backbone": "efficientnet_lite0", "image_size": args.image_size}
    meta.update({"weights": weights_fingerprint(backbone), "policy": "float32"})
    return backbone, EmbeddingCache(args.work / "cache", meta)


def embed(args: argparse.Namespace) -> dict[str, Any]:
    """Step 0: every image's vector into the cache."""
    from train.embeddings import embed_files

    started, cpu = time.perf_counter(), _cpu_seconds()
    backbone, cache = _cache(args)
    files = sorted(args.images.glob("*/*/*.jpg"))
    _, stats = embed_files(backbone, files, cache, args.image_size, 32)
    return {"train_seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu, **stats}


def logreg(args: argparse.Namespace) -> dict[str, Any]:
    """(1): logistic regression on the cached vectors of the training split, scored on the test split."""
    from sklearn.linear_model import LogisticRegression

    from train.embeddings import embed_files
    from train.metrics import classification_report

    started, cpu = time.perf_counter(), _cpu_seconds()
    backbone, cache = _cache(args)
    classes = sorted(p.name for p in (args.images / "train").iterdir() if p.is_dir())
    train_files, y_train = _files(args.images, "train", classes)
    x_train, stats = embed_files(backbone, train_files, cache, args.image_size, 32)
    model = LogisticRegression(C=1.0, max_iter=3000).fit(x_train, y_train)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu
    test_files, y_test = _files(args.images, "test", classes)
    x_test, _ = embed_files(backbone, test_files, cache, args.image_size, 32)
    report = classification_report(y_test, model.predict_proba(x_test), classes)
    return {"epochs": 0, "train_seconds": seconds, "cpu_seconds": cpu_seconds, "test": report, "cache": stats}


def make_train(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """(2) and (3): ``make train`` on the pretrained backbone, reading step 0's cache."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    sets = [
        f"paths.root={args.work / name}",
        f"train.images={args.images}",
        "train.backbone=efficientnet_lite0",
        "train.weights=imagenet",
        f"train.image_size={args.image_size}",
        f"train.cache_dir='{args.work / 'cache'}'",
        f"train.epochs={args.epochs}",
    ]
    if name == "frozen":
        sets.append("train.fine_tune_epochs=0")
    else:
        sets += [f"train.fine_tune_epochs={args.fine_tune_epochs}", f"train.fine_tune_layers={args.fine_tune_layers}"]
        sets += [f"train.fine_tune_learning_rate={args.fine_tune_learning_rate}"]
        sets.append(f"train.time_budget_s={max(60.0, args.budget_s - args.embed_seconds)}")
    return train_and_score(sets, args.work / name, args.images, started, cpu)


def child(args: argparse.Namespace) -> None:
    """One contender in this process; writes its numbers to ``args.out``."""
    from data.core.cli import setup_logging

    setup_logging()
    if args.child == "embed":
        result = embed(args)
    else:
        result = logreg(args) if args.child == "logreg" else make_train(args, args.child)
        report = result.pop("test")
        result.update({"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]})
        result["test_images"] = report["samples"]
    args.out.write_text(json.dumps(result, default=float, indent=2))


def _command(args: argparse.Namespace, name: str, out: Path) -> list[str]:
    if name in ("ours", "keras_io"):  # bench_scratch's contenders, given (3)'s wall time
        command = [sys.executable, "-m", "bench.bench_scratch", "--child", name, "--out", str(out)]
        command += ["--images", str(args.images), "--work", str(args.work), "--budget-s", str(args.scratch_budget_s)]
        return command + ["--image-size", str(args.scratch_image_size)]
    command = [sys.executable, "-m", "bench.bench_transfer", "--child", name, "--out", str(out)]
    command += ["--images", str(args.images), "--work", str(args.work), "--image-size", str(args.image_size)]
    command += ["--epochs", str(args.epochs), "--fine-tune-epochs", str(args.fine_tune_epochs)]
    command += ["--fine-tune-layers", str(args.fine_tune_layers), "--budget-s", str(args.budget_s)]
    command += ["--fine-tune-learning-rate", str(args.fine_tune_learning_rate)]
    return command + ["--embed-seconds", str(args.embed_seconds)]


def table(rows: list[dict[str, Any]], embedded: dict[str, Any], args: argparse.Namespace) -> str:
    """The markdown table and the notes under it."""
    lines = [
        f"grocery-store-photos, 43 classes (own split: 2,640 train / 296 validation / 2,485 test), "
        f"{args.image_size} px (scratch: {args.scratch_image_size} px), {os.cpu_count()} CPU cores (shared); "
        f"step 0, embedding all {embedded['images']} images once: {embedded['train_seconds']:.0f} s wall, "
        f"{embedded['cpu_seconds']:.0f} s CPU, peak RSS {embedded['peak_rss_mb']} MB",
        "",
        "| contender | epochs | train wall (s) | wall incl. step 0 (s) | train CPU (s) | peak RSS (MB) "
        "| test accuracy | test macro-F1 | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        step0 = embedded["train_seconds"] if r["name"] in ("logreg", "frozen", "transfer") else 0.0
        lines.append(
            f"| {TITLES[r['name']]} | {r['epochs']} | {r['train_seconds']:.0f} | {r['train_seconds'] + step0:.0f} | "
            f"{r['cpu_seconds']:.0f} | {r['peak_rss_mb']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['load']:.1f} |"
        )
    for r in rows:
        if r.get("phases"):
            lines.append(f"\n{r['name']}: phases {json.dumps(r['phases'])}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_transfer", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=GROCERY, help="<split>/<label>/<file> photos")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=30, help="frozen phase (early stopping on validation loss)")
    parser.add_argument("--fine-tune-epochs", type=int, default=8)
    parser.add_argument("--fine-tune-layers", type=int, default=20)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--budget-s", type=float, default=1200.0, help="(3)'s training budget incl. step 0")
    parser.add_argument("--scratch-image-size", type=int, default=128, help="(4), (5): their best size here")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, in order")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (runs, cache), emptied first")
    parser.add_argument("--child", choices=("embed", *CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--embed-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        child(args)
        return 0
    if not args.images.is_dir():
        print(f"error: no photos at {args.images} (../shared/data/grocery-store-photos)", file=sys.stderr)
        return 2
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    embedded = run_measured(_command(args, "embed", args.work / "embed.json"), args.work / "embed.json", "embed")
    args.embed_seconds = embedded["train_seconds"]
    args.scratch_budget_s = args.budget_s
    rows = []
    for name in args.contenders.split(","):
        rows.append(run_measured(_command(args, name, args.work / f"{name}.json"), args.work / f"{name}.json", name))
        if name == "transfer":  # (4) and (5) get (3)'s wall time, its embedding pass included
            args.scratch_budget_s = round(rows[-1]["train_seconds"] + args.embed_seconds)
        print(table(rows, embedded, args), flush=True)
    (args.work.parent / "transfer.json").write_text(json.dumps({"embed": embedded, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
