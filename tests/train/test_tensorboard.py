"""``make tensorboard``: the configured runs folder, SET with spaces intact, a real TensorBoard answering."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_missing_runs_folder_is_one_error_line_naming_it_through_make(tmp_path):
    root = tmp_path / "two words"
    proc = subprocess.run(
        ["make", "-s", "tensorboard", f'SET=paths.root="{root}"'],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(root / "runs") in errors[0] and "make train" in errors[0]
    assert not root.exists()  # nothing created


def test_tensorboard_serves_the_configured_runs_folder(tmp_path):
    (tmp_path / "runs" / "a-run" / "logs").mkdir(parents=True)
    port = _free_port()
    command = [sys.executable, "-m", "train.tensorboard", "--set", f"paths.root={tmp_path}"]
    proc = subprocess.Popen(
        [*command, "--", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 120, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
                with direct.open(f"http://127.0.0.1:{port}/data/logdir", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert str(tmp_path / "runs") in body, (body, output)
    assert f"tensorboard on {tmp_path / 'runs'}" in output
