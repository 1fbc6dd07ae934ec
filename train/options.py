"""``TrainOptions``: the ``[train]`` section of data/config.toml as a typed, frozen dataclass."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.core.config import Config, ConfigError, apply_override


@dataclass(frozen=True)
class TrainOptions:
    """How to train; every field is a key of ``[train]`` (see data/config.toml for the meaning of each)."""

    backbone: str = "mobilenet_v3_small"
    weights: str = "imagenet"
    image_size: int = 224
    head: str = "original"
    batch_size: int = 32
    epochs: int = 20
    fine_tune_epochs: int = 5
    fine_tune_layers: int = 20
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    dropout: float = 0.3
    patience: int = 4
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    augment: bool = True
    mixed_precision: bool = False
    strategy: str = "auto"
    embedding_cache: bool = True
    cache_dir: str = "data/cache/embeddings"
    split_file: str = ""

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> "TrainOptions":
        """Options from a ``[train]`` mapping; unknown keys and uncastable values raise ``ConfigError``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise ConfigError(f"[train] has unknown key(s) {unknown}; known: {sorted(fields)}")
        values: dict[str, Any] = {}
        for name, value in section.items():
            default = getattr(cls, name)
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise TypeError("expected true or false")
                elif isinstance(default, tuple):
                    value = tuple(float(v) for v in value)
                else:
                    value = type(default)(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"train.{name} = {value!r}: {exc}") from exc
            values[name] = value
        return cls(**values)

    @classmethod
    def from_config(cls, cfg: Config) -> "TrainOptions":
        """Options from a loaded configuration, with ``{root}``-style placeholders in paths expanded."""
        options = cls.from_section(cfg.section("train"))
        paths = {k: str(cfg.path(k)) for k in cfg.data.get("paths", {})}
        return dataclasses.replace(
            options, cache_dir=options.cache_dir.format(**paths), split_file=options.split_file.format(**paths)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``split`` as a list)."""
        doc = dataclasses.asdict(self)
        doc["split"] = list(self.split)
        return doc


def save_options(run_dir: Path, options: TrainOptions) -> None:
    """Write ``options.json`` into a run folder (what ``--resume`` reads back)."""
    from data.core.io import write_json

    write_json(run_dir / "options.json", options.to_dict())


def resume_options(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainOptions:
    """A run's saved options, with any ``train.key=value`` overrides applied (e.g. more epochs)."""
    path = run_dir / "options.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run folder (no options.json)")
    data = {"train": json.loads(path.read_text(encoding="utf-8"))}
    for override in overrides:
        if override.strip().startswith("train."):
            apply_override(data, override)
    return TrainOptions.from_section(data["train"])
