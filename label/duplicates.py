"""Duplicate clusters: exact (the same sha256) and near (embeddings at least ``label.near_duplicate``
similar), joined transitively, and what each cluster spans.

A cluster under more than one label is a *cross-class duplicate*: the same photo listed in two categories,
or a placeholder, logo or size chart under many; its images are drop candidates, not relabel candidates.
A cluster in more than one of train/validation/test is a *leak*: the model is tested on what it trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from label.inputs import UNSEEN


def exact_groups(sha256: pd.Series) -> np.ndarray:
    """A group id per image for its sha256 (-1 where the manifest has none)."""
    known = sha256.where(sha256.fillna("").astype(str).ne(""))
    codes, _ = pd.factorize(known)
    return np.asarray(codes, np.int64)


def describe_clusters(images: pd.DataFrame, cluster: np.ndarray) -> pd.DataFrame:
    """Per image: its cluster (-1 when alone; 0 is the largest), the cluster's size, kind, labels and flags.

    Args:
        images: rows with label, split and sha256, aligned with ``cluster``.
        cluster: a cluster id per image, from :func:`label.neighbours.clusters`.

    Returns:
        Columns cluster, cluster_size, cluster_kind (exact / near / ""), cluster_labels (the labels of the
        cluster, ``|``-separated), cross_class and cross_split (booleans).
    """
    frame = pd.DataFrame(
        {
            "cluster": cluster,
            "label": images["label"].to_numpy(),
            "split": images["split"].where(images["split"] != UNSEEN).to_numpy(),
            "sha256": images["sha256"].fillna("").astype(str).to_numpy(),
        }
    )
    size = frame.groupby("cluster")["label"].transform("size").to_numpy()
    out = pd.DataFrame(
        {
            "cluster": np.full(len(frame), -1, np.int64),
            "cluster_size": np.where(size > 1, size, 1),
            "cluster_kind": "",
            "cluster_labels": "",
            "cross_class": False,
            "cross_split": False,
        }
    )
    members = frame[size > 1]
    if members.empty:
        return out
    stats = _cluster_stats(members)
    renumber = pd.Series(np.arange(len(stats)), index=stats.index)
    index = members.index.to_numpy()
    ids = members["cluster"]
    out.loc[index, "cluster"] = ids.map(renumber).to_numpy()
    out.loc[index, "cluster_kind"] = np.where(ids.map(stats["exact"]).to_numpy(bool), "exact", "near")
    out.loc[index, "cluster_labels"] = ids.map(stats["labels"]).to_numpy()
    out.loc[index, "cross_class"] = ids.map(stats["n_labels"]).to_numpy() > 1
    out.loc[index, "cross_split"] = ids.map(stats["n_splits"]).to_numpy() > 1
    return out


def _cluster_stats(members: pd.DataFrame) -> pd.DataFrame:
    """Per cluster of ``members``: size, labels, label and split counts, whether exact; largest first."""
    grouped = members.groupby("cluster")
    return pd.DataFrame(
        {
            "size": grouped.size(),
            "labels": grouped["label"].agg(lambda s: "|".join(sorted(s.unique()))),
            "n_labels": grouped["label"].nunique(),
            "n_splits": grouped["split"].nunique(),  # ignores images the run never saw
            "exact": grouped["sha256"].agg(lambda s: s.iloc[0] != "" and s.nunique() == 1),
        }
    ).sort_values(["size", "labels"], ascending=[False, True], kind="stable")
