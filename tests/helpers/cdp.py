"""The Chrome DevTools Protocol transport of the browser test driver (tests/helpers/browser.py).

One websocket (aiohttp) on a private event loop in a daemon thread: commands are synchronous for the
caller, events go to per-session handlers under one condition variable that the caller's waits use.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import aiohttp


class BrowserError(RuntimeError):
    """Chromium did not start, a CDP command failed, or page JavaScript threw."""


class Cdp:
    """One CDP websocket on a private loop; commands are synchronous, events go to per-session handlers."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        self.timeout = timeout
        self.cond = threading.Condition()  # guards every piece of state the event handlers write
        self.handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="cdp-client")
        self._thread.start()
        self._submit(self._connect(ws_url), timeout)

    def _submit(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout + 5)

    async def _connect(self, ws_url: str) -> None:
        self._session = aiohttp.ClientSession()
        # max_msg_size=0: screenshots and big evaluate results exceed aiohttp's 4 MiB default
        self._ws = await self._session.ws_connect(ws_url, max_msg_size=0)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
            elif (handler := self.handlers.get(data.get("sessionId", ""))) is not None:
                with self.cond:
                    handler(data["method"], data.get("params", {}))
                    self.cond.notify_all()
        for fut in self._pending.values():  # the browser went away: fail every command still waiting
            if not fut.done():
                fut.set_exception(BrowserError("the chromium DevTools connection closed"))

    async def _call(self, method: str, params: dict[str, Any], session_id: str, timeout: float) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut = self._pending[msg_id] = self._loop.create_future()
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session_id:
            msg["sessionId"] = session_id
        await self._ws.send_str(json.dumps(msg))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"CDP {method} got no answer within {timeout:g} s") from None
        finally:
            self._pending.pop(msg_id, None)

    def call(self, method: str, session_id: str = "", timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its ``result``; a protocol error raises :class:`BrowserError`."""
        timeout = self.timeout if timeout is None else timeout
        reply = self._submit(self._call(method, params, session_id, timeout), timeout)
        if "error" in reply:
            raise BrowserError(f"CDP {method} failed: {reply['error'].get('message')} {reply['error'].get('data', '')}")
        return reply.get("result", {})

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``predicate()`` (called under the lock) is truthy; return it or raise TimeoutError."""
        with self.cond:
            found = self.cond.wait_for(predicate, timeout)
        if not found:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        return found

    def close(self) -> None:
        async def _close() -> None:
            await self._ws.close()
            await self._session.close()

        try:
            self._submit(_close(), 5)
        except (TimeoutError, OSError, aiohttp.ClientError, BrowserError):
            pass  # chromium may already be gone; the process kill that follows is what matters
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()  # else the loop's self-pipe is closed at garbage collection, with a warning
