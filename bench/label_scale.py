"""The label core at scale: synthetic float16 embeddings (a Gaussian mixture, 10% of labels flipped) through
what ``make label`` runs after the embedding pass: PCA, the neighbour search (partitioned above
``label.exact_limit``), clusters, outliers, out-of-fold probabilities, the kNN vote and cleanlab; with each
step's seconds, the peak memory, the flags against the planted flips and the search's recall against the
exact search on a sample of images.

    .venv/bin/python -m bench.label_scale --n 400000 --dims 1280     # one JSON line
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RECALL_SAMPLE = 2000  # images whose neighbours are checked against the exact search


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n: int, dims: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` float16 vectors around ``classes`` centres (made a chunk at a time: no float32 copy of all),
    the given labels and which of them were flipped."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)).astype(np.float32) * 0.6
    truth = rng.integers(0, classes, n)
    vectors = np.empty((n, dims), np.float16)
    for start in range(0, n, 50_000):
        part = truth[start : start + 50_000]
        noise = rng.standard_normal((len(part), dims), dtype=np.float32)
        vectors[start : start + len(part)] = centres[part] + noise
    labels = truth.copy()
    flipped = rng.random(n) < 0.1
    labels[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    return vectors, labels, flipped


def recall(unit: np.ndarray, indices: np.ndarray, k: int, seed: int) -> float:
    """Share of the exact ``k`` nearest neighbours the search found, over a sample of images."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(unit), min(RECALL_SAMPLE, len(unit)), replace=False))
    found, full = 0, unit.astype(np.float32)
    for start in range(0, len(rows), 64):  # 64 x n similarities at a time
        chunk = rows[start : start + 64]
        sims = full[chunk] @ full.T
        sims[np.arange(len(chunk)), chunk] = -np.inf
        exact = np.argpartition(-sims, k, axis=1)[:, :k]
        found += sum(len(set(e.tolist()) & set(indices[r, :k].tolist())) for e, r in zip(exact, chunk))
    return found / (len(rows) * k)


def scale(n: int, dims: int, classes: int, seed: int) -> dict[str, Any]:
    """The label core on ``n`` synthetic vectors: seconds per step, peak memory, flags vs planted flips."""
    from bench.bench_label import scores
    from label.embed import project, unit_rows
    from label.health import outliers
    from label.issues import score_labels
    from label.neighbours import clusters, near_radius
    from label.options import LabelOptions
    from label.partition import search

    vectors, labels, flipped = synthetic(n, dims, classes, seed)
    options, times = LabelOptions(), dict[str, float]()
    started = time.perf_counter()

    def lap(name: str) -> None:
        times[name] = time.perf_counter() - started - sum(times.values())

    reduced = project(vectors, options.dims, seed)
    del vectors
    lap("pca")
    unit = unit_rows(reduced[:, : options.search_dims])
    indices, sims, how = search(unit, options.neighbours, options.exact_limit, options.probe, seed)
    lap("neighbours")
    cluster = clusters(indices, sims, near_radius(sims, options.near_duplicate), np.full(n, -1))
    outlier = outliers(sims, options.outlier_iqr)[1]
    lap("clusters_outliers")
    result = score_labels(reduced, labels, cluster, (indices, sims), classes, options)
    lap("oof_knn_cleanlab")
    peak = peak_rss_mb()
    keys = pd.Series(np.arange(n).astype(str))
    planted = set(keys[flipped])
    return {
        "n": n,
        "dims": dims,
        "dtype": "float16",
        "classes": classes,
        "search": how,
        "seconds": times,
        "total_s": sum(times.values()),
        "peak_rss_mb": peak,
        "search_recall_at_k": round(recall(unit, indices, options.neighbours, seed), 4),
        "outliers": int(outlier.sum()),
        "cleanlab": scores(pd.Series(result.baseline_issue), keys, planted),
        "ours": scores(pd.Series(result.label_issue), keys, planted),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.label_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--dims", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=43)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (label.threads)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads or None):
        print(json.dumps(scale(args.n, args.dims, args.classes, args.seed)), flush=True)


if __name__ == "__main__":
    main()
