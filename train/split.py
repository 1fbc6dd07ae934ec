"""The deterministic, stratified train/validation/test split (saved with each run as ``split.csv``).

Inside a class, images are ordered by ``sha1(seed:group)``, where the group is the image's sha256 (its
content; the key when the manifest has no hash): the same images and seed always give the same split,
whatever the row order, and duplicate photos land in the same split, so one cannot leak from train to test.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from train.errors import DataSetError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def _rank(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode("utf-8")).hexdigest()


def split_counts(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` images of one class go to train, validation and test.

    Validation and test get their rounded share, and at least one image each (when their ratio is not 0)
    as soon as the class has three images; train keeps the rest and never ends up empty.
    """
    _, r_val, r_test = ratios
    n_val, n_test = round(n * r_val), round(n * r_test)
    if n >= 3:
        n_val = max(n_val, 1 if r_val > 0 else 0)
        n_test = max(n_test, 1 if r_test > 0 else 0)
    while n_val + n_test >= n and n_val + n_test > 0:  # keep at least one training image
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def validate_ratios(ratios: Sequence[float]) -> None:
    """Raise ``DataSetError`` unless ``ratios`` are three non-negative numbers summing to 1 with train > 0."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6 or ratios[0] <= 0:
        raise DataSetError(f"train.split must be [train, validation, test] ratios summing to 1, got {list(ratios)}")


def stratified_split(frame: pd.DataFrame, ratios: Sequence[float], seed: int) -> pd.Series:
    """The split name of every row of ``frame`` (columns key, label, optional group), stratified by label."""
    validate_ratios(ratios)
    groups = frame["group"] if "group" in frame else frame["key"]
    groups = groups.where(groups.fillna("").astype(str).ne(""), frame["key"]).astype(str)
    result = pd.Series("train", index=frame.index, dtype=object)
    for _, members in groups.groupby(frame["label"], sort=True):
        unique = sorted(members.unique(), key=lambda g: _rank(g, seed))
        _, n_val, n_test = split_counts(len(unique), ratios)
        chosen = {g: "test" for g in unique[:n_test]}
        chosen.update({g: "validation" for g in unique[n_test : n_test + n_val]})
        result.loc[members.index] = members.map(lambda g: chosen.get(g, "train")).to_numpy()
    return result


def assign_split(frame: pd.DataFrame, ratios: Sequence[float], seed: int, split_file: Path | None) -> pd.Series:
    """Split names for ``frame``: from ``split_file`` (an earlier run's) where it knows the key, else anew."""
    if split_file is None:
        return stratified_split(frame, ratios, seed)
    if not Path(split_file).is_file():
        raise DataSetError(f"train.split_file {split_file} does not exist (give an earlier run's split.csv or '')")
    previous = pd.read_csv(split_file, dtype={"key": str, "split": str}).set_index("key")["split"]
    split = frame["key"].map(previous)
    new = split.isna()
    if new.any():
        split[new] = stratified_split(frame[new], ratios, seed)
    log.info("split from %s: %d images kept their split, %d new ones split anew", split_file, (~new).sum(), new.sum())
    return split


def carve_validation(frame: pd.DataFrame, ratios: Sequence[float], seed: int) -> pd.Series:
    """For a folder with train/ and test/ but no validation/: take validation from train, stratified.

    The share taken is ``validation / (train + validation)`` of the configured ratios.
    """
    r_train, r_val, _ = ratios
    split = frame["split"].copy()
    train = split.eq("train")
    share = r_val / (r_train + r_val) if r_val > 0 else 0.1
    carved = stratified_split(frame[train], (1.0 - share, share, 0.0), seed)
    split[train] = carved
    return split
