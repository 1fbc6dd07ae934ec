"""Classification metrics from labels and predicted probabilities, in plain numpy (no TensorFlow).

Training reports the same quantities through Keras metrics per epoch; these functions give the final,
exact numbers for ``metrics.json`` and ``make evaluate``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of samples of true class ``i`` predicted as class ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    precision = _safe_ratio(tp, cm.sum(axis=0))
    recall = _safe_ratio(tp, cm.sum(axis=1))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 scores over the classes that occur (in truth or prediction)."""
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    if not present.any():
        return 0.0
    return float(per_class_scores(cm)["f1"][present].mean())


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the ``k`` most probable classes."""
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0:
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == y_true[:, None]).any(axis=1).mean())


def most_confused(cm: np.ndarray, classes: Sequence[str], limit: int = 10) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most samples: which true class is taken for which, and how often."""
    pairs = []
    for i, j in zip(*np.nonzero(cm)):
        if i != j:
            share = cm[i, j] / cm[i].sum()
            pairs.append(
                {
                    "true": classes[i],
                    "predicted": classes[j],
                    "count": int(cm[i, j]),
                    "share_of_true": round(float(share), 4),
                }
            )
    pairs.sort(key=lambda p: (-p["count"], -p["share_of_true"], p["true"], p["predicted"]))
    return pairs[:limit]


def cross_entropy(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample loss ``-log p(true class)``, clipped away from log(0)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    picked = probs[np.arange(len(y_true)), y_true]
    return -np.log(np.clip(picked, 1e-7, 1.0))


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], top_confused: int = 10
) -> dict[str, Any]:
    """Everything ``make evaluate`` reports, as a JSON-ready dict (plus the confusion matrix as a list)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    scores = per_class_scores(cm)
    per_class = {
        name: {
            "precision": round(float(scores["precision"][i]), 4),
            "recall": round(float(scores["recall"][i]), 4),
            "f1": round(float(scores["f1"][i]), 4),
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "samples": int(len(y_true)),
        "accuracy": round(float((y_pred == y_true).mean()) if len(y_true) else 0.0, 4),
        "top3_accuracy": round(top_k_accuracy(y_true, probs, 3), 4),
        "macro_f1": round(macro_f1(cm), 4),
        "loss": round(float(cross_entropy(y_true, probs).mean()) if len(y_true) else 0.0, 4),
        "per_class": per_class,
        "most_confused": most_confused(cm, classes, top_confused),
        "confusion_matrix": cm.tolist(),
    }
