"""Dynamic batching under real concurrency, the bounded queue, the request timeout and configured CORS."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from tests.deploy.support import MODEL, call, photo, serving

pytestmark = pytest.mark.slow


async def _concurrent(url: str, bodies: list[bytes]) -> list[tuple[int, dict]]:
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes) -> tuple[int, dict]:
            async with session.post(url, data=body, headers={"Content-Type": "image/jpeg"}) as response:
                return response.status, await response.json()

        return await asyncio.gather(*(one(b) for b in bodies))


def _batch_sizes(service) -> tuple[float, float, float]:
    """(model calls, images, calls of at most 8 images) from the batch-size histogram."""
    samples = {
        (s.name, s.labels.get("le")): s.value for metric in service.metrics.batch_size.collect() for s in metric.samples
    }
    return (
        samples[("inference_batch_size_count", None)],
        samples[("inference_batch_size_sum", None)],
        samples[("inference_batch_size_bucket", "8.0")],
    )


def test_concurrent_requests_share_model_calls(exported):
    with serving(exported.version_dir.parent, max_batch_size=8, batch_timeout=0.2) as server:
        bodies = [photo(40, 40, seed=i) for i in range(16)]
        results = asyncio.run(_concurrent(server.url("/predict"), bodies))
        assert [status for status, _ in results] == [200] * 16
        calls, images, small = _batch_sizes(server.service)
        assert images == 16 and calls < 16  # requests shared model calls...
        assert small == calls  # ...of at most max_batch_size images each
        answers = [body["predictions"][0]["top"][0]["class"] for _, body in results]
        alone = [call(server.url("/predict"), b, "image/jpeg")[2]["predictions"][0]["top"][0]["class"] for b in bodies]
        assert answers == alone  # batched or not, each request gets its own image's answer


def test_a_full_queue_answers_503_with_retry_after(exported):
    with serving(exported.version_dir.parent, max_queue=2, retry_after=3) as server:
        instances = [{"b64": base64.b64encode(photo(30, 30, seed=i)).decode()} for i in range(3)]
        status, headers, body = call(server.url(f"/v1/models/{MODEL}:predict"), {"instances": instances})
        assert (status, body["code"]) == (413, "too_many_instances")  # it can never fit: split, not retry
        assert "Retry-After" not in headers
        assert call(server.url(f"/v1/models/{MODEL}:predict"), {"instances": instances[:2]})[0] == 200
        flood = asyncio.run(_concurrent(server.url("/predict"), [photo(30, 30, seed=i) for i in range(40)]))
        assert {status for status, _ in flood} <= {200, 503} and 200 in {status for status, _ in flood}
        codes = [body["code"] for status, body in flood if status == 503]
        assert set(codes) <= {"overloaded"}
        assert server.service.metrics.rejected.collect()[0].samples[0].value == len(codes)


def test_a_request_slower_than_the_timeout_gets_504_and_cors_follows_the_configuration(exported):
    origin = "http://shop.example"
    # a lone request waits batch_timeout (5 s) for company: longer than request_timeout (1 s)
    options = {"max_batch_size": 64, "batch_timeout": 5.0, "request_timeout": 1.0, "cors_origins": (origin,)}
    with serving(exported.version_dir.parent, **options) as server:
        status, _, body = call(server.url("/predict"), photo(30, 30), "image/jpeg")
        assert (status, body["code"]) == (504, "timeout")
        assert call(server.url("/healthz"))[0] == 200

        preflight = {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        status, headers, _ = call(server.url("/predict"), method="OPTIONS", headers=preflight)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
        assert (
            "POST" in headers["Access-Control-Allow-Methods"]
            and headers["Access-Control-Allow-Headers"] == "content-type"
        )
        assert call(server.url("/healthz"), headers={"Origin": origin})[1]["Access-Control-Allow-Origin"] == origin
        other = {**preflight, "Origin": "http://evil.example"}
        status, headers, body = call(server.url("/predict"), method="OPTIONS", headers=other)
        assert (status, body["code"]) == (403, "cors_forbidden") and "Access-Control-Allow-Origin" not in headers
        assert (
            "Access-Control-Allow-Origin"
            not in call(server.url("/healthz"), headers={"Origin": "http://evil.example"})[1]
        )
