"""Benchmark: ``make extract`` vs the original project's pandas recipe on a full-size replica.

The replica has the real dataset's shape: 139 category CSVs totalling ~551k rows plus
``Amazon-Products.csv``, their merge, built by resampling the shared real sample (prices, quoting,
missing values, index columns and duplicate URLs as in the real files). Both contenders run as separate
processes from the same interpreter, alternately, and the table shows the median of the repeats.

    make bench-extract                      # or: .venv/bin/python -m bench.bench_extract --rows 551000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data.core.config import REPO_ROOT
from data.extract.csv_reader import COLUMNS as KAGGLE_COLUMNS

SAMPLE = REPO_ROOT.parent / "shared" / "data" / "amazon-products-csv-sample"
WORK = REPO_ROOT / "bench" / "results" / "extract"


def build_replica(raw: Path, rows: int, files: int = 139, seed: int = 0) -> None:
    """Write ``files`` category CSVs with ``rows`` rows in all, plus their merge, from the shared sample."""
    if raw.is_dir() and len(list(raw.glob("*.csv"))) == files + 1:
        return
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    sample = pd.concat(
        [pd.read_csv(p) for p in sorted(SAMPLE.glob("*.csv")) if p.name != "Amazon-Products.csv"], ignore_index=True
    )[list(KAGGLE_COLUMNS)]
    rng = np.random.default_rng(seed)
    picked = sample.iloc[rng.integers(0, len(sample), rows)].reset_index(drop=True)
    # ~5% of rows repeat an earlier URL, as in the real data; the rest get a fresh image id.
    fresh = rng.random(rows) > 0.05
    ids = pd.Series(rng.integers(0, 36**10, rows)).map(lambda v: np.base_repr(v, 36))
    picked.loc[fresh, "image"] = "https://m.media-amazon.com/images/I/" + ids[fresh] + "._AC_UL320_.jpg"
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for i in range(files):
        part = picked.iloc[bounds[i] : bounds[i + 1]]
        part.to_csv(raw / f"Category {i:03d}.csv", index=(i % 3 == 0))  # some files carry an index column
    picked.to_csv(raw / "Amazon-Products.csv", index=False)


def original_recipe(raw: Path, out: Path) -> None:
    """The original project's extract: read each file whole, select, write per file, read back, concat, dedupe."""
    staged = out / "per_file"
    staged.mkdir(parents=True, exist_ok=True)
    for path in sorted(raw.glob("*.csv")):
        frame = pd.read_csv(path)
        frame[["main_category", "sub_category", "image"]].to_csv(staged / path.name, index=False)
    merged = pd.concat([pd.read_csv(p) for p in sorted(staged.glob("*.csv"))], ignore_index=True)
    merged = merged.dropna(subset=["image"]).drop_duplicates(subset="image")
    mapping = pd.read_csv(REPO_ROOT / "data" / "label_mapping.csv")
    merged["label"] = merged["main_category"].map(dict(zip(mapping["main_category"], mapping["label"])))
    merged.to_csv(out / "products.csv", index=False)


def timed(command: list[str]) -> dict:
    """Run a command; wall seconds, CPU seconds and peak memory of the child."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed: {proc.stderr.read().decode()[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=551_000, help="rows across the category files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", nargs=2, type=Path, metavar=("RAW", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        original_recipe(*args.baseline)
        return 0
    raw = WORK / f"raw-{args.rows}"
    print(f"building replica: 139 files, {args.rows:,} rows + Amazon-Products.csv in {raw} ...", flush=True)
    build_replica(raw, args.rows)
    contenders = {
        "original recipe (pandas, per-file round trip)": [
            sys.executable,
            "-m",
            "bench.bench_extract",
            "--baseline",
            str(raw),
            str(WORK / "out-original"),
        ],
        "make extract (this project)": [
            sys.executable,
            "-m",
            "data.extract",
            "--raw",
            str(raw),
            "--out",
            str(WORK / "out-ours"),
        ],
    }
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, command in contenders.items():
            results[name].append(timed(command))
    base = statistics.median(r["wall"] for r in results[next(iter(contenders))])
    print(f"\n| contender | wall s (median of {args.repeats}) | CPU s | peak RSS MB | time vs original |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        print(
            f"| {name} | {wall:.2f} | {statistics.median(r['cpu'] for r in runs):.2f} | "
            f"{max(r['rss_mb'] for r in runs):.0f} | {wall / base:.2f}x |"
        )
    report = pd.read_json(WORK / "out-ours" / "extract_report.json", typ="series")
    print(
        f"\nours: rows read {report['rows_read']:,} = kept {report['rows_kept']:,} + dropped "
        f"{report['rows_dropped']:,} (accounting_ok={report['accounting_ok']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
