"""``LabelOptions``: the ``[label]`` section of data/config.toml (see there for what each key means)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from data.core.config import Config
from data.core.options import StageOptions
from data.core.errors import ConfigError

# Issue types, in the order the review page and the summary list them (the first that applies is the
# image's main issue). Quality flags come from label/quality.py, the others from label/stage.py.
ISSUE_TYPES = (
    "unreadable",
    "cross_class_duplicate",
    "outlier",
    "label",
    "cross_split_duplicate",
    "low_information",
    "dark",
    "light",
    "blurry",
    "odd_size",
    "odd_aspect",
    "grayscale",
    "duplicate",
    "class_imbalance",
)
EMBEDDINGS = ("auto", "pretrained", "model")  # label/embed.py: where the vectors come from
# cleanlab.filter.find_label_issues methods that need nothing but the labels and the probabilities
FILTERS = ("both", "prune_by_noise_rate", "prune_by_class", "confident_learning", "predicted_neq_given")


@dataclass(frozen=True)
class LabelOptions(StageOptions):
    """How ``make label`` finds issues and how ``make apply-labels`` applies them (``run`` and ``version``:
    which run ``make label`` reads and the name of the label version it writes; ``--run``, ``--version``)."""

    SECTION = "label"
    CLI = {"run": "run", "version": "version"}

    run: str = "latest"
    version: str = ""
    embeddings: str = "auto"
    folds: int = 5
    seed: int = 42
    dims: int = 256
    search_dims: int = 128
    regularization: float = 0.1
    max_iter: int = 200
    fit_sample: int = 100_000
    neighbours: int = 10
    exact_limit: int = 100_000
    probe: int = 12
    near_duplicate: float = 0.13
    near_hash_bits: int = 10
    knn_weight: float = 0.5
    filter_by: str = "both"
    outlier_iqr: float = 1.7
    imbalance: float = 0.1
    similar: int = 6
    dark: float = 25.0
    light: float = 235.0
    blur: float = 30.0
    low_std: float = 6.0
    low_entropy: float = 3.0
    min_side: int = 64
    max_aspect: float = 3.0
    grayscale: float = 1.0
    review_limit: int = 5000
    page_size: int = 48
    thumb_size: int = 128
    batch_size: int = 64
    workers: int = 4
    threads: int = 1
    cache_dir: str = "data/cache/embeddings"
    auto_threshold: float = 0.0
    auto_drop: tuple[str, ...] = ("unreadable", "cross_class_duplicate", "low_information")

    def resolve(self, cfg: Config) -> LabelOptions:
        """The options with ``{root}``-style placeholders in ``cache_dir`` expanded."""
        return dataclasses.replace(self, cache_dir=cfg.expand(self.cache_dir, "label.cache_dir"))

    def check(self) -> None:
        """Raise ``ConfigError`` for a value no run could use (before any work is done)."""
        least_values = {"folds": 2, "neighbours": 1, "page_size": 1, "thumb_size": 16, "batch_size": 1, "workers": 1}
        least_values.update(max_iter=1, near_hash_bits=-1, similar=0, exact_limit=0, probe=1)
        least_values.update(
            dict.fromkeys(("review_limit", "fit_sample", "dims", "search_dims", "min_side", "threads"), 0)
        )
        for key, least in least_values.items():
            if getattr(self, key) < least:
                raise ConfigError(f"label.{key} = {getattr(self, key)} must be at least {least}")
        for key in ("near_duplicate", "knn_weight", "auto_threshold", "imbalance"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"label.{key} = {getattr(self, key)} must lie between 0 and 1")
        for key in ("regularization", "outlier_iqr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"label.{key} = {getattr(self, key)} must be above 0")
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(f"label.embeddings = {self.embeddings!r}; choose one of {', '.join(EMBEDDINGS)}")
        if self.filter_by not in FILTERS:
            raise ConfigError(f"label.filter_by = {self.filter_by!r}; choose one of {', '.join(FILTERS)}")
        unknown = sorted(set(self.auto_drop) - set(ISSUE_TYPES))
        if unknown:
            raise ConfigError(f"label.auto_drop has unknown issue type(s) {unknown}; known: {', '.join(ISSUE_TYPES)}")
