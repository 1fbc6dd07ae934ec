"""One source of configuration: ``data/config.toml``, overridable with ``--set section.key=value``.

Every stage calls :func:`add_config_args` on its argument parser and :func:`config_from_args` to get
a :class:`Config`, and saves ``cfg.save(out_dir)`` beside its output so a run can be reproduced.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import functools
import math
import os
import shlex
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from data.core.errors import ConfigError
from data.core.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "data" / "config.toml"

__all__ = [
    "Config",
    "ConfigError",
    "DEFAULT_CONFIG",
    "REPO_ROOT",
    "StageOptions",
    "add_config_args",
    "config_from_args",
    "load_config",
    "options_from_section",
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


def _check_value(where: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` when it already is one (TOML types), else ``ConfigError``; never coerces.

    ``true``/``false`` only for booleans, whole numbers only for integers (``1.5`` is refused, not truncated),
    any number for floats, text for strings and paths, an array for tuples (each item checked).
    """
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check_value(where, value, option)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} = {shown(value)}: not any of {options}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {shown(value)}: expected an array, e.g. [1, 2]")
        args = typing.get_args(kind)
        item = args[0] if args else Any
        if args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{where} = {shown(value)}: expected {len(args)} items")
        items = args if args and args[-1] is not Ellipsis else [item] * len(value)
        return tuple(_check_value(f"{where}[{i}]", v, k) for i, (v, k) in enumerate(zip(value, items)))
    if kind is Any:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {shown(value)}: expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {shown(value)}: expected a whole number")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {shown(value)}: expected a number")
        if not math.isfinite(value):  # TOML reads nan and inf: no setting here means either
            raise ConfigError(f"{where} = {shown(value)}: expected a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {shown(value)}: expected a string (quote it: '\"...\"')")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where} = {shown(value)}: expected a path (a string)")
        return Path(value)
    raise TypeError(f"options_from_section: unsupported field type {kind!r} for {where}")


def options_from_section(
    cls: type[T],
    section: dict[str, Any],
    name: str,
    *,
    ignore: tuple[str, ...] = (),
    given: Mapping[str, Any] | None = None,
    not_keys: Collection[str] = (),
) -> T:
    """A frozen options dataclass from one config section, each value typed (never coerced).

    Stages call :meth:`StageOptions.from_config`, which calls this; only it and the tests call it directly.

    Args:
        cls: the stage's options dataclass; its fields are the section's keys and their types the checks.
        section: ``cfg.section(name)``.
        name: the section name, for messages (``[download]``).
        ignore: keys of the section that are read elsewhere.
        given: values from outside the section (the command line, ``[paths]``) that override it; typed and
            named in messages as the section's own (``serve.port``).
        not_keys: fields the section may not set (filled from ``given`` or left at their defaults).

    Raises:
        ConfigError: an unknown key (a typo in ``--set``), or a value of the wrong type; the message names
            the key and lists the known ones.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.name not in not_keys]  # type: ignore[arg-type]
    unknown = sorted(set(section) - set(known) - set(ignore))
    if unknown:
        named = ", ".join(k if len(k) <= 40 else shown(k, 40) for k in unknown)
        raise ConfigError(f"[{name}] has unknown key(s) {named}; known: {', '.join(known)}")
    values = {key: section[key] for key in known if key in section} | dict(given or {})
    return cls(**{key: _check_value(f"{name}.{key}", value, hints[key]) for key, value in values.items()})


class StageOptions:
    """The one way a stage reads its options: ``Options.from_config(cfg, cli=args)``.

    A stage's options are a frozen dataclass that inherits this class and says where its values come from:
    ``SECTION`` (its config section: every field is a key of it unless named below), ``CLI`` (command-line
    argument -> field: a flag given overrides the section), ``PATHS`` (field -> ``[paths]`` entry, for a
    folder or file the section does not name) and ``LOCAL`` (fields only the command line or the code set).
    :meth:`from_config` merges them (section, then ``[paths]``, then the command line), types each value,
    lets :meth:`resolve` fill what depends on the rest of the configuration, and calls :meth:`check` once:
    a bad value is refused with the same message whether it came from the file, ``--set`` or a flag.
    """

    SECTION: ClassVar[str] = ""
    CLI: ClassVar[Mapping[str, str]] = {}
    PATHS: ClassVar[Mapping[str, str]] = {}
    LOCAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, cfg: Config, cli: argparse.Namespace | None = None) -> Self:
        """The options of ``cfg``'s section with the command line's values on top, checked.

        Args:
            cfg: the loaded configuration.
            cli: the parsed command line (its arguments named in ``CLI``; one left out or ``None`` keeps the
                section's value).

        Raises:
            ConfigError: an unknown key, a value of the wrong type, or one :meth:`check` refuses.
        """
        flags = {field: getattr(cli, dest, None) for dest, field in cls.CLI.items()}
        given = {field: value for field, value in flags.items() if value is not None}
        for field_name, entry in cls.PATHS.items():
            if field_name not in given:
                given[field_name] = cfg.path(entry)
        options = options_from_section(
            cls, cfg.section(cls.SECTION), cls.SECTION, given=given, not_keys=(*cls.PATHS, *cls.LOCAL)
        )
        options = options.resolve(cfg)
        options.check()
        return options

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> Self:
        """Options an earlier run wrote (its ``options.json``), typed like the section but not checked: what
        that run used is read back as it was; a stage that runs with them calls :meth:`check` itself."""
        return options_from_section(cls, saved, cls.SECTION)

    def resolve(self, cfg: Config) -> Self:
        """The options with values that depend on the rest of ``cfg`` filled in (``{root}`` in a path, a
        default taken from another section); by default themselves."""
        return self

    def check(self) -> None:
        """Raise ``ConfigError`` for a value no run could use, before any work (by default none)."""
