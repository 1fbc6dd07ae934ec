"""One source of configuration: ``data/config.toml``, overridable with ``--set section.key=value``.

Every stage calls :func:`add_config_args` on its argument parser and :func:`config_from_args` to get
a :class:`Config`, and saves ``cfg.save(out_dir)`` beside its output so a run can be reproduced.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import functools
import os
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from data.core.errors import ConfigError
from data.core.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "data" / "config.toml"

__all__ = [
    "Config",
    "ConfigError",
    "DEFAULT_CONFIG",
    "REPO_ROOT",
    "add_config_args",
    "config_from_args",
    "load_config",
]

T = TypeVar("T")


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
        return Path(self.expand(str(paths[name]), f"paths.{name}"))

    def expand(self, value: str, key: str) -> str:
        """``value`` (the setting ``key``) with its ``{root}``-style ``[paths]`` placeholders expanded.

        Raises:
            ConfigError: a placeholder that is no ``[paths]`` entry, or a stray brace.
        """
        paths = {k: v for k, v in self.data.get("paths", {}).items() if isinstance(v, str)}
        for _ in range(5):  # entries may refer to each other ({processed} -> {root} ...)
            try:
                value = value.format(**paths)
            except (KeyError, IndexError, ValueError) as exc:
                wrong = f"{{{exc.args[0]}}} is not one" if isinstance(exc, KeyError) else "its braces do not pair up"
                raise ConfigError(
                    f"{key} = {value!r}: a {{...}} may only name a [paths] entry ({', '.join(sorted(paths))}); {wrong}"
                ) from None
        return value

    def save(self, out_dir: Path, name: str = "config.resolved.json") -> Path:
        """Write the resolved configuration beside a stage's output; returns the file written."""
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = copy.deepcopy(self.data)
        resolved["paths"] = {k: str(self.path(k)) for k in self.data.get("paths", {})}
        doc = {"source": self.source, "overrides": list(self.overrides), "config": resolved}
        target = out_dir / name
        write_json(target, doc)
        return target


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, lists, quoted strings), else a bare string.

    A flat list of bare words, ``[unreadable,label]``, is a list of strings: ``make`` passes ``SET`` through a
    shell-like split that removes the quotes ``["unreadable","label"]`` would need. Anything else that is not
    TOML (a nested list among them) stays the text it was.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        inner = text[1:-1]
        if text.startswith("[") and text.endswith("]") and "[" not in inner and "]" not in inner:
            items = [item.strip() for item in inner.split(",")]
            return [parse_value(item) for item in items if item]
        return text


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error line stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


@functools.cache
def _default_sections() -> frozenset[str]:
    """The sections of the reviewed ``data/config.toml``: the only ones any stage reads."""
    try:
        return frozenset(tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError):
        return frozenset()


def _check_section(data: dict[str, Any], section: str, override: str) -> None:
    """Refuse an override of a section no stage reads (a typo like ``trian``), as an unknown key is refused."""
    known = set(data) | _default_sections()
    if section in known:
        return
    close = difflib.get_close_matches(section, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"override {shown(override)}: unknown section {shown(section)}; {hint}known: {', '.join(sorted(known))}"
    )


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``section.key=value`` override in place; an unknown section is refused."""
    if "=" not in override:
        raise ConfigError(f"override {shown(override)} must look like section.key=value")
    dotted, value = override.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"override {shown(override)}: the key must be section.key")
    _check_section(data, parts[0], override)
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {shown(override)}: {shown(part)} is not a section")
    node[parts[-1]] = parse_value(value.strip())


def load_config(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML configuration file and apply ``section.key=value`` overrides in order."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"configuration file not found: {path} (pass CONFIG=path/to/config.toml, "
            f"or leave it out for data/config.toml)"
        ) from exc
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for override in overrides:
        apply_override(data, override)
    return Config(data=data, source=str(path), overrides=tuple(overrides))


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config`` and repeatable ``--set`` to a stage's parser."""
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="configuration file (default: data/config.toml)"
    )
    parser.add_argument(
        "--set-env",
        metavar="VARIABLE",
        help="also read overrides from this environment variable, split like a shell line (how make passes "
        "SET, so a quoted value keeps its spaces)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration value; repeatable",
    )
    return parser


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """Every ``section.key=value`` override: those of ``--set-env``'s variable first, then each ``--set``."""
    from_env = shlex.split(os.environ.get(args.set_env, "")) if getattr(args, "set_env", None) else []
    return [*from_env, *args.overrides]


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration named by a parsed ``--config`` / ``--set-env`` / ``--set``."""
    return load_config(args.config, overrides_from_args(args))
