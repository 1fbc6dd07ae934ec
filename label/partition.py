"""Approximate nearest neighbours for large sets: an inverted-file search (faiss's IVF idea) in NumPy.

The exact search (label/neighbours.py) costs n^2 x d multiply-adds: 2e13 for 400,000 images at 128
dimensions, a quarter of an hour on one core. Here k-means (fitted on a sample) cuts the unit vectors into
``cells`` cells of about n / cells images; the images of one cell are compared only with the images of the
``probe`` cells whose centres lie nearest to their own cell's centre, so the cost falls to about
n x (probe x n / cells) x d. Near neighbours share a cell or sit in adjacent ones, so recall stays high
(measured against the exact search in tests/label/test_units.py and in the scale benchmark).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from label.neighbours import ROWS, _merge

FIT_SAMPLE = 50_000  # images the k-means is fitted on
CANDIDATE_BLOCK = 16_384  # candidates multiplied at a time: bounds the temporary block to ROWS x this


def cells_of(unit: np.ndarray, cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means centres (unit length) fitted on a sample, and each row's cell (its most similar centre)."""
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    sample = unit if len(unit) <= FIT_SAMPLE else unit[np.sort(rng.choice(len(unit), FIT_SAMPLE, replace=False))]
    kmeans = MiniBatchKMeans(cells, random_state=seed, n_init=1, batch_size=4096, max_iter=20).fit(
        sample.astype(np.float32)
    )
    centres = kmeans.cluster_centers_.astype(np.float32)
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    cell = np.empty(len(unit), np.int64)
    for start in range(0, len(unit), 65_536):
        cell[start : start + 65_536] = (unit[start : start + 65_536].astype(np.float32) @ centres.T).argmax(axis=1)
    return centres, cell


def nearest_partitioned(
    unit: np.ndarray, k: int, cells: int, probe: int, seed: int = 0, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The (approximately) ``k`` nearest other rows of every row, most similar first, as
    :func:`label.neighbours.nearest` returns them.

    Args:
        unit: ``(n, d)`` unit vectors, float16 or float32.
        k: neighbours per row.
        cells: k-means cells (about the square root of n suits).
        probe: cells searched per cell (its own and the nearest others).
        seed: the k-means seed.
        progress: show a progress bar.
    """
    n = len(unit)
    k = max(0, min(k, n - 1))
    cells = max(1, min(cells, n))
    indices, sims = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    if k == 0:
        return indices, sims
    centres, cell = cells_of(unit, cells, seed)
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(len(centres) + 1))
    nearby = np.argsort(-(centres @ centres.T), axis=1)[:, : max(1, min(probe, len(centres)))]
    for c in tqdm(range(len(centres)), desc="neighbour search (partitioned)", unit="cell", disable=not progress):
        members = order[starts[c] : starts[c + 1]]
        if not len(members):
            continue
        candidates = np.sort(np.concatenate([order[starts[o] : starts[o + 1]] for o in nearby[c]]))
        for s0 in range(0, len(members), ROWS):
            rows = members[s0 : s0 + ROWS]
            best_s, best_i = _search(unit, rows, candidates, k)
            top = np.argsort(-best_s, axis=1, kind="stable")
            sims[rows] = np.take_along_axis(best_s, top, axis=1)
            indices[rows] = np.take_along_axis(best_i, top, axis=1)
    sims[~np.isfinite(sims)] = -1.0  # fewer candidates than k (tiny cells): as far as a pair can be
    return indices, sims


def search(unit: np.ndarray, k: int, exact_limit: int, probe: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The exact search up to ``exact_limit`` images, the partitioned one above; and which one ran."""
    from label.neighbours import nearest

    if len(unit) <= exact_limit:
        return (*nearest(unit, k), "exact")
    cells = round(float(np.sqrt(len(unit))))
    indices, sims = nearest_partitioned(unit, k, cells, probe, seed)
    return indices, sims, f"partitioned ({cells} k-means cells, {probe} probed per cell)"


def _search(unit: np.ndarray, rows: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``rows``' ``k`` most similar ``candidates`` (never itself); -inf and 0 where fewer exist."""
    queries = unit[rows].astype(np.float32)
    best_s = np.full((len(rows), k), -np.inf, np.float32)
    best_i = np.zeros((len(rows), k), np.int64)
    for c0 in range(0, len(candidates), CANDIDATE_BLOCK):
        ids = candidates[c0 : c0 + CANDIDATE_BLOCK]
        block = queries @ unit[ids].astype(np.float32).T
        block[rows[:, None] == ids[None, :]] = -np.inf  # a row is never its own neighbour
        local_s = np.full_like(best_s, -np.inf)
        local_i = np.zeros_like(best_i)
        _merge(local_s, local_i, block, 0)
        local_i = ids[local_i]
        both_s, both_i = np.concatenate([best_s, local_s], axis=1), np.concatenate([best_i, local_i], axis=1)
        top = np.argpartition(-both_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(both_s, top, axis=1), np.take_along_axis(both_i, top, axis=1)
    return best_s, np.where(np.isfinite(best_s), best_i, rows[:, None])
