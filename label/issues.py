"""Label issues: out-of-fold probabilities, a kNN second opinion, and cleanlab on both.

1. **Out-of-fold probabilities**: K-fold logistic regression on the (PCA-reduced, whitened) embeddings, with
   ``StratifiedGroupKFold`` grouped by near-duplicate cluster, so no image is scored by a model that saw
   its own near-copy.
2. **kNN vote**: the similarity-weighted labels of an image's nearest neighbours outside its own cluster
   (for the same reason), smoothed towards the out-of-fold probabilities where few neighbours vote.
3. **cleanlab**: ``find_label_issues`` with its defaults (prune by noise rate) on the out-of-fold
   probabilities alone, the baseline the benchmark compares with; and with ``label.filter_by`` (default
   ``both``: prune by class and by noise rate, more precise) on the average of both opinions, which is what
   ``make label`` flags. Quality scores (self-confidence) and the noise matrix come from the same average.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from data.core.errors import InputError
from label.options import LabelOptions

log = logging.getLogger(__name__)

EPSILON = 1e-6  # keeps every probability above 0: a class a fold never saw still gets a (tiny) share
KNN_PRIOR = 0.5  # how many neighbours' worth of weight the out-of-fold opinion adds to the vote


@dataclass(frozen=True)
class LabelScores:
    """Per image (rows aligned with the input): probabilities and flags."""

    oof: np.ndarray  # (n, classes) out-of-fold logistic regression
    knn: np.ndarray  # (n, classes) neighbour vote
    full: np.ndarray  # (n, classes) the average the flags come from
    knn_voters: np.ndarray  # (n,) neighbours outside the image's cluster that voted
    baseline_issue: np.ndarray  # (n,) bool: cleanlab's defaults on ``oof``
    label_issue: np.ndarray  # (n,) bool: cleanlab on ``full``
    quality: np.ndarray  # (n,) label quality score on ``full`` (0 = surely wrong, 1 = surely right)


def fold_ids(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold per image, stratified by label, with every group (near-duplicate cluster) in one fold.

    ``StratifiedGroupKFold`` places groups one at a time in Python, minutes for 400k groups; most images
    are alone in their group, so only the clustered ones go through it and the rest through the vectorised
    ``StratifiedKFold``, fold i of one joined with fold i of the other.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    fold = np.zeros(len(labels), np.int64)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    clustered = counts[inverse] > 1
    for rows, splitter in (
        (np.flatnonzero(clustered), StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)),
        (np.flatnonzero(~clustered), StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)),
    ):
        _, first = np.unique(groups[rows], return_inverse=True)
        if first.max(initial=-1) + 1 < folds or np.bincount(labels[rows]).max(initial=0) < folds:
            fold[rows] = first % folds  # too few to split by label: deal the groups out in turn
            continue
        extra = {"groups": groups[rows]} if isinstance(splitter, StratifiedGroupKFold) else {}
        for i, (_, test) in enumerate(splitter.split(rows, labels[rows], **extra)):
            fold[rows[test]] = i
    return fold


def out_of_fold(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, classes: int, options: LabelOptions
) -> np.ndarray:
    """Out-of-fold class probabilities from K-fold logistic regression, folds stratified and grouped.

    Each fold's model trains on at most ``options.fit_sample`` images (a random subset): a linear model on
    128 dimensions gains nothing from more, and 400k images would take many minutes a fold.

    Raises:
        InputError: fewer than two classes, or fewer distinct images than two folds need.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    distinct = len(np.unique(groups))
    if classes < 2 or distinct < 2:
        raise InputError(
            f"label issues need at least two classes and two distinct images ({classes} classes, {distinct} images)"
        )
    folds = min(options.folds, distinct)
    x = features / np.maximum(features.std(axis=0), 1e-12)  # whitened: one C suits every component
    probs = np.full((len(x), classes), EPSILON, np.float64)
    rng = np.random.default_rng(options.seed)
    with warnings.catch_warnings():
        # a class with fewer images than folds, or an iteration cap: expected on small data, not errors
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        fold = fold_ids(labels, groups, folds, options.seed)
        for i in range(folds):
            train, test = np.flatnonzero(fold != i), np.flatnonzero(fold == i)
            if options.fit_sample and len(train) > options.fit_sample:
                train = np.sort(rng.choice(train, options.fit_sample, replace=False))
            if not len(test) or len(np.unique(labels[train])) < 2:
                continue  # nothing to score, or one label only: nothing to learn
            model = LogisticRegression(C=options.regularization, max_iter=options.max_iter)
            model.fit(x[train], labels[train])
            probs[np.ix_(test, model.classes_)] += model.predict_proba(x[test])
            log.info("out-of-fold probabilities: fold %d/%d done (%d images)", i + 1, folds, len(test))
    return probs / probs.sum(axis=1, keepdims=True)


def knn_vote(
    indices: np.ndarray, sims: np.ndarray, labels: np.ndarray, cluster: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities from the neighbours' labels, and how many neighbours voted, per image.

    A neighbour in the image's own cluster does not vote (it is the same photo); each vote weighs the
    (non-negative) cosine similarity, and ``fallback`` (the out-of-fold opinion) adds ``KNN_PRIOR`` votes,
    so an image without voters keeps the out-of-fold probabilities.
    """
    n = fallback.shape[0]
    weights = np.where(cluster[indices] != cluster[:, None], np.maximum(sims, 0.0), 0.0)
    votes = KNN_PRIOR * fallback
    rows = np.arange(n)
    for j in range(indices.shape[1]):  # one neighbour rank at a time: (row, label) pairs are unique
        votes[rows, labels[indices[:, j]]] += weights[:, j]
    probs = votes / votes.sum(axis=1, keepdims=True)
    return probs, (weights > 0).sum(axis=1)


def score_labels(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    neighbours: tuple[np.ndarray, np.ndarray],
    classes: int,
    options: LabelOptions,
) -> LabelScores:
    """Out-of-fold and kNN probabilities and cleanlab's flags for every image (see the module docstring)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    oof = out_of_fold(features, labels, groups, classes, options)
    knn, voters = knn_vote(*neighbours, labels, groups, oof)
    full = (1.0 - options.knn_weight) * oof + options.knn_weight * knn
    # n_jobs=1: cleanlab would fork worker processes, which does not mix with TensorFlow's threads
    baseline = find_label_issues(labels, oof, n_jobs=1)
    flagged = find_label_issues(labels, full, filter_by=options.filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, full)
    return LabelScores(oof, knn, full, voters, baseline, flagged, quality)


def suggestions(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most probable class other than the given one, and its probability, per image."""
    masked = probs.copy()
    masked[np.arange(len(labels)), labels] = -1.0
    best = masked.argmax(axis=1)
    return best, probs[np.arange(len(labels)), best]


def noise_matrix(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's estimates: the noise matrix ``P(given = i | true = j)`` and the prior of the true labels."""
    from cleanlab.count import compute_confident_joint, estimate_latent

    joint = compute_confident_joint(labels, probs)
    prior, noise, _ = estimate_latent(joint, labels)
    return noise, prior
