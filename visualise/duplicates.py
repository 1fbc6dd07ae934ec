"""Exact duplicates (the same file bytes under several keys) and near duplicates (the same photo resized,
recompressed or slightly edited), with how many of each cross classes.

Near duplicates are pairs whose 64-bit difference hashes differ in at most ``distance`` bits. Comparing every
pair of 100k+ hashes is too slow, so the bits are split into ``distance + 1`` interleaved bands: two hashes
within ``distance`` bits agree exactly on at least one band (pigeonhole), and only hashes sharing a band
value are compared. Connected pairs form groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from visualise.images import dhash_files

CHUNK = 512  # rows compared at once inside one band bucket (bounds memory to CHUNK x bucket size)


def _band_keys(hashes: np.ndarray, band: int, bands: int) -> np.ndarray:
    """The bits ``band, band + bands, band + 2 * bands, ...`` of each hash, packed into one integer."""
    key = np.zeros(len(hashes), np.uint64)
    for out_bit, bit in enumerate(range(band, 64, bands)):
        key |= ((hashes >> np.uint64(bit)) & np.uint64(1)) << np.uint64(out_bit)
    return key


def _bucket_pairs(hashes: np.ndarray, members: np.ndarray, distance: int) -> list[np.ndarray]:
    """Index pairs ``(i, j)``, i < j, among ``members`` whose hashes are within ``distance`` bits."""
    found = []
    values = hashes[members]
    for start in range(0, len(members) - 1, CHUNK):
        rows = values[start : start + CHUNK, None]
        near = np.bitwise_count(rows ^ values[None, :]) <= distance
        i, j = np.nonzero(near)
        i = i + start
        keep = j > i
        if keep.any():
            found.append(np.stack([members[i[keep]], members[j[keep]]], axis=1))
    return found


def near_pairs(hashes: np.ndarray, distance: int) -> np.ndarray:
    """Every pair of indices ``(i, j)``, i < j, whose hashes differ in at most ``distance`` bits (sorted)."""
    if len(hashes) < 2:
        return np.zeros((0, 2), np.int64)
    bands = distance + 1
    found: list[np.ndarray] = []
    for band in range(bands):
        keys = _band_keys(hashes, band, bands)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts, ends):
            if e - s > 1:
                found += _bucket_pairs(hashes, np.sort(order[s:e]), distance)
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0)


def _groups(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected-component id of each of ``n`` nodes joined by ``pairs``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass(frozen=True)
class Group:
    """One duplicate group: its keys, labels and image paths (sorted by key)."""

    keys: list[str]
    labels: list[str]
    paths: list[str]

    @property
    def cross_class(self) -> bool:
        """Whether the group's images carry more than one label."""
        return len(set(self.labels)) > 1


def _summarise(frame: pd.DataFrame, group_col: str, examples: int) -> tuple[dict[str, Any], list[Group]]:
    """Counts over the groups of ``frame[group_col]`` with two or more images, and example groups."""
    sizes = frame.groupby(group_col)["key"].transform("size")
    grouped = frame[sizes > 1].sort_values("key", kind="stable")
    per_group = grouped.groupby(group_col, sort=False).agg(
        size=("key", "size"), classes=("label", "nunique"), first=("key", "first")
    )
    cross = per_group[per_group["classes"] > 1]
    doc: dict[str, Any] = {
        "groups": int(len(per_group)),
        "images": int(per_group["size"].sum()),
        "cross_class_groups": int(len(cross)),
        "cross_class_images": int(cross["size"].sum()),
    }
    ranked = per_group.assign(cross=per_group["classes"] > 1).sort_values(
        ["cross", "size", "first"], ascending=[False, False, True], kind="stable"
    )
    chosen = []
    for gid in ranked.index[:examples]:
        rows = grouped[grouped[group_col] == gid]
        chosen.append(Group(list(rows["key"]), list(rows["label"]), list(rows["path"])))
    doc["examples"] = [{"keys": g.keys, "labels": g.labels} for g in chosen]
    return doc, chosen


def find_duplicates(
    stored: pd.DataFrame, images_dir: Path, *, distance: int, max_images: int, examples: int, seed: int
) -> tuple[dict[str, Any], list[Group], list[Group]]:
    """Exact and near duplicates among the stored images.

    Args:
        stored: the manifest's stored rows (key, label, sha256, path).
        images_dir: the folder ``path`` is relative to.
        distance: most differing hash bits for a near duplicate.
        max_images: most distinct files hashed (a seeded sample beyond it).
        examples: example groups kept for the page.
        seed: the sampling seed.

    Returns:
        The JSON section, and the example groups (exact, near) whose thumbnails the page shows.
    """
    frame = stored[["key", "label", "sha256", "path"]].sort_values("key", kind="stable").reset_index(drop=True)
    frame["content"] = frame["sha256"].fillna("").astype(str).where(lambda s: s != "", frame["key"])
    exact, exact_groups = _summarise(frame, "content", examples)
    distinct = frame.drop_duplicates("content")  # one file per content: exact copies are not near duplicates
    if len(distinct) > max_images:
        picked = np.sort(np.random.default_rng(seed).choice(len(distinct), max_images, replace=False))
        distinct = distinct.iloc[picked]
    hashes, readable = dhash_files([images_dir / p for p in distinct["path"]])
    usable = distinct[readable].reset_index(drop=True)
    pairs = near_pairs(hashes[readable], distance)
    near, near_groups = _summarise(usable.assign(group=_groups(pairs, len(usable))), "group", examples)
    near.update(
        distance_bits=distance,
        distinct_files=int(frame["content"].nunique()),
        hashed=int(len(distinct)),
        unreadable=int((~readable).sum()),
        pairs=int(len(pairs)),
    )
    return {"exact": exact, "near": near}, exact_groups, near_groups
