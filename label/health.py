"""Issues judged against the whole data set, and its health scores (as cleanlab's Datalab reports them).

- **outlier** (off-topic: an "image not available" placeholder, a size chart, a lifestyle shot among
  packshots): an image whose mean cosine distance to its ``k`` nearest neighbours in embedding space lies
  above ``Q3 + label.outlier_iqr x IQR`` of all images' (Datalab's rule; its default 1.7 is ``1/0.37 - 1``).
  The score is Datalab's ``exp(-distance / median distance)``: 1 for an image sitting on its neighbours,
  about 0.37 for a typical one, near 0 far from everything.
- **class_imbalance**: every image of a class holding less than ``label.imbalance`` of an even share
  (``images / classes``). Datalab flags the rarest class alone; a catalogue can have several starved ones.
  The score is the class's share over an even share, capped at 1.
- **health**: per class and for the data set, the share of images without a label issue (Datalab's label
  health score); the data set's is the image-weighted mean of the classes'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def outliers(sims: np.ndarray, iqr_scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Per image: the outlier score and flag, from the similarities to its nearest neighbours; and the
    distance threshold used.

    Args:
        sims: ``(n, k)`` cosine similarities to each image's nearest neighbours (label/neighbours.py).
        iqr_scale: how many interquartile ranges above the third quartile an outlier's mean distance lies.
    """
    if not sims.size:
        return np.ones(len(sims)), np.zeros(len(sims), bool), float("inf")
    distance = np.clip(1.0 - sims.astype(np.float64), 0.0, 2.0).mean(axis=1)
    q1, median, q3 = np.percentile(distance, [25, 50, 75])
    threshold = float(q3 + iqr_scale * (q3 - q1))
    score = np.exp(-distance / max(median, 1e-12))
    return score, distance > threshold, threshold


def class_imbalance(labels: pd.Series, share: float) -> pd.DataFrame:
    """Per image: ``class_share`` (its class's share over an even share, capped at 1) and ``class_imbalance``
    (that share below ``share``)."""
    counts = labels.value_counts()
    even = len(labels) / max(len(counts), 1)
    ratio = labels.map(counts).to_numpy(np.float64) / max(even, 1e-12)
    return pd.DataFrame(
        {"class_share": np.minimum(ratio, 1.0).round(4), "class_imbalance": ratio < share}, index=labels.index
    )


def health(table: pd.DataFrame) -> dict[str, Any]:
    """The label health score per class and for the data set: the share of images without a label issue.

    The classes' scores weighted by their image counts give back the data set's, by construction.
    """
    issue = table["label_issue"].fillna(False).astype(bool)
    by_class = issue.groupby(table["label"]).agg(["size", "sum"])
    classes = {
        str(name): {
            "images": int(row["size"]),
            "label_issues": int(row["sum"]),
            "health": round(1.0 - row["sum"] / max(row["size"], 1), 4),
        }
        for name, row in by_class.iterrows()
    }
    images = len(table)
    return {
        "meaning": "share of images without a label issue (cleanlab Datalab's label health score)",
        "data_set": round(1.0 - int(issue.sum()) / max(images, 1), 4),
        "images": images,
        "label_issues": int(issue.sum()),
        "worst_classes": sorted(classes, key=lambda c: (classes[c]["health"], c))[:10],
        "imbalanced_classes": sorted(map(str, table.loc[table["class_imbalance"].astype(bool), "label"].unique())),
        "by_class": classes,
    }
