"""``make serve`` under hostile requests, against a real server (``python -m deploy.serve``) on a real tiny
export: a client's mistake gets 4xx with a typed code and never a 5xx or a traceback in the log; a stalled
client is closed within ``serve.header_timeout``; ``serve.port=0`` announces the port it really has."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.support import call, wait_served
from tests.helpers.bad_input import run_stage
from tests.helpers.signals import start_interruptible

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0  # serve.header_timeout for these cases (the default is 10 s)
MAX_QUEUE = 64  # serve.max_queue: a request with more images can never fit


@dataclass(frozen=True)
class Live:
    """A running server: its base URL, the model's classes, a photo it can classify, its log so far."""

    url: str
    port: int
    classes: list[str]
    photo: bytes
    process: subprocess.Popen

    def log(self) -> str:
        """What the server wrote to stderr (read once it has stopped)."""
        return self.process.stderr.read() if self.process.stderr and self.process.poll() is not None else ""


@pytest.fixture(scope="module")
def live(tiny_run, tmp_path_factory) -> Iterator[Live]:
    root = tiny_run.copy(tmp_path_factory.mktemp("bad-input-serve") / "root")
    exported = run_stage(
        "deploy.export", "--set", f"paths.root={root}", "--set", "export.latency_runs=1", "--set", "export.tflite=[]"
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    command = [sys.executable, "-m", "deploy.serve", "--set", f"paths.root={root}", "--port", "0"]
    command += ["--set", f"serve.header_timeout={HEADER_TIMEOUT}", "--set", f"serve.max_queue={MAX_QUEUE}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = start_interruptible(command, env)
    try:
        banner = process.stdout.readline() if process.stdout else ""
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", banner)
        assert found and found.group(1) != "0", banner  # port 0: the port the system chose, not 0
        port = int(found.group(1))
        url = f"http://127.0.0.1:{port}"
        wait_served(process, url, 180)
        run_dir = root / "runs" / (root / "runs" / "latest").read_text().strip()
        classes = json.loads((run_dir / "classes.json").read_text())
        photo = sorted((root / "processed" / "v1" / "images").glob("*/*.jpg"))[0].read_bytes()
        yield Live(url, port, classes, photo, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _predict_body(count: int, photo: bytes) -> dict:
    import base64

    return {"instances": [{"b64": base64.b64encode(photo).decode("ascii")}] * count}


def test_more_instances_than_the_queue_holds_is_413_not_503(live):
    status, _, body = call(
        f"{live.url}/v1/models/product_categorizer:predict", _predict_body(MAX_QUEUE + 1, live.photo)
    )
    assert status == 413 and body["code"] == "too_many_instances", body
    assert str(MAX_QUEUE) in body["error"]
    status, _, body = call(f"{live.url}/v1/models/product_categorizer:predict", _predict_body(2, live.photo))
    assert status == 200 and len(body["predictions"]) == 2  # what fits is served


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_json_nested_deep_is_400_with_a_code(live, depth):
    body = ("[" * depth + "]" * depth).encode()
    for route in (":predict", ":classify"):
        status, _, answer = call(f"{live.url}/v1/models/product_categorizer{route}", body, "application/json")
        assert status == 400 and answer["code"] == "invalid_json", answer
    wrapped = ('{"signature_name": "serving_pixels", "inputs": ' + "[" * 40 + "1" + "]" * 40 + "}").encode()
    status, _, answer = call(f"{live.url}/v1/models/product_categorizer:predict", wrapped, "application/json")
    assert status == 400 and answer["code"] == "invalid_request", answer


def test_k_out_of_range_is_refused_like_k_zero(live):
    n = len(live.classes)
    for k in ["0", str(n + 1), "9" * 20, "-1", "1.5", "%C2%B2", "", "three"]:
        status, _, body = call(f"{live.url}/predict?k={k}", live.photo, "image/jpeg")
        assert status == 400 and body["code"] == "invalid_k", (k, body)
        assert f"from 1 to {n}" in body["error"]
    status, _, body = call(f"{live.url}/predict?k={n}", live.photo, "image/jpeg")
    assert status == 200 and len(body["predictions"][0]["top"]) == n
    status, _, body = call(f"{live.url}/predict", live.photo, "image/jpeg")  # serve.top_k, capped at the classes
    assert status == 200 and len(body["predictions"][0]["top"]) == min(3, n)


def _closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed ``sock`` (None: still open after ``limit``)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass  # an error answer before the close is fine
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("sent", [b"", b"POST /predict HTTP/1.1\r\n", b"POST /predict HTTP/1.1\r\nHost: x\r\n"])
def test_a_stalled_client_is_closed_within_the_header_timeout(live, sent):
    """A slowloris: a request line and a header (or nothing), then silence; the default keep-alive of 75 s
    would hold the connection far past the 30 s this allows."""
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(sent)
        assert _closed_after(sock, 30) is not None, "the server still holds a stalled connection"
    assert call(live.url + "/healthz")[0] == 200  # and still answers others


def test_a_trickling_client_is_closed_too(live):
    """One header byte per 0.2 s keeps data flowing; the deadline counts from the connection, not the last byte."""
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        sock.settimeout(0.2)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 30 and not closed:
            try:
                sock.sendall(b"a")
                closed = sock.recv(4096) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, "a trickling client held the connection for 30 s"


def test_the_log_has_no_traceback(live):
    """Last: every case above was a client's mistake, so nothing in the log may read as a server failure."""
    live.process.send_signal(signal.SIGINT)
    live.process.wait(timeout=30)
    log = live.log()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
