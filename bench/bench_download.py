"""Benchmark ``make download-images`` against the original recipe and img2dataset on a loopback server.

The URL list comes from the shared Amazon CSV sample (real image URLs, rewritten to 127.0.0.1); every URL
is served from one of the shared real product photos, after a lognormal latency (median 80 ms), with a
fixed, seeded fault mix: about half of the URLs are dead, some fail once and then work. The server runs
in its own process; each client runs in its own process too, measured for wall time, CPU seconds (its
whole process tree) and peak memory (PSS summed over its process tree, sampled every 50 ms).

    python -m bench.bench_download [--urls 5000] [--steady-urls 20000] [--tools original,img2dataset,ours]

With ``--steady-urls N`` (default 20000) img2dataset and ours run again on N URLs: the extra images over
the extra time give each tool's steady-state rate, free of its fixed costs (start-up, the last timeouts).

img2dataset is installed on first use into ``bench/.venv-img2dataset`` (git-ignored) so its pins never
touch ``.venv``. Results: a markdown table on stdout and ``bench/results/download.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", "/work/shared/data"))
CSV_SAMPLE = SHARED / "amazon-products-csv-sample"
PHOTOS = SHARED / "amazon-products-images-sample"
I2D_VENV = REPO / "bench" / ".venv-img2dataset"

# fault -> share of URLs. Recoverable: ok and the faults marked True (a correct downloader gets them).
FAULTS = [
    ("ok", 0.40, True),
    ("dead404", 0.35, False),
    ("forbidden403", 0.04, False),
    ("flaky500", 0.04, True),
    ("ratelimit429", 0.02, True),
    ("redirect", 0.05, True),
    ("truncated_once", 0.03, True),
    ("reset_once", 0.02, True),
    ("html200", 0.02, False),
    ("corrupt", 0.02, False),
    ("hang", 0.01, False),
]


def fault_of(name: str) -> str:
    """The fault a URL path gets, fixed by a hash of its file name."""
    point = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 2**32
    for fault, share, _ in FAULTS:
        point -= share
        if point < 0:
            return fault
    return FAULTS[0][0]


def recoverable(name: str) -> bool:
    """Whether a correct downloader can store this URL's image."""
    return dict((f, r) for f, _, r in FAULTS)[fault_of(name)]


# ----------------------------------------------------------------------------------------------- server
def serve(port_file: Path, median: float, sigma: float, seed: int) -> None:
    """Run the fault-injecting image server until killed; writes its port to ``port_file``."""
    import logging
    import math

    from aiohttp import web

    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    photos = [Path(p).read_bytes() for p in sorted(glob.glob(str(PHOTOS / "*" / "*.jpg")))]
    rng = random.Random(seed)
    first_seen: dict[str, float] = {}

    async def image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        await asyncio.sleep(rng.lognormvariate(math.log(median), sigma))
        fault = "ok" if request.match_info["via"] == "r" else fault_of(name)
        now = time.monotonic()
        first = request.path not in first_seen
        since = now - first_seen.setdefault(request.path, now)
        body = photos[int(hashlib.sha1(name.encode()).hexdigest()[8:16], 16) % len(photos)]
        if fault in ("dead404", "forbidden403"):
            return web.Response(status=404 if fault == "dead404" else 403, text="<html>gone</html>")
        if (fault == "flaky500" and first) or (fault == "ratelimit429" and since < 1.0):
            headers = {"Retry-After": "1"} if fault == "ratelimit429" else {}
            return web.Response(status=500 if fault == "flaky500" else 429, text="later", headers=headers)
        if fault == "redirect":
            raise web.HTTPFound(f"/{request.match_info['run']}/r/I/{name}")
        if fault == "reset_once" and first:
            request.transport.abort()
            return web.Response()
        if fault == "truncated_once" and first:
            resp = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(body))})
            await resp.prepare(request)
            await resp.write(body[: len(body) // 3])
            request.transport.close()
            return resp
        if fault == "html200":
            return web.Response(text="<html><body>captcha</body></html>", content_type="text/html")
        if fault == "corrupt":
            body = body[:4] + bytes(rng.randrange(256) for _ in range(2000))
        if fault == "hang":
            await asyncio.sleep(120)
        return web.Response(body=body, content_type="image/jpeg")

    async def main() -> None:
        app = web.Application()
        app.add_routes([web.get("/{run}/{via}/I/{name}", image)])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port_file.write_text(str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(main())


# ----------------------------------------------------------------------------------- the original recipe
def original_client(urls_file: Path, out: Path, size: int, timeout: float) -> None:
    """The original approach: chunks of 512 gathered at once, a GET to validate, a GET to download,
    ``cv2.imwrite`` in the event loop. Exceptions are caught per URL (the original crashed on the first
    timeout or truncated body), so that it finishes and can be counted."""
    import aiohttp
    import cv2
    import numpy as np

    urls = [line.split(",") for line in urls_file.read_text().split()[1:]]

    async def validate(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.get(url) as resp:
            await resp.read()
            return resp.status == 200

    async def download(session: aiohttp.ClientSession, key: str, url: str) -> bool:
        async with session.get(url) as resp:
            data = await resp.read()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return False
        scale = size / min(img.shape[:2])
        if scale < 1:  # every tool stores the same sizes: shorter side at most ``size``, never enlarged
            img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)))
        return cv2.imwrite(str(out / f"{key}.jpg"), img)

    async def main() -> None:
        out.mkdir(parents=True, exist_ok=True)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for start in range(0, len(urls), 512):
                chunk = urls[start : start + 512]
                valid = await asyncio.gather(*(validate(session, u) for _, u in chunk), return_exceptions=True)
                todo = [(k, u) for (k, u), ok in zip(chunk, valid) if ok is True]
                await asyncio.gather(*(download(session, k, u) for k, u in todo), return_exceptions=True)

    asyncio.run(main())


# ----------------------------------------------------------------------------------------- measurement
def _children(pid: int) -> list[int]:
    found = []
    for children in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            found.extend(int(c) for c in Path(children).read_text().split())
        except OSError:
            pass
    return found


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(_children(current))
    return pids


def become_subreaper() -> None:
    """Adopt orphaned descendants (e.g. a forkserver outliving its parent) so their CPU time is counted."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans(keep: set[int], timeout: float = 30.0) -> None:
    """Wait for every adopted descendant except ``keep``: their CPU time then joins RUSAGE_CHILDREN."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orphans = set(_children(os.getpid())) - keep
        if not orphans:
            return
        for pid in orphans:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.05)


def _pss_bytes(pids: list[int]) -> int:
    """Proportional set size of the processes: shared pages (e.g. of forked workers) counted once."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure(cmd: list[str], log: Path, keep: set[int]) -> dict[str, float]:
    """Run ``cmd`` to completion; its wall time, CPU seconds and peak memory (PSS), over its process tree.

    ``keep``: children of this process that are not part of the measured tree (the server).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        peak = [0]

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _pss_bytes(_tree(proc.pid)))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.monotonic() - start
        sampler.join()
        reap_orphans(keep)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} ... exited with {code}; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mem_mb": peak[0] / 2**20}


def _count_images(folder: Path) -> int:
    import cv2

    return sum(cv2.imread(p) is not None for p in glob.glob(str(folder / "**" / "*.jpg"), recursive=True))


def ensure_img2dataset() -> Path:
    """The img2dataset command of the throwaway venv, installing it on first use."""
    exe = I2D_VENV / "bin" / "img2dataset"
    if not exe.exists():
        print(f"installing img2dataset into {I2D_VENV} (once)", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(I2D_VENV)], check=True)
        subprocess.run([str(I2D_VENV / "bin" / "pip"), "install", "--quiet", "img2dataset"], check=True)
    return exe


# ------------------------------------------------------------------------------------------------ runs
def build_rows(count: int) -> list[tuple[str, str, str]]:
    """``(key, image file name, label)`` for ``count`` unique Amazon image URLs of the CSV sample."""
    import pandas as pd

    mapping = pd.read_csv(REPO / "data" / "label_mapping.csv").set_index("main_category")["label"].to_dict()
    files = sorted(p for p in CSV_SAMPLE.glob("*.csv") if p.name != "Amazon-Products.csv")
    frame = pd.concat([pd.read_csv(p, usecols=["image", "main_category"]) for p in files]).dropna()
    frame = frame.drop_duplicates("image")
    rows, copy = [], 0
    while len(rows) < count:
        for url, category in zip(frame["image"], frame["main_category"]):
            name = url.rsplit("/", 1)[-1]
            if copy:  # more URLs than the sample has: distinct names, same photos and fault mix
                name = name.replace(".", f"-{copy}.", 1)
                url = url.replace(url.rsplit("/", 1)[-1], name)
            rows.append((hashlib.sha1(url.encode()).hexdigest()[:16], name, mapping.get(category, "other")))
            if len(rows) == count:
                break
        copy += 1
    return rows


def write_inputs(rows: list[tuple[str, str, str]], port: int, tool: str, work: Path) -> dict[str, Path]:
    """The same URL list in each tool's input format; each tool has its own path prefix (fresh fault state)."""
    import pandas as pd

    urls = [f"http://127.0.0.1:{port}/{tool}/images/I/{name}" for _, name, _ in rows]
    frame = pd.DataFrame({"key": [r[0] for r in rows], "url": urls, "label": [r[2] for r in rows]})
    paths = {"parquet": work / f"{tool}.parquet", "csv": work / f"{tool}.csv"}
    frame.to_parquet(paths["parquet"], index=False)
    frame[["key", "url"]].to_csv(paths["csv"], index=False)
    return paths


def tool_command(tool: str, inputs: dict[str, Path], out: Path, args: argparse.Namespace, urls: int) -> list[str]:
    """The command line that runs one tool with the shared settings."""
    if tool == "original":
        return [
            sys.executable,
            "-m",
            "bench.bench_download",
            "--original-client",
            str(inputs["csv"]),
            str(out),
            "--image-size",
            str(args.image_size),
            "--timeout",
            str(args.timeout * 2.5),
        ]
    if tool == "img2dataset":
        return [
            str(ensure_img2dataset()),
            "--url_list",
            str(inputs["csv"]),
            "--input_format",
            "csv",
            "--url_col",
            "url",
            "--output_folder",
            str(out),
            "--output_format",
            "files",
            "--processes_count",
            "2",
            "--thread_count",
            str(args.concurrency // 2),
            "--image_size",
            str(args.image_size),
            "--resize_mode",
            "keep_ratio",
            "--encode_quality",
            "90",
            "--resize_only_if_bigger",
            "True",
            "--timeout",
            str(args.timeout),
            "--retries",
            str(args.retries),
            # one shard per process: its most favourable setting (each shard waits for its slowest URL)
            "--number_sample_per_shard",
            str(-(-urls // 2)),
            "--enable_wandb",
            "False",
        ]
    sets = {
        "concurrency": args.concurrency,
        "per_host": args.concurrency,
        "connect_timeout": args.timeout,
        "read_timeout": args.timeout,
        "total_timeout": args.timeout * 2.5,
        "retries": args.retries,
        "backoff": 0.2,
        "image_size": args.image_size,
        "workers": 2,
        "shard_size": 1000,
    }
    cmd = [
        sys.executable,
        "-m",
        "data.download",
        "--input",
        str(inputs["parquet"]),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f"paths.root={out.parent}",
    ]
    for key, value in sets.items():
        cmd += ["--set", f"download.{key}={value}"]
    return cmd


def start_server(work: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, int]:
    """Start the image server in its own process; returns it and its port."""
    port_file = work / "server.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_download",
            "--serve",
            str(port_file),
            "--latency-ms",
            str(args.latency_ms),
            "--sigma",
            str(args.sigma),
        ],
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the image server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def markdown(results: dict[str, dict[str, float]], expected: int, urls: int) -> str:
    """The results as a markdown table."""
    lines = [
        "| tool | images/s | URLs/s | images stored / recoverable | wall s | CPU s | peak memory MB (PSS) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = results.get("img2dataset", {}).get("images_per_s")
    for tool, r in results.items():
        speed = f"{r['images_per_s']:.0f}" + (f" ({r['images_per_s'] / base:.1f}x)" if base else "")
        lines.append(
            f"| {tool} | {speed} | {urls / r['wall_s']:.0f} | {r['stored']} / {expected} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_mem_mb']:.0f} |"
        )
    return "\n".join(lines)


def run_tools(
    rows: list[tuple[str, str, str]], tools: list[str], port: int, server_pid: int, work: Path, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Run each tool on ``rows`` (its own URL prefix, so its own fresh fault state) and measure it."""
    results: dict[str, dict[str, float]] = {}
    for tool in tools:
        name = f"{tool}-{len(rows)}"
        inputs = write_inputs(rows, port, name, work)
        out = work / name / "images"
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {tool} on {len(rows)} URLs ...", file=sys.stderr, flush=True)
        stats = measure(tool_command(tool, inputs, out, args, len(rows)), work / f"{name}.log", keep={server_pid})
        stats["stored"] = _count_images(out)
        stats["images_per_s"] = stats["stored"] / stats["wall_s"]
        results[tool] = stats
    return results


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Serve, run every tool on the same URL list (and the long list, if asked), and collect the measurements."""
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    become_subreaper()
    rows = build_rows(max(args.urls, args.steady_urls))
    short = rows[: args.urls]
    server, port = start_server(work, args)
    report: dict[str, object] = {
        "urls": len(short),
        "recoverable": sum(recoverable(n) for _, n, _ in short),
        "settings": vars(args),
    }
    try:
        report["results"] = run_tools(short, args.tools.split(","), port, server.pid, work, args)
        if args.steady_urls:
            steady = [t for t in args.tools.split(",") if t != "original"]  # the original would take minutes
            report["long"] = {
                "urls": len(rows),
                "recoverable": sum(recoverable(n) for _, n, _ in rows),
                "results": run_tools(rows, steady, port, server.pid, work, args),
            }
    finally:
        server.terminate()
        server.wait()
    return report


def steady_markdown(short: dict[str, dict[str, float]], long: dict[str, object], short_urls: int) -> str:
    """The steady-state table: the extra URLs of the long list over the extra time they took.

    Fixed costs (start-up, the wait for the last hung URLs) cancel out; what is left is the rate a
    tool keeps on a long list such as the real ~400k URLs.
    """
    lines = [
        f"| tool | wall s, {short_urls} URLs | wall s, {long['urls']} URLs | stored, {long['urls']} URLs | "
        f"images/s, {long['urls']} URLs | steady-state images/s (marginal) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    results = long["results"]
    rates = {t: (r["stored"] - short[t]["stored"]) / (r["wall_s"] - short[t]["wall_s"]) for t, r in results.items()}
    base = rates.get("img2dataset")
    for tool, r in results.items():
        ratio = f" ({rates[tool] / base:.1f}x)" if base else ""
        lines.append(
            f"| {tool} | {short[tool]['wall_s']:.1f} | {r['wall_s']:.1f} | {r['stored']} / "
            f"{long['recoverable']} | {r['images_per_s']:.0f} | {rates[tool]:.0f}{ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.bench_download``."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=5000, help="URLs in the list (default 5000)")
    parser.add_argument("--tools", default="original,img2dataset,ours", help="comma-separated tools to run")
    parser.add_argument(
        "--steady-urls",
        type=int,
        default=20000,
        help="also run img2dataset and ours on this many URLs and print their steady-state rates "
        "(default 20000; 0: skip)",
    )
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight for every tool")
    parser.add_argument("--timeout", type=float, default=2.0, help="read timeout in seconds (total: 2.5x)")
    parser.add_argument("--retries", type=int, default=2, help="retries for img2dataset and ours")
    parser.add_argument("--image-size", type=int, default=256, help="stored shorter side")
    parser.add_argument("--latency-ms", type=float, default=80.0, help="median server latency")
    parser.add_argument("--sigma", type=float, default=0.6, help="lognormal sigma of the latency")
    parser.add_argument("--workdir", default=str(REPO / "bench" / "results" / "download"), help="scratch folder")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--original-client", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.latency_ms / 1000, args.sigma, seed=0)
        return 0
    if args.original_client:
        original_client(*args.original_client, size=args.image_size, timeout=args.timeout)
        return 0
    report = run_benchmark(args)
    table = markdown(report["results"], report["recoverable"], report["urls"])
    print(
        f"\n{report['urls']} URLs, {report['recoverable']} recoverable; latency lognormal median "
        f"{args.latency_ms:.0f} ms; {args.concurrency} requests in flight; 2 processes; {os.cpu_count()} CPUs\n"
    )
    print(table)
    if "long" in report:
        print(
            f"\nsteady state: the same tools on {report['long']['urls']} URLs; marginal rate = extra images "
            f"stored / extra wall time\n"
        )
        print(steady_markdown(report["results"], report["long"], report["urls"]))
    target = REPO / "bench" / "results" / "download.json"
    target.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
