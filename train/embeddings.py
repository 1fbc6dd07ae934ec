"""The embedding cache: run the frozen backbone over each image once, keep the vectors on disk.

With a frozen backbone, every epoch of the original recipe recomputed exactly the same backbone outputs.
Here they are computed once and the head trains on the cached vectors, which takes milliseconds an epoch.

Layout: ``{cache_dir}/<key>/shard-*.npz`` (arrays ``digests`` and ``vectors``) plus ``meta.json``. The key
hashes the backbone name, the image size, a digest of the backbone's weights, the precision policy and the
pipeline version, so another backbone, size or set of weights gets its own folder; inside, each vector is
filed under the sha1 of the image file's bytes, so a changed image is simply a miss. Shards are written
atomically and only ever added, so an interrupted pass keeps what it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
from tqdm import tqdm

from data.core.io import atomic_write_with, write_json

log = logging.getLogger(__name__)

PIPELINE_VERSION = "1"  # bump when train/pipeline.py changes how evaluation images are decoded or resized
CHUNK = 2048  # images per shard: the unit of progress kept after an interruption


def file_digest(path: Path) -> str:
    """sha1 of a file's bytes."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def cache_key(meta: dict[str, Any]) -> str:
    """A short, stable name for a cache folder from what determines its vectors."""
    return hashlib.sha1(json.dumps(meta, sort_keys=True).encode("utf-8")).hexdigest()[:16]


class EmbeddingCache:
    """Vectors of one backbone configuration, filed by image digest, in append-only shards."""

    def __init__(self, root: Path, meta: dict[str, Any]):
        self.meta = {**meta, "pipeline_version": PIPELINE_VERSION}
        self.dir = Path(root) / cache_key(self.meta)

    def load(self) -> dict[str, np.ndarray]:
        """Every cached vector, by image digest."""
        known: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            with np.load(shard) as data:
                known.update(zip(data["digests"].tolist(), data["vectors"]))
        return known

    def add(self, digests: Sequence[str], vectors: np.ndarray) -> Path:
        """Store new vectors as one more shard; returns the shard written."""
        if not (self.dir / "meta.json").is_file():
            write_json(self.dir / "meta.json", self.meta)
        target = self.dir / f"shard-{time.time_ns()}-{uuid.uuid4().hex[:8]}.npz"  # unique across workers

        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, digests=np.asarray(digests, dtype=str), vectors=vectors.astype(np.float32))

        atomic_write_with(target, writer)
        return target


class _PredictProgress(keras.callbacks.Callback):
    """Moves a tqdm bar by one step per predicted batch."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(1)


def embed_files(
    backbone: keras.Model, files: Sequence[Path], cache: EmbeddingCache, image_size: int, batch_size: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Embeddings of ``files`` (aligned with them), computing only those the cache does not hold.

    Returns:
        The ``(len(files), dim)`` array and counts: images, cache hits, images computed.
    """
    from train.pipeline import image_dataset

    digests = [file_digest(f) for f in tqdm(files, desc="hashing images", unit="img", leave=False)]
    known = cache.load()
    todo: dict[str, Path] = {}
    for digest, path in zip(digests, files):
        if digest not in known:
            todo.setdefault(digest, path)
    stats = {"images": len(files), "cache_hits": len(files) - sum(d in todo for d in digests), "computed": len(todo)}
    if todo:
        log.info("embedding cache %s: computing %d of %d images", cache.dir, len(todo), len(files))
        items = list(todo.items())
        with tqdm(total=-(-len(items) // batch_size), desc="embedding", unit="batch") as bar:
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                ds = image_dataset([p for _, p in chunk], None, 1, image_size, batch_size)
                vectors = backbone.predict(ds, verbose=0, callbacks=[_PredictProgress(bar)])
                cache.add([d for d, _ in chunk], vectors)
                known.update(zip((d for d, _ in chunk), vectors))
    return np.stack([known[d] for d in digests]).astype(np.float32), stats
