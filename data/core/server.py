"""One way to run an aiohttp application in the background: the demo's image CDN stand-in, the test
servers, and any stage that needs a local HTTP server while the main thread works."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

from aiohttp import web


class BackgroundServer:
    """Serve ``app_factory()`` on ``host:port`` (0 = a free port) from a daemon thread with its own loop.

    Use as a context manager, or :meth:`start` / :meth:`stop`. The application is built inside the
    server's loop, so handlers and middlewares run there.
    """

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.2,
    ) -> None:
        self.host, self.port = host, port
        self._factory = app_factory
        self._shutdown_timeout = shutdown_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="background-server")
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of a route (``path`` starts with ``/``)."""
        return self.base_url + path

    def start(self, timeout: float = 30) -> "BackgroundServer":
        """Start serving; returns self once the socket accepts connections."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._factory(), access_log=None, shutdown_timeout=self._shutdown_timeout)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    def stop(self, timeout: float = 30) -> None:
        """Stop serving, end the thread and close its loop (a second call does nothing)."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout)
            self._runner = None
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():  # a loop still running cannot be closed; a daemon thread ends with us
            self._loop.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
