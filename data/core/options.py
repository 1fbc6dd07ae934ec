"""Typed stage options: one frozen dataclass per ``data/config.toml`` section, read, typed and checked the same
way by every stage (:class:`StageOptions`), and :func:`options_from_section` under it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from data.core.config import Config, shown
from data.core.errors import ConfigError

__all__ = ["StageOptions", "options_from_section"]

T = TypeVar("T")


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
