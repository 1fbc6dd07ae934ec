"""Benchmark ``make download-images`` past one process: the one-process path, Ray tasks, several processes.

The loopback image server, URL list and fault mix are those of ``bench/bench_download.py`` (real Amazon
image URLs of the shared CSV sample rewritten to 127.0.0.1, the shared product photos, lognormal latency,
about half of the URLs dead); each path runs ``python -m data.download`` in its own process with the same
per-process settings and its own URL prefix (so its own fresh fault state), measured for wall time, CPU
seconds and peak memory over its process tree (a Ray cluster it starts included). Each distributed run is
checked against the one-process run: the same status, path and image hash for every key.

    python -m bench.bench_scale [--urls 20000] [--paths local,ray,processes] [--processes 0]

Results: a markdown table on stdout and ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from bench.bench_download import (
    REPO,
    _count_images,
    become_subreaper,
    build_rows,
    measure,
    recoverable,
    start_server,
    tool_command,
    write_inputs,
)

PATHS = {
    "local": "one process (distributor = local)",
    "ray": "Ray tasks, local cluster (distributor = ray)",
    "processes": "local processes (distributor = processes)",
}


def command(path: str, inputs: dict[str, Path], out: Path, args: argparse.Namespace, urls: int) -> list[str]:
    """``python -m data.download`` with bench_download's settings for ours, on the distributor ``path``."""
    cmd = tool_command("ours", inputs, out, args, urls)
    cmd += ["--set", f'download.distributor="{path}"', "--set", f"download.processes={args.processes}"]
    return cmd + [
        "--set",
        f"download.concurrency={args.concurrency}",
        "--set",
        f"download.shard_size={args.shard_size}",
    ]


def outcomes(out: Path) -> dict[str, tuple[str, str, str]]:
    """Key -> (status, path, sha256) of a run's manifest: what must not depend on where shards ran."""
    import pandas as pd

    frame = pd.read_parquet(out / "manifest.parquet", columns=["key", "status", "path", "sha256"])
    return {k: (s, p, h) for k, s, p, h in frame.itertuples(index=False)}


def run_paths(rows: list[tuple[str, str, str]], port: int, server_pid: int, work: Path, args: argparse.Namespace):
    """Run each path on ``rows`` and measure it."""
    results: dict[str, dict[str, object]] = {}
    for path in args.paths.split(","):
        name = f"{path}-{len(rows)}"
        inputs = write_inputs(rows, port, name, work)
        out = work / name / "images"
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {path} on {len(rows)} URLs ...", file=sys.stderr, flush=True)
        stats: dict[str, object] = dict(
            measure(command(path, inputs, out, args, len(rows)), work / f"{name}.log", {server_pid})
        )
        report = json.loads((out / "download_report.json").read_text())["this_run"]
        stats["stored"] = _count_images(out)
        stats["images_per_s"] = stats["stored"] / stats["wall_s"]  # type: ignore[operator]
        stats["task_ok_per_s"] = report.get("task_ok_per_s")
        stats["shards"] = report["shards_written"]
        stats["tasks"] = report.get("tasks")
        if "local" in results:
            stats["same_as_local"] = outcomes(out) == outcomes(work / f"local-{len(rows)}" / "images")
        results[path] = stats
    return results


def markdown(results: dict[str, dict[str, object]], recoverable_count: int) -> str:
    """The results as a markdown table."""
    lines = [
        "| path | images/s | stored / recoverable | wall s | CPU s | peak memory MB (PSS) | "
        "images/s per task (median) | tasks | manifest = one-process run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for path, r in results.items():
        per_task = r.get("task_ok_per_s")
        same = {True: "yes", False: "**no**", None: "(reference)"}[r.get("same_as_local")]  # type: ignore[index]
        lines.append(
            f"| {PATHS[path]} | {r['images_per_s']:.0f} | {r['stored']} / {recoverable_count} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['peak_mem_mb']:.0f} | {per_task if per_task is not None else '-'} | "
            f"{r['tasks'] or '-'} | {same} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.bench_scale``."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=20000, help="URLs in the list (default 20000)")
    parser.add_argument("--paths", default="local,ray,processes", help="comma-separated: local, ray, processes")
    parser.add_argument(
        "--processes", type=int, default=0, help="download.processes for the processes path (0: one per CPU core)"
    )
    parser.add_argument("--concurrency", type=int, default=128, help="requests in flight per process or task")
    parser.add_argument("--shard-size", type=int, default=1000, help="URLs per shard (one Ray task each)")
    parser.add_argument("--timeout", type=float, default=2.0, help="read timeout in seconds (total: 2.5x)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=80.0, help="median server latency")
    parser.add_argument("--sigma", type=float, default=0.6, help="lognormal sigma of the latency")
    parser.add_argument("--workdir", default=str(REPO / "bench" / "results" / "scale"), help="scratch folder")
    args = parser.parse_args(argv)
    if "local" not in args.paths.split(",")[:1]:
        parser.error("--paths must start with local (the reference the others are checked against)")
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    become_subreaper()
    rows = build_rows(args.urls)
    server, port = start_server(work, args)
    try:
        results = run_paths(rows, port, server.pid, work, args)
    finally:
        server.terminate()
        server.wait()
    expected = sum(recoverable(n) for _, n, _ in rows)
    print(
        f"\n{len(rows)} URLs, {expected} recoverable; latency lognormal median {args.latency_ms:.0f} ms; "
        f"{args.concurrency} requests in flight and 2 image workers per process (or Ray task); shards of "
        f"{args.shard_size}; download.processes={args.processes} (0: one per CPU), task_cpus=1; {os.cpu_count()} CPUs\n"
    )
    print(markdown(results, expected))
    report = {"urls": len(rows), "recoverable": expected, "settings": vars(args), "results": results}
    (REPO / "bench" / "results" / "scale.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
