"""Embeddings of the images from a run's model (its penultimate layer), cached, and reduced with PCA.

The vectors go through the training embedding cache (``train/embeddings.py``): filed by the sha1 of each
image file under a folder keyed by the sha1 of the run's ``model.keras``, so a second ``make label`` on the
same run (other thresholds, another version) computes nothing, and another model gets its own folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from data.core.contracts import RUN_FILES

if TYPE_CHECKING:
    from train.predict import Predictor

log = logging.getLogger(__name__)

PCA_SAMPLE = 50_000  # rows the PCA is fitted on; more adds time, not accuracy
CHUNK = 50_000  # rows projected at a time, so no float64 copy of all vectors is ever made


def model_fingerprint(run_dir: Path) -> str:
    """The sha1 of the run's ``model.keras``: changes whenever its weights do."""
    from train.embeddings import file_digest

    return file_digest(run_dir / RUN_FILES["model"])


def embed(predictor: "Predictor", files: Sequence[Path], cache_dir: Path, batch_size: int) -> tuple[np.ndarray, dict]:
    """Penultimate-layer vectors of ``files`` (aligned with them) and the cache counts.

    Only the images the cache does not hold yet go through the model.
    """
    from train.embeddings import EmbeddingCache, embed_files

    meta = {
        "purpose": "label",
        "model_sha1": model_fingerprint(predictor.run_dir),
        "image_size": predictor.image_size,
        "layer": "embedding",
    }
    cache = EmbeddingCache(Path(cache_dir), meta)
    vectors, stats = embed_files(predictor.embedder(), files, cache, predictor.image_size, batch_size)
    return vectors, {**stats, "cache": str(cache.dir)}


def project(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Centred vectors, reduced to ``dims`` principal components (all of them when ``dims`` is 0 or more
    than the vectors have); float32.

    Centring matters for the cosine neighbour search: features after a ReLU are all positive, so without
    it every pair of images looks alike.
    """
    n, width = vectors.shape
    mean = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    if dims == 0 or dims >= min(width, n):
        return (vectors - mean).astype(np.float32)
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    sample = vectors if n <= PCA_SAMPLE else vectors[np.sort(rng.choice(n, PCA_SAMPLE, replace=False))]
    pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit(sample)
    out = np.empty((n, dims), np.float32)
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = pca.transform(vectors[start : start + CHUNK])
    log.info("PCA: %d -> %d dimensions, %.0f%% of the variance", width, dims, 100 * pca.explained_variance_ratio_.sum())
    return out


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as float16 (half the memory; the neighbour search multiplies in float32)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float16)
