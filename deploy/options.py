"""``ExportOptions`` and ``ServeOptions``: the ``[export]`` and ``[serve]`` sections of data/config.toml
(``--run`` and ``--host`` / ``--port`` on top)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from data.core.config import Config, shown
from data.core.options import StageOptions
from data.core.errors import ConfigError

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a folder name (at most 100 characters)


def check_model_name(name: str, key: str) -> str:
    """``name`` when it can be a folder name under ``{exports}`` (TF Serving's ``--model_name``)."""
    if not _MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"{key} = {shown(name)}: use letters, digits, '_', '.' or '-', at most 100 (a folder name under exports)"
        )
    return name


@dataclass(frozen=True)
class ExportOptions(StageOptions):
    """How to export a run (see data/config.toml for the meaning of each key)."""

    SECTION = "export"
    CLI = {"run": "run"}

    run: str = "latest"
    model_name: str = "product_categorizer"
    tflite: tuple[str, ...] = TFLITE_VARIANTS
    max_accuracy_drop: float = 0.02
    parity_tolerance: float = 1e-4
    split: str = "test"
    batch_size: int = 64
    latency_runs: int = 50
    representative_images: int = 100

    def check(self) -> None:
        """Raise ``ConfigError`` for a bad model name, TFLite variant or split, or a count out of range."""
        check_model_name(self.model_name, "export.model_name")
        unknown = [v for v in self.tflite if v not in TFLITE_VARIANTS]
        if unknown:
            raise ConfigError(
                f"export.tflite has unknown variant(s) {unknown}; choose from {', '.join(TFLITE_VARIANTS)}"
            )
        if self.split not in ("train", "validation", "test"):
            raise ConfigError(f"export.split = {self.split!r}; choose train, validation or test")
        for key in ("batch_size", "latency_runs", "representative_images"):
            if getattr(self, key) < 1:
                raise ConfigError(f"export.{key} must be at least 1")
        if self.parity_tolerance < 0:
            raise ConfigError("export.parity_tolerance must not be negative")


@dataclass(frozen=True)
class ServeOptions(StageOptions):
    """How to serve an export (see data/config.toml for the meaning of each key)."""

    SECTION = "serve"
    CLI = {"host": "host", "port": "port"}

    host: str = "127.0.0.1"
    port: int = 8501
    model_name: str = ""
    max_batch_size: int = 32
    batch_timeout: float = 0.005
    max_queue: int = 256
    workers: int = 1
    request_timeout: float = 10.0
    header_timeout: float = 10.0
    max_body_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    max_files: int = 16
    top_k: int = 3
    poll_interval: float = 2.0
    retry_after: int = 1
    cors_origins: tuple[str, ...] = ()

    def resolve(self, cfg: Config) -> "ServeOptions":
        """The model name defaulting to ``export.model_name``."""
        if self.model_name:
            return self
        name = cfg.section("export").get("model_name", ExportOptions.model_name)
        return dataclasses.replace(self, model_name=str(name))

    def check(self) -> None:
        """Raise ``ConfigError`` for a bad model name or port, or a count or time out of range."""
        check_model_name(self.model_name, "serve.model_name")
        for key in ("max_batch_size", "max_queue", "workers", "max_body_bytes", "max_pixels", "max_files", "top_k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"serve.{key} must be at least 1")
        if self.batch_timeout < 0:
            raise ConfigError("serve.batch_timeout must not be negative (0: no waiting for more requests)")
        for key in ("request_timeout", "header_timeout", "poll_interval"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"serve.{key} must be a positive number of seconds")
        if not 0 <= self.port <= 65535:  # the same words for serve.port and --port: either may have set it
            raise ConfigError(f"serve.port = {self.port} (--port {self.port}): expected 0-65535")
