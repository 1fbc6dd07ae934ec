"""``python -m data.download`` as a real subprocess: killed with SIGKILL and resumed, stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from data.core.config import REPO_ROOT
from data.download.stage import download_images
from data.download.shards import Columns
from tests.helpers.image_server import FaultyImageServer, decodes, fast_options, write_input
from tests.helpers.signals import default_sigint

REPO = REPO_ROOT
COLUMNS = ("id", "image", "category")  # not the default names: the CLI must be told
SETTINGS = dict(concurrency=4, per_host=4, shard_size=10)


def _catalogue(image_server: FaultyImageServer, path: Path, count: int = 120, hanging: int = 0) -> Path:
    """A CSV of slow images (40 ms each) mixed with dead, HTML and corrupt URLs; ``hanging`` more rows at the
    end whose answers take 30 s (so a run cannot finish before a test has signalled it, however busy the
    machine)."""
    rows = []
    for i in range(count):
        route = (
            "/status/404"
            if i % 5 == 0
            else "/html"
            if i % 11 == 0
            else "/img/corrupt.jpg"
            if i % 13 == 0
            else f"/slow/40/{'portrait' if i % 2 else 'landscape'}.jpg"
        )
        rows.append((f"item{i:04d}", image_server.url(f"{route}?n={i}"), ("Fashion", "stores", "other")[i % 3]))
    rows += [(f"hang{i:04d}", image_server.url(f"/hang?n={i}"), "other") for i in range(hanging)]
    return write_input(path, rows, columns=COLUMNS)


def _command(source: Path, out: Path, tmp: Path) -> list[str]:
    opts = fast_options(**SETTINGS)
    cmd = [
        sys.executable,
        "-m",
        "data.download",
        "--input",
        str(source),
        "--out",
        str(out),
        "--no-progress",
        "--key-col",
        "id",
        "--url-col",
        "image",
        "--label-col",
        "category",
        "--set",
        f"paths.root={tmp}",
    ]
    for name in (
        "concurrency",
        "per_host",
        "shard_size",
        "read_timeout",
        "total_timeout",
        "retries",
        "backoff",
        "image_size",
        "max_pixels",
        "workers",
    ):
        cmd += ["--set", f"download.{name}={getattr(opts, name)}"]
    return cmd


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(  # its own process group: the signal reaches its workers too
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_sigint,
    )


def _wait_for_shards(proc: subprocess.Popen, state: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(list(state.glob("shard-*.parquet"))) < count:
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "no shard result appeared"
        time.sleep(0.01)


def _session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            members.append(int(stat.parent.name))
    return members


def _wait_until_session_is_gone(sid: int) -> None:
    deadline = time.monotonic() + 10
    while _session_members(sid):
        assert time.monotonic() < deadline, f"processes outlived the killed run: {_session_members(sid)}"
        time.sleep(0.05)


def _comparable(out: Path) -> pd.DataFrame:
    manifest = pd.read_parquet(out / "manifest.parquet")
    return manifest.drop(columns=["elapsed_s", "attempts"]).reset_index(drop=True)


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).as_posix().startswith(".") and p.suffix == ".jpg"
    }


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(image_server, tmp_path):
    source = _catalogue(image_server, tmp_path / "catalogue.csv")
    reference = tmp_path / "reference"
    download_images(
        source, reference, fast_options(**SETTINGS), columns=Columns("image", "id", "category"), progress=False
    )

    out = tmp_path / "images"
    proc = _start(_command(source, out, tmp_path))
    _wait_for_shards(proc, out / ".shards", 3)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer would: its workers follow
    proc.communicate(timeout=30)
    _wait_until_session_is_gone(proc.pid)
    assert not (out / "manifest.parquet").exists()
    assert all(decodes(out / name) for name in _files(out))  # whatever is there is complete

    rerun = subprocess.run(_command(source, out, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    run = json.loads((out / "download_report.json").read_text())["this_run"]
    assert run["already_done"] >= 30 and run["processed"] > 0  # resumed, not restarted

    pd.testing.assert_frame_equal(_comparable(out), _comparable(reference))
    assert _files(out) == _files(reference)  # same names, same bytes: nothing missing, duplicated or corrupt
    assert not list(out.rglob("*.tmp"))


def test_ctrl_c_stops_cleanly_and_leaves_no_partial_image(image_server, tmp_path):
    source = _catalogue(image_server, tmp_path / "catalogue.csv", count=200, hanging=4)
    out = tmp_path / "images"
    waiting = ["--set", "download.read_timeout=60.0", "--set", "download.total_timeout=60.0"]
    proc = _start(_command(source, out, tmp_path) + waiting)
    _wait_for_shards(proc, out / ".shards", 2)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not list(out.rglob("*.tmp")) and all(decodes(out / name) for name in _files(out))


def test_cli_reports_a_bad_input_without_a_stack_trace(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data.download",
            "--input",
            str(tmp_path / "none.parquet"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "input file not found" in result.stderr and "Traceback" not in result.stderr
