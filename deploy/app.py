"""The aiohttp application: routes, middlewares (CORS, metrics, JSON errors, request timeout), lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from deploy import api, routes
from deploy.images import ImageRejected
from deploy.options import ServeOptions
from deploy.service import SERVICE, ApiError, Service, error_response
from deploy.title import TITLES, TitleModel

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _route(request: web.Request) -> str:
    """A bounded label for the metrics: the route's pattern, never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests by route and status, latency, requests in flight."""
    metrics = request.app[SERVICE].metrics
    metrics.in_flight.inc()
    started, status = time.perf_counter(), 499  # 499: the client went away before an answer
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics.in_flight.dec()
        route = _route(request)
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as ``{"error": ..., "code": ...}`` with its status (TF Serving's error body)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except ImageRejected as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except TimeoutError:
        timeout = request.app[SERVICE].options.request_timeout
        return error_response(504, "timeout", f"no answer within serve.request_timeout = {timeout} s")
    except Exception:  # a bug: logged with its traceback, answered as a 500 rather than a dropped connection
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error (see the server log)")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) in our error body."""
    headers, message = {}, exc.reason
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}: use {headers['Allow']}"
    elif exc.status == 404:
        message = f"no route {request.path}: try /v1/models/<model>, /v1/models/<model>:predict, /predict or /readyz"
    elif exc.status == 413 and exc.text:
        message = exc.text
    return error_response(exc.status, HTTP_CODES.get(exc.status, "http_error"), message, headers)


@web.middleware
async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Cancel a request that takes longer than ``serve.request_timeout`` (reading included)."""
    async with asyncio.timeout(request.app[SERVICE].options.request_timeout):
        return await handler(request)


def cors_middleware(origins: tuple[str, ...]):  # noqa: ANN201 (an aiohttp middleware)
    """CORS for the configured origins only (``*`` for any); preflights answered here."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and ("*" in origins or origin in origins)
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if preflight and not allowed:
            return error_response(403, "cors_forbidden", f"origin {origin} is not in serve.cors_origins")
        response = web.Response(status=204) if preflight else await handler(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else str(origin)
            response.headers["Vary"] = "Origin"
        if preflight:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", "Content-Type"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    return cors


def build_app(model_dir: Path, options: ServeOptions, titles: TitleModel | None = None) -> web.Application:
    """The server for ``model_dir`` (``{exports}/<model>``); it starts answering before a version is loaded
    (``/readyz`` says 503 until then) and picks up new versions while it runs."""
    middlewares = [observe, errors, deadline]
    if options.cors_origins:
        middlewares.insert(0, cors_middleware(options.cors_origins))
    app = web.Application(client_max_size=options.max_body_bytes, middlewares=middlewares)
    app[SERVICE] = Service(model_dir, options)
    if titles is not None:  # titles answered too (deploy/title.py)
        app[TITLES] = titles
    api.add_routes(app)
    routes.add_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    service.batcher.start()
    watcher = asyncio.get_running_loop().create_task(service.watcher.watch(service.options.poll_interval))
    yield
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    await service.batcher.stop()
    service.watcher.close()
