"""``make predict``: classify image files with a training run's model; the one predictor every stage uses.

    python -m train.predict [--run latest|RUN_ID|RUN_DIR] [--top-k 3] [--out predictions.csv] PATH [PATH ...]

A PATH is an image file, a folder (searched recursively for .jpg/.jpeg/.png/.webp/.bmp/.gif) or a text file
with one image path per line (``@list.txt``). Evaluate, label, visualise and deploy load a run through
:class:`Predictor`, so every stage decodes and resizes exactly as training did (``train/pipeline.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from data.core.cli import run, stage_parser
from data.core.contracts import RUN_FILES, RUNS
from data.core.errors import InputError
from data.core.io import atomic_write_with
from train.screen import IMAGE_SUFFIXES, screen_files

__all__ = ["IMAGE_SUFFIXES", "Predictor", "collect_images", "predictions_frame"]

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

EMBEDDING_LAYER = "embedding"  # the classifier's penultimate output, named in train/model.py


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
        model_file, classes_file = run_dir / RUN_FILES["model"], run_dir / RUN_FILES["classes"]
        if not model_file.is_file() or not classes_file.is_file():
            raise InputError(
                f"{run_dir} has no {model_file.name} and {classes_file.name}: did its training "
                f"run finish? (train a model with `make train`)"
            )
        import keras  # only once the run is known to hold a model: a wrong --run answers at once

        model = keras.models.load_model(model_file, compile=False)
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

        return image_dataset([str(f) for f in files], None, len(self.classes), self.image_size, batch_size)

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


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (recursive, sorted) and ``@list.txt`` files.

    Raises:
        InputError: an input does not exist, or nothing to classify was found.
    """
    files: list[Path] = []
    for item in map(str, inputs):
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise InputError(f"list file {listing} does not exist")
            files += [Path(line.strip()) for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif Path(item).is_dir():
            files += sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
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


def _readable(files: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split files into those the pipeline can decode and the others with a reason (named in the log)."""
    bad = screen_files(files)
    return [f for i, f in enumerate(files) if i not in bad], [(files[i], reason) for i, reason in bad.items()]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make predict FILES=...``)."""
    parser = stage_parser("train.predict", __doc__)
    parser.add_argument("inputs", nargs="+", help="image files, folders or @list.txt files")
    parser.add_argument("--run", default="latest", help="latest (default), a run id or a run folder")
    parser.add_argument("--top-k", type=int, default=3, help="classes per image (default 3)")
    parser.add_argument("--out", type=Path, help="CSV to write (default: <run>/predictions.csv)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args
        from train.runs import resolve_run

        cfg = config_from_args(args)
        run_dir = resolve_run(cfg.path(RUNS), args.run)
        files, skipped = _readable(collect_images(args.inputs))
        for path, reason in skipped:
            log.warning("skipped %s: %s", path, reason)
        if not files:
            raise InputError(f"none of the {len(skipped)} files could be read as an image")
        predictor = Predictor.load(run_dir)
        frame = predictions_frame(predictor, files, predictor.predict_files(files, args.batch_size), args.top_k)
        out = args.out or run_dir / "predictions.csv"
        atomic_write_with(out, lambda p: frame.to_csv(p, index=False))
        for row in frame.head(10).itertuples(index=False):
            print(f"  {row.path}: {row.class_1} ({row.prob_1:.2f})")
        print(f"predict: {len(files)} images classified with {run_dir.name}, {len(skipped)} skipped; wrote {out}")
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
