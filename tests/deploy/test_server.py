"""Every route of make serve and its errors, against a real server on 127.0.0.1 serving a real export."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import MODEL, call, decode_rgb, multipart, photo, serving
from train.predict import Predictor

pytestmark = pytest.mark.slow
BASE = f"/v1/models/{MODEL}"


@pytest.fixture(scope="module")
def server(exported):
    with serving(exported.version_dir.parent, max_body_bytes=200_000, max_pixels=1_000_000, max_files=4) as running:
        yield running


@pytest.fixture(scope="module")
def keras(trained):
    return Predictor.load(trained.run_dir)


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _keras_probs(keras, tmp_path, images):
    files = []
    for i, data in enumerate(images):
        files.append(tmp_path / f"{i}.img")
        files[-1].write_bytes(data)
    return keras.predict_files(files)


def test_health_readiness_and_the_upload_page(server):
    assert call(server.url("/healthz"))[::2] == (200, {"status": "ok"})
    assert call(server.url("/readyz"))[::2] == (200, {"status": "ready", "model": MODEL, "version": 1})
    status, headers, page = call(server.url("/"))
    assert status == 200 and headers["Content-Type"].startswith("text/html") and 'type="file"' in page


def test_predict_route_raw_and_multipart(server, keras, tmp_path):
    images = [photo(50, 40, seed=1), photo(40, 60, "png", seed=2)]
    expected = _keras_probs(keras, tmp_path, images)
    status, _, body = call(server.url("/predict"), images[0], "image/jpeg")
    assert status == 200 and body["model"] == MODEL
    top = body["predictions"][0]["top"]
    assert [t["class"] for t in top] == [name for name, _ in keras.top_k(expected[:1], 3)[0]]
    assert [t["score"] for t in top] == pytest.approx([p for _, p in keras.top_k(expected[:1], 3)[0]], abs=1e-5)
    assert body["predictions"][0]["model_version"] == 1

    assert len(call(server.url("/predict?k=2"), images[1], "application/octet-stream")[2]["predictions"][0]["top"]) == 2
    assert call(server.url("/predict?k=0"), images[1], "image/png")[0] == 400

    body, kind = multipart(
        [("a.jpg", images[0], "image/jpeg"), ("b.png", images[1], "image/png"), ("c.txt", b"hi", "text/plain")]
    )
    status, _, answer = call(server.url("/predict"), body, kind)
    assert status == 200
    rows = answer["predictions"]
    assert [r["file"] for r in rows] == ["a.jpg", "b.png", "c.txt"]
    for row, probs in zip(rows, expected):
        assert row["top"][0]["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert rows[2]["code"] == "not_an_image" and "top" not in rows[2]

    body, kind = multipart([("x.txt", b"no", "text/plain"), ("y.jpg", images[0][:200], "image/jpeg")])
    status, _, answer = call(server.url("/predict"), body, kind)
    assert status == 400 and answer["code"] == "not_an_image"
    assert [r["code"] for r in answer["predictions"]] == ["not_an_image", "truncated_image"]
    body, kind = multipart([(f"{i}.jpg", images[0], "image/jpeg") for i in range(5)])
    assert call(server.url("/predict"), body, kind)[2]["code"] == "too_many_files"
    assert call(server.url("/predict"), b"--x--\r\n", "multipart/form-data; boundary=x")[2]["code"] == "empty_body"


def _bomb() -> bytes:
    jpeg = photo(40, 30)
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", 20_000, 20_000) + jpeg[at + 9 :]


@pytest.mark.parametrize(
    "body, kind, status, code",
    [
        (b"", "image/jpeg", 400, "empty_body"),
        (b"plain words", "application/octet-stream", 400, "not_an_image"),
        ("truncated", "image/jpeg", 400, "truncated_image"),
        ("tiff", "image/tiff", 415, "unsupported_image_format"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),  # JSON is a title request now (test_titles.py)
        ("oversize", "image/jpeg", 413, "body_too_large"),
        ("bomb", "image/jpeg", 413, "too_many_pixels"),
    ],
)
def test_predict_route_errors(server, body, kind, status, code):
    payload = {
        "truncated": photo(80, 60)[:-400],
        "tiff": photo(20, 20, "tiff"),
        "oversize": photo(20, 20) + b"\x00" * 250_000,
        "bomb": _bomb(),
    }.get(body, body)
    got, _, answer = call(server.url("/predict"), payload, kind)
    assert (got, answer["code"]) == (status, code) and answer["error"]


def test_tf_serving_predict_row_and_columnar_with_b64(server, keras, tmp_path):
    images = [photo(50, 40, seed=3), photo(36, 36, "webp", seed=4)]
    expected = _keras_probs(keras, tmp_path, images)
    classes = list(keras.classes)
    for instances in ([_b64(i) for i in images], [{"image_bytes": _b64(i)} for i in images]):
        status, _, body = call(server.url(f"{BASE}:predict"), {"instances": instances})
        assert status == 200 and [p["classes"] for p in body["predictions"]] == [classes, classes]
        np.testing.assert_allclose([p["probabilities"] for p in body["predictions"]], expected, atol=1e-5)
    for inputs in ({"image_bytes": [_b64(i) for i in images]}, [_b64(i) for i in images]):
        status, _, body = call(server.url(f"{BASE}/versions/1:predict"), {"inputs": inputs})
        assert status == 200 and body["outputs"]["classes"] == [classes, classes]
        np.testing.assert_allclose(body["outputs"]["probabilities"], expected, atol=1e-5)
    websafe = {"b64": base64.urlsafe_b64encode(images[0]).decode("ascii")}
    np.testing.assert_allclose(
        call(server.url(f"{BASE}:predict"), {"instances": [websafe]})[2]["predictions"][0]["probabilities"],
        expected[0],
        atol=1e-5,
    )


def test_tf_serving_pixels_signature(server, keras, tmp_path):
    png = photo(30, 20, "png", seed=5)
    pixels = decode_rgb(png)
    body = {"signature_name": "serving_pixels", "instances": [pixels.tolist()]}
    status, _, answer = call(server.url(f"{BASE}:predict"), body)
    assert status == 200
    np.testing.assert_allclose(
        answer["predictions"][0]["probabilities"], _keras_probs(keras, tmp_path, [png])[0], atol=1e-5
    )
    bad = {"signature_name": "serving_pixels", "inputs": {"pixels": [[[1, 2]]]}}
    assert call(server.url(f"{BASE}:predict"), bad)[2]["code"] == "invalid_request"
    too_bright = {"signature_name": "serving_pixels", "instances": [[[[300, 0, 0]]]]}
    assert call(server.url(f"{BASE}:predict"), too_bright)[0] == 400


def test_tf_serving_classify_status_and_metadata(server, keras, tmp_path):
    image = photo(44, 44, seed=6)
    expected = _keras_probs(keras, tmp_path, [image])[0]
    status, _, body = call(server.url(f"{BASE}:classify"), {"examples": [{"image_bytes": _b64(image)}]})
    assert status == 200 and [c for c, _ in body["result"][0]] == list(keras.classes)
    np.testing.assert_allclose([s for _, s in body["result"][0]], expected, atol=1e-5)
    assert call(server.url(f"{BASE}:regress"), {"examples": []})[2]["code"] == "unsupported_method"

    status, _, body = call(server.url(BASE))
    assert status == 200 and body["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    assert call(server.url(f"{BASE}/versions/1"))[0] == 200
    status, _, meta = call(server.url(f"{BASE}/metadata"))
    assert status == 200 and meta["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    pixels = meta["metadata"]["signature_def"]["signature_def"]["serving_pixels"]["inputs"]["pixels"]
    assert pixels["dtype"] == "DT_UINT8" and len(pixels["tensor_shape"]["dim"]) == 4
    assert call(server.url(f"{BASE}/versions/1/metadata"))[0] == 200


@pytest.mark.parametrize(
    "path, body, kind, method, status, code",
    [
        (f"{BASE}:predict", b"{not json", "application/json", None, 400, "invalid_json"),
        (f"{BASE}:predict", b"", "application/json", "POST", 400, "empty_body"),
        (f"{BASE}:predict", [1, 2], None, None, 400, "invalid_request"),
        (f"{BASE}:predict", {"instances": [], "inputs": []}, None, None, 400, "invalid_request"),
        (f"{BASE}:predict", {"instances": [{"image": "x"}]}, None, None, 400, "invalid_request"),
        (f"{BASE}:predict", {"instances": [{"b64": "%%%not base64%%%"}]}, None, None, 400, "invalid_base64"),
        (f"{BASE}:predict", {"instances": [{"b64": "aGVsbG8="}]}, None, None, 400, "not_an_image"),
        (f"{BASE}:predict", {"signature_name": "nope", "instances": ["x"]}, None, None, 400, "unknown_signature"),
        (f"{BASE}:classify", {"examples": [{"caption": "x"}]}, None, None, 400, "invalid_request"),
        ("/v1/models/other:predict", {"instances": []}, None, None, 404, "model_not_found"),
        ("/v1/models/other", None, None, None, 404, "model_not_found"),
        (f"{BASE}/versions/7:predict", {"instances": []}, None, None, 404, "version_not_found"),
        (f"{BASE}/versions/7", None, None, None, 404, "version_not_found"),
        (f"{BASE}/versions/7/metadata", None, None, None, 404, "version_not_found"),
        (f"{BASE}:predict", None, None, "GET", 405, "method_not_allowed"),
        ("/predict", None, None, "GET", 405, "method_not_allowed"),
        (f"{BASE}", b"{}", "application/json", "POST", 405, "method_not_allowed"),
        ("/v2/anything", None, None, None, 404, "not_found"),
    ],
)
def test_tf_serving_errors(server, path, body, kind, method, status, code):
    got, headers, answer = call(server.url(path), body, kind, method)
    assert (got, answer["code"]) == (status, code) and isinstance(answer["error"], str) and answer["error"]
    if status == 405:
        assert headers["Allow"]


def test_a_bad_image_among_good_ones_fails_only_its_request(server):
    good = _b64(photo(40, 40, seed=7))
    truncated = _b64(photo(80, 60, seed=8)[:-300])
    status, _, body = call(server.url(f"{BASE}:predict"), {"instances": [good, truncated]})
    assert (status, body["code"]) == (400, "truncated_image") and body["error"].startswith("instances[1]")


def test_cors_is_off_unless_configured(server):
    preflight = {"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "POST"}
    _, headers, _ = call(server.url("/predict"), method="OPTIONS", headers=preflight)
    assert "Access-Control-Allow-Origin" not in headers
    _, headers, _ = call(server.url("/healthz"), headers={"Origin": "http://elsewhere.test"})
    assert "Access-Control-Allow-Origin" not in headers


def test_metrics_count_routes_statuses_batches_and_decode_failures(server):
    call(server.url("/predict"), b"not an image", "image/jpeg")
    call(server.url("/predict"), photo(30, 30), "image/jpeg")
    status, headers, text = call(server.url("/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["http_requests"].samples
        if s.name == "http_requests_total"
    }
    assert requests[("/predict", "200")] >= 1 and requests[("/predict", "400")] >= 1
    assert any(route == "/v1/models/{model}:predict" for route, _ in requests)  # patterns, not paths
    failures = {
        s.labels["reason"]: s.value for s in families["image_decode_failures"].samples if s.name.endswith("_total")
    }
    assert failures["not_an_image"] >= 1
    assert "http_requests_in_flight" in families and "http_request_duration_seconds" in families
    batches = {s.name: s.value for s in families["inference_batch_size"].samples}
    assert batches["inference_batch_size_count"] >= 1 and batches["inference_batch_size_sum"] >= 1
    assert {s.value for s in families["model_version"].samples} == {1.0}
