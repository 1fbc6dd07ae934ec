"""One source of configuration: ``data/config.toml``, overridable with ``--set section.key=value``.

Every stage calls :func:`add_config_args` on its argument parser and :func:`config_from_args` to get
a :class:`Config`, and saves ``cfg.save(out_dir)`` beside its output so a run can be reproduced.
"""
from __future__ import annotations

import argparse
import copy
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "data" / "config.toml"


class ConfigError(ValueError):
    """A configuration file or override that cannot be used, with a message for the user."""


@dataclass(frozen=True)
class Config:
    """The resolved configuration: the raw mapping plus helpers for the common path lookups."""

    data: dict[str, Any]
    source: str = str(DEFAULT_CONFIG)
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def section(self, name: str) -> dict[str, Any]:
        """A copy of one section (``{}`` when the file has none)."""
        return copy.deepcopy(self.data.get(name, {}))

    def path(self, name: str) -> Path:
        """A ``[paths]`` entry with ``{root}`` and ``{version}`` expanded, relative to the cwd."""
        paths = self.data.get("paths", {})
        if name not in paths:
            raise ConfigError(f"[paths] has no entry {name!r}")
        value = str(paths[name])
        for _ in range(5):  # entries may refer to each other ({processed} -> {root} ...)
            value = value.format(**{k: v for k, v in paths.items() if isinstance(v, str)})
        return Path(value)

    def save(self, out_dir: Path, name: str = "config.resolved.json") -> Path:
        """Write the resolved configuration beside a stage's output; returns the file written."""
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = copy.deepcopy(self.data)
        resolved["paths"] = {k: str(self.path(k)) for k in self.data.get("paths", {})}
        doc = {"source": self.source, "overrides": list(self.overrides), "config": resolved}
        target = out_dir / name
        target.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        return target


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, lists, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``section.key=value`` override in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    dotted, value = override.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"override {override!r}: the key must be section.key")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = parse_value(value.strip())


def load_config(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML configuration file and apply ``section.key=value`` overrides in order."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for override in overrides:
        apply_override(data, override)
    return Config(data=data, source=str(path), overrides=tuple(overrides))


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config`` and repeatable ``--set`` to a stage's parser."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="configuration file (default: data/config.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one configuration value; repeatable")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration named by a parsed ``--config`` / ``--set``."""
    return load_config(args.config, args.overrides)
