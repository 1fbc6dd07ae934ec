"""What the download stage passes around: its options, the failure statuses, and one manifest row.

Every input URL ends as exactly one :class:`Record`: ``status`` is ``"ok"`` for a stored image, otherwise
one of the failure statuses below, with a short ``reason`` (e.g. ``"HTTP 404"``) that is safe to count.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

from data.core import contracts
from data.core.config import ConfigError
from data.core.options import StageOptions

OK = contracts.OK  # a stored image: the status every reader of a manifest keeps (named in the contracts)
INVALID_URL = "invalid_url"  # not http(s), malformed, or a redirect to such a URL
INVALID_INPUT = "invalid_input"  # empty or unsafe key, empty label
NOT_FOUND = "not_found"  # HTTP 404 / 410
FORBIDDEN = "forbidden"  # HTTP 401 / 403 / 451
HTTP_ERROR = "http_error"  # any other unexpected HTTP status
SERVER_ERROR = "server_error"  # HTTP 5xx
RATE_LIMITED = "rate_limited"  # HTTP 429 after every retry (or a Retry-After over the cap)
TIMEOUT = "timeout"  # connect / read / total timeout, HTTP 408
CONNECTION_ERROR = "connection_error"  # refused, reset, DNS failure, server disconnected
TRUNCATED = "truncated"  # the connection ended before the announced body
TOO_MANY_REDIRECTS = "too_many_redirects"
TOO_LARGE = "too_large"  # body over max_bytes
NOT_IMAGE = "not_image"  # Content-Type or magic bytes of something else (HTML, JSON...)
DECODE_ERROR = "decode_error"  # looks like an image but OpenCV cannot decode it (corrupt)
TOO_MANY_PIXELS = "too_many_pixels"  # decompression-bomb guard: width x height over max_pixels

# Worth another attempt, in this run (with backoff) and in the next one (a rerun retries only these).
RETRYABLE = frozenset({SERVER_ERROR, RATE_LIMITED, TIMEOUT, CONNECTION_ERROR, TRUNCATED})

RESIZE_MODES = ("shorter", "longer", "pad", "none")
DISTRIBUTORS = ("local", "processes", "ray")  # where shards run: this process, local processes, a Ray cluster


@dataclass(frozen=True)
class DownloadOptions(StageOptions):
    """The ``[download]`` section of the configuration, typed and checked."""

    SECTION = "download"

    concurrency: int = 128
    per_host: int = 32
    rate_per_host: float = 0.0
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 20_000_000
    max_pixels: int = 60_000_000
    retries: int = 3
    backoff: float = 0.5
    max_retry_after: float = 60.0
    image_size: int = 256
    resize_mode: str = "shorter"
    upscale: bool = False
    jpeg_quality: int = 90
    shard_size: int = 1000
    workers: int = 2
    user_agent: str = "product-categorization/0.1 (+image dataset builder)"
    distributor: str = "local"
    processes: int = 0
    task_cpus: float = 1.0
    shards_per_task: int = 0

    def check(self) -> None:
        """Raise ``ConfigError`` for a count, size or time out of range, or an unknown mode."""
        positive = (
            "concurrency",
            "per_host",
            "connect_timeout",
            "read_timeout",
            "total_timeout",
            "max_bytes",
            "max_pixels",
            "image_size",
            "shard_size",
            "workers",
            "task_cpus",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"download.{name} must be > 0, got {getattr(self, name)!r}")
        for name in (
            "rate_per_host",
            "retries",
            "backoff",
            "max_redirects",
            "max_retry_after",
            "processes",
            "shards_per_task",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"download.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"download.resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.distributor not in DISTRIBUTORS:
            raise ConfigError(f"download.distributor must be one of {DISTRIBUTORS}, got {self.distributor!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"download.jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")


class InputRow(NamedTuple):
    """One URL to fetch; ``folder`` is the label made safe as a folder name ("" when it cannot be)."""

    key: str
    url: str
    label: str
    folder: str


@dataclass
class Outcome:
    """What every result row starts with: the input URL, its status and why."""

    key: str
    url: str
    label: str
    status: str
    reason: str = ""
    http_status: int | None = None
    attempts: int = 0


@dataclass
class Record(Outcome):
    """One manifest row: the outcome for one input URL."""

    bytes: int = 0
    orig_width: int | None = None
    orig_height: int | None = None
    width: int | None = None
    height: int | None = None
    sha256: str = ""
    elapsed_s: float = 0.0
    path: str = ""


MANIFEST_COLUMNS = tuple(f.name for f in fields(Record))


@dataclass
class ValidationRecord(Outcome):
    """One row of ``url_validation.parquet`` (``make validate-urls``): a URL checked, nothing stored."""

    content_type: str = ""
    bytes: int | None = None
    elapsed_s: float = 0.0
