"""Embeddings of the images for ``make label``, cached, and reduced with PCA.

Two sources (``label.embeddings``):

- **pretrained** (a transfer run, the default there): the run's *frozen* backbone, built from its
  ``options.json`` (backbone, image size, ``imagenet`` or weights file) exactly as the frozen training phase
  builds it, through the same :class:`train.embeddings.EmbeddingCache` key (``train/phases.py``
  ``frozen_on_cache``), so the vectors computed while training are read back, not computed again. An ImageNet
  backbone's neighbours are semantic neighbours, and they do not depend on the noisy labels being checked.
- **model** (a from-scratch run): the run's penultimate layer, filed under a key made of the sha1 of its
  ``model.keras``, so a second ``make label`` on the same run computes nothing.

Inside a cache folder each vector is filed by the sha1 of the image file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data.core.contracts import RUN_FILES
from data.core.errors import ConfigError

log = logging.getLogger(__name__)

PCA_SAMPLE = 50_000  # rows the PCA is fitted on; more adds time, not accuracy
CHUNK = 50_000  # rows projected at a time, so no float64 copy of all vectors is ever made


def model_fingerprint(run_dir: Path) -> str:
    """The sha1 of the run's ``model.keras``: changes whenever its weights do."""
    from train.predict import file_digest

    return file_digest(run_dir / RUN_FILES["model"])


def choose_source(run_dir: Path, wanted: str) -> str:
    """``pretrained`` or ``model`` for this run: ``auto`` picks pretrained for a transfer run.

    Raises:
        ConfigError: ``pretrained`` asked of a run trained from scratch (its backbone learnt nothing before).
    """
    from train.predict import resume_options

    scratch = resume_options(run_dir).from_scratch
    if wanted == "pretrained" and scratch:
        raise ConfigError(
            f"label.embeddings = pretrained, but {run_dir.name} was trained from scratch (no pretrained backbone): "
            "use label.embeddings=auto or model"
        )
    if wanted == "auto":
        return "model" if scratch else "pretrained"
    return wanted


def embed(
    run_dir: Path, files: Sequence[Path], cache_dir: Path, batch_size: int, source: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors of ``files`` (aligned with them) from ``source`` and what was used (cache counts, backbone).

    Only the images the cache does not hold yet go through a network.
    """
    if source == "pretrained":
        return _pretrained(run_dir, files, cache_dir, batch_size)
    return _penultimate(run_dir, files, cache_dir, batch_size)


def _penultimate(
    run_dir: Path, files: Sequence[Path], cache_dir: Path, batch_size: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """The run's penultimate layer (``model.keras``), cached under the model's sha1."""
    from train.predict import EmbeddingCache, Predictor, embed_files

    predictor = Predictor.load(run_dir)
    meta = {
        "purpose": "label",
        "model_sha1": model_fingerprint(run_dir),
        "image_size": predictor.image_size,
        "layer": "embedding",
    }
    cache = EmbeddingCache(Path(cache_dir), meta)
    vectors, stats = embed_files(predictor.embedder(), files, cache, predictor.image_size, batch_size)
    info = {"source": "model", "meaning": "the run's penultimate layer (model.keras)"}
    return vectors, {**info, **stats, "cache": str(cache.dir)}


def _pretrained(
    run_dir: Path, files: Sequence[Path], cache_dir: Path, batch_size: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """The run's frozen backbone, under the very cache key of the frozen training phase (train/phases.py)."""
    from train.predict import (
        EmbeddingCache,
        WeightsUnavailable,
        build_backbone,
        embed_files,
        precision_policy,
        resume_options,
        weights_fingerprint,
    )

    o = resume_options(run_dir)
    with precision_policy(o.mixed_precision) as policy:
        try:
            backbone = build_backbone(o.backbone, o.image_size, o.weights)
        except WeightsUnavailable as exc:  # the run's weights are gone: say how to label without them
            raise WeightsUnavailable(f"{exc}; or label this run on its own layer: label.embeddings=model") from exc
        meta = {
            "backbone": o.backbone,
            "image_size": o.image_size,
            "weights": weights_fingerprint(backbone),
            "policy": policy,
        }
        cache = EmbeddingCache(Path(cache_dir), meta)
        vectors, stats = embed_files(backbone, files, cache, o.image_size, batch_size)
    info = {
        "source": "pretrained",
        "meaning": "the run's frozen backbone before training (as the frozen phase embeds)",
        "backbone": o.backbone,
        "weights": str(o.weights),
        "image_size": o.image_size,
    }
    return vectors, {**info, **stats, "cache": str(cache.dir)}


def project(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Centred vectors, reduced to ``dims`` principal components (all of them when ``dims`` is 0 or more
    than the vectors have); float32.

    Centring matters for the cosine neighbour search: features after a ReLU are all positive, so without
    it every pair of images looks alike. The vectors may be float16 (half the memory at scale): the PCA
    is fitted on a float32 sample and applied a chunk at a time.
    """
    n, width = vectors.shape
    mean = vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    if dims == 0 or dims >= min(width, n):
        return (vectors - mean).astype(np.float32)
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    sample = vectors if n <= PCA_SAMPLE else vectors[np.sort(rng.choice(n, PCA_SAMPLE, replace=False))]
    pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit(sample.astype(np.float32))
    out = np.empty((n, dims), np.float32)
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = pca.transform(vectors[start : start + CHUNK].astype(np.float32))
    log.info("PCA: %d -> %d dimensions, %.0f%% of the variance", width, dims, 100 * pca.explained_variance_ratio_.sum())
    return out


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as float16 (half the memory; the neighbour search multiplies in float32)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float16)
