"""The embedding map: a class-stratified sample of a run's images, embedded by its model (penultimate
layer, through :class:`train.predict.Predictor`), projected to 2-D by PCA (and UMAP when installed), and
exported for TensorBoard's projector (tensors.tsv, metadata.tsv, sprite.png, projector_config.pbtxt)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.core.io import atomic_write_bytes
from visualise.images import encode, letterboxed, sprite

log = logging.getLogger(__name__)

DIGITS = 5  # significant digits kept of each feature: the TSV stays small and tiny float noise cannot leak out
PROJECTOR_FILES = ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt")


def stratified_sample(split: pd.DataFrame, images_dir: Path, per_class: int, seed: int) -> pd.DataFrame:
    """Up to ``per_class`` images of each class (seeded; independent of the row order), those on disk only."""
    rng = np.random.default_rng(seed)
    frame = split[[(images_dir / p).is_file() for p in split["path"]]] if len(split) else split
    picked = []
    for _, group in frame.sort_values("key", kind="stable").groupby("label", sort=True):
        take = min(per_class, len(group))
        picked.append(group.iloc[np.sort(rng.choice(len(group), take, replace=False))])
    return pd.concat(picked, ignore_index=True) if picked else frame.iloc[:0]


def embed(run_dir: Path, files: list[Path], batch_size: int) -> np.ndarray:
    """Penultimate-layer features of ``files`` by the run's model, rounded to ``DIGITS`` significant digits."""
    from train.predict import Predictor

    features = Predictor.load(run_dir).embed_files(files, batch_size).astype(np.float64)
    magnitude = np.floor(np.log10(np.abs(features), where=features != 0, out=np.zeros_like(features)))
    scale = 10.0 ** (DIGITS - 1 - magnitude)
    return np.round(features * scale) / scale


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The first two principal components and their shares of the variance.

    Each component's sign is fixed (its largest loading positive), so the picture does not flip between runs.
    """
    if len(features) < 2:
        return np.zeros((len(features), 2)), [0.0, 0.0]
    centred = features - features.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1, signs)[:, None]
    coords = centred @ vt.T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    total = float((s**2).sum()) or 1.0
    shares = [round(float(v**2) / total, 4) for v in s[:2]] + [0.0] * (2 - len(s[:2]))
    return coords, shares


def umap_available() -> bool:
    """Whether umap-learn is installed (it is optional: the map falls back to PCA alone)."""
    return importlib.util.find_spec("umap") is not None


def umap_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """A 2-D UMAP of ``features`` (seeded, single-threaded so that it is reproducible)."""
    import umap

    neighbours = max(2, min(15, len(features) - 1))
    return umap.UMAP(n_neighbors=neighbours, random_state=seed, n_jobs=1).fit_transform(features)


def _tsv(rows: list[list[str]]) -> bytes:
    clean = [[str(v).replace("\t", " ").replace("\n", " ") for v in row] for row in rows]
    return ("".join("\t".join(row) + "\n" for row in clean)).encode("utf-8")


def write_projector(
    folder: Path, features: np.ndarray, metadata: pd.DataFrame, images_dir: Path, side: int
) -> dict[str, Any]:
    """TensorBoard projector files for ``features`` (one row per ``metadata`` row); open with
    ``tensorboard --logdir <folder>``.

    Returns:
        The section for the report's JSON (files, points, dimensions, sprite size).
    """
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "tensors.tsv", _tsv([[f"{v:.{DIGITS}g}" for v in row] for row in features]))
    header = list(metadata.columns)
    atomic_write_bytes(folder / "metadata.tsv", _tsv([header] + metadata.astype(str).values.tolist()))
    thumbs = [letterboxed(images_dir / p, side) for p in metadata["path"]]
    atomic_write_bytes(folder / "sprite.png", encode(sprite(thumbs), ".png"))
    config = ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding"
    embedding.tensor_path = "tensors.tsv"
    embedding.metadata_path = "metadata.tsv"
    embedding.tensor_shape.extend(list(features.shape))
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([side, side])
    atomic_write_bytes(folder / "projector_config.pbtxt", text_format.MessageToString(config).encode("utf-8"))
    return {
        "folder": folder.name,
        "files": list(PROJECTOR_FILES),
        "points": int(features.shape[0]),
        "dimensions": int(features.shape[1]) if features.ndim == 2 else 0,
        "sprite_px": side,
    }
