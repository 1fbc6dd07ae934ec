"""Titles in ``make serve``: a title alone, a photo alone, or both, each answered by the model it allows.

    curl -F title='Samsung 55 inch 4K LED TV' localhost:8501/predict                       # the title model
    curl -F title='Running shoes' -F files=@shoe.jpg localhost:8501/predict                 # title and photo fused
    curl -H 'Content-Type: application/json' -d '{"title": "Running shoes", "image": {"b64": "..."}}' \\
        localhost:8501/predict
    curl -d '{"instances": [{"title": "Running shoes"}, {"title": "...", "image_bytes": {"b64": "..."}}]}' \\
        localhost:8501/v1/models/product_categorizer:predict

The title model is a text run (``fusion.text_run``, default ``latest-text``), loaded once when the server
starts; the photo weight of a fused answer comes from ``fusion.run`` (``latest-fusion``; 0.5 without one).
Every answer says its ``source`` (``text``, ``image`` or ``fusion``) and the runs behind it. Bad titles get a
typed 4xx: ``empty_title``, ``title_too_long`` (over ``serve.max_title_bytes``), ``invalid_title_encoding``
(not UTF-8), ``invalid_title`` (not a string); a title with no text model loaded gets 404 ``no_text_model``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from deploy.images import ImageRejected
from deploy.service import SERVICE, ApiError, Service

log = logging.getLogger(__name__)

TITLE_FIELD = "title"
MAX_TITLE_BYTES = 2000


@dataclass
class TitleModel:
    """The loaded title model and how much a photo counts beside it."""

    text: Any  # train.text.TextModel
    text_run: str
    image_weight: float = 0.5
    fusion_run: str | None = None

    @classmethod
    def load(cls, runs_dir: Path, text_ref: str, fusion_ref: str) -> TitleModel | None:
        """The text run ``text_ref`` and the weight of ``fusion_ref``; None (logged) when there is no text run."""
        from data.core.errors import InputError
        from train.predict import read_fusion
        from data.core.runs import RunNotFound, resolve_run
        from train.predict import TextModel

        if not text_ref:
            return None
        try:
            run = resolve_run(runs_dir, text_ref)
            model = cls(TextModel.load(run), run.name)
        except (RunNotFound, InputError) as exc:
            log.warning("titles are not served: %s", exc)
            return None
        try:
            fusion = resolve_run(runs_dir, fusion_ref)
            model.image_weight, model.fusion_run = float(read_fusion(fusion)["image_weight"]), fusion.name
        except (RunNotFound, InputError):
            log.info("no fusion run %r: a title and a photo weigh the same", fusion_ref)
        return model

    def probabilities(self, title: str, classes: Sequence[str]) -> np.ndarray:
        """The title's probabilities over ``classes`` (the served photo model's order)."""
        from train.predict import align

        return align(self.text.predict_proba([title]), self.text.classes, classes)[0]


TITLES = web.AppKey("titles", TitleModel)


def parse_title(value: Any, limit: int = MAX_TITLE_BYTES) -> str:
    """A title from a request (text or raw bytes), checked.

    Raises:
        ApiError: 400 ``invalid_title`` / ``invalid_title_encoding`` / ``empty_title``, 413 ``title_too_long``.
    """
    if isinstance(value, (bytes, bytearray)):
        if len(value) > limit:
            raise ApiError(413, "title_too_long", f"the title is {len(value)} bytes, over the limit of {limit}")
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_title_encoding", f"the title is not UTF-8 text ({exc.reason})") from exc
    if not isinstance(value, str):
        raise ApiError(400, "invalid_title", f"the title must be a string, got {type(value).__name__}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ApiError(413, "title_too_long", f"the title is {size} bytes, over the limit of {limit}")
    if not value.strip():
        raise ApiError(400, "empty_title", "the title is empty: send the product's name, or leave the field out")
    return value.strip()


def _titles(request: web.Request) -> TitleModel:
    titles = request.app.get(TITLES)
    if titles is None:
        raise ApiError(404, "no_text_model", "this server has no title model: train one (make train-text), restart")
    return titles


def _classes(service: Service, titles: TitleModel) -> tuple[Any, tuple[str, ...]]:
    """The served photo version and its classes, or none and the title model's classes before the first load."""
    current = service.watcher.current
    return (current, current.classes) if current is not None else (None, tuple(titles.text.classes))


async def answer(service: Service, titles: TitleModel, title: str | None, images: Sequence[bytes]) -> list[Any]:
    """One ``(probabilities, source, who, classes)`` per image (fused with the title), or the title alone; an
    ``ImageRejected`` for a photo that cannot be read."""
    from train.predict import fuse

    if images:
        model = service.model(service.options.model_name)
        classes: tuple[str, ...] = model.classes
    else:
        model, classes = _classes(service, titles)
    text = titles.probabilities(title, classes) if title is not None else None
    who_text = {"text_run": titles.text_run}
    if not images:
        service.metrics.title_predictions.labels(source="text").inc()
        return [(text, "text", who_text, classes)]
    out: list[Any] = []
    for result in await service.classify(model, list(images)):
        if isinstance(result, ImageRejected):
            out.append(result)
        elif text is None:
            out.append((result[0], "image", {"model_version": result[1]}, classes))
        else:
            service.metrics.title_predictions.labels(source="fusion").inc()
            fused = fuse(result[0][None], text[None], titles.image_weight)[0]
            who = {"model_version": result[1], **who_text, "fusion_run": titles.fusion_run or "equal-weights"}
            out.append((fused, "fusion", who, classes))
    return out


def _row(result: Any, k: int, name: str | None) -> dict[str, Any]:
    if isinstance(result, ImageRejected):
        return {"file": name, "error": result.message, "code": result.code}
    probs, source, who, classes = result
    order = np.argsort(-probs, kind="stable")[:k]
    top = [{"class": classes[i], "score": round(float(probs[i]), 6)} for i in order]
    return {"file": name, "source": source, **who, "top": top}


async def predict_form(request: web.Request, files: list[tuple[str | None, bytes]], k: int) -> web.Response:
    """``POST /predict`` multipart with a ``title`` field (and any files): one row per file, or the title's."""
    service, titles = request.app[SERVICE], _titles(request)
    fields = [data for name, data in files if name == TITLE_FIELD]
    if len(fields) > 1:
        raise ApiError(400, "invalid_request", "send one title field per request")
    title = parse_title(fields[0])
    images = [(name, data) for name, data in files if name != TITLE_FIELD]
    results = await answer(service, titles, title, [data for _, data in images])
    rows = [_row(r, k, name) for r, (name, _) in zip(results, images or [(None, b"")])]
    if all("error" in r for r in rows):
        first = next(r for r in results if isinstance(r, ImageRejected))
        raise ApiError(first.status, first.code, first.message)
    return web.json_response({"model": service.options.model_name, "title": title, "predictions": rows})


async def predict_json(request: web.Request, k: int) -> web.Response:
    """``POST /predict`` with ``{"title": ..., "image": {"b64": ...}}`` (either may be left out, not both)."""
    from deploy.api import _bytes, json_body

    service, doc = request.app[SERVICE], await json_body(request)
    unknown = set(doc) - {TITLE_FIELD, "image"}
    if unknown or not doc:
        raise ApiError(
            400, "invalid_request", f'send {{"title": "...", "image": {{"b64": "..."}}}}; unknown: {sorted(unknown)}'
        )
    title = parse_title(doc[TITLE_FIELD]) if TITLE_FIELD in doc else None
    images = [_bytes(doc["image"], "image")] if "image" in doc else []
    titles = _titles(request) if title is not None else None
    if titles is None:
        results = await answer_images(service, images)
    else:
        results = await answer(service, titles, title, images)
    row = _row(results[0], k, None)
    if "error" in row:
        raise ApiError(results[0].status, results[0].code, results[0].message)
    return web.json_response({"model": service.options.model_name, "predictions": [row]})


async def answer_images(service: Service, images: Sequence[bytes]) -> list[Any]:
    """Photos alone, in :func:`answer`'s shape."""
    model = service.model(service.options.model_name)
    return [
        r if isinstance(r, ImageRejected) else (r[0], "image", {"model_version": r[1]}, model.classes)
        for r in await service.classify(model, list(images))
    ]


def has_titles(doc: dict[str, Any]) -> bool:
    """Whether a TF Serving ``:predict`` body has instances with a ``title``."""
    items = doc.get("instances")
    return isinstance(items, list) and any(isinstance(i, dict) and TITLE_FIELD in i for i in items)


async def predict_instances(request: web.Request, doc: dict[str, Any]) -> web.Response:
    """``:predict`` with ``{"instances": [{"title": ...}, {"title": ..., "image_bytes": {"b64": ...}}, ...]}``."""
    from deploy.api import _bytes
    from deploy.layout import BYTES_INPUT

    service, titles = request.app[SERVICE], _titles(request)
    predictions = []
    for i, item in enumerate(doc["instances"]):
        if not isinstance(item, dict) or not set(item) <= {TITLE_FIELD, BYTES_INPUT} or not item:
            raise ApiError(400, "invalid_request", f"instances[{i}]: expected title and/or {BYTES_INPUT}")
        title = parse_title(item[TITLE_FIELD]) if TITLE_FIELD in item else None
        images = [_bytes(item[BYTES_INPUT], f"instances[{i}].{BYTES_INPUT}")] if BYTES_INPUT in item else []
        result = (
            await (answer(service, titles, title, images) if title is not None else answer_images(service, images))
        )[0]
        if isinstance(result, ImageRejected):
            raise ApiError(result.status, result.code, f"instances[{i}]: {result.message}")
        probs, source, who, classes = result
        predictions.append({"probabilities": probs.tolist(), "classes": list(classes), "source": source, **who})
    return web.json_response({"predictions": predictions})
