"""Our own routes: ``POST /predict`` (raw image or multipart files -> top-k), health, readiness, metrics
and the upload page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from deploy import title
from deploy.images import ImageRejected
from deploy.service import SERVICE, ApiError, Service, error_response

PAGE = Path(__file__).with_name("static") / "index.html"
RAW_TYPES = ("application/octet-stream",)


def _top_k(request: web.Request, service: Service, classes: int) -> int:
    text = request.query.get("k", str(service.options.top_k))
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, "invalid_request", f"k = {text!r}: expected a whole number from 1 to {classes}")
    return min(int(text), classes)


def _check_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"the body is {request.content_length} bytes, over the limit of {limit}")


async def _multipart(request: web.Request, service: Service) -> list[tuple[str | None, bytes]]:
    """Every file part of a multipart body, reading at most ``serve.max_body_bytes`` in all."""
    limit, total, files = service.options.max_body_bytes, 0, []
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "invalid_multipart", "nested multipart bodies are not supported")
            data = bytearray()
            while chunk := await part.read_chunk(1 << 16):
                total += len(chunk)
                if total > limit:
                    raise ApiError(413, "body_too_large", f"the multipart body is over the limit of {limit} bytes")
                data.extend(chunk)
            if part.filename is None and not data:
                continue
            files.append((part.filename or part.name, bytes(data)))
            if len(files) > service.options.max_files:
                raise ApiError(413, "too_many_files", f"more than serve.max_files = {service.options.max_files} files")
    except (ValueError, AssertionError, RuntimeError) as exc:  # aiohttp's parser on a malformed body
        raise ApiError(400, "invalid_multipart", f"the multipart body cannot be read: {exc}") from exc
    if not files:
        raise ApiError(400, "empty_body", "the multipart body has no file")
    return files


async def _files(request: web.Request, service: Service) -> tuple[list[tuple[str | None, bytes]], bool]:
    """The images of a /predict request and whether it was multipart."""
    _check_length(request, service.options.max_body_bytes)
    kind = request.content_type
    if kind.startswith("multipart/"):
        return await _multipart(request, service), True
    if kind.startswith("image/") or kind in RAW_TYPES:
        return [(None, await request.read())], False
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {kind} is not an image: send the file itself (image/jpeg, image/png, ... or "
        "application/octet-stream) or multipart/form-data files",
    )


async def predict_files(request: web.Request) -> web.Response:
    """``POST /predict[?k=3]``: top-k classes per image; one failed file of several is reported beside the others."""
    service = request.app[SERVICE]
    model = service.model(service.options.model_name)
    k = _top_k(request, service, len(model.classes))
    if request.content_type == "application/json":  # a title and/or a base64 photo (deploy/title.py)
        return await title.predict_json(request, k)
    files, multipart = await _files(request, service)
    if multipart and any(name == title.TITLE_FIELD for name, _ in files):  # a title field beside any files
        return await title.predict_form(request, files, k)
    results = await service.classify(model, [data for _, data in files])
    rows: list[dict[str, Any]] = []
    for (name, _), result in zip(files, results):
        if isinstance(result, ImageRejected):
            rows.append({"file": name, "error": result.message, "code": result.code})
            continue
        probs, version = result
        order = probs.argsort(kind="stable")[::-1][:k]
        top = [{"class": model.classes[i], "score": round(float(probs[i]), 6)} for i in order]
        rows.append({"file": name, "source": "image", "model_version": version, "top": top})
    failed = [r for r in results if isinstance(r, ImageRejected)]
    if len(failed) == len(results):  # nothing classified: the request fails with the first reason
        extra = {"predictions": rows} if multipart else {}
        return error_response(failed[0].status, failed[0].code, failed[0].message, extra=extra)
    return web.json_response({"model": model.name, "predictions": rows})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 until a version is loaded and its warm-up prediction passed."""
    service = request.app[SERVICE]
    current = service.watcher.current
    if current is None:
        raise ApiError(503, "not_ready", f"not ready: {service.watcher.not_ready_reason}", service.retry_headers())
    return web.json_response({"status": "ready", "model": current.name, "version": current.version})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition text."""
    service = request.app[SERVICE]
    return web.Response(body=service.metrics.render(), headers={"Content-Type": service.metrics.content_type})


async def page(request: web.Request) -> web.Response:
    """The upload page."""
    return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html")


def add_routes(app: web.Application) -> None:
    """Register /, /predict, /healthz, /readyz and /metrics."""
    app.router.add_get("/", page)
    app.router.add_post("/predict", predict_files)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
