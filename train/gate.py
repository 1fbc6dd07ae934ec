"""The sanity gate: does the model clearly beat a constant predictor that always says the majority class?

A model trained on random features, or one that collapsed, predicts (almost) one class for everything; its
accuracy can look respectable on imbalanced data. The gate compares it with the majority-class baseline
(the most frequent class of the training split) and fires when

- its macro-F1 is within ``F1_MARGIN`` of the constant predictor's, or
- one class takes ``COLLAPSE_SHARE`` or more of the predictions while making up much less of the truth.

``make train`` (validation split) and ``make evaluate`` (test split) print the verdict in plain words with
the likely causes, record it in ``metrics.json`` under ``sanity``, and with ``strict = true`` exit non-zero.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from train.metrics import confusion_matrix, macro_f1

F1_MARGIN = 0.05
COLLAPSE_SHARE = 0.9


def _likely_causes(hints: dict[str, Any]) -> list[str]:
    causes = []
    if hints.get("frozen_random_backbone"):
        causes.append(
            "the backbone has random weights and was kept frozen, so the head learnt from random features: "
            "train from scratch (train.recipe=scratch, the default with train.weights=none) or give weights "
            "(train.weights=imagenet or a weights file)"
        )
    causes += [
        "too little training: more epochs (train.epochs) or a longer time budget (train.time_budget_s)",
        "a learning rate too high or too low for this recipe (train.learning_rate)",
        "too few images per class, or classes that look alike: check the per-class counts",
        "wrong labels: look at the highest-loss images in make evaluate's gallery.png",
    ]
    return causes


def sanity_check(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], majority: int, hints: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The gate's verdict for predictions ``probs`` of true classes ``y_true``.

    Args:
        majority: index of the most frequent class of the training split (the constant predictor's answer).
        hints: what is known about the run, for the likely causes (``frozen_random_backbone``).

    Returns:
        A JSON-ready mapping: ``passed``, the model's and the baseline's accuracy and macro-F1, the most
        predicted class and its share, ``findings`` and ``likely_causes`` (empty when it passed).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    n, k = len(y_true), len(classes)
    constant = np.full(n, majority)
    accuracy = float((y_pred == y_true).mean()) if n else 0.0
    f1, constant_f1 = macro_f1(confusion_matrix(y_true, y_pred, k)), macro_f1(confusion_matrix(y_true, constant, k))
    top = int(np.bincount(y_pred, minlength=k).argmax()) if n else majority
    top_share = float((y_pred == top).mean()) if n else 0.0
    top_truth = float((y_true == top).mean()) if n else 0.0
    findings = []
    if f1 < constant_f1 + F1_MARGIN:
        findings.append(
            f"its macro-F1 ({f1:.3f}) is not clearly above that of a constant predictor that always answers "
            f"{classes[majority]!r} ({constant_f1:.3f})"
        )
    if n and top_share >= COLLAPSE_SHARE and top_truth < COLLAPSE_SHARE - 0.1:
        findings.append(
            f"one class, {classes[top]!r}, takes {top_share:.0%} of the predictions "
            f"but is {top_truth:.0%} of the images"
        )
    return {
        "passed": not findings,
        "samples": n,
        "accuracy": round(accuracy, 4),
        "macro_f1": round(f1, 4),
        "majority_class": classes[majority],
        "majority_accuracy": round(float((y_true == majority).mean()) if n else 0.0, 4),
        "constant_macro_f1": round(constant_f1, 4),
        "most_predicted_class": classes[top],
        "most_predicted_share": round(top_share, 4),
        "findings": findings,
        "likely_causes": _likely_causes(hints or {}) if findings else [],
    }


def describe(sanity: dict[str, Any], split: str) -> list[str]:
    """The gate's verdict as lines for a command's summary."""
    if sanity["passed"]:
        return [
            f"sanity: beats the majority-class baseline on {split} (macro-F1 {sanity['macro_f1']:.3f} vs "
            f"{sanity['constant_macro_f1']:.3f}, accuracy {sanity['accuracy']:.3f} "
            f"vs {sanity['majority_accuracy']:.3f})"
        ]
    lines = [f"WARNING: this model is not useful yet: on the {split} split {'; '.join(sanity['findings'])}."]
    lines.append("  likely causes:")
    lines += [f"  - {cause}" for cause in sanity["likely_causes"]]
    return lines
