"""The data-set level issues on planted cases: outliers from neighbour distances, starved classes, grayscale
images, the health scores adding up, and the partitioned neighbour search against the exact one."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from label.embed import unit_rows
from label.health import class_imbalance, health, outliers
from label.neighbours import nearest
from label.options import LabelOptions
from label.partition import nearest_partitioned, search
from label.quality import measure_all, quality_flags


def _mixture(n: int, dims: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, dims)) * 3.0
    return (centres[rng.integers(0, 8, n)] + rng.standard_normal((n, dims))).astype(np.float32)


def test_off_topic_vectors_are_the_outliers():
    vectors = _mixture(600, 16)
    far = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32) * 3.0 + 40.0 * np.eye(16)[:3]
    unit = unit_rows(np.concatenate([vectors, far]) - vectors.mean(axis=0))
    _, sims = nearest(unit, 10, progress=False)
    score, flag, threshold = outliers(sims, LabelOptions().outlier_iqr)
    assert flag[-3:].all() and flag.sum() <= 3 + 0.03 * len(vectors), np.flatnonzero(flag)
    assert set(np.argsort(score)[:3]) == {600, 601, 602} and threshold > 0
    assert ((score > 0) & (score <= 1)).all()


def test_a_starved_class_is_flagged_and_only_it():
    labels = pd.Series(["a"] * 50 + ["b"] * 50 + ["c"] * 2)
    frame = class_imbalance(labels, 0.1)
    assert frame["class_imbalance"].tolist() == [False] * 100 + [True] * 2
    assert frame["class_share"].iloc[-1] == round(2 / (102 / 3), 4) and frame["class_share"].iloc[0] == 1.0
    assert not class_imbalance(labels, 0.05)["class_imbalance"].any()


def test_health_scores_add_up():
    table = pd.DataFrame(
        {"label": list("aaaabbbccz"), "label_issue": [1, 0, 0, 0, 1, 1, 0, 0, 0, 0], "class_imbalance": [0] * 9 + [1]}
    )
    table["label_issue"] = table["label_issue"].astype(bool)
    out = health(table)
    assert out["by_class"]["a"] == {"images": 4, "label_issues": 1, "health": 0.75}
    assert out["by_class"]["b"]["health"] == round(1 / 3, 4) and out["by_class"]["c"]["health"] == 1.0
    assert out["data_set"] == 0.7 and out["label_issues"] == 3 and out["images"] == 10
    weighted = sum(c["images"] * c["health"] for c in out["by_class"].values()) / out["images"]
    assert abs(weighted - out["data_set"]) < 1e-3
    assert out["worst_classes"][0] == "b" and out["imbalanced_classes"] == ["z"]


def test_a_grayscale_copy_is_flagged_and_its_colour_original_is_not(tmp_path):
    rng = np.random.default_rng(0)
    colour = np.zeros((48, 48, 3), np.uint8)
    colour[..., 2] = np.linspace(40, 220, 48, dtype=np.uint8)[None, :]  # a red ramp with blue noise
    colour[..., 0] = rng.integers(0, 120, (48, 48), dtype=np.uint8)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    files = [tmp_path / "colour.jpg", tmp_path / "grey.jpg"]
    for path, image in zip(files, (colour, grey)):
        cv2.imwrite(str(path), image)
    measures = measure_all(files, 1)
    flags = quality_flags(measures, pd.Series([0, 0]), pd.Series([0, 0]), LabelOptions(min_side=16))
    assert flags["grayscale"].tolist() == [False, True], measures["colourfulness"].tolist()


def test_the_partitioned_search_finds_nearly_all_exact_neighbours():
    unit = unit_rows(_mixture(3000, 24) - 0.0)
    exact_i, exact_s = nearest(unit, 10, progress=False)
    approx_i, approx_s = nearest_partitioned(unit, 10, cells=55, probe=8, progress=False)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_i, exact_i)])
    assert recall >= 0.9, recall
    assert (approx_i != np.arange(len(unit))[:, None]).all()  # never its own neighbour
    assert (np.diff(approx_s, axis=1) <= 1e-6).all() and (approx_s <= exact_s + 1e-3).all()
    assert search(unit, 5, exact_limit=10_000, probe=4)[2] == "exact"
    assert search(unit, 5, exact_limit=1000, probe=4)[2].startswith("partitioned")
