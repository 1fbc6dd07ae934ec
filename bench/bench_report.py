"""Benchmark: ``make eda`` on a full-size catalogue (551k CSV rows) with 100k+ stored images, against the
budget (under 25 MB, a few minutes on 2 cores), and whether repeated runs give byte-identical files.

The catalogue is ``make bench-extract``'s replica (139 category CSVs resampled from the shared real sample,
~551k rows) run through the real ``make extract``. The download output is written here in the download
stage's contract: for a seeded sample of the catalogue's keys, photos made from the shared real photos
(Amazon product photos and the grocery-store photos) by a random crop, flip, colour shift and a drawn
mark, stored at 256 px on the shorter side as JPEG; ~6% of the URLs fail with the downloader's statuses,
~2% of the stored photos are exact copies of another and ~1% recompressed copies (near duplicates).

    .venv/bin/python -m bench.bench_report                       # 120,000 images, 2 repeats
    .venv/bin/python -m bench.bench_report --images 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from bench.bench_extract import SAMPLE as CSV_SAMPLE
from bench.bench_extract import build_replica, timed
from data.core.config import REPO_ROOT
from data.core.contracts import MANIFEST

WORK = REPO_ROOT / "bench" / "results" / "report"
REPLICA = REPO_ROOT / "bench" / "results" / "extract"  # shared with bench_extract: built once
PHOTOS = CSV_SAMPLE.parent
FAILURES = {  # status: (share of URLs, reason, HTTP status)
    "not_found": (0.03, "HTTP 404", 404),
    "forbidden": (0.005, "HTTP 403", 403),
    "timeout": (0.01, "read timeout", None),
    "connection_error": (0.005, "server disconnected", None),
    "not_image": (0.005, "Content-Type text/html", 200),
    "decode_error": (0.005, "cannot decode", 200),
}


def _bases() -> list[str]:
    amazon = sorted((PHOTOS / "amazon-products-images-sample").rglob("*.jpg"))
    grocery = sorted((PHOTOS / "grocery-store-photos").rglob("*.jpg"))
    return [str(p) for p in amazon + grocery]


def _photo(bases: list[str], seed: int) -> tuple[np.ndarray, int, int]:
    """One stored photo (BGR pixels) and its 'original' width and height, made from a real photo; the same
    seed, the same pixels."""
    rng = np.random.default_rng(seed)
    image = cv2.imread(bases[int(rng.integers(len(bases)))], cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.55, 1.0)), int(w * rng.uniform(0.55, 1.0))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    image = image[top : top + ch, left : left + cw]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = np.clip(image.astype(np.int16) + rng.integers(-40, 41, 3), 0, 255).astype(np.uint8)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    x, y = int(rng.integers(0, cw)), int(rng.integers(0, ch))
    cv2.circle(image, (x, y), int(rng.integers(4, max(5, min(ch, cw) // 4))), colour, -1)
    scale = 256 / min(ch, cw)
    image = cv2.resize(image, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_AREA)
    return image, round(cw * 320 / ch), 320


def _write_chunk(job: tuple[Path, list[tuple[str, str, int, str, int]]]) -> list[dict]:
    """Write the images of one chunk; returns their manifest rows."""
    images, rows = job
    bases = _bases()
    records = []
    for key, label, seed, kind, source in rows:
        image, ow, oh = _photo(bases, source if kind != "own" else seed)
        quality = 90
        if kind == "near":  # a recompressed, slightly smaller copy
            image, quality = cv2.resize(image, (image.shape[1] * 19 // 20, image.shape[0] * 19 // 20)), 60
        payload = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        (images / label / f"{key}.jpg").write_bytes(payload)
        height, width = image.shape[:2]
        records.append(
            {
                "key": key,
                "bytes": len(payload),
                "orig_width": ow,
                "orig_height": oh,
                "width": width,
                "height": height,
                "sha256": hashlib.sha256(payload).hexdigest(),
                "path": f"{label}/{key}.jpg",
            }
        )
    return records


def build_download(processed: Path, count: int, seed: int = 0) -> None:
    """The download stage's output for ``count`` catalogue keys: images/<label>/<key>.jpg and manifest.parquet."""
    images = processed / "images"
    manifest_path = images / MANIFEST.file_name
    if manifest_path.is_file() and len(pd.read_parquet(manifest_path, columns=["key"])) == count:
        return
    shutil.rmtree(images, ignore_errors=True)
    catalogue = pd.read_parquet(processed / "catalogue.parquet", columns=["key", "url", "label"])
    rng = np.random.default_rng(seed)
    picked = catalogue.iloc[np.sort(rng.choice(len(catalogue), count, replace=False))].reset_index(drop=True)
    roll = rng.random(count)
    status = np.full(count, "ok", dtype=object)
    edge = 0.0
    for name, (share, _, _) in FAILURES.items():
        status[(roll >= edge) & (roll < edge + share)] = name
        edge += share
    ok = np.flatnonzero(status == "ok")
    kind = np.full(count, "own", dtype=object)
    copies = rng.random(count)
    kind[ok[copies[ok] < 0.02]], kind[ok[(copies[ok] >= 0.02) & (copies[ok] < 0.03)]] = "exact", "near"
    source = np.where(kind == "own", np.arange(count), rng.choice(ok, count))
    for label in picked["label"].unique():
        (images / label).mkdir(parents=True, exist_ok=True)
    rows = [(picked.at[i, "key"], picked.at[i, "label"], int(i), kind[i], int(source[i])) for i in ok]
    chunks = [(images, rows[i : i + 2000]) for i in range(0, len(rows), 2000)]
    started = time.perf_counter()
    with Pool(2) as pool:
        records = [r for chunk in pool.imap(_write_chunk, chunks) for r in chunk]
    print(f"  wrote {len(records):,} images in {time.perf_counter() - started:.0f} s", flush=True)
    stored = pd.DataFrame(records).set_index("key")
    frame = picked.assign(status=status, reason="", http_status=200, attempts=1, elapsed_s=0.05).set_index("key")
    for name, (_, reason, code) in FAILURES.items():
        frame.loc[frame["status"] == name, ["reason", "http_status"]] = [reason, code]
    frame = frame.join(stored).reset_index()
    frame["path"] = frame["path"].fillna("")
    frame["sha256"] = frame["sha256"].fillna("")
    frame = frame.astype(
        {
            "http_status": "Int64",
            "bytes": "Int64",
            "orig_width": "Int64",
            "orig_height": "Int64",
            "width": "Int64",
            "height": "Int64",
        }
    )
    frame[list(MANIFEST.columns)].to_parquet(manifest_path, index=False)


TINY_RUN = (  # a real run quickly trained on every image: what the run report reads at full size
    "train.backbone=tiny",
    "train.weights=none",
    "train.image_size=32",
    "train.batch_size=256",
    "train.epochs=1",
    "train.fine_tune_epochs=0",
)


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def measure(label: str, command: list[str], out: Path, files: tuple[str, str], repeats: int) -> str:
    """Run a report command ``repeats`` times into fresh folders; one markdown row of its figures."""
    runs, digests, size_mb, json_kb = [], set(), 0.0, 0.0
    for i in range(repeats):
        target = out.with_name(f"{out.name}-{i}")
        shutil.rmtree(target, ignore_errors=True)
        runs.append(timed([*command, "--out", str(target)]))
        html, doc = (target / files[0]).read_bytes(), (target / files[1]).read_bytes()
        digests.add(hashlib.sha256(html + doc).hexdigest())
        size_mb, json_kb = len(html) / 1e6, len(doc) / 1e3
    same = "n/a (1 run)" if repeats == 1 else "yes" if len(digests) == 1 else "NO"
    wall, cpu = statistics.median(r["wall"] for r in runs), statistics.median(r["cpu"] for r in runs)
    rss = max(r["rss_mb"] for r in runs)
    return f"| {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {size_mb:.2f} | {json_kb:.0f} | {same} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=551_000, help="CSV rows of the replica")
    parser.add_argument("--images", type=int, default=120_000, help="catalogue keys given a download outcome")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--visualise", action="store_true", help="also train a tiny run on every image and time make visualise"
    )
    args = parser.parse_args(argv)
    raw, processed = REPLICA / f"raw-{args.rows}", WORK / f"processed-{args.rows}"
    print(f"replica: {raw} ({args.rows:,} rows) ...", flush=True)
    build_replica(raw, args.rows)
    if not (processed / "catalogue.parquet").is_file():
        extracted = timed([sys.executable, "-m", "data.extract", "--raw", str(raw), "--out", str(processed)])
        print(f"  make extract: {extracted['wall']:.0f} s", flush=True)
    print(f"download output: {args.images:,} URLs ...", flush=True)
    build_download(processed, args.images)
    manifest = pd.read_parquet(processed / "images" / MANIFEST.file_name, columns=["status"])
    paths = _sets(f"paths.processed={processed}", f"paths.runs={WORK / 'runs'}", f"paths.labels={WORK / 'labels'}")
    inputs = f"{args.rows:,} CSV rows, {len(manifest):,} URLs, {int((manifest['status'] == 'ok').sum()):,} images"
    rows = [
        measure(
            f"make eda: {inputs}",
            [sys.executable, "-m", "visualise.eda", *paths],
            WORK / "eda",
            ("eda.html", "eda.json"),
            args.repeats,
        )
    ]
    if args.visualise:
        if not (WORK / "runs" / "latest").is_file():
            trained = timed(
                [sys.executable, "-m", "train.train", *paths, *_sets(*TINY_RUN, f"train.cache_dir={WORK / 'cache'}")]
            )
            evaluated = timed([sys.executable, "-m", "train.evaluate", *paths])
            print(f"  tiny run: trained in {trained['wall']:.0f} s, evaluated in {evaluated['wall']:.0f} s", flush=True)
        command = [sys.executable, "-m", "visualise.report", *paths]
        rows.append(
            measure(
                "make visualise: a tiny run on those images (1,050-image map)",
                command,
                WORK / "run",
                ("report.html", "report.json"),
                args.repeats,
            )
        )
    print(
        f"\n| report | wall s (median of {args.repeats}) | CPU s | peak RSS MB | HTML MB | JSON KB | byte-identical |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nbudget: < 25 MB and a few minutes on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
