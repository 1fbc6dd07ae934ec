"""The one background aiohttp server: serves, stops, closes its loop, and a second stop does nothing."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from aiohttp import web

from data.core.server import BackgroundServer


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def test_it_serves_then_stops_and_closes_its_loop():
    server = BackgroundServer(_app).start()
    with urllib.request.urlopen(server.url("/"), timeout=10) as response:
        assert response.read() == b"hello"
    server.stop()
    assert server._loop.is_closed() and not server._thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url("/"), timeout=5)
    server.stop()  # a second stop is harmless


def test_as_a_context_manager_it_picks_a_free_port():
    with BackgroundServer(_app) as first, BackgroundServer(_app) as second:
        assert first.port != second.port and 0 not in (first.port, second.port)
    assert first._loop.is_closed() and second._loop.is_closed()
