"""The service behind the routes: the served version, the batcher, the metrics and typed HTTP errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from aiohttp import web

from deploy.batcher import Batcher, QueueFull
from deploy.images import ImageRejected, inspect
from deploy.metrics import Metrics
from deploy.model import Prediction, ServedModel
from deploy.options import ServeOptions
from deploy.watcher import ModelWatcher


class ApiError(Exception):
    """A request the service answers with ``status`` and ``{"error": message, "code": code}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> web.Response:
    """TF Serving's error body (``{"error": ...}``) plus our typed ``code`` (and any ``extra`` keys)."""
    return web.json_response({"error": message, "code": code, **(extra or {})}, status=status, headers=headers)


class Service:
    """Everything a request needs; built once per application."""

    def __init__(self, model_dir: Path, options: ServeOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        self.watcher = ModelWatcher(model_dir, options.model_name, self.metrics, (1, options.max_batch_size))
        self.batcher = Batcher(
            self._run_batch,
            self.metrics,
            max_batch_size=options.max_batch_size,
            batch_timeout=options.batch_timeout,
            max_queue=options.max_queue,
            workers=options.workers,
        )

    @staticmethod
    def _run_batch(payloads: Sequence[tuple[ServedModel, bytes, str]]) -> list[Prediction | ImageRejected]:
        """Run one batch (inference thread). Each request named its version when it arrived, so a batch
        that straddles a swap runs as two calls and every request is answered by the version it asked."""
        groups: dict[int, list[int]] = {}
        for i, (model, _, _) in enumerate(payloads):
            groups.setdefault(id(model), []).append(i)
        results: list[Any] = [None] * len(payloads)
        for members in groups.values():
            model = payloads[members[0]][0]
            done = model.classify_batch([(payloads[i][1], payloads[i][2]) for i in members])
            for i, result in zip(members, done):
                results[i] = result
        return results

    def retry_headers(self) -> dict[str, str]:
        """``Retry-After`` for a 503."""
        return {"Retry-After": str(self.options.retry_after)}

    def model(self, name: str, version: int | None = None) -> ServedModel:
        """The version a request is for.

        Raises:
            ApiError: 404 for another model name or a version not being served, 503 before the first load.
        """
        if name != self.options.model_name:
            raise ApiError(404, "model_not_found", f"Servable not found for request: Latest({name})")
        current = self.watcher.current
        if current is None:
            raise ApiError(503, "not_ready", f"not ready: {self.watcher.not_ready_reason}", self.retry_headers())
        if version is not None and version != current.version:
            raise ApiError(
                404,
                "version_not_found",
                f"Servable not found for request: Specific({name}, {version}) (serving version {current.version})",
            )
        return current

    def count(self, rejected: ImageRejected) -> ImageRejected:
        """Record a refused image in ``image_decode_failures_total``."""
        self.metrics.decode_failures.labels(rejected.code).inc()
        return rejected

    async def classify(self, model: ServedModel, images: Sequence[bytes]) -> list[Prediction | ImageRejected]:
        """Probabilities for each image, or why it was refused; all through the batcher.

        Raises:
            ApiError: 413 when the request alone holds more images than the queue (it could never fit: retrying
                cannot help, splitting it can); 503 when the queue has no room for them now.
        """
        if len(images) > self.options.max_queue:
            raise ApiError(
                413,
                "too_many_instances",
                f"{len(images)} images in one request, over serve.max_queue = {self.options.max_queue}: send them "
                f"in requests of at most {self.options.max_queue}",
            )
        results: list[Any] = [None] * len(images)
        payloads, where = [], []
        for i, data in enumerate(images):
            try:
                info = inspect(data, self.options.max_pixels)
            except ImageRejected as exc:
                results[i] = self.count(exc)
                continue
            payloads.append((model, data, info.format))
            where.append(i)
        if payloads:
            try:
                futures = self.batcher.submit(payloads)
            except QueueFull as exc:
                self.metrics.rejected.inc()
                raise ApiError(503, "overloaded", f"overloaded: {exc}; retry later", self.retry_headers()) from exc
            for i, result in zip(where, await asyncio.gather(*futures, return_exceptions=True)):
                if isinstance(result, ImageRejected):
                    results[i] = self.count(result)
                elif isinstance(result, BaseException):  # the model call itself failed: a 500
                    raise result
                else:
                    results[i] = result
        return results

    async def predict_pixels(self, model: ServedModel, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 pixel batch, computed on an inference thread (already a batch: not queued)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.batcher.executor, model.predict_pixels, pixels)


SERVICE = web.AppKey("service", Service)
