"""Helpers for the deploy tests: real encoded images, a blocking HTTP client, a started server."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from data.core.server import BackgroundServer
from deploy.app import build_app
from deploy.options import ServeOptions
from deploy.service import SERVICE
from develop.synthetic import draw_product_image

MODEL = "product_categorizer"


def photo(width: int = 48, height: int = 40, fmt: str = "jpg", seed: int = 0) -> bytes:
    """A synthetic product photo of ``width`` x ``height`` encoded as ``fmt`` (jpg, png, gif, bmp, webp, tiff)."""
    square = draw_product_image(seed % 7, seed=seed, size=max(width, height))
    image = cv2.resize(square, (width, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(f".{fmt}", image)
    assert ok, fmt
    return buffer.tobytes()


def call(
    url: str,
    body: bytes | dict | list | None = None,
    content_type: str | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; returns status, headers and the JSON body (or the text when it is not JSON)."""
    if isinstance(body, (dict, list)):
        body, content_type = json.dumps(body).encode("utf-8"), content_type or "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, head, json.loads(raw)
    except ValueError:
        return status, head, raw.decode("utf-8", "replace")


def multipart(files: list[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body of ``(file name, bytes, content type)`` parts and its Content-Type."""
    boundary = "deploytestboundary7MA4YWxk"
    chunks = []
    for name, data, kind in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode("utf-8")
            + data
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode("utf-8"), f"multipart/form-data; boundary={boundary}"


def wait_until(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_served(process: Any, url: str, timeout: float) -> None:
    """Wait until the server ``process`` (a ``subprocess.Popen``) answers ``/readyz`` with 200; fail with its
    stderr if it exits first."""

    def ready() -> bool:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            return call(url + "/readyz")[0] == 200
        except OSError:
            return False

    wait_until(ready, timeout=timeout, what="the served model")


def copy_version(source: Path, model_dir: Path, version: int) -> Path:
    """Drop a version in as a deployment would: copied beside, then renamed into place whole."""
    hidden = model_dir / f".incoming-{version}"
    shutil.copytree(source, hidden)
    target = model_dir / str(version)
    hidden.rename(target)
    return target


@contextmanager
def serving(model_dir: Path, wait: bool = True, **options: Any) -> Iterator[BackgroundServer]:
    """A real server on 127.0.0.1 for ``model_dir``; with ``wait``, once a version is loaded and warm."""
    apps = []

    def factory():  # noqa: ANN202
        app = build_app(model_dir, ServeOptions(model_name=MODEL, poll_interval=0.1, **options))
        apps.append(app)
        return app

    with BackgroundServer(factory) as server:
        server.service = apps[0][SERVICE]  # type: ignore[attr-defined]
        if wait:
            wait_until(lambda: server.service.watcher.current is not None, what="a version to be served")
        yield server


def decode_rgb(data: bytes) -> np.ndarray:
    """RGB uint8 pixels of an encoded image (OpenCV decodes to BGR)."""
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
