"""Benchmark: make serve (dynamic batching) against a naive server (one ``model.predict`` per request).

Trains a small model (the ``tiny`` backbone at ``--image-size`` px, a few epochs; ``--backbone
efficientnet_lite0`` for the pretrained default, head only) on the sample product photos, exports it with
``make export``'s code, then for each contender starts the server in its own process, waits for ``/readyz``,
and sends ``--requests`` single-image ``POST /predict`` requests (real JPEG bodies, cycled) at
``--concurrency`` from a separate client process (a bounded aiohttp client). Reports requests/s, p50/p95/p99
latency, 5xx and other failures, and the server's resident memory (when ready, at the end, and the peak), and
beside it the TFLite variants' size, latency and accuracy delta from the model card.

    naive      aiohttp, one ``model.predict(x[None])`` per request on a thread, same in-graph decoding
    batch=1    make serve with serve.max_batch_size=1 (the SavedModel, no batching)
    batched    make serve as configured (max_batch_size 32, batch_timeout 5 ms)

    make bench-serve   # or: .venv/bin/python -m bench.bench_serve --requests 10000 --concurrency 32
    .venv/bin/python -m bench.bench_serve --backbone efficientnet_lite0 --image-size 224 --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_train import SAMPLE, build_manifest
from data.core.config import REPO_ROOT

WORK = REPO_ROOT / "bench" / "results" / "serve"
MODEL = "bench"
CONTENDERS = {
    "naive": "naive: model.predict per request",
    "batch1": "make serve, max_batch_size=1",
    "batched": "make serve, dynamic batching (32, 5 ms)",
}


def rss_kib(pid: int) -> dict[str, int]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in KiB (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


# ---- the naive server -------------------------------------------------------------------------------------


def naive_app(run_dir: Path) -> Any:
    """One ``model.predict`` per request (on the default thread pool), the export's own decoding."""
    import tensorflow as tf
    from aiohttp import web

    from data.core.images import model_pixels
    from train.predict import Predictor

    predictor = Predictor.load(run_dir)

    def predict_one(data: bytes) -> list[tuple[str, float]]:
        pixels = model_pixels(tf.constant(data), predictor.image_size)
        return predictor.top_k(predictor.model.predict(pixels[None], verbose=0), 3)[0]

    async def predict(request: web.Request) -> web.Response:
        top = await asyncio.get_running_loop().run_in_executor(None, predict_one, await request.read())
        return web.json_response({"predictions": [{"top": [{"class": c, "score": s} for c, s in top]}]})

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application(client_max_size=10_000_000)
    app.router.add_post("/predict", predict)
    app.router.add_get("/readyz", readyz)
    return app


# ---- the load client ------------------------------------------------------------------------------------


async def load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> dict[str, Any]:
    """Send ``requests`` POSTs with at most ``concurrency`` in flight; latency per request and statuses."""
    import aiohttp

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(numbers: Any, record: bool) -> None:
            for i in numbers:
                started = time.perf_counter()
                try:
                    async with session.post(
                        url, data=bodies[i % len(bodies)], headers={"Content-Type": "image/jpeg"}
                    ) as r:
                        await r.read()
                        status = str(r.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    status = type(exc).__name__
                if record:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1

        warm = iter(range(2 * concurrency))  # not counted: connections opened, graphs traced
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        shared = iter(range(requests))  # one iterator: each number is taken by exactly one worker
        started = time.perf_counter()
        await asyncio.gather(*(worker(shared, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": requests,
        "seconds": round(elapsed, 3),
        "rps": round(requests / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "statuses": dict(statuses),
        "5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "failed": sum(n for s, n in statuses.items() if s != "200"),
    }


# ---- the orchestration ----------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[Path, Any]:
    """Train the small model and export it; returns the run folder and the export result."""
    from deploy.export import export_run
    from deploy.options import ExportOptions
    from train.options import TrainOptions
    from train.train import train

    manifest = build_manifest(args.images, args.work)
    pretrained = args.backbone != "tiny"
    options = TrainOptions(
        backbone=args.backbone,
        weights="imagenet" if pretrained else "none",
        recipe="transfer",
        image_size=args.image_size,
        batch_size=16,
        epochs=args.epochs,
        fine_tune_epochs=0,
        learning_rate=1e-3 if pretrained else 1e-2,
        patience=args.epochs,
        cache_dir=str(args.work / "cache"),
    )
    run_dir = train(manifest, args.work / "runs", options, images_dir=args.images, run_id="bench-serve").run_dir
    exported = export_run(run_dir, args.images, args.work / "exports", ExportOptions(model_name=MODEL))
    return run_dir, exported


def _command(name: str, run_dir: Path, port: int, args: argparse.Namespace) -> list[str]:
    if name == "naive":
        return [
            sys.executable,
            "-m",
            "bench.bench_serve",
            "--role",
            "naive",
            "--run-dir",
            str(run_dir),
            "--port",
            str(port),
        ]
    command = [sys.executable, "-m", "deploy.serve", "--model-dir", str(args.work / "exports" / MODEL)]
    command += ["--port", str(port), "--set", f"serve.model_name={MODEL}"]
    return command + (["--set", "serve.max_batch_size=1"] if name == "batch1" else [])


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {timeout} s")


def contend(name: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One contender: server process up, client process run, memory sampled, server stopped."""
    port = args.port
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO_ROOT)}
    server = subprocess.Popen(_command(name, run_dir, port, args), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL)
    samples: list[int] = []
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        ready = rss_kib(server.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                samples.append(rss_kib(server.pid)["VmRSS"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = [
            sys.executable,
            "-m",
            "bench.bench_serve",
            "--role",
            "client",
            "--url",
            f"http://127.0.0.1:{port}/predict",
        ]
        client += [
            "--requests",
            str(args.requests),
            "--concurrency",
            str(args.concurrency),
            "--images",
            str(args.images),
        ]
        result = json.loads(subprocess.run(client, env=env, check=True, capture_output=True, text=True).stdout)
        stop.set()
        sampler.join()
        end = rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    mib = 1024
    return {
        "name": name,
        **result,
        "rss_ready_mib": round(ready["VmRSS"] / mib, 1),
        "rss_end_mib": round(end["VmRSS"] / mib, 1),
        "rss_peak_mib": round(end["VmHWM"] / mib, 1),
        "rss_samples_mib": [round(s / mib, 1) for s in samples],
    }


def table(rows: list[dict[str, Any]], card: dict[str, Any], args: argparse.Namespace) -> str:
    """The two markdown tables."""
    lines = [
        f"{args.requests} single-image POST /predict, concurrency {args.concurrency}, {args.backbone} backbone @ "
        f"{args.image_size} px, sample product JPEGs, client in a separate process, {os.cpu_count()} CPU cores shared",
        "",
        "| server | requests/s | p50 ms | p95 ms | p99 ms | 5xx | other failures | RSS ready / end / peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {CONTENDERS[r['name']]} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['5xx']} | {r['failed'] - r['5xx']} | {r['rss_ready_mib']:.0f} / {r['rss_end_mib']:.0f} / "
            f"{r['rss_peak_mib']:.0f} |"
        )
    by_name = {r["name"]: r for r in rows}
    if "naive" in by_name and "batched" in by_name:
        lines += ["", f"throughput, batched vs naive: {by_name['batched']['rps'] / by_name['naive']['rps']:.1f}x"]
    metrics = card["metrics"]
    lines += [
        "",
        f"TFLite variants (test split: {metrics['images']} images; Keras accuracy {metrics['keras_accuracy']:.3f}, "
        f"{metrics['keras_latency_ms']:.2f} ms/image batch 1; "
        f"SavedModel {metrics['saved_model_bytes'] / 1024:.0f} KiB)",
        "",
        "| variant | size KiB | ms / image (1 thread) | accuracy | drop vs Keras | top-1 agreement | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in card["tflite"]:
        lines.append(
            f"| {v['variant']} | {v['bytes'] / 1024:.1f} | {v['latency_ms']:.3f} | {v['accuracy']:.3f} | "
            f"{v['accuracy_drop']:+.3f} | {v['top1_agreement']:.3f} | {v['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_serve", description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("bench", "naive", "client"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=10_000, help="measured requests per server (default 10000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64, help="model input side (default 64: a 2-core box)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--backbone", default="tiny", help="tiny (random weights) or a pretrained one: efficientnet_lite0"
    )
    parser.add_argument("--images", type=Path, default=SAMPLE, help="folder of class folders of photos")
    parser.add_argument("--only", default="naive,batch1,batched", help="contenders, comma-separated")
    parser.add_argument("--port", type=int, default=18501)
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder, emptied first")
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "naive":
        from aiohttp import web

        web.run_app(naive_app(args.run_dir), host="127.0.0.1", port=args.port, print=None, access_log=None)
        return
    if args.role == "client":
        bodies = [p.read_bytes() for p in sorted(args.images.glob("*/*.jpg"))]
        print(json.dumps(asyncio.run(load(args.url, bodies, args.requests, args.concurrency))))
        return
    from data.core.cli import setup_logging

    setup_logging(logging.WARNING)
    shutil.rmtree(args.work, ignore_errors=True)
    run_dir, exported = prepare(args)
    rows = []
    for name in args.only.split(","):
        rows.append(contend(name, run_dir, args))
        print(f"{name}: {rows[-1]['rps']} requests/s, statuses {rows[-1]['statuses']}", flush=True)
    report = table(rows, exported.card, args)
    (args.work / "results.json").write_text(json.dumps({"rows": rows, "card": exported.card}, indent=2))
    (args.work / "results.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
