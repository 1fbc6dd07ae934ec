"""The sanity gate against a constant predictor, and the learning-rate schedule, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from train.callbacks import warmup_cosine
from train.gate import describe, sanity_check

CLASSES = ("a", "b", "c", "d")


def _onehot(pred: np.ndarray) -> np.ndarray:
    return np.eye(len(CLASSES))[pred] * 0.7 + 0.075


def test_a_constant_model_fails_the_gate_with_plain_words():
    y_true = np.array([0] * 10 + [1] * 6 + [2] * 3 + [3] * 1)
    constant = _onehot(np.zeros(20, dtype=int))  # always the majority class: 50 % accuracy
    sanity = sanity_check(y_true, constant, CLASSES, majority=0, hints={"frozen_random_backbone": True})
    assert not sanity["passed"]
    assert sanity["accuracy"] == sanity["majority_accuracy"] == 0.5
    # F1 of class a = 2 * 0.5 * 1 / 1.5; the other three 0; macro over the four classes that occur
    assert sanity["macro_f1"] == sanity["constant_macro_f1"] == pytest.approx((2 * 0.5 / 1.5) / 4, abs=1e-4)
    assert sanity["most_predicted_class"] == "a" and sanity["most_predicted_share"] == 1.0
    assert (
        len(sanity["findings"]) == 2
        and "takes 100% of the predictions but is 50% of the images" in sanity["findings"][1]
    )
    assert "random weights and was kept frozen" in sanity["likely_causes"][0]
    text = "\n".join(describe(sanity, "test"))
    assert text.startswith("WARNING: this model is not useful yet: on the test split") and "likely causes" in text


def test_another_constant_class_and_a_collapsed_model_fail_too():
    y_true = np.repeat(np.arange(4), 5)
    always_d = sanity_check(y_true, _onehot(np.full(20, 3)), CLASSES, majority=0)
    assert not always_d["passed"] and "random weights" not in " ".join(always_d["likely_causes"])
    mostly_b = np.ones(20, dtype=int)
    mostly_b[0] = 0  # 19 of 20 predictions are b (a quarter of the images), one right a
    assert not sanity_check(y_true, _onehot(mostly_b), CLASSES, majority=0)["passed"]


def test_a_useful_model_passes():
    y_true = np.repeat(np.arange(4), 5)
    pred = y_true.copy()
    pred[[0, 7, 13]] = [1, 2, 0]  # 85 % right
    sanity = sanity_check(y_true, _onehot(pred), CLASSES, majority=0)
    assert sanity["passed"] and sanity["findings"] == [] and sanity["likely_causes"] == []
    assert describe(sanity, "validation")[0].startswith("sanity: beats the majority-class baseline on validation")


def test_warmup_then_cosine_decay():
    peak, total, warmup = 1e-3, 100, 10
    assert warmup_cosine(0, total, warmup, peak) == pytest.approx(peak / 10)
    assert warmup_cosine(9, total, warmup, peak) == pytest.approx(peak)
    assert warmup_cosine(10, total, warmup, peak) == pytest.approx(peak)
    assert warmup_cosine(55, total, warmup, peak) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(100, total, warmup, peak) == pytest.approx(0.0, abs=1e-12)
    # a time budget half used pulls the decay forward; it never pushes it back
    assert warmup_cosine(20, total, warmup, peak, time_fraction=0.5) == pytest.approx(peak * 0.5)
    assert warmup_cosine(90, total, warmup, peak, time_fraction=0.1) < peak * 0.05
