"""Benchmark: ``make label`` on pretrained features with planted label noise, and the label core at scale.

1. **Planted noise** (``bench/bench_label.py``). The grocery store photos' train and validation photos
   (2,936, 43 classes) get 10% or 20% of their labels flipped, uniformly (to any other class) or
   class-conditionally (class c to one fixed other class). For each seed (the noise draw *and* the training
   seed): ``make train``'s frozen phase on the embedding cache (EfficientNet-Lite0, ImageNet weights, 224 px,
   ``fine_tune_epochs=0``), ``make label`` on that run (its pretrained embeddings, the same cache), detection
   scored against the flipped keys for cleanlab's defaults and for ours, then ``make apply-labels`` with the
   automatic policy and the same training on the new version (the first run's split). Test accuracy is on the
   data set's own 2,485 clean test photos, through each run's own head on the cached test embeddings (the
   frozen backbone is the same for every run, so this is exactly the model's prediction). The same training
   on the true labels gives the ceiling.
2. **Scale** (``bench/label_scale.py``): 400,000 synthetic 1280-d float16 embeddings through the label core.

    make bench-label     # or: .venv/bin/python -m bench.bench_label --seeds 0 1 --noise 0.2 --kinds uniform
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.label_stats import report
from data.core.config import REPO_ROOT

DATA = REPO_ROOT.parent / "shared" / "data" / "grocery-store-photos"
WORK = REPO_ROOT / "bench" / "results" / "label"
CACHE = REPO_ROOT / "bench" / "results" / "label-cache"  # kept between runs: the 5,421 photos embed once
POLICY = "0.5+prune"  # relabel at suggested probability >= 0.5, drop the other label issues


def build_manifest(data: Path, folders: tuple[str, ...], per_class: int = 0) -> pd.DataFrame:
    """A download-stage manifest (status ok, paths relative to ``data``) of the photos in ``folders``."""
    rows = []
    for folder in folders:
        for class_dir in sorted((data / folder).iterdir()):
            for path in sorted(class_dir.glob("*.jpg"))[: per_class or None]:
                relative = path.relative_to(data).as_posix()
                rows.append(
                    {
                        "key": hashlib.sha1(relative.encode("utf-8")).hexdigest()[:16],
                        "url": f"file:{relative}",
                        "label": class_dir.name,
                        "status": "ok",
                        "reason": "",
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "path": relative,
                    }
                )
    return pd.DataFrame(rows)


def flip(frame: pd.DataFrame, rate: float, kind: str, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """``frame`` with ``rate`` of its labels flipped (``uniform`` or class-conditional ``class``); the keys flipped."""
    rng = np.random.default_rng(seed)
    classes = np.array(sorted(frame["label"].unique()))
    cycle = classes[rng.permutation(len(classes))]
    partner = dict(zip(cycle, np.roll(cycle, -1)))  # one step along a random cycle: never the class itself
    noisy = frame.copy()
    chosen = []
    for _, rows in frame.groupby("label"):
        take = rng.choice(rows.index.to_numpy(), round(rate * len(rows)), replace=False)
        chosen.extend(take.tolist())
    for i in chosen:
        given = frame.at[i, "label"]
        others = classes[classes != given]
        noisy.at[i, "label"] = partner[given] if kind == "class" else rng.choice(others)
    return noisy, set(frame.loc[chosen, "key"])


def scores(flagged: pd.Series, keys: pd.Series, flipped: set[str]) -> dict[str, float]:
    """Precision, recall and F1 of the flagged images against the flipped ones."""
    hit = keys.isin(flipped).to_numpy()
    flag = flagged.to_numpy(bool)
    tp = int((hit & flag).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(hit.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"flagged": int(flag.sum()), "precision": precision, "recall": recall, "f1": f1}


@dataclasses.dataclass
class TestSet:
    """The clean test photos' cached embeddings and true labels."""

    vectors: np.ndarray
    truth: np.ndarray

    def accuracy(self, run_dir: Path) -> float:
        """Accuracy of the run's head on the test embeddings (a test photo of an unknown class counts wrong)."""
        from train.predict import Predictor

        predictor = Predictor.load(run_dir)
        probs = predictor.model.get_layer("head").predict(self.vectors, verbose=0, batch_size=512)
        return float((np.asarray(predictor.classes)[probs.argmax(axis=1)] == self.truth).mean())


def embed_all(args: argparse.Namespace, options: Any) -> TestSet:
    """Embed every photo once into the cache the frozen phase reads (the key of train/phases.py); the test set."""
    from train.backbones import build_backbone, weights_fingerprint
    from train.embeddings import EmbeddingCache, embed_files

    backbone = build_backbone(options.backbone, options.image_size, options.weights)
    meta = {"backbone": options.backbone, "image_size": options.image_size}
    cache = EmbeddingCache(
        Path(options.cache_dir), {**meta, "weights": weights_fingerprint(backbone), "policy": "float32"}
    )
    files = sorted(args.data.glob("*/*/*.jpg"))
    started = time.perf_counter()
    vectors, stats = embed_files(backbone, files, cache, options.image_size, 32)
    print(json.dumps({"embedding": stats, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    test = [i for i, f in enumerate(files) if f.parent.parent.name == "test"]
    return TestSet(vectors[test], np.array([files[i].parent.name for i in test]))


def train_run(manifest: Path, run_id: str, args: argparse.Namespace, options: Any) -> Path:
    """``make train`` (the frozen phase on the embedding cache) on ``manifest``; the run folder."""
    from train.train import train

    return train(manifest, args.work / "runs", options, images_dir=args.data, run_id=run_id).run_dir


def one_setting(
    name: str, seed: int, clean: pd.DataFrame, test: TestSet, args: argparse.Namespace, options: Any
) -> dict[str, Any]:
    """One noise setting and seed: train, label, apply the automatic policy, train again; the numbers."""
    from label.apply import apply_labels
    from label.options import LabelOptions
    from label.stage import find_issues

    kind, rate = name.split("-")
    noisy, flipped = flip(clean, int(rate.rstrip("pct")) / 100, kind, seed)
    work = args.work / f"{name}-seed{seed}"
    manifest = work / "manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    noisy.to_parquet(manifest, index=False)
    started = time.perf_counter()
    before = train_run(manifest, f"{work.name}-noisy", args, options)
    train_s = time.perf_counter() - started
    label_options = LabelOptions(cache_dir=options.cache_dir, workers=2, review_limit=args.review_limit)
    labelled = find_issues(before, manifest, args.data, args.work / "labels" / work.name, label_options)
    label_s = time.perf_counter() - started - train_s
    table = pd.read_parquet(labelled.out_dir / "issues.parquet")
    threshold, _, prune = POLICY.partition("+")
    drop = label_options.auto_drop + (("label",) if prune else ())
    applied = apply_labels(
        labelled.out_dir, manifest, None, LabelOptions(auto_threshold=float(threshold), auto_drop=drop)
    )
    kept = dataclasses.replace(options, split_file=str(before / "split.csv"))  # only the labels differ
    after = train_run(applied.manifest, f"{work.name}-cleaned", args, kept)
    changes = pd.read_csv(applied.out_dir / "changes.csv")
    truth = clean.set_index("key")["label"]
    fixed, dropped = changes[changes["action"] == "relabel"], changes[changes["action"] == "drop"]
    return {
        "setting": name,
        "seed": seed,
        "images": len(table),
        "flipped": len(flipped),
        "embedding": labelled.summary["embedding"]["source"],
        "cleanlab": scores(table["cleanlab_default"], table["key"], flipped),
        "ours": scores(table["label_issue"], table["key"], flipped),
        "health": labelled.summary["health"]["data_set"],
        "test_before": test.accuracy(before),
        "test_after": test.accuracy(after),
        "policy": POLICY,
        "relabelled": len(fixed),
        "relabelled_right": int((fixed["new_label"].to_numpy() == fixed["key"].map(truth).to_numpy()).sum()),
        "dropped": len(dropped),
        "dropped_flipped": int(dropped["key"].isin(flipped).sum()),
        "train_s": round(train_s, 1),
        "label_s": round(label_s, 1),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_label", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train/, validation/, test/ class folders")
    parser.add_argument("--noise", type=float, nargs="*", default=[0.2, 0.1], help="flip rates (none: skip part 1)")
    parser.add_argument("--kinds", nargs="+", default=["uniform", "class"], choices=["uniform", "class"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="noise draw and training seed")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=30, help="frozen-phase epochs on the cached vectors")
    parser.add_argument("--review-limit", type=int, default=100, help="label.review_limit (the page is not scored)")
    parser.add_argument("--scale-n", type=int, default=400_000, help="synthetic embeddings for part 2 (0: skip)")
    parser.add_argument("--scale-dims", type=int, default=1280)
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder (runs, labels), emptied first")
    parser.add_argument("--cache", type=Path, default=CACHE, help="embedding cache, kept between runs")
    parser.add_argument(
        "--merge", type=Path, nargs="+", metavar="LOG", help="print the table of earlier runs' JSON lines"
    )
    return parser


def merge(logs: list[Path]) -> tuple[list[dict[str, Any]], dict[int, float], dict[str, Any] | None]:
    """The rows, ceilings and scale result printed as JSON lines in ``logs`` (each run's output)."""
    rows, ceiling, big, seen = [], {}, None, set()
    for log in logs:
        for line in log.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line) if line.startswith("{") else {}
            if "setting" in doc and (doc["setting"], doc["seed"]) not in seen:  # runs may overlap in seeds
                seen.add((doc["setting"], doc["seed"]))
                rows.append(doc)
            elif "ceiling_seed" in doc:
                ceiling[doc["ceiling_seed"]] = doc["test"]
            elif "total_s" in doc:
                big = doc
    return rows, ceiling, big


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.merge:
        print(report(*merge(args.merge)))
        return
    from data.core.cli import setup_logging
    from train.options import TrainOptions

    setup_logging(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    shutil.rmtree(args.work, ignore_errors=True)
    options = TrainOptions(
        backbone=args.backbone,
        weights="imagenet",
        recipe="transfer",
        image_size=args.image_size,
        epochs=args.epochs,
        patience=5,
        fine_tune_epochs=0,
        embedding_cache=True,
        cache_dir=str(args.cache),
    )
    rows, ceiling, big = [], {}, None
    if args.noise:
        test = embed_all(args, options)
        clean = build_manifest(args.data, ("train", "validation"))
        (args.work / "clean").mkdir(parents=True, exist_ok=True)
        clean.to_parquet(args.work / "clean" / "manifest.parquet", index=False)
        for seed in args.seeds:
            seeded = dataclasses.replace(options, seed=seed)
            run = train_run(args.work / "clean" / "manifest.parquet", f"clean-seed{seed}", args, seeded)
            ceiling[seed] = test.accuracy(run)
            print(json.dumps({"ceiling_seed": seed, "test": ceiling[seed]}), flush=True)
            for rate in args.noise:
                for kind in args.kinds:
                    rows.append(one_setting(f"{kind}-{round(rate * 100)}pct", seed, clean, test, args, seeded))
                    print(json.dumps(rows[-1]), flush=True)
    if args.scale_n:
        cmd = [sys.executable, "-m", "bench.label_scale", "--n", str(args.scale_n), "--dims", str(args.scale_dims)]
        out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        big = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(big), flush=True)
    print(report(rows, ceiling, big))


if __name__ == "__main__":
    main()
