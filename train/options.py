"""``TrainOptions``: the ``[train]`` section of data/config.toml as a typed, frozen dataclass."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.core.config import Config, ConfigError, apply_override, shown
from data.core.options import StageOptions
from data.core.contracts import RUN_FILES
from data.core.io import write_json
from train.lite_weights import VARIANTS as LITE_VARIANTS
from train.lite_weights import source_file
from train.screen import BAD_IMAGE_POLICIES
from train.split import validate_ratios

# The names each choice accepts, here so that checking options needs no TensorFlow (a refused run answers
# at once); the modules that implement them import these (tests/train/test_backbones.py checks BACKBONES).
BACKBONES: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50", "vgg19")
BACKBONES += ("mobilenet_v3_small", "efficientnet_b0", "small_resnet", "tiny")
# backbone = "auto": pretrained EfficientNet-Lite0 for transfer, our small_resnet from scratch (a network that
# learns from random weights on a CPU; MobileNetV3 from scratch stayed a constant predictor, see README).
AUTO_BACKBONE = {"transfer": "efficientnet_lite0", "scratch": "small_resnet"}
HEADS = ("original", "deep", "linear")
# head = "auto": a linear softmax (L2) on pretrained features (what a logistic regression on them does; the
# original head's batch norm cost 2-4 points on the grocery photos), the original head from scratch.
AUTO_HEAD = {"transfer": "linear", "scratch": "original"}
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
RECIPES = ("auto", "scratch", "transfer")
AUGMENT = ("auto", "none", "light", "strong")  # auto: strong from scratch, light for transfer (train/pipeline.py)
MODALITIES = ("image", "text", "both")  # text: train/text_run.py; both: train/fusion.py


@dataclass(frozen=True)
class TrainOptions(StageOptions):
    """How to train; every field is a key of ``[train]`` (see data/config.toml for the meaning of each)."""

    SECTION = "train"

    backbone: str = "auto"
    weights: str = "imagenet"
    recipe: str = "auto"
    images: str = ""
    label_version: str = ""
    image_size: int = 224
    head: str = "auto"
    head_c: float = 1.0
    batch_size: int = 32
    epochs: int = 20
    fine_tune_epochs: int = 5
    fine_tune_layers: int = 20
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    dropout: float = 0.3
    patience: int = 4
    time_budget_s: float = 0.0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    augment: str = "auto"
    mixed_precision: bool = False
    strategy: str = "auto"
    embedding_cache: bool = True
    cache_dir: str = "data/cache/embeddings"
    split_file: str = ""
    bad_images: str = "skip"
    strict: bool = False
    modality: str = "image"

    def __post_init__(self) -> None:
        recipe = "scratch" if self.from_scratch else "transfer"
        if self.backbone == "auto":  # resolved once, so options.json and the run id name the real network
            object.__setattr__(self, "backbone", AUTO_BACKBONE[recipe])
        if self.head == "auto":
            object.__setattr__(self, "head", AUTO_HEAD[recipe])

    def resolve(self, cfg: Config) -> "TrainOptions":
        """The options with ``{root}``-style placeholders in paths expanded."""
        return dataclasses.replace(
            self,
            cache_dir=cfg.expand(self.cache_dir, "train.cache_dir"),
            split_file=cfg.expand(self.split_file, "train.split_file"),
            images=cfg.expand(self.images, "train.images"),
        )

    def check(self) -> None:
        """Raise ``ConfigError`` for an unknown name or an impossible number, before any work."""
        for key, choices in (
            ("backbone", BACKBONES + ("auto",)),
            ("head", HEADS + ("auto",)),
            ("strategy", STRATEGIES),
            ("recipe", RECIPES),
            ("bad_images", BAD_IMAGE_POLICIES),
            ("augment", AUGMENT),
            ("modality", MODALITIES),
        ):
            if getattr(self, key) not in choices:
                raise ConfigError(f"train.{key} = {shown(getattr(self, key))}; choose one of {', '.join(choices)}")
        _check_numbers(self)
        for key in ("weight_decay", "warmup_epochs", "time_budget_s", "dropout", "fine_tune_epochs"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must not be negative")
        if not 0 <= self.label_smoothing < 1 or not self.dropout < 1:
            raise ConfigError("train.label_smoothing and train.dropout must be in [0, 1)")
        if self.modality == "image":  # the weights only matter to a photo run (text and both train none)
            _check_weights(self)
        try:
            validate_ratios(self.split)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def from_scratch(self) -> bool:
        """Whether this run uses the from-scratch recipe (``auto``: when there are no weights to start from)."""
        if self.recipe == "auto":
            return str(self.weights).lower() in ("none", "", "random")
        return self.recipe == "scratch"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``split`` as a list)."""
        doc = dataclasses.asdict(self)
        doc["split"] = list(self.split)
        return doc


_AT_MOST = {"image_size": 1024, "batch_size": 4096, "epochs": 100_000, "fine_tune_epochs": 100_000}
_WHY_AT_MOST = {
    "image_size": "backbones are trained at 224-600 px; larger inputs only cost memory",
    "batch_size": "larger batches do not fit in memory, or leave too few steps per epoch",
    "epochs": "use train.time_budget_s for a long run",
    "fine_tune_epochs": "use train.time_budget_s for a long run",
}
_MAX_BATCH_BYTES = 4 * 2**30


def _check_numbers(options: TrainOptions) -> None:
    """Finite numbers within what one machine can train, so an absurd value is refused before a model is
    built, not found by a NaN loss or an out-of-memory traceback deep in TensorFlow."""
    for key, value in dataclasses.asdict(options).items():  # nan or inf would train a NaN model
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if key == "split" else [value])):
            raise ConfigError(f"train.{key} = {value}: expected a finite number")
    for key in ("epochs", "batch_size", "patience"):
        if getattr(options, key) < 1:
            raise ConfigError(f"train.{key} = {getattr(options, key)} must be at least 1")
    if options.image_size < 16:
        raise ConfigError(f"train.image_size = {options.image_size} must be at least 16 (pixels)")
    for key, most in _AT_MOST.items():
        if getattr(options, key) > most:
            raise ConfigError(f"train.{key} = {getattr(options, key):,} is over {most:,}: {_WHY_AT_MOST[key]}")
    batch_bytes = options.image_size**2 * 3 * 4 * options.batch_size  # one batch of float32 pixels
    if batch_bytes > _MAX_BATCH_BYTES:
        raise ConfigError(
            f"train.batch_size = {options.batch_size} at train.image_size = {options.image_size} is "
            f"{batch_bytes / 2**30:.0f} GiB of pixels per batch (at most {_MAX_BATCH_BYTES // 2**30}): lower either"
        )
    for key in ("learning_rate", "fine_tune_learning_rate"):
        if not 0 < getattr(options, key) <= 1:
            raise ConfigError(f"train.{key} = {getattr(options, key)} must be above 0 and at most 1")
    if not options.head_c > 0:
        raise ConfigError(f"train.head_c = {options.head_c} must be above 0 (scikit-learn's C; smaller = stronger L2)")
    if not 0 <= options.seed < 2**32:
        raise ConfigError(f"train.seed = {options.seed} must be from 0 to 2**32 - 1")


def _check_weights(options: TrainOptions) -> None:
    """The ImageNet weights' package, or the weights file named, is there (before any image is read)."""
    weights = str(options.weights)
    if weights == "imagenet" and options.backbone in LITE_VARIANTS and not options.from_scratch:
        source_file(options.backbone)  # a missing weights package is refused before any image is read
    if weights.lower() not in ("imagenet", "none", "", "random") and not Path(weights).expanduser().is_file():
        raise ConfigError(
            f"train.weights = {weights!r}: no such weights file (give imagenet, none, or the path of a weights "
            f"file such as an earlier run's backbone.weights.h5)"
        )


def save_options(run_dir: Path, options: TrainOptions) -> None:
    """Write ``options.json`` into a run folder (what ``--resume`` reads back)."""
    write_json(run_dir / RUN_FILES["options"], options.to_dict())


def resume_options(run_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainOptions:
    """A run's saved options, with any ``train.key=value`` overrides applied (e.g. more epochs)."""
    path = run_dir / RUN_FILES["options"]
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run folder (no {path.name})")
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved.setdefault("recipe", "transfer")  # runs from before the from-scratch recipe were all transfer runs
    if isinstance(saved.get("augment"), bool):  # and had augment = true / false
        saved["augment"] = "auto" if saved["augment"] else "none"
    data = {"train": saved}
    for override in overrides:
        if override.strip().startswith("train."):
            apply_override(data, override)
    return TrainOptions.from_saved(data["train"])
