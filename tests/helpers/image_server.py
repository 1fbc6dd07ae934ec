"""A real aiohttp image server on 127.0.0.1 with every failure the downloader must survive, and fixtures.

The server runs in a background thread with its own event loop, so tests (sync) and subprocesses both
talk to it over real sockets. Stateful routes (fail N times, then succeed) count hits per path: put a
test-specific token in the path to keep tests independent.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from aiohttp import web

from data.core.server import BackgroundServer

from data.download.records import DownloadOptions
from develop.synthetic import draw_product_image, encode_jpeg


def fixture_images() -> dict[str, tuple[bytes, str]]:
    """Named image bodies and their content types: JPEG (landscape, portrait), PNG with alpha, grey, big."""
    landscape = draw_product_image(0, seed=1, size=300)[:200, :]  # 300 x 200
    portrait = draw_product_image(1, seed=2, size=240)[:, :120]  # 120 x 240
    rgba = cv2.cvtColor(draw_product_image(2, seed=3, size=100), cv2.COLOR_BGR2BGRA)
    rgba[:50, :, 3] = 0  # the top half is transparent: it must come out white
    grey = cv2.cvtColor(draw_product_image(3, seed=4, size=90), cv2.COLOR_BGR2GRAY)
    big = draw_product_image(4, seed=5, size=400)  # 160,000 pixels
    good = encode_jpeg(landscape)
    return {
        "landscape.jpg": (good, "image/jpeg"),
        "portrait.jpg": (encode_jpeg(portrait), "image/jpeg"),
        "alpha.png": (cv2.imencode(".png", rgba)[1].tobytes(), "image/png"),
        "grey.png": (cv2.imencode(".png", grey)[1].tobytes(), "image/png"),
        "big.jpg": (encode_jpeg(big), "image/jpeg"),
        "corrupt.jpg": (good[:4] + bytes(range(256)) * 8, "image/jpeg"),  # JPEG signature, garbage after
        "halfcut.jpg": (good[: len(good) // 2], "image/jpeg"),  # cut at the source, honest length
        "html-as-octet": (b"<!doctype html><html><body>not found</body></html>", "application/octet-stream"),
    }


class FaultyImageServer:
    """The fault-injecting server. Routes (``name`` is a key of :func:`fixture_images`):

    ``/img/{name}``                          the image
    ``/slow/{ms}/{name}``                     the image after ``ms`` milliseconds
    ``/status/{code}``                        that HTTP status
    ``/retry-after/{seconds}``                429 with that Retry-After
    ``/flaky/{code}/{times}/{token}/{name}``  ``code`` (429 with Retry-After: 1) ``times`` times, then the image
    ``/redirect/{hops}/{name}``               ``hops`` redirects, then the image; ``/loop`` redirects forever
    ``/truncate/{times}/{token}/{name}``      half the body then a dropped connection, ``times`` times
    ``/html``                                 an HTML page with status 200
    ``/hang``                                 headers never come (longer than any test timeout)
    ``/stall/{name}``                         headers and a few bytes, then silence
    ``/chunked-big``                          a chunked body of 2 MB without Content-Length
    ``/head405/{name}``                       405 to HEAD, the image to GET
    """

    def __init__(self) -> None:
        self.images = fixture_images()
        self.hits: collections.Counter[str] = collections.Counter()
        self.times: dict[str, list[float]] = collections.defaultdict(list)
        self.active = 0  # requests being answered now, and the most at once
        self.max_active = 0
        self._server = BackgroundServer(self._app)

    @property
    def port(self) -> int:
        return self._server.port

    def url(self, path: str) -> str:
        """The absolute URL of a route."""
        return self._server.url(path)

    def start(self) -> "FaultyImageServer":
        """Start serving on a free port (returns self)."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.add_routes(
            [
                web.get("/img/{name}", self._image),
                web.get("/slow/{ms}/{name}", self._slow),
                web.get("/status/{code}", self._status),
                web.get("/retry-after/{seconds}", self._retry_after),
                web.get("/flaky/{code}/{times}/{token}/{name}", self._flaky),
                web.get("/redirect/{hops}/{name}", self._redirect),
                web.get("/loop", self._loop_redirect),
                web.get("/truncate/{times}/{token}/{name}", self._truncate),
                web.get("/html", self._html),
                web.get("/hang", self._hang),
                web.get("/stall/{name}", self._stall),
                web.get("/chunked-big", self._chunked_big),
                web.route("*", "/head405/{name}", self._head405),
            ]
        )
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.times[request.path].append(time.monotonic())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await handler(request)
        finally:
            self.active -= 1

    def _body(self, request: web.Request) -> web.Response:
        body, ctype = self.images[request.match_info["name"]]
        return web.Response(body=body, content_type=ctype)

    async def _image(self, request: web.Request) -> web.Response:
        return self._body(request)

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return self._body(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def _retry_after(self, request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": request.match_info["seconds"]})

    async def _flaky(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if self.hits[request.path] <= int(request.match_info["times"]):
            headers = {"Retry-After": "1"} if code == 429 else {}
            return web.Response(status=code, text="later", headers=headers)
        return self._body(request)

    async def _redirect(self, request: web.Request) -> web.Response:
        hops, name = int(request.match_info["hops"]), request.match_info["name"]
        raise web.HTTPFound(f"/redirect/{hops - 1}/{name}" if hops > 1 else f"/img/{name}")

    async def _loop_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def _truncate(self, request: web.Request) -> web.StreamResponse:
        if self.hits[request.path] > int(request.match_info["times"]):
            return self._body(request)
        body, ctype = self.images[request.match_info["name"]]
        resp = web.StreamResponse(headers={"Content-Type": ctype, "Content-Length": str(len(body))})
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        request.transport.close()
        return resp

    async def _html(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Sorry, this product is gone</body></html>", content_type="text/html")

    async def _hang(self, request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        body, ctype = self.images[request.match_info["name"]]
        resp = web.StreamResponse(headers={"Content-Type": ctype, "Content-Length": str(len(body))})
        await resp.prepare(request)
        await resp.write(body[:100])
        await asyncio.sleep(30)
        return resp

    async def _chunked_big(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"\xff\xd8\xff" + bytes(65_533)
        for _ in range(32):
            await resp.write(chunk)
        return resp

    async def _head405(self, request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response(status=405)
        return self._body(request)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fast_options(**changes) -> DownloadOptions:
    """Small timeouts and sizes so that every failure case finishes in about a second."""
    values = dict(
        concurrency=16,
        per_host=16,
        connect_timeout=1.0,
        read_timeout=0.5,
        total_timeout=2.0,
        retries=2,
        backoff=0.01,
        max_retry_after=5.0,
        image_size=64,
        shard_size=4,
        workers=2,
        max_pixels=100_000,
        max_bytes=1_000_000,
        user_agent="pc-tests/1.0",
    )
    values.update(changes)
    return DownloadOptions(**values)


def write_input(path: Path, rows: list[tuple[str, str, str]], columns=("key", "url", "label")) -> Path:
    """Write ``(key, url, label)`` rows as Parquet or CSV (by suffix) with the given column names."""
    frame = pd.DataFrame(rows, columns=list(columns))
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def decodes(path: Path) -> bool:
    """Whether a stored file is a complete image OpenCV can decode."""
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR) is not None


def crash_on_marker(jobs: list[tuple[bytes, str]], params):
    """A worker job like ``process_batch`` that kills its process on a body equal to ``b"CRASH"``."""
    import os

    from data.download.image import process_batch

    if any(data == b"CRASH" for data, _ in jobs):
        os._exit(3)
    return process_batch(jobs, params)
