"""Nearest neighbours by cosine similarity in bounded memory, and near-duplicate clusters.

The search never holds an n x n matrix: the unit vectors are kept as float16 (400k x 128 is 100 MB), a
block of rows and a block of columns are turned into float32 for one BLAS product of at most
``block_mb`` megabytes, and each row keeps its ``k`` best so far. Memory is the vectors, the n x k answer and
one block, whatever n is; time grows as n squared, which at 128 dimensions is minutes for 400k images.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

ROWS = 1024  # rows per product: with the column block, sets the largest temporary array


def _merge(best_s: np.ndarray, best_i: np.ndarray, sims: np.ndarray, offset: int) -> None:
    """Fold one block of similarities into each row's ``k`` best (in place, unordered).

    Only entries above a row's current k-th best can enter, and after the first block these are few: they
    are gathered with one comparison and merged by a sort, instead of partitioning the whole block.
    """
    k = best_s.shape[1]
    passing = sims > best_s.min(axis=1, keepdims=True)
    if passing.sum() > 4 * k * len(sims):  # the first blocks: partition each row
        kk = min(k, sims.shape[1])
        part = np.argpartition(sims, sims.shape[1] - kk, axis=1)[:, -kk:]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part.astype(np.int64) + offset], axis=1)
        top = np.argpartition(cand_s, cand_s.shape[1] - k, axis=1)[:, -k:]
        best_s[:] = np.take_along_axis(cand_s, top, axis=1)
        best_i[:] = np.take_along_axis(cand_i, top, axis=1)
        return
    rows, cols = np.nonzero(passing)
    if not len(rows):
        return
    owner = np.concatenate([np.repeat(np.arange(len(sims)), k), rows])
    cand_s = np.concatenate([best_s.ravel(), sims[rows, cols]])
    cand_i = np.concatenate([best_i.ravel(), cols.astype(np.int64) + offset])
    order = np.lexsort((-cand_s, owner))  # by row, most similar first
    starts = np.searchsorted(owner[order], np.arange(len(sims)))
    keep = order[(starts[:, None] + np.arange(k)).ravel()]  # every row has at least its k current best
    best_s[:] = cand_s[keep].reshape(best_s.shape)
    best_i[:] = cand_i[keep].reshape(best_i.shape)


def nearest(unit: np.ndarray, k: int, block_mb: int = 16, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row of ``unit`` (rows of length 1), most similar first.

    Args:
        unit: ``(n, d)`` unit vectors, float16 or float32.
        k: neighbours per row (at most n - 1).
        block_mb: size of the largest temporary block of similarities, in megabytes.
        progress: show a progress bar.

    Returns:
        ``(indices, similarities)``: ``(n, k)`` int64 and float32 arrays; a row is never its own neighbour.
    """
    n = len(unit)
    k = max(0, min(k, n - 1))
    indices, sims = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    if k == 0:
        return indices, sims
    cols_per_block = max(k, (block_mb << 20) // (4 * ROWS))
    outer = max(ROWS, (block_mb << 20) // (4 * unit.shape[1]))  # rows converted to float32 once per pass
    bar = tqdm(total=n, desc="neighbour search", unit="img", disable=not progress)
    for r0 in range(0, n, outer):
        rows = unit[r0 : r0 + outer].astype(np.float32)
        best_s = np.full((len(rows), k), -np.inf, np.float32)
        best_i = np.zeros((len(rows), k), np.int64)
        for c0 in range(0, n, cols_per_block):
            cols = unit[c0 : c0 + cols_per_block].astype(np.float32)
            for s0 in range(0, len(rows), ROWS):
                block = rows[s0 : s0 + ROWS] @ cols.T
                lo, hi = max(r0 + s0, c0), min(r0 + s0 + len(block), c0 + len(cols))
                if lo < hi:  # the rows' own columns: never their own neighbour
                    block[np.arange(lo, hi) - r0 - s0, np.arange(lo, hi) - c0] = -np.inf
                _merge(best_s[s0 : s0 + ROWS], best_i[s0 : s0 + ROWS], block, c0)
        order = np.argsort(-best_s, axis=1, kind="stable")
        sims[r0 : r0 + len(rows)] = np.take_along_axis(best_s, order, axis=1)
        indices[r0 : r0 + len(rows)] = np.take_along_axis(best_i, order, axis=1)
        bar.update(len(rows))
    bar.close()
    return indices, sims


def near_radius(sims: np.ndarray, fraction: float) -> float:
    """The cosine distance under which two images are near duplicates: ``fraction`` of the median distance
    from an image to its nearest neighbour.

    Relative, because how close two different photos come depends on the model: a weak model's embeddings
    put whole classes within 0.02 of each other, a strong one's spread them; a near copy is far closer than
    the typical nearest neighbour either way (cleanlab's Datalab judges near duplicates the same way).
    """
    if not sims.size:
        return 0.0
    return fraction * max(float(np.median(1.0 - sims[:, 0])), 1e-6)


def clusters(
    indices: np.ndarray,
    sims: np.ndarray,
    radius: float,
    exact: np.ndarray,
    hashes: np.ndarray | None = None,
    max_bits: int = -1,
) -> np.ndarray:
    """A cluster id per row: rows joined by a near pair or by the same ``exact`` group id (e.g. the same
    sha256; -1 for none), transitively. A row alone has its own id.

    A near pair is a neighbour closer than ``radius`` (cosine distance) whose difference hash (``hashes``,
    from label/quality.py) differs in at most ``max_bits`` bits; ``max_bits`` -1 trusts the embeddings
    alone. The hash guards against a weak model, whose embeddings can put different photos on one point.
    """
    from label.quality import hash_distance

    n = len(exact)
    rows, cols = np.nonzero(1.0 - sims < radius)
    near = indices[rows, cols]
    if hashes is not None and max_bits >= 0 and len(rows):
        same = hash_distance(hashes[rows], hashes[near]) <= max_bits
        rows, near = rows[same], near[same]
    src, dst = [rows], [near]
    grouped = np.flatnonzero(exact >= 0)
    if len(grouped):  # link every member of an exact group to the group's first member
        _, first, inverse = np.unique(exact[grouped], return_index=True, return_inverse=True)
        src.append(grouped)
        dst.append(grouped[first][inverse])
    a, b = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)
