"""The per-image table (``issues.parquet``) and the summary (``summary.json``) of a label version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from label.issues import LabelScores, noise_matrix, suggestions
from label.options import ISSUE_TYPES, LabelOptions
from label.quality import FLAGS, MEASURES

ACTIONS = ("keep", "relabel", "drop")
# Issue types that come from the cluster and label columns rather than a quality flag of the same name.
_DERIVED = {"cross_class_duplicate": "cross_class", "label": "label_issue", "cross_split_duplicate": "cross_split"}


def label_columns(scores: LabelScores, labels: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Per readable image: the suggested label and its probability, quality score and the kNN opinion."""
    names = np.asarray(classes, dtype=object)
    rows = np.arange(len(labels))
    best, best_prob = suggestions(scores.full, labels)
    knn_best = scores.knn.argmax(axis=1)
    return pd.DataFrame(
        {
            "suggested_label": names[best],
            "suggested_prob": best_prob.round(4),
            "given_prob": scores.full[rows, labels].round(4),
            "quality_score": np.asarray(scores.quality).round(4),
            "oof_label": names[scores.oof.argmax(axis=1)],
            "oof_given_prob": scores.oof[rows, labels].round(4),
            "knn_label": np.where(scores.knn_voters > 0, names[knn_best], ""),
            "knn_agreement": np.where(scores.knn_voters > 0, scores.knn[rows, labels], np.nan).round(4),
            "knn_voters": scores.knn_voters.astype(np.int64),
            "label_issue": np.asarray(scores.label_issue, bool),
            "cleanlab_default": np.asarray(scores.baseline_issue, bool),
        }
    )


def issue_columns(table: pd.DataFrame, options: LabelOptions) -> pd.DataFrame:
    """``issues`` (every type that applies, comma-separated, in ``ISSUE_TYPES`` order), ``issue_type`` (the first)
    and ``action`` (the suggested one: drop for an ``auto_drop`` type, relabel for a label issue, else keep).
    """
    present = {}
    for kind in ISSUE_TYPES:
        column = "cluster_size" if kind == "duplicate" else _DERIVED.get(kind, kind)
        values = table[column].to_numpy()
        present[kind] = values > 1 if kind == "duplicate" else values.astype(bool)
    present["duplicate"] &= ~present["cross_class_duplicate"]
    matrix = np.column_stack([present[k] for k in ISSUE_TYPES])
    names = np.asarray(ISSUE_TYPES, dtype=object)
    issues = [",".join(names[row]) for row in matrix]
    first = np.where(matrix.any(axis=1), names[matrix.argmax(axis=1)], "")
    drop = np.column_stack([present[k] for k in options.auto_drop]).any(axis=1) if options.auto_drop else False
    action = np.where(drop, "drop", np.where(present["label"], "relabel", "keep"))
    return pd.DataFrame({"issue_type": first, "issues": issues, "action": action}, index=table.index)


def order_for_review(table: pd.DataFrame) -> pd.DataFrame:
    """Flagged images, most urgent first: by main issue type, then cluster, then lowest label quality."""
    flagged = table[table["issue_type"] != ""]
    rank = flagged["issue_type"].map({k: i for i, k in enumerate(ISSUE_TYPES)})
    keys = pd.DataFrame({"rank": rank, "cluster": flagged["cluster"], "q": flagged["quality_score"].fillna(-1.0)})
    order = keys.sort_values(["rank", "cluster", "q"], kind="stable").index
    return flagged.loc[order]


def _counts_by_type(table: pd.DataFrame) -> dict[str, int]:
    exploded = table["issues"].str.split(",").explode()
    counts = exploded[exploded != ""].value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in ISSUE_TYPES}


def _clusters(table: pd.DataFrame) -> dict[str, Any]:
    members = table[table["cluster"] >= 0]
    first = members.drop_duplicates("cluster")
    largest = first.sort_values("cluster").head(10)
    return {
        "clusters": len(first),
        "images_in_clusters": len(members),
        "exact_clusters": int((first["cluster_kind"] == "exact").sum()),
        "near_clusters": int((first["cluster_kind"] == "near").sum()),
        "cross_class_clusters": int(first["cross_class"].sum()),
        "cross_split_clusters": int(first["cross_split"].sum()),
        "largest": [
            {"cluster": int(r.cluster), "size": int(r.cluster_size), "kind": r.cluster_kind, "labels": r.cluster_labels}
            for r in largest.itertuples()
        ],
    }


def summarise(table: pd.DataFrame) -> dict[str, Any]:
    """Counts by issue type and by class, suggested actions, duplicate clusters and quality measures."""
    by_class = {}
    for name, rows in table.groupby("label", sort=True):
        by_class[str(name)] = {"images": len(rows), **{k: v for k, v in _counts_by_type(rows).items() if v}}
    return {
        "images": len(table),
        "flagged": int((table["issue_type"] != "").sum()),
        "counts": _counts_by_type(table),
        "suggested_actions": {a: int((table["action"] == a).sum()) for a in ACTIONS},
        "by_class": by_class,
        "duplicates": _clusters(table),
        "quality_measures": {m: round(float(table[m].median()), 3) for m in MEASURES if table[m].notna().any()},
        "quality_flags": {f: int(table[f].sum()) for f in FLAGS},
    }


def label_summary(scores: LabelScores, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """How many label issues each method flags, how often each opinion agrees with the given label, and
    cleanlab's estimate of the noise matrix."""
    noise, prior = noise_matrix(labels, scores.full)
    return {
        "label_issues": {
            "flagged": int(scores.label_issue.sum()),
            "cleanlab_default": int(scores.baseline_issue.sum()),
            "oof_accuracy": round(float((scores.oof.argmax(axis=1) == labels).mean()), 4),
            "knn_accuracy": round(float((scores.knn.argmax(axis=1) == labels).mean()), 4),
        },
        "noise_matrix": {
            "meaning": "P(given label = row | true label = column), estimated by cleanlab (confident joint)",
            "classes": list(classes),
            "matrix": np.asarray(noise).round(4).tolist(),
            "true_label_prior": np.asarray(prior).round(4).tolist(),
            "estimated_noise_rate": round(float(1.0 - (np.diag(noise) * prior).sum()), 4),
        },
    }
