"""The title model: a linear classifier on hashed word and character n-grams of the product ``name``.

Why this shape: on the real titles (``README.md``, "Categorize from the title") TF-IDF word 1-2 grams plus
character 3-5 grams with a linear SVM beat logistic regression, SGD, ComplementNB blends and NB-SVM within
a point of macro-F1 and train in seconds; hashing the n-grams instead of keeping a vocabulary keeps the
model a fixed size and the 551k-row catalogue in memory on a small machine. Scores become probabilities
through a softmax whose temperature is fitted on the validation split (calibrated, and the argmax is the
SVM's). No TensorFlow is imported here: a title run trains and predicts with scikit-learn alone.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.core.options import StageOptions
from data.core.contracts import RUN_FILES
from data.core.errors import ConfigError, InputError

MODEL_FILE = RUN_FILES["text_model"]  # text_model.npz: numbers and one JSON string, no pickle (TextModel.save)
LEGACY_FILE = RUN_FILES["text_model_legacy"]  # what runs before format 2 wrote: a pickle, never read
FORMAT = 2
_ARRAYS = ("word_idf", "char_idf", "coef", "intercept", "fitted")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextOptions(StageOptions):
    """The ``[text]`` section of data/config.toml (see there for the meaning of each key)."""

    SECTION = "text"

    word_max_n: int = 2
    char_min_n: int = 3
    char_max_n: int = 5
    hash_bits: int = 18
    regularization: float = 0.3
    balanced: bool = True
    distinct: bool = True
    refit: bool = True
    max_title_chars: int = 500
    batch_size: int = 20_000

    def check(self) -> None:
        """Raise ``ConfigError`` for an impossible value, before any data is read."""
        if not 1 <= self.word_max_n <= 4:
            raise ConfigError(f"text.word_max_n = {self.word_max_n}: choose 1-4")
        if not 1 <= self.char_min_n <= self.char_max_n <= 8:
            raise ConfigError("text.char_min_n and text.char_max_n must satisfy 1 <= min <= max <= 8")
        if not 12 <= self.hash_bits <= 24:
            raise ConfigError(f"text.hash_bits = {self.hash_bits}: choose 12-24 (2**bits features per n-gram kind)")
        if self.regularization <= 0:
            raise ConfigError("text.regularization must be above 0")
        for key in ("max_title_chars", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"text.{key} must be at least 1")


def normalise_title(text: Any, max_chars: int = 500) -> str:
    """A title as the model sees it (and as duplicates are grouped): NFKC, case-folded, single spaces."""
    if not isinstance(text, str):
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text[: max_chars * 2]).casefold()).strip()[:max_chars]


def _features(options: TextOptions) -> Any:
    """Word and character n-gram hashes, each TF-IDF weighted (sublinear tf) and L2-normalised on its own."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import FeatureUnion, make_pipeline

    common = {"n_features": 2**options.hash_bits, "alternate_sign": False, "norm": None, "dtype": np.float32}
    word = HashingVectorizer(
        analyzer="word", ngram_range=(1, options.word_max_n), token_pattern=r"(?u)\b\w+\b", **common
    )
    char = HashingVectorizer(analyzer="char_wb", ngram_range=(options.char_min_n, options.char_max_n), **common)
    return FeatureUnion(
        [
            ("word", make_pipeline(word, TfidfTransformer(sublinear_tf=True))),
            ("char", make_pipeline(char, TfidfTransformer(sublinear_tf=True))),
        ]
    )


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (float32)."""
    z = np.asarray(scores, np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature with the lowest log-loss on ``(scores, y)`` (a grid: robust, no optimiser)."""
    if len(y) == 0:
        return 1.0
    best, best_loss = 1.0, np.inf
    for t in np.geomspace(0.01, 10.0, 81):
        p = softmax(scores, float(t))[np.arange(len(y)), y]
        loss = float(-np.log(np.clip(p, 1e-7, 1.0)).mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


class TextModel:
    """Titles in, class probabilities out."""

    def __init__(self, classes: Sequence[str], options: TextOptions) -> None:
        from sklearn.svm import LinearSVC

        self.classes = tuple(classes)
        self.options = options
        self.temperature = 1.0
        self.features = _features(options)
        self.classifier = LinearSVC(
            C=options.regularization, class_weight="balanced" if options.balanced else None, random_state=0
        )

    def _clean(self, titles: Sequence[Any]) -> list[str]:
        return [normalise_title(t, self.options.max_title_chars) for t in titles]

    def fit(self, titles: Sequence[str], y: np.ndarray) -> TextModel:
        """Fit features and classifier on training titles with class indices ``y``."""
        x = self.features.fit_transform(self._clean(titles))
        self.classifier.fit(x, np.asarray(y, np.int64))
        self.classifier.coef_ = self.classifier.coef_.astype(np.float32)  # halves the saved model
        return self

    def scores(self, titles: Sequence[Any]) -> np.ndarray:
        """The SVM's decision scores, one row per title, one column per class, in batches."""
        size, out = self.options.batch_size, []
        fitted = self.classifier.classes_
        for start in range(0, len(titles), size):
            raw = self.classifier.decision_function(self.features.transform(self._clean(titles[start : start + size])))
            full = np.full((raw.shape[0], len(self.classes)), -1e3, np.float32)
            full[:, fitted] = raw.reshape(raw.shape[0], -1) if len(fitted) > 2 else np.c_[-raw, raw]
            out.append(full)
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def calibrate(self, titles: Sequence[str], y: np.ndarray) -> float:
        """Fit the temperature on held-out titles (the validation split); returns it."""
        self.temperature = fit_temperature(self.scores(titles), np.asarray(y, np.int64))
        return self.temperature

    def predict_proba(self, titles: Sequence[Any]) -> np.ndarray:
        """Calibrated probabilities, one row per title."""
        return softmax(self.scores(titles), self.temperature)

    def save(self, run_dir: Path) -> Path:
        """Write the model's learned numbers into ``run_dir/text_model.npz``: the two IDF vectors, the SVM's
        weights, intercepts and fitted classes, and a JSON string with the format, classes, options and
        temperature. Everything else is rebuilt from the options, so loading runs no code from the file."""
        from data.core.io import atomic_write_with

        meta = {"format": FORMAT, "classes": list(self.classes), "options": asdict(self.options)}
        meta["temperature"] = self.temperature
        (_, word), (_, char) = self.features.transformer_list
        arrays = {
            "meta": np.array(json.dumps(meta)),
            "word_idf": np.asarray(word.steps[-1][1].idf_, np.float64),  # as fitted: predictions stay bit-equal
            "char_idf": np.asarray(char.steps[-1][1].idf_, np.float64),
            "coef": self.classifier.coef_.astype(np.float32),  # fit() keeps it float32
            "intercept": np.asarray(self.classifier.intercept_, np.float64),
            "fitted": self.classifier.classes_.astype(np.int64),
        }

        def write(path: Path) -> None:
            with open(path, "wb") as fh:  # a file object: numpy adds no suffix to it
                np.savez_compressed(fh, **arrays)  # most hashed features are never seen: 19 MB -> 6 MB

        target = run_dir / MODEL_FILE
        atomic_write_with(target, write)
        return target

    @classmethod
    def load(cls, run_dir: Path) -> TextModel:
        """The model a text run saved, rebuilt from its numbers (``np.load`` with ``allow_pickle=False``).

        Raises:
            InputError: the folder has no text model, or a file this code did not write or cannot use.
        """
        path = run_dir / MODEL_FILE
        if not path.is_file():
            if (run_dir / LEGACY_FILE).is_file():
                raise InputError(
                    f"{run_dir / LEGACY_FILE} is a pickle from an earlier version, which is no longer read (a pickle "
                    f"can run code): train the text run again (make train-text)"
                )
            raise InputError(f"{run_dir} has no {MODEL_FILE}: is it a text run? (train one with `make train-text`)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                arrays = {k: npz[k] for k in _ARRAYS}
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else '?'}, not {FORMAT}")
            model = cls(meta["classes"], TextOptions.from_saved(meta["options"]))
            model.temperature = float(meta["temperature"])
            model._restore(arrays)
        except (OSError, KeyError, TypeError, ValueError) as exc:  # zip, JSON, shape and dtype errors included
            raise InputError(f"{path} cannot be used as a title model ({exc}): train the text run again") from exc
        return model

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Put saved numbers into freshly built features and classifier, checking every shape first."""
        width = 2**self.options.hash_bits
        fitted = arrays["fitted"]
        rows = len(fitted) if len(fitted) > 2 else 1
        expected = {"word_idf": (width,), "char_idf": (width,), "coef": (rows, 2 * width), "intercept": (rows,)}
        for name, shape in expected.items():
            if arrays[name].shape != shape or not np.isfinite(arrays[name]).all():
                raise ValueError(f"{name} has shape {arrays[name].shape}, not {shape}, or a non-finite value")
        if fitted.ndim != 1 or len(fitted) < 2 or fitted.min() < 0 or fitted.max() >= len(self.classes):
            raise ValueError(f"fitted classes {fitted.tolist()} do not fit {len(self.classes)} classes")
        (_, word), (_, char) = self.features.transformer_list
        word.steps[-1][1].idf_ = arrays["word_idf"].astype(np.float64)
        char.steps[-1][1].idf_ = arrays["char_idf"].astype(np.float64)
        self.classifier.coef_ = arrays["coef"]
        self.classifier.intercept_ = arrays["intercept"].astype(np.float64)
        self.classifier.classes_ = fitted
        self.classifier.n_features_in_ = 2 * width
