"""The linear head solved on cached vectors: the same model as scikit-learn's logistic regression."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from train.linear_probe import ABSENT_LOGIT, BUDGET_STEP, fit_linear_head, is_linear, log_solved, solve
from train.model import build_head, compile_model


def _blobs(n: int, classes: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(0, 2, (classes, dims))
    return (centres[labels] + rng.normal(0, 1, (n, dims))).astype(np.float32), labels


def _head(dims: int, classes: int, kind: str = "linear"):
    return compile_model(build_head(dims, classes, kind), 1e-3)


def test_solved_head_predicts_what_scikit_learn_predicts() -> None:
    x, y = _blobs(300, 4, 16, seed=0)
    xv, yv = _blobs(60, 4, 16, seed=0)
    weights = {0: 1.0, 1: 2.0, 2: 0.5, 3: 1.0}
    head = _head(16, 4)
    record, solver = fit_linear_head(head, ((x, y), (xv, yv)), weights, c=0.5, seed=0)
    expected = LogisticRegression(C=0.5, max_iter=5000, tol=1e-6).fit(x, y, sample_weight=[weights[i] for i in y])
    probs = head.predict(xv, verbose=0)
    np.testing.assert_allclose(probs, expected.predict_proba(xv), atol=1e-4)
    assert record["val_accuracy"] == pytest.approx(float((probs.argmax(1) == yv).mean()))
    assert set(solver) == {"iterations", "stopped_by_time_budget"} and not solver["stopped_by_time_budget"]
    assert solver["iterations"] > 0 and record["loss"] > 0 and "iterations" not in record


def test_a_class_without_training_images_is_never_predicted() -> None:
    x, y = _blobs(200, 3, 8, seed=1)
    head = _head(8, 5)  # classes 3 and 4 appear in no training row
    fit_linear_head(head, ((x, y), (x[:0], y[:0])), {}, c=1.0, seed=0)
    kernel, bias = head.get_layer("head_logits").get_weights()
    assert not kernel[:, 3:].any() and (bias[3:] == ABSENT_LOGIT).all()
    assert set(head.predict(x, verbose=0).argmax(1)) <= {0, 1, 2}


def test_two_classes_and_one_class() -> None:
    x, y = _blobs(100, 2, 8, seed=2)
    two = _head(8, 3)
    fit_linear_head(two, ((x, y), (x, y)), {}, c=1.0, seed=0)
    expected = LogisticRegression(C=1.0, max_iter=5000, tol=1e-6).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(two.predict(x, verbose=0)[:, :2], expected, atol=1e-4)
    one = _head(8, 3)
    fit_linear_head(one, ((x, np.full(100, 2)), (x, y)), {}, c=1.0, seed=0)
    assert (one.predict(x, verbose=0).argmax(1) == 2).all()


def test_only_the_linear_head_is_solved() -> None:
    assert is_linear(build_head(8, 3, "linear"))
    assert not is_linear(build_head(8, 3, "original")) and not is_linear(build_head(8, 3, "deep"))


def test_the_solved_head_is_logged_as_one_epoch(tmp_path) -> None:
    record = {"epoch": 1, "seconds": 0.1, "loss": 0.5, "accuracy": 0.9, "val_loss": 0.7, "val_accuracy": 0.8}
    log_solved(tmp_path / "checkpoints" / "history.jsonl", tmp_path / "logs", record)
    line = json.loads((tmp_path / "checkpoints" / "history.jsonl").read_text())
    assert line == {"phase": "frozen", **record}
    assert list((tmp_path / "logs" / "train").glob("events.*")) and list(
        (tmp_path / "logs" / "validation").glob("events.*")
    )


def test_non_finite_embeddings_are_refused_not_fitted() -> None:
    from train.errors import TrainingDiverged

    x, y = _blobs(40, 2, 8, seed=3)
    x[5, 2] = np.nan
    head = _head(8, 2)
    before = [w.copy() for w in head.get_layer("head_logits").get_weights()]
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        fit_linear_head(head, ((x, y), (x, y)), {}, c=1.0, seed=0)
    for old, new in zip(before, head.get_layer("head_logits").get_weights()):
        np.testing.assert_array_equal(old, new)


def test_the_time_budget_stops_the_solver_between_steps() -> None:
    import time

    rng = np.random.default_rng(4)
    y = np.arange(600) % 12
    x = (rng.normal(0, 2, (12, 64))[y] + rng.normal(0, 6, (600, 64))).astype(np.float32)  # overlapping: slow
    weights = np.ones(len(y))
    optimum = solve(x, y, 12, weights, 1.0, 0)
    free, stopped = optimum[2], optimum[3]
    assert free > BUDGET_STEP and not stopped  # converges when no budget is set
    early = solve(x, y, 12, weights, 1.0, 0, deadline=time.perf_counter())
    assert early[3] and early[2] == BUDGET_STEP and np.abs(early[0]).sum() > 0  # one step, then the deadline
    stepped = solve(x, y, 12, weights, 1.0, 0, deadline=time.perf_counter() + 600)
    assert not stepped[3] and stepped[2] > BUDGET_STEP  # warm-started steps go on to the same optimum

    def objective(kernel: np.ndarray, bias: np.ndarray) -> float:  # scikit-learn's: C x log-loss + |W|^2 / 2
        logits = x @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-1.0 * log_p[np.arange(len(y)), y].sum() + 0.5 * (kernel**2).sum())

    assert objective(*stepped[:2]) == pytest.approx(objective(*optimum[:2]), rel=2e-3)
    assert objective(*early[:2]) > objective(*optimum[:2]) * (1 + 5e-3)  # the budget really cut it short
