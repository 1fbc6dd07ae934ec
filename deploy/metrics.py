"""The service's Prometheus metrics (``/metrics``), in base units: seconds, bytes, counts.

Each application has its own registry, so two servers in one process (tests, benchmarks) never mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every collector of one server."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer a request", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("http_requests_in_flight", "Requests being answered now", registry=r)
        self.request_bytes = Counter("http_request_body_bytes", "Request body bytes read", registry=r)
        self.decode_failures = Counter(
            "image_decode_failures", "Images refused, by reason (the error code)", ["reason"], registry=r
        )
        self.batch_size = Histogram("inference_batch_size", "Images per model call", buckets=BATCH_BUCKETS, registry=r)
        self.inference_seconds = Histogram(
            "inference_duration_seconds", "Time of one model call", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("inference_queue_depth", "Images waiting for a batch", registry=r)
        self.rejected = Counter("inference_queue_rejections", "Requests refused with 503: queue full", registry=r)
        self.model_version = Gauge("model_version", "The version being served (0: none yet)", registry=r)
        self.model_loads = Counter("model_loads", "Version loads, by result", ["result"], registry=r)
        self.title_predictions = Counter(
            "title_predictions", "Answers with a title, by source: text (title only) or fusion", ["source"], registry=r
        )

    def render(self) -> bytes:
        """The exposition text of every collector."""
        return generate_latest(self.registry)
