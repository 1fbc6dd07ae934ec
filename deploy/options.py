"""``ExportOptions`` and ``ServeOptions``: the ``[export]`` and ``[serve]`` sections of data/config.toml."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data.core.config import options_from_section
from data.core.errors import ConfigError

if TYPE_CHECKING:
    from data.core.config import Config

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ExportOptions:
    """How to export a run (see data/config.toml for the meaning of each key)."""

    model_name: str = "product_categorizer"
    tflite: tuple[str, ...] = TFLITE_VARIANTS
    max_accuracy_drop: float = 0.02
    parity_tolerance: float = 1e-4
    split: str = "test"
    batch_size: int = 64
    latency_runs: int = 50
    representative_images: int = 100


@dataclass(frozen=True)
class ServeOptions:
    """How to serve an export (see data/config.toml for the meaning of each key)."""

    host: str = "127.0.0.1"
    port: int = 8501
    model_name: str = ""
    max_batch_size: int = 32
    batch_timeout: float = 0.005
    max_queue: int = 256
    workers: int = 1
    request_timeout: float = 10.0
    max_body_bytes: int = 10_000_000
    max_pixels: int = 40_000_000
    max_files: int = 16
    top_k: int = 3
    poll_interval: float = 2.0
    retry_after: int = 1
    cors_origins: tuple[str, ...] = ()


def check_model_name(name: str, key: str) -> str:
    """``name`` when it can be a folder name under ``{exports}`` (TF Serving's ``--model_name``)."""
    if not _MODEL_NAME.fullmatch(name):
        raise ConfigError(f"{key} = {name!r}: use letters, digits, '_', '.' or '-' (a folder name under exports)")
    return name


def export_options(cfg: "Config") -> ExportOptions:
    """``[export]`` as options (``run`` is read by the command line); ``ConfigError`` for a bad value."""
    options = options_from_section(ExportOptions, cfg.section("export"), "export", ignore=("run",))
    check_model_name(options.model_name, "export.model_name")
    unknown = [v for v in options.tflite if v not in TFLITE_VARIANTS]
    if unknown:
        raise ConfigError(f"export.tflite has unknown variant(s) {unknown}; choose from {', '.join(TFLITE_VARIANTS)}")
    if options.split not in ("train", "validation", "test"):
        raise ConfigError(f"export.split = {options.split!r}; choose train, validation or test")
    for key in ("batch_size", "latency_runs", "representative_images"):
        if getattr(options, key) < 1:
            raise ConfigError(f"export.{key} must be at least 1")
    if options.parity_tolerance < 0:
        raise ConfigError("export.parity_tolerance must not be negative")
    return options


def serve_options(cfg: "Config") -> ServeOptions:
    """``[serve]`` as options, the model name defaulting to ``export.model_name``; ``ConfigError`` if bad."""
    options = options_from_section(ServeOptions, cfg.section("serve"), "serve")
    if not options.model_name:
        name = cfg.section("export").get("model_name", ExportOptions.model_name)
        options = dataclasses.replace(options, model_name=str(name))
    check_model_name(options.model_name, "serve.model_name")
    for key in ("max_batch_size", "max_queue", "workers", "max_body_bytes", "max_pixels", "max_files", "top_k"):
        if getattr(options, key) < 1:
            raise ConfigError(f"serve.{key} must be at least 1")
    if options.batch_timeout < 0:
        raise ConfigError("serve.batch_timeout must not be negative (0: no waiting for more requests)")
    for key in ("request_timeout", "poll_interval"):
        if getattr(options, key) <= 0:
            raise ConfigError(f"serve.{key} must be a positive number of seconds")
    if not 0 <= options.port <= 65535:
        raise ConfigError(f"serve.port = {options.port}: expected 0-65535")
    return options
