"""``download.distributor = "processes"`` and ``"ray"`` against the fault-injecting server on 127.0.0.1: the
manifest and the image files equal a one-machine run's; a shard whose process dies (once, through the test
hook ``PC_DOWNLOAD_TEST_EXIT_ONCE``) runs again, resumes from its journal, and nothing is missing or doubled;
Ctrl-C stops cleanly; asking for Ray where it is not installed is one ``error:`` line."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from data.download import cli
from data.download.stage import download_images
from data.download.tasks import EXIT_ONCE_ENV
from tests.helpers.image_server import FaultyImageServer, decodes, fast_options, write_input
from tests.helpers.signals import default_sigint

# generous timeouts: no route here hangs, and a busy machine must not turn a slow answer into a timeout
SETTINGS = dict(
    concurrency=4, per_host=4, shard_size=10, workers=1, connect_timeout=5.0, read_timeout=5.0, total_timeout=10.0
)
ROUTES = [  # one of each per 10 rows: stateless faults, and two that fail once per URL (token in the path)
    "/slow/30/landscape.jpg",
    "/status/404",
    "/html",
    "/img/corrupt.jpg",
    "/flaky/500/1/{t}/landscape.jpg",
    "/redirect/1/alpha.png",
    "/img/grey.png",
    "/truncate/1/{t}/portrait.jpg",
    "/status/403",
    "/slow/30/portrait.jpg",
]


def _catalogue(image_server: FaultyImageServer, path: Path, count: int = 60, hanging: int = 0) -> tuple[Path, str]:
    """``count`` rows of the mix above (a fresh token: each run meets the once-failing URLs fresh)."""
    token = uuid.uuid4().hex
    rows = []
    for i in range(count):
        route = ROUTES[i % len(ROUTES)].format(t=f"{token}-{i}")
        rows.append((f"k{i:04d}", image_server.url(f"{route}?n={i}"), ("Fashion", "stores", "other")[i % 3]))
    rows += [(f"hang{i:04d}", image_server.url(f"/hang?n={i}"), "other") for i in range(hanging)]
    return write_input(path, rows), token


def _manifest(out: Path, token: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / "manifest.parquet").drop(columns=["elapsed_s", "attempts"])
    frame["url"] = frame["url"].str.replace(token, "TOKEN", regex=False)
    return frame


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.jpg") if "/." not in f"/{p}"}


@pytest.fixture(scope="module")
def reference(image_server, tmp_path_factory):
    """The one-machine run the distributed ones must equal."""
    tmp = tmp_path_factory.mktemp("reference")
    source, token = _catalogue(image_server, tmp / "catalogue.parquet")
    out = tmp / "images"
    summary = download_images(source, out, fast_options(**SETTINGS), progress=False)
    assert summary.report["this_run"]["distributor"] == "local"
    assert 0 < summary.ok < summary.report["urls"] == 60
    return _manifest(out, token), _files(out)


def _run(image_server, tmp_path: Path, distributor: str, **changes):
    source, token = _catalogue(image_server, tmp_path / "catalogue.parquet")
    out = tmp_path / "images"
    options = fast_options(**SETTINGS, distributor=distributor, **changes)
    summary = download_images(source, out, options, progress=False)
    return out, token, summary


def _assert_equal_to_reference(reference, out: Path, token: str) -> None:
    manifest, files = reference
    pd.testing.assert_frame_equal(_manifest(out, token), manifest)  # row by row, column by column
    assert _files(out) == files  # the same names and the same bytes: nothing missing, doubled or corrupt
    assert all(decodes(out / name) for name in files)
    assert not list(out.rglob("*.tmp")) and not list((out / ".shards").glob("*.journal.jsonl"))


def test_processes_equal_the_one_machine_run(image_server, reference, tmp_path):
    out, token, summary = _run(image_server, tmp_path, "processes", processes=2)
    run = summary.report["this_run"]
    assert run["distributor"] == "processes" and run["shards_written"] == 6 and run["processed"] == 60
    assert run["ok"] == summary.ok and run["ok"] + run["failed"] == 60
    _assert_equal_to_reference(reference, out, token)


def test_a_dead_shard_process_is_replaced_and_its_shard_resumes(image_server, reference, tmp_path, monkeypatch):
    marker = tmp_path / "died"
    monkeypatch.setenv(EXIT_ONCE_ENV, str(marker))
    out, token, summary = _run(image_server, tmp_path, "processes", processes=2)
    assert marker.exists()  # a process did die
    assert summary.report["this_run"]["resumed_from_journal"] >= 2  # its journalled rows were not fetched again
    _assert_equal_to_reference(reference, out, token)


def test_rerun_after_a_distributed_run_has_nothing_to_do(image_server, tmp_path):
    out, token, first = _run(image_server, tmp_path, "processes", processes=2)
    source = tmp_path / "catalogue.parquet"
    again = download_images(source, out, fast_options(**SETTINGS, distributor="processes"), progress=False)
    assert again.report["this_run"]["processed"] == 0 and again.report["ok"] == first.report["ok"]


@pytest.mark.parametrize("distributor", ["processes", "ray"])
def test_ctrl_c_stops_the_tasks_cleanly(image_server, tmp_path, distributor):
    if distributor == "ray":
        pytest.importorskip("ray", reason="Ray is not installed (make install-distributed)")
    source, _ = _catalogue(image_server, tmp_path / "catalogue.parquet", count=80, hanging=4)
    out = tmp_path / "images"
    opts = dataclasses.asdict(fast_options(**{**SETTINGS, "read_timeout": 60.0, "total_timeout": 60.0}))
    sets = [f"download.{k}={v}" for k, v in opts.items() if k in SETTINGS]
    sets += [f"download.distributor={distributor}", "download.processes=2", f"paths.root={tmp_path}"]
    cmd = [sys.executable, "-m", "data.download", "--input", str(source), "--out", str(out), "--no-progress"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=default_sigint
    )
    deadline = time.monotonic() + 90
    while len(list((out / ".shards").glob("shard-*.parquet"))) < 2:
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "no shard result appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
    interrupted = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - interrupted < 20, "the stopped run waited for its hanging URLs (30 s)"
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not (out / "manifest.parquet").exists() and not list(out.rglob("*.tmp"))
    assert all(decodes(p) for p in out.rglob("*.jpg"))


def test_ray_without_ray_installed_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, installed or not
    source = write_input(tmp_path / "c.parquet", [("k", "http://127.0.0.1:9/x.jpg", "a")])
    args = ["--input", str(source), "--out", str(tmp_path / "out"), "--set", 'download.distributor="ray"']
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "install-distributed" in err[0], err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_an_unknown_distributor_is_refused(tmp_path, capsys):
    assert cli.main(["--input", str(tmp_path / "x.parquet"), "--set", 'download.distributor="spark"']) == 2
    assert "download.distributor must be one of" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- ray
@pytest.fixture
def ray_cluster(request):
    """A local Ray cluster on 127.0.0.1 with two CPUs, started for one test (``param``: its environment)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (make install-distributed)")
    env = getattr(request, "param", {})
    ray.init(
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), **env}},
        logging_level="WARNING",
    )
    yield ray
    ray.shutdown()


def test_ray_equals_the_one_machine_run(image_server, reference, tmp_path, ray_cluster):
    out, token, summary = _run(image_server, tmp_path, "ray")
    run = summary.report["this_run"]
    assert run["distributor"] == "ray" and run["shards_written"] == 6 and run["ok"] + run["failed"] == 60
    _assert_equal_to_reference(reference, out, token)


MARKER = Path(f"/tmp/pc-ray-died-{uuid.uuid4().hex}")


@pytest.mark.parametrize("ray_cluster", [{EXIT_ONCE_ENV: str(MARKER)}], indirect=True)
def test_a_ray_task_whose_worker_dies_is_retried_and_resumes(image_server, reference, tmp_path, ray_cluster):
    try:
        out, token, summary = _run(image_server, tmp_path, "ray")
        assert MARKER.exists()  # a Ray worker did die mid-shard
    finally:
        MARKER.unlink(missing_ok=True)
    assert summary.report["this_run"]["resumed_from_journal"] >= 2
    _assert_equal_to_reference(reference, out, token)
