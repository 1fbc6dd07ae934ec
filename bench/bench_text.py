"""Benchmark: the title model on real titles, fusion on the demo's generated pairs, speed on the full replica.

    make bench-text            # or: .venv/bin/python -m bench.bench_text [--skip-fusion] [--skip-speed]

1. Text, real titles: ``make extract`` on the shared CSV sample and on the three full category files, one
   catalogue of distinct names, the project's split (train.split 80/10/10, seed 42, a title's repeats in one
   split); test accuracy and macro-F1 of a majority-class baseline, of the issue's quick check (TF-IDF word
   1-2 + character 3-5 n-grams, logistic regression, on the same training split) and of ``make train-text``.
2. Fusion, the demo's generated pairs (no real set pairs titles with photos): the demo's synthetic photos and
   titles, a tiny photo model trained from scratch, the title model; then a share of validation and test rows
   get a wrong photo or a wrong title (another class's); the weight is chosen on the noisy validation split,
   the table is on the noisy test split.
3. Speed: ``make extract`` on the ~551k-row replica of ``make bench-extract``, then ``make train-text`` on every
   row (``text.distinct = false``): titles per second training and predicting, wall time, peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.bench_extract import build_replica
from data.core.config import REPO_ROOT
from train.metrics import confusion_matrix, macro_f1
from train.options import TrainOptions
from train.text import TextOptions
from train.text_run import evaluate_text, load_titles, split_titles, train_text

SHARED = REPO_ROOT.parent / "shared" / "data"
WORK = REPO_ROOT / "bench" / "results" / "text"


def extract(raw: Path, out: Path) -> Path:
    """``make extract`` on ``raw`` into ``out``; the catalogue's path."""
    if not (out / "catalogue.parquet").is_file():
        command = [sys.executable, "-m", "data.extract", "--raw", str(raw), "--out", str(out)]
        subprocess.run(command, check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    return out / "catalogue.parquet"


def real_catalogue() -> Path:
    """The shared sample and the three full files, extracted and concatenated (sample first)."""
    parts = [extract(SHARED / f"amazon-products-csv-{s}", WORK / f"extract-{s}") for s in ("sample", "full")]
    target = WORK / "real" / "catalogue.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).to_parquet(target, index=False)
    return target


def _scores(y: np.ndarray, pred: np.ndarray, k: int) -> tuple[float, float]:
    return float((pred == y).mean()), macro_f1(confusion_matrix(y, pred, k))


def quick_check(catalogue: Path) -> dict[str, tuple[float, float]]:
    """Majority class and the issue's quick check, trained on the project's training split, on its test split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    frame, _ = load_titles(catalogue, TextOptions())
    frame["split"] = split_titles(frame, TrainOptions()).to_numpy()
    classes = sorted(frame["label"].unique())
    frame["y"] = frame["label"].map({c: i for i, c in enumerate(classes)})
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    majority = np.full(len(test), np.bincount(train["y"]).argmax())
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=1000)).fit(train["name"], train["y"])
    y = test["y"].to_numpy()
    return {
        "majority class": _scores(y, majority, len(classes)),
        "quick check (TF-IDF word 1-2 + char 3-5, logistic regression)": _scores(y, model.predict(test["name"]), 7),
    }


def text_table() -> list[str]:
    catalogue = real_catalogue()
    rows = quick_check(catalogue)
    started = time.perf_counter()
    result = train_text(catalogue, WORK / "runs", TrainOptions(), TextOptions())
    report, _ = evaluate_text(result.run_dir, "test")
    seconds = time.perf_counter() - started
    rows["ours: make train-text (hashed TF-IDF word 1-2 + char 3-5, linear SVM, refit on train+val)"] = (
        report["accuracy"],
        report["macro_f1"],
    )
    data = result.metrics["data"]
    lines = [
        (
            f"Text, real titles: {data['rows']:,} distinct names {data['splits']}; test split "
            f"({report['samples']:,} titles); ours trained and scored in {seconds:.1f} s"
        ),
        "",
        "| model | test accuracy | test macro-F1 |",
        "|---|---:|---:|",
        *[f"| {name} | {acc:.3f} | {f1:.3f} |" for name, (acc, f1) in rows.items()],
        "",
        "per-class F1 (ours): " + ", ".join(f"{c} {v['f1']:.2f}" for c, v in report["per_class"].items()),
    ]
    return lines


def speed_table(rows: int) -> list[str]:
    """``make train-text`` on every row of the full-size replica (a separate process: its own peak RSS)."""
    raw = REPO_ROOT / "bench" / "results" / "extract" / f"raw-{rows}"
    build_replica(raw, rows)
    catalogue = extract(raw, WORK / f"extract-replica-{rows}")
    command = [sys.executable, "-m", "bench.bench_text", "--speed-child", str(catalogue)]
    started = time.perf_counter()
    out = subprocess.run(command, check=True, cwd=REPO_ROOT, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    return [f"Speed, full-size replica ({rows:,} category-file rows through make extract); wall {wall:.0f} s:", "", out]


def speed_child(catalogue: Path) -> None:
    started = time.perf_counter()
    result = train_text(catalogue, WORK / "runs-replica", TrainOptions(), TextOptions(distinct=False, refit=False))
    s, data = result.metrics["speed"], result.metrics["data"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| rows (all titles) | train titles | train s | train titles/s | predict titles/s | wall s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {data['rows']:,} | {s['train_titles']:,} | {s['train_s']:.1f} | {s['train_titles_per_s']:,.0f} | "
        f"{s['predict_titles_per_s']:,.0f} | {time.perf_counter() - started:.0f} | {rss:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-fusion", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--rows", type=int, default=551_000, help="replica rows for the speed table")
    parser.add_argument("--speed-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.speed_child:
        speed_child(args.speed_child)
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.skip_text:
        print("\n".join(text_table()), flush=True)
    if not args.skip_fusion:
        from bench.bench_fusion import fusion_table

        print("\n" + "\n".join(fusion_table(WORK / "fusion")), flush=True)
    if not args.skip_speed:
        print("\n" + "\n".join(speed_table(args.rows)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
