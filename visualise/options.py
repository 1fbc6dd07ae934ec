"""The ``[visualise]`` section of data/config.toml as a frozen, checked options dataclass."""

from __future__ import annotations

from dataclasses import dataclass, fields

from data.core.config import ConfigError
from data.core.options import StageOptions

MAP_METHODS = ("auto", "pca", "umap")


@dataclass(frozen=True)
class VisualiseOptions(StageOptions):
    """How much each report samples and shows (see data/config.toml for each key)."""

    SECTION = "visualise"
    CLI = {"run": "run"}

    seed: int = 0
    thumbnails_per_class: int = 12
    thumbnail_px: int = 96
    histogram_bins: int = 30
    duplicate_distance: int = 4
    max_hash_images: int = 200_000
    duplicate_examples: int = 8
    top_losses: int = 24
    calibration_bins: int = 10
    map_per_class: int = 150
    map_method: str = "auto"
    sprite_px: int = 48
    batch_size: int = 64
    run: str = "latest"
    label_version: str = "latest"
    max_report_mb: float = 25.0

    def check(self) -> None:
        """Raise ``ConfigError`` for a size or count out of range, or an unknown map method."""
        at_least_one = ("thumbnail_px", "histogram_bins", "max_hash_images", "calibration_bins", "sprite_px")
        for name in (*at_least_one, "batch_size", "max_report_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"visualise.{name} must be > 0, got {getattr(self, name)!r}")
        counts = ("thumbnails_per_class", "duplicate_examples", "top_losses", "map_per_class", "seed")
        for name in counts:
            if getattr(self, name) < 0:
                raise ConfigError(f"visualise.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.duplicate_distance <= 16:
            raise ConfigError(f"visualise.duplicate_distance must be in 0..16 bits, got {self.duplicate_distance!r}")
        if self.map_method not in MAP_METHODS:
            raise ConfigError(f"visualise.map_method must be one of {MAP_METHODS}, got {self.map_method!r}")

    def to_dict(self) -> dict[str, object]:
        """The options as written into a report's JSON (they decide what the page samples)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
