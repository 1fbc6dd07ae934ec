"""The linear head on cached embeddings, fitted to its optimum instead of by mini-batch descent.

On a frozen backbone's vectors the ``linear`` head is a multinomial logistic regression: a convex problem.
Mini-batch Adam with early stopping on a small validation split stops short of its optimum (the grocery
photos: 0.815 test accuracy against 0.824 for scikit-learn's logistic regression on the same vectors), so
the frozen phase on the embedding cache solves it with scikit-learn's L-BFGS (seconds for thousands of
images) and copies the coefficients into the Keras head. The run's class weights are the sample weights,
``train.head_c`` is the inverse regularisation strength (scikit-learn's ``C``: a fixed prior, so the
penalty does not grow with the number of images as a per-batch L2 term would).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from train.callbacks import append_epoch
from train.errors import TrainingDiverged

ABSENT_LOGIT = -30.0  # a class with no training image is never predicted (its weights stay 0)


def is_linear(head: keras.Model) -> bool:
    """Whether ``head`` is the ``linear`` head: one dense layer of weights (``train/model.py``)."""
    return [layer.name for layer in head.layers if layer.weights] == ["head_logits"]


MAX_ITERATIONS = 5000
BUDGET_STEP = 25  # with a time budget, L-BFGS runs this many iterations at a time (warm-started) between checks


def solve(
    vectors: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    sample_weight: np.ndarray,
    c: float,
    seed: int,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Kernel ``(dims, classes)``, bias ``(classes,)`` of the logistic regression, its iterations, and whether
    the time budget stopped it before convergence.

    Classes without a training image keep zero weights and a bias far below the others'; with a single
    class present there is nothing to separate and that class gets every image. With a ``deadline``
    (``time.perf_counter()`` value: ``train.time_budget_s``) the solver runs in steps of ``BUDGET_STEP``
    iterations, each starting where the last ended, and stops at the first step that ends past it.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(labels)
    kernel = np.zeros((vectors.shape[1], num_classes), np.float32)
    bias = np.full(num_classes, ABSENT_LOGIT, np.float32)
    if len(present) < 2:
        bias[present] = 0.0
        return kernel, bias, 0, False
    step = MAX_ITERATIONS if deadline is None else BUDGET_STEP
    model = LogisticRegression(C=c, max_iter=step, tol=1e-6, random_state=seed, warm_start=deadline is not None)
    iterations, stopped = 0, False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a step's end is not a failure
        while True:
            model.fit(vectors, labels, sample_weight=sample_weight)
            ran = int(np.max(model.n_iter_))
            iterations += ran
            if ran < step or iterations >= MAX_ITERATIONS or deadline is None:
                break
            if time.perf_counter() >= deadline:
                stopped = True
                break
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # scikit-learn keeps one row for two classes: logit(b) - logit(a)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    kernel[:, model.classes_] = coef.T
    bias[model.classes_] = intercept
    return kernel, bias, iterations, stopped


def fit_linear_head(
    head: keras.Model,
    splits: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    class_weights: dict[int, float],
    c: float,
    seed: int,
    deadline: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Solve the head on ``splits`` (training and validation vectors with integer labels).

    Returns its epoch record, with the keys a Keras epoch logs (``loss``, ``accuracy``, ..., ``val_loss``, ...)
    evaluated by the compiled head itself, so fine-tuning's checkpoint threshold compares like with like; and
    the solver's report (``iterations``, ``stopped_by_time_budget``) for the phase report, not the curves.
    """
    from train.pipeline import vector_dataset

    (x_train, y_train), (x_val, y_val) = splits
    if not np.isfinite(x_train).all():
        raise TrainingDiverged(
            "the frozen backbone's embeddings of the training images hold NaN or infinite values: check "
            "train.weights (a damaged weights file?) and train.mixed_precision; no run was saved and latest was "
            "not moved"
        )
    num_classes = head.output_shape[-1]
    started = time.perf_counter()
    weights = np.asarray([class_weights.get(int(label), 1.0) for label in y_train], np.float64)
    kernel, bias, iterations, stopped = solve(x_train, y_train, num_classes, weights, c, seed, deadline)
    head.get_layer("head_logits").set_weights([kernel, bias])
    # Built as a fitted optimizer would be: a saved model then loads without Keras' optimizer-state warning.
    head.optimizer.build(head.trainable_variables)
    record: dict[str, Any] = {"epoch": 1, "seconds": round(time.perf_counter() - started, 4)}
    for prefix, (x, y) in (("", (x_train, y_train)), ("val_", (x_val, y_val))):
        if len(y):
            data = vector_dataset(x, y, num_classes, 1024)
            scores = head.evaluate(data, verbose=0, return_dict=True)
            record.update({f"{prefix}{name}": float(value) for name, value in scores.items()})
    return record, {"iterations": iterations, "stopped_by_time_budget": stopped}


def log_solved(history: Path, logs: Path, record: dict[str, Any], phase: str = "frozen") -> None:
    """The solved head as one epoch: a ``history.jsonl`` line and TensorBoard's epoch scalars at step 0."""
    import tensorflow as tf

    append_epoch(history, {"phase": phase, **record})
    for folder, prefix in (("train", ""), ("validation", "val_")):
        with tf.summary.create_file_writer(str(logs / folder)).as_default():
            for name in ("loss", "accuracy", "top3_accuracy", "macro_f1"):
                if prefix + name in record:
                    tf.summary.scalar(f"epoch_{name}", record[prefix + name], step=0)
