"""Metrics on a small confusion checked by hand (and against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from train.metrics import classification_report, confusion_matrix, macro_f1, most_confused, top_k_accuracy

CLASSES = ("a", "b", "c", "d")
# true:       a a a b b c | d
# predicted:  a a b b c c | a
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 3])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 0])


def _probs(pred: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Probabilities whose argmax is ``pred`` and whose runner-up is ``second``."""
    probs = np.full((len(pred), len(CLASSES)), 0.05)
    probs[np.arange(len(pred)), second] = 0.25
    probs[np.arange(len(pred)), pred] = 0.65
    return probs


def test_confusion_and_per_class_scores_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    report = classification_report(Y_TRUE, _probs(Y_PRED, np.array([1, 1, 0, 2, 1, 1, 1])), CLASSES)
    # a: P = 2/3, R = 2/3, F1 = 2/3;  b: P = 1/2, R = 1/2;  c: P = 1/2, R = 1, F1 = 2/3;  d: 0
    assert report["per_class"]["a"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert report["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["c"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert report["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["accuracy"] == round(4 / 7, 4)
    assert report["macro_f1"] == round((2 / 3 + 1 / 2 + 2 / 3 + 0) / 4, 4)
    # top 3 = predicted, runner-up, then the lowest index among the ties at 0.05: sample 6 (d, predicted a,
    # runner-up b, then c) is the only one whose class is not among them
    assert report["top3_accuracy"] == round(6 / 7, 4)
    assert report["samples"] == 7


def test_agrees_with_scikit_learn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    cm = confusion_matrix(y_true, y_pred, 5)
    assert macro_f1(cm) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    report = classification_report(y_true, np.eye(5)[y_pred], tuple("vwxyz"))
    assert [report["per_class"][c]["recall"] for c in "vwxyz"] == pytest.approx(recall, abs=1e-4)
    assert [report["per_class"][c]["precision"] for c in "vwxyz"] == pytest.approx(precision, abs=1e-4)


def test_top_k_accuracy():
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    y = np.array([2, 0, 3])
    assert top_k_accuracy(y, probs, 1) == 0.0
    assert top_k_accuracy(y, probs, 3) == pytest.approx(1 / 3)  # only sample 0 (class 2 is 3rd)
    assert top_k_accuracy(y, probs, 4) == 1.0


def test_most_confused_pairs_are_ordered_by_count():
    cm = np.array([[5, 3, 0], [1, 4, 0], [0, 3, 2]])
    pairs = most_confused(cm, ("x", "y", "z"), limit=2)
    assert pairs == [
        {"true": "z", "predicted": "y", "count": 3, "share_of_true": 0.6},
        {"true": "x", "predicted": "y", "count": 3, "share_of_true": 0.375},
    ]
