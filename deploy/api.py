"""TF Serving's REST API, for the one model this server holds (tensorflow.org/tfx/serving/api_rest).

    GET  /v1/models/<m>[/versions/<v>]                model status
    GET  /v1/models/<m>[/versions/<v>]/metadata       signatures
    POST /v1/models/<m>[/versions/<v>]:predict        {"instances": [...]} (row) or {"inputs": ...} (columnar)
    POST /v1/models/<m>[/versions/<v>]:classify       {"examples": [{"image_bytes": {"b64": ...}}]}

``serving_default`` takes ``image_bytes`` as ``{"b64": "..."}`` (an instance may also be
``{"image_bytes": {"b64": ...}}``); ``"signature_name": "serving_pixels"`` takes uint8 ``pixels`` as nested
lists. Row requests answer ``{"predictions": [{"probabilities": [...], "classes": [...]}, ...]}``, columnar
ones ``{"outputs": {"probabilities": [[...]], "classes": [[...]]}}``, as TF Serving does for two outputs.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
from aiohttp import web

from deploy import title
from deploy.images import ImageRejected
from deploy.layout import BYTES_INPUT, BYTES_SIGNATURE, PIXELS_INPUT, PIXELS_SIGNATURE
from deploy.model import ServedModel
from deploy.service import SERVICE, ApiError, Service

MODEL = r"/v1/models/{model:[^/:]+}"
VERSION = r"/versions/{version:[0-9]+}"


def _version(request: web.Request) -> int | None:
    version = request.match_info.get("version")
    return int(version) if version is not None else None


def _served(request: web.Request) -> tuple[Service, ServedModel]:
    service = request.app[SERVICE]
    return service, service.model(request.match_info["model"], _version(request))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 400 ``empty_body``, ``invalid_json`` or ``invalid_request`` otherwise."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request body is empty: send a JSON object")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return doc


def _bytes(value: Any, where: str) -> bytes:
    """A DT_STRING value: ``{"b64": ...}`` for binary data, a plain string as its UTF-8 bytes."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        text = value["b64"].strip()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            try:  # web-safe base64 (- and _), which TF Serving also reads
                return base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ApiError(400, "invalid_base64", f"{where}: the b64 value is not base64 ({exc})") from exc
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ApiError(400, "invalid_request", f'{where}: expected {{"b64": "<base64 image>"}}, got {type(value).__name__}')


def _named(doc: dict[str, Any], name: str) -> tuple[list[Any], bool]:
    """The values of input ``name`` (one per instance) and whether the request was in row format."""
    if ("instances" in doc) == ("inputs" in doc):
        raise ApiError(400, "invalid_request", 'send "instances" (row format) or "inputs" (columnar), exactly one')
    if "instances" in doc:
        items = doc["instances"]
        if not isinstance(items, list) or not items:
            raise ApiError(400, "invalid_request", '"instances" must be a non-empty list')
        values = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and "b64" not in item:
                if set(item) != {name}:
                    raise ApiError(400, "invalid_request", f"instances[{i}]: this signature takes one input, {name}")
                item = item[name]
            values.append(item)
        return values, True
    value = doc["inputs"]
    if isinstance(value, dict) and "b64" not in value:
        if set(value) != {name}:
            raise ApiError(400, "invalid_request", f'"inputs": this signature takes one input, {name}')
        value = value[name]
    if not isinstance(value, list) or not value:
        raise ApiError(400, "invalid_request", f'"inputs": {name} must be a non-empty list (its first dimension)')
    return value, False


def _pixels(values: list[Any], max_pixels: int) -> np.ndarray:
    """uint8 pixels ``[n, h, w, 3]`` from nested lists; 400 for any other shape or value."""
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"pixels are not a regular array: {exc}") from exc
    if array.ndim != 4 or array.shape[-1] != 3 or not np.issubdtype(array.dtype, np.integer):
        raise ApiError(
            400, "invalid_request", f"pixels must be whole numbers shaped [n, height, width, 3], got {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ApiError(400, "invalid_request", "pixels must be 0-255 (uint8)")
    if array.shape[1] * array.shape[2] > max_pixels:
        raise ApiError(413, "too_many_pixels", f"{array.shape[2]}x{array.shape[1]} is over {max_pixels} pixels")
    return array.astype(np.uint8)


def _probabilities(results: list[Any], where: str) -> np.ndarray:
    """The rows of a request whose images must all succeed (as in TF Serving, one bad input fails it)."""
    for i, result in enumerate(results):
        if isinstance(result, ImageRejected):
            raise ApiError(result.status, result.code, f"{where}[{i}]: {result.message}")
    return np.stack([probs for probs, _ in results])


async def predict(request: web.Request) -> web.Response:
    """``:predict``, in row or columnar format, for either signature."""
    service, model = _served(request)
    doc = await json_body(request)
    if title.has_titles(doc):  # instances with a title, a photo or both (deploy/title.py)
        return await title.predict_instances(request, doc)
    signature = doc.get("signature_name") or BYTES_SIGNATURE
    if signature == BYTES_SIGNATURE:
        values, row = _named(doc, BYTES_INPUT)
        where = "instances" if row else "inputs"
        images = [_bytes(v, f"{where}[{i}]") for i, v in enumerate(values)]
        probs = _probabilities(await service.classify(model, images), where)
    elif signature == PIXELS_SIGNATURE:
        values, row = _named(doc, PIXELS_INPUT)
        probs = await service.predict_pixels(model, _pixels(values, service.options.max_pixels))
    else:
        raise ApiError(
            400,
            "unknown_signature",
            f'Serving signature name: "{signature}" not found in signature def '
            f"(this model has {BYTES_SIGNATURE} and {PIXELS_SIGNATURE})",
        )
    classes = list(model.classes)
    if row:
        return web.json_response({"predictions": [{"probabilities": p.tolist(), "classes": classes} for p in probs]})
    return web.json_response({"outputs": {"probabilities": probs.tolist(), "classes": [classes] * len(probs)}})


async def classify(request: web.Request) -> web.Response:
    """``:classify``: every class with its score, per example."""
    service, model = _served(request)
    doc = await json_body(request)
    examples = doc.get("examples")
    if not isinstance(examples, list) or not examples:
        raise ApiError(400, "invalid_request", '"examples" must be a non-empty list of {"image_bytes": {"b64": ...}}')
    images = []
    for i, example in enumerate(examples):
        value = example.get(BYTES_INPUT) if isinstance(example, dict) else None
        if isinstance(value, list) and len(value) == 1:  # a feature given as a list of one value
            value = value[0]
        if value is None:
            raise ApiError(400, "invalid_request", f"examples[{i}]: needs the feature {BYTES_INPUT}")
        images.append(_bytes(value, f"examples[{i}].{BYTES_INPUT}"))
    probs = _probabilities(await service.classify(model, images), "examples")
    return web.json_response({"result": [[[c, float(p)] for c, p in zip(model.classes, row)] for row in probs]})


async def regress(request: web.Request) -> web.Response:
    """``:regress``: refused, the model is a classifier."""
    _served(request)
    raise ApiError(400, "unsupported_method", "this model is a classifier: use :predict or :classify")


async def status(request: web.Request) -> web.Response:
    """The model status: served, loading and failed versions."""
    service = request.app[SERVICE]
    name, version = request.match_info["model"], _version(request)
    if name != service.options.model_name:
        raise ApiError(404, "model_not_found", f"Servable not found for request: Latest({name})")
    rows = service.watcher.status(version)
    if not rows:
        wanted = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise ApiError(404, "version_not_found", f"Could not find any version for {wanted}")
    return web.json_response({"model_version_status": rows})


async def metadata(request: web.Request) -> web.Response:
    """The signatures of the served version."""
    _, model = _served(request)
    return web.json_response(model.metadata())


def add_routes(app: web.Application) -> None:
    """Register every TF Serving route, with and without ``/versions/<v>``."""
    for prefix in (MODEL, MODEL + VERSION):
        app.router.add_get(prefix, status)
        app.router.add_get(prefix + "/metadata", metadata)
        app.router.add_post(prefix + ":predict", predict)
        app.router.add_post(prefix + ":classify", classify)
        app.router.add_post(prefix + ":regress", regress)
