"""``make predict``: classify image files with a training run's model; the one predictor every stage uses.

    python -m train.predict [--run latest|RUN_ID|RUN_DIR] [--top-k 3] [--out predictions.csv] PATH [PATH ...]

A PATH is an image file, a folder (searched recursively for .jpg/.jpeg/.png/.webp/.bmp/.gif) or a text file
with one image path per line (``@list.txt``). The CSV has one row per file: its top-k classes, or, for a
file that cannot be read, the reason in ``skipped``. The flags default to an optional ``[predict]`` section
(``run``, ``top_k``, ``batch_size``). Evaluate, label, visualise and deploy load a run through
:class:`Predictor`, so every stage decodes and resizes exactly as training did (``train/pipeline.py``).
"""

from __future__ import annotations

import importlib
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.options import StageOptions
from data.core.contracts import RUN_FILES, RUNS
from data.core.errors import ConfigError, InputError
from data.core.io import atomic_write_with
from data.core.runs import add_run_argument, require_photo_run, resolve_run
from train.screen import IMAGE_SUFFIXES, screen_files

__all__ = ["IMAGE_SUFFIXES", "Predictor", "check_run", "collect_images", "predictions_frame"]

# The training stage's surface for the other stages: label, deploy and visualise import these names from here
# (tests/core/test_one_way_layout.py refuses an import of any other train module), so what they rely on is
# this one table. Each is imported on first use (PEP 562), so importing this module stays free of TensorFlow.
PUBLIC: dict[str, str] = {
    "EmbeddingCache": "train.embeddings",  # the frozen-phase embedding cache label reuses
    "embed_files": "train.embeddings",
    "file_digest": "train.embeddings",
    "build_backbone": "train.backbones",
    "weights_fingerprint": "train.backbones",
    "precision_policy": "train.distribute",
    "WeightsUnavailable": "train.errors",
    "resume_options": "train.options",  # a run's saved options
    "ImageDataSet": "train.dataset",  # a run's split, for export's measurements
    "image_dataset": "train.pipeline",  # the training input pipeline, for export's parity check
    "TextModel": "train.text",  # the title model (label's title check, serving titles)
    "TextOptions": "train.text",
    "fit_temperature": "train.text",
    "normalise_title": "train.text",
    "softmax": "train.text",
    "FusionOptions": "train.fusion",
    "read_fusion": "train.fusion",
    "align": "train.fusion",
    "fuse": "train.fusion",
}


def __getattr__(name: str) -> Any:
    """The names of :data:`PUBLIC`, imported from their module when first asked for."""
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

EMBEDDING_LAYER = "embedding"  # the classifier's penultimate output, named in train/model.py


def check_run(run_dir: Path) -> tuple[Path, Path]:
    """The run's model and classes files; ``InputError`` when the folder holds no finished model."""
    require_photo_run(run_dir)
    return run_dir / RUN_FILES["model"], run_dir / RUN_FILES["classes"]


@dataclass
class Predictor:
    """A run's model and classes: probabilities and embeddings for files or pixel arrays.

    Attributes:
        run_dir: the training run folder.
        model: the Keras classifier (RGB 0-255 pixels in, class probabilities out).
        classes: class names, in the model's output order.
    """

    run_dir: Path
    model: "keras.Model"
    classes: tuple[str, ...]
    _embedder: "keras.Model | None" = None

    @classmethod
    def load(cls, run_dir: Path) -> "Predictor":
        """Load ``run_dir/model.keras`` and ``classes.json``.

        Raises:
            InputError: the folder has no finished model.
        """
        model_file, classes_file = check_run(run_dir)
        import keras  # only once the run is known to hold a model: a wrong --run answers at once

        try:
            model = keras.models.load_model(model_file, compile=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:  # a cut or foreign file: the user's to fix
            raise InputError(f"{model_file} cannot be loaded ({str(exc)[:160]}): train the run again") from exc
        classes = tuple(json.loads(classes_file.read_text(encoding="utf-8")))
        return cls(run_dir, model, classes)

    @property
    def image_size(self) -> int:
        """The side in pixels the model takes."""
        return int(self.model.input_shape[1])

    def embedder(self) -> "keras.Model":
        """A model from pixels to the penultimate features (the input of the classifier head)."""
        import keras

        if self._embedder is None:
            names = [layer.name for layer in self.model.layers]
            if EMBEDDING_LAYER in names:
                output = self.model.get_layer(EMBEDDING_LAYER).output
            else:  # runs from before the named layer: [pixels, backbone, head]
                output = self.model.layers[-2].output
            self._embedder = keras.Model(self.model.inputs, output, name="embedder")
        return self._embedder

    def _dataset(self, files: Sequence[Path], batch_size: int) -> Any:
        from train.pipeline import image_dataset

        batch = max(1, min(batch_size, len(files)))  # never larger than the files: a huge one allocates its size
        return image_dataset([str(f) for f in files], None, len(self.classes), self.image_size, batch)

    def predict_files(self, files: Sequence[Path], batch_size: int = 64) -> np.ndarray:
        """Probabilities, one row per file (decoded, centre-cropped and resized as in training)."""
        if not files:
            return np.zeros((0, len(self.classes)), np.float32)
        return np.asarray(self.model.predict(self._dataset(files, batch_size), verbose=0), np.float32)

    def embed_files(self, files: Sequence[Path], batch_size: int = 64) -> np.ndarray:
        """Penultimate-layer features, one row per file."""
        embedder = self.embedder()
        if not files:
            return np.zeros((0, int(embedder.output_shape[-1])), np.float32)
        return np.asarray(embedder.predict(self._dataset(files, batch_size), verbose=0), np.float32)

    def predict_arrays(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of RGB pixels, ``(n, image_size, image_size, 3)``, values 0-255."""
        pixels = np.asarray(pixels, np.float32)
        if pixels.ndim != 4 or pixels.shape[1:] != (self.image_size, self.image_size, 3):
            raise InputError(f"pixels must be (n, {self.image_size}, {self.image_size}, 3), got {pixels.shape}")
        return np.asarray(self.model(pixels, training=False), np.float32)

    def top_k(self, probs: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes with their probabilities, per row."""
        k = max(1, min(k, len(self.classes)))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.classes[i], float(row[i])) for i in idx] for row, idx in zip(probs, order)]


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (recursive, sorted) and ``@list.txt`` files.

    A list holds one path per line, a file or a folder; blank lines and lines starting with ``#`` are skipped.

    Raises:
        InputError: an input does not exist, or nothing to classify was found.
    """
    files: list[Path] = []
    for item in map(str, inputs):
        if item.startswith("@"):
            listing = Path(item[1:])
            if not item[1:]:
                raise InputError("an @list needs the name of its file: @photos.txt (one image or folder per line)")
            if not listing.is_file():
                raise InputError(f"list file {listing} does not exist")
            try:
                lines = listing.read_text(encoding="utf-8-sig").splitlines()
            except UnicodeDecodeError as exc:
                raise InputError(f"list file {listing} is not UTF-8 text with one image path per line") from exc
            for line in (line.strip() for line in lines):  # blank lines and # comments are not paths
                if line and not line.startswith("#"):
                    files += _folder_images(Path(line)) if Path(line).is_dir() else [Path(line)]
        elif Path(item).is_dir():
            files += _folder_images(Path(item))
        elif Path(item).is_file():
            files.append(Path(item))
        else:
            raise InputError(f"{item} is not an image file, a folder or an @list file")
    if not files:
        raise InputError(f"no image files found in {', '.join(map(str, inputs))}")
    return files


def predictions_frame(predictor: Predictor, files: Sequence[Path], probs: np.ndarray, k: int) -> pd.DataFrame:
    """One row per file: path, top-k classes and probabilities (``class_1``, ``prob_1``, ...)."""
    rows = []
    for path, top in zip(files, predictor.top_k(probs, k)):
        row: dict[str, Any] = {"path": str(path)}
        for rank, (name, prob) in enumerate(top, start=1):
            row[f"class_{rank}"], row[f"prob_{rank}"] = name, round(prob, 6)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PredictOptions(StageOptions):
    """The optional ``[predict]`` section; each key is also a flag (``--run``, ``--top-k``, ``--batch-size``)."""

    SECTION = "predict"
    CLI = {"run": "run", "top_k": "top_k", "batch_size": "batch_size"}

    run: str = "latest"
    top_k: int = 3
    batch_size: int = 64

    def check(self) -> None:
        """Raise ``ConfigError`` for a count below 1."""
        for name in ("top_k", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"predict.{name} (--{name.replace('_', '-')}) = {getattr(self, name)}: must be at least 1"
                )


def check_out(out: Path) -> Path:
    """``out`` when predict may write it: new, or a predictions CSV of an earlier run (never another file)."""
    if out.is_dir():
        raise InputError(f"--out {out} is a folder: give the name of the CSV file to write")
    if out.exists() and not out.is_file():  # /dev/null, a FIFO: the atomic rename would replace it
        raise InputError(f"--out {out} is not a regular file: give the name of the CSV file to write")
    if out.is_file() and out.stat().st_size:
        with open(out, "rb") as fh:
            head = fh.readline()
        if not head.startswith(b"path,class_1,"):
            raise InputError(
                f"--out {out} exists and is not a predictions CSV: choose another file (it was not changed)"
            )
    return out


def _readable(files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split files into those the pipeline can decode and the others with a reason (named in the log)."""
    bad = screen_files(files)
    return [f for i, f in enumerate(files) if i not in bad], [(files[i], reason) for i, reason in bad.items()]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make predict FILES=...``)."""
    parser = stage_parser("train.predict", __doc__)
    parser.add_argument("inputs", nargs="+", help="image files, folders or @list.txt files")
    add_run_argument(parser, "predict")
    parser.add_argument("--top-k", type=int, help="classes per image (default: predict.top_k, 3)")
    parser.add_argument("--out", type=Path, help="CSV to write (default: <run>/predictions.csv)")
    parser.add_argument("--batch-size", type=int, help="images per model call (default: predict.batch_size, 64)")
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args

        cfg = config_from_args(args)
        options = PredictOptions.from_config(cfg, cli=args)
        from train.predict_titles import is_title_input, predict_titles

        if any(is_title_input(i) for i in args.inputs):  # titles, with or without photos: train/predict_titles.py
            return predict_titles(cfg, options, args.inputs, args.out)
        run_dir = resolve_run(cfg.path(RUNS), options.run)
        check_run(run_dir)  # before the files are decoded
        out = check_out(args.out or run_dir / "predictions.csv")
        files, skipped = _readable(collect_images(args.inputs))
        for path, reason in skipped:
            log.warning("skipped %s: %s", path, reason)
        if not files:
            named = "; ".join(f"{path}: {reason}" for path, reason in skipped[:3])
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            raise InputError(f"none of the {len(skipped)} files could be read as an image ({named}{more})")
        predictor = Predictor.load(run_dir)
        probs = predictor.predict_files(files, min(options.batch_size, len(files)))  # a batch of 10**9 pads
        frame = predictions_frame(predictor, files, probs, options.top_k).assign(skipped="")
        unread = pd.DataFrame({"path": [str(path) for path, _ in skipped], "skipped": [why for _, why in skipped]})
        frame = pd.concat([frame, unread], ignore_index=True)  # a file it could not read: its row, with the reason
        atomic_write_with(out, lambda p: frame.to_csv(p, index=False))
        for row in frame.head(10).itertuples(index=False):
            print(f"  {row.path}: {row.class_1} ({row.prob_1:.2f})" if not row.skipped else f"  {row.path}: skipped")
        print(f"predict: {len(files)} images classified with {run_dir.name}, {len(skipped)} skipped; wrote {out}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
