"""HTTP for the downloader: one aiohttp session, global and per-host limits, bounded retries.

:class:`Fetcher` turns every outcome into a :class:`FetchResult` (never an exception for a network or
HTTP failure). Transient failures (5xx, 429, timeouts, resets, truncated bodies) are retried with
exponential backoff and jitter, or after the ``Retry-After`` the server asked for; a timeout only once,
so that hung servers cannot stretch the end of a run. A 429 or 503 also halves the host's concurrency
(see :mod:`data.download.limits`). Permanent failures (404, 403, not an image) are not retried. Every attempt
is bounded by connect/read/total timeouts, the number of redirects and the body size, so a run cannot
hang on one URL.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from data.core.image_headers import SNIFF_BYTES, sniff_format
from data.download.limits import HostLimits
from data.download.records import (
    CONNECTION_ERROR,
    FORBIDDEN,
    HTTP_ERROR,
    INVALID_URL,
    NOT_FOUND,
    NOT_IMAGE,
    OK,
    RATE_LIMITED,
    RETRYABLE,
    SERVER_ERROR,
    TIMEOUT,
    TOO_LARGE,
    TOO_MANY_REDIRECTS,
    TRUNCATED,
    DownloadOptions,
)

_NON_IMAGE_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml",
    "application/javascript",
    "video/",
    "audio/",
)
_DRAIN_LIMIT = 65_536  # read small error pages so the connection can be reused


@dataclass
class FetchResult:
    """The outcome of one URL after every attempt; ``body`` is set only for a GET that got an image."""

    status: str
    reason: str = ""
    http_status: int | None = None
    attempts: int = 0
    body: bytes | None = None
    content_type: str = ""
    size: int | None = None
    elapsed_s: float = 0.0
    retry_after: float | None = None


def check_url(url: str) -> str | None:
    """Why ``url`` must not be requested (a short reason), or None when it is a usable http(s) URL."""
    if not url:
        return "empty URL"
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "malformed URL"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme or 'none'!r} is not http(s)"
    if not parsed.host:
        return "no host"
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_status(code: int) -> str:
    """The failure status for a non-2xx HTTP status code."""
    if code in (404, 410):
        return NOT_FOUND
    if code in (401, 403, 451):
        return FORBIDDEN
    if code == 429:
        return RATE_LIMITED
    if code == 408:
        return TIMEOUT
    if code >= 500 and code not in (501, 505):
        return SERVER_ERROR
    return HTTP_ERROR


def _timeout_reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timeout"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "read timeout"
    return "total timeout"


def _error_result(exc: BaseException, max_redirects: int) -> FetchResult:
    """Map an exception raised by one attempt to a result (order matters: subclasses first)."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FetchResult(TOO_MANY_REDIRECTS, f"over {max_redirects} redirects")
    if isinstance(exc, aiohttp.InvalidURL):
        redirect = isinstance(exc, aiohttp.RedirectClientError)
        return FetchResult(INVALID_URL, "redirect to a non-http(s) URL" if redirect else "malformed URL")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchResult(TRUNCATED, "body ended before its announced length")
    if isinstance(exc, TimeoutError):
        return FetchResult(TIMEOUT, _timeout_reason(exc))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchResult(CONNECTION_ERROR, "DNS lookup failed")
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return FetchResult(CONNECTION_ERROR, "connection refused" if refused else "cannot connect")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return FetchResult(CONNECTION_ERROR, "server disconnected")
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchResult(HTTP_ERROR, "malformed HTTP response")
    if isinstance(exc, aiohttp.ClientOSError):
        return FetchResult(CONNECTION_ERROR, "connection reset")
    return FetchResult(CONNECTION_ERROR, type(exc).__name__)


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> bytes | None:
    """The whole body, or None as soon as it grows past ``cap`` bytes (after decompression)."""
    buf = bytearray()
    async for chunk in content.iter_any():
        buf.extend(chunk)
        if len(buf) > cap:
            return None
    return bytes(buf)


async def _read_head(content: aiohttp.StreamReader, count: int) -> bytes:
    """The first ``count`` bytes of a body (fewer when it is shorter)."""
    buf = bytearray()
    while len(buf) < count:
        chunk = await content.read(count - len(buf))
        if not chunk:
            break
        buf.extend(chunk)
    return bytes(buf)


class Fetcher:
    """One aiohttp session shared by every request, with the limits of :class:`DownloadOptions`.

    Use as ``async with Fetcher(opts) as fetcher: result = await fetcher.fetch(url)``.
    """

    def __init__(self, opts: DownloadOptions) -> None:
        self.opts = opts
        self._session: aiohttp.ClientSession | None = None
        self.hosts = HostLimits(opts.per_host, opts.rate_per_host)
        # requests in flight, all hosts together: held for an attempt only, never during a backoff
        self._requests = asyncio.Semaphore(opts.concurrency)

    async def __aenter__(self) -> "Fetcher":
        opts = self.opts
        connector = aiohttp.TCPConnector(limit=opts.concurrency, limit_per_host=opts.per_host, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(
            total=opts.total_timeout, sock_connect=opts.connect_timeout, sock_read=opts.read_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers={"User-Agent": opts.user_agent}
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str) -> FetchResult:
        """GET ``url`` with retries; on success ``body`` holds the image bytes."""
        return await self._with_retries(url, "get")

    async def probe(self, url: str) -> FetchResult:
        """Check ``url`` without downloading it: HEAD, then a ranged GET of the first bytes when needed."""
        head = await self._with_retries(url, "head")
        refused_head = head.http_status in (403, 405, 501)
        if (head.status == OK and head.content_type.startswith("image/")) or not (head.status == OK or refused_head):
            return head
        ranged = await self._with_retries(url, "range")
        ranged.attempts += head.attempts
        ranged.elapsed_s += head.elapsed_s
        return ranged

    async def _with_retries(self, url: str, mode: str) -> FetchResult:
        start = time.monotonic()
        host = URL(url).host or ""
        attempt = 0
        while True:
            attempt += 1
            # the host's slot first, so that no global slot is held while waiting on a throttled host
            async with self.hosts.slot(host) as gate, self._requests:
                result = await self._attempt(url, mode)
                gate.feedback(throttled=result.http_status in (429, 503))  # the whole host slows down
            # a server that timed out twice rarely answers a third time: leave it to the next run
            allowed = min(self.opts.retries, 1) if result.status == TIMEOUT else self.opts.retries
            if result.status not in RETRYABLE or attempt > allowed:
                break
            delay = self._delay(attempt, result.retry_after)
            if delay is None:
                result.reason += f" (Retry-After {result.retry_after:.0f}s over the cap)"
                break
            await asyncio.sleep(delay)
        result.attempts = attempt
        result.elapsed_s = time.monotonic() - start
        return result

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before the next attempt: Retry-After when given (None if over the cap), else backoff."""
        if retry_after is not None:
            if retry_after > self.opts.max_retry_after:
                return None
            return retry_after + random.uniform(0.0, min(1.0, self.opts.backoff))
        return self.opts.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)

    async def _attempt(self, url: str, mode: str) -> FetchResult:
        assert self._session is not None, "use Fetcher as an async context manager"
        headers = {"Range": f"bytes=0-{SNIFF_BYTES - 1}"} if mode == "range" else None
        try:
            async with self._session.request(
                "HEAD" if mode == "head" else "GET", url, headers=headers, max_redirects=self.opts.max_redirects
            ) as resp:
                return await self._read(resp, mode)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error_result(exc, self.opts.max_redirects)

    async def _read(self, resp: aiohttp.ClientResponse, mode: str) -> FetchResult:
        code = resp.status
        if not 200 <= code < 300:
            retry_after = parse_retry_after(resp.headers.get("Retry-After")) if code in (429, 503) else None
            if mode != "head" and resp.content_length is not None and resp.content_length <= _DRAIN_LIMIT:
                await resp.read()
            return FetchResult(classify_status(code), f"HTTP {code}", code, retry_after=retry_after)
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype.startswith(_NON_IMAGE_TYPES):
            return FetchResult(NOT_IMAGE, f"Content-Type {ctype}", code, content_type=ctype)
        length = resp.content_length
        if length is not None and length > self.opts.max_bytes and "Content-Encoding" not in resp.headers:
            return FetchResult(TOO_LARGE, f"over {self.opts.max_bytes} bytes", code, content_type=ctype, size=length)
        if mode == "head":
            return FetchResult(OK, "", code, content_type=ctype, size=length)
        body: bytes | None
        if mode == "range":
            body = await _read_head(resp.content, SNIFF_BYTES)
        else:
            body = await _read_capped(resp.content, self.opts.max_bytes)
            if body is None:
                return FetchResult(TOO_LARGE, f"over {self.opts.max_bytes} bytes", code, content_type=ctype)
        if sniff_format(body[:SNIFF_BYTES]) is None:
            return FetchResult(
                NOT_IMAGE, "empty body" if not body else "no image signature", code, content_type=ctype, size=len(body)
            )
        size = length if mode == "range" else len(body)
        return FetchResult(OK, "", code, body=body if mode == "get" else None, content_type=ctype, size=size)
