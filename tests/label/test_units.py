"""The label core on synthetic embeddings and tiny images: the neighbour search against brute force, planted
flips found, duplicate clusters, grouped folds, quality flags, decisions checked and the automatic policy."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from data.core.errors import ConfigError, InputError
from label.decisions import auto_decisions, check_decisions, read_decisions
from label.duplicates import describe_clusters, exact_groups
from label.embed import project, unit_rows
from label.issues import fold_ids, score_labels
from label.neighbours import clusters, near_radius, nearest
from label.options import LabelOptions
from label.quality import hash_distance, measure, measure_all, quality_flags


def _blobs(n: int = 1200, classes: int = 4, dims: int = 24, flip: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)) * 2.0
    truth = rng.integers(0, classes, n)
    vectors = (centres[truth] + rng.standard_normal((n, dims))).astype(np.float32)
    labels = truth.copy()
    flipped = rng.random(n) < flip
    labels[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    return vectors, labels, flipped


def test_nearest_matches_brute_force_across_many_blocks():
    vectors, _, _ = _blobs(n=700, dims=16)
    unit = unit_rows(vectors)
    indices, sims = nearest(unit, 7, block_mb=0, progress=False)  # block_mb=0: the smallest blocks there are
    full = unit.astype(np.float32) @ unit.astype(np.float32).T
    np.fill_diagonal(full, -np.inf)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :7]
    assert indices.shape == (700, 7) and unit.dtype == np.float16
    assert not (indices == np.arange(700)[:, None]).any()  # never its own neighbour
    np.testing.assert_allclose(sims, np.take_along_axis(full, expected, axis=1), atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-7).all()  # most similar first
    assert nearest(unit[:1], 5, progress=False)[0].shape == (1, 0)  # one vector: no neighbours


def test_planted_flips_are_found_by_both_methods():
    vectors, labels, flipped = _blobs()
    reduced = project(vectors, 0, seed=0)
    neighbours = nearest(unit_rows(reduced), 10, progress=False)
    groups = np.arange(len(labels))
    scores = score_labels(reduced, labels, groups, neighbours, 4, LabelOptions())
    for flags in (scores.label_issue, scores.baseline_issue):
        found = (flags & flipped).sum()
        assert found / flipped.sum() > 0.8, "recall"
        assert found / flags.sum() > 0.7, "precision"
    assert scores.quality[flipped].mean() < scores.quality[~flipped].mean()
    np.testing.assert_allclose(scores.full.sum(axis=1), 1.0, rtol=1e-6)


def test_folds_keep_a_cluster_together_and_stratify():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    groups = np.arange(600)
    groups[:60] = np.repeat(np.arange(10), 6)  # ten clusters of six
    fold = fold_ids(labels, groups, 5, seed=0)
    for g in range(10):
        assert len(set(fold[groups == g])) == 1
    counts = np.array([[((fold == f) & (labels == c)).sum() for c in range(3)] for f in range(5)])
    assert counts.min() >= 0.6 * counts.max()


def test_near_and_exact_duplicates_make_clusters_across_classes_and_splits():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((30, 8)).astype(np.float32)
    vectors = np.vstack([base, base[:3] + 1e-4, base[10:11]])  # 30-32 near copies of 0-2, 33 exactly 10
    unit = unit_rows(vectors - vectors.mean(axis=0))
    indices, sims = nearest(unit, 3, progress=False)
    sha = pd.Series([""] * 33 + ["abc"])
    sha[10] = "abc"
    cluster = clusters(indices, sims, near_radius(sims, 0.13), exact_groups(sha))
    assert len({cluster[i] for i in (0, 30)}) == 1 and cluster[1] == cluster[31] and cluster[10] == cluster[33]
    assert cluster[0] != cluster[1] and len(np.unique(cluster)) == 30
    images = pd.DataFrame({"label": ["a"] * 34, "split": ["train"] * 34, "sha256": sha})
    images.loc[30, "label"], images.loc[31, "split"] = "b", "test"
    described = describe_clusters(images, cluster)
    assert described.loc[[0, 30], "cross_class"].all() and not described.loc[[1, 31], "cross_class"].any()
    assert described.loc[[1, 31], "cross_split"].all() and not described.loc[[0, 30], "cross_split"].any()
    assert described.loc[[10, 33], "cluster_kind"].eq("exact").all() and described.at[0, "cluster_kind"] == "near"
    assert described.loc[5, "cluster"] == -1 and described.loc[5, "cluster_size"] == 1


def test_the_hash_check_keeps_different_photos_out_of_a_cluster():
    indices = np.array([[1], [0], [3], [2]])
    sims = np.ones((4, 1), np.float32)  # a collapsed embedding: every pair looks identical
    hashes = np.array([0, 0, 0, -1], np.int64)  # 2 and 3 differ in every bit
    cluster = clusters(indices, sims, 0.01, np.full(4, -1), hashes, max_bits=10)
    assert cluster[0] == cluster[1] and cluster[2] != cluster[3]
    assert hash_distance(np.array([0b1011]), np.array([0b0001])).tolist() == [2]


def _write(path, image) -> str:
    cv2.imwrite(str(path), image)
    return str(path)


def test_quality_flags_on_tiny_images(tmp_path):
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    files = {
        "good": _write(tmp_path / "good.png", texture),
        "dark": _write(tmp_path / "dark.png", (texture // 20).astype(np.uint8)),
        "light": _write(tmp_path / "light.png", (240 + texture // 20).astype(np.uint8)),
        "blurry": _write(tmp_path / "blurry.png", cv2.GaussianBlur(texture, (0, 0), 6)),
        "flat": _write(tmp_path / "flat.png", np.full((64, 64, 3), 128, np.uint8)),
        "wide": _write(tmp_path / "wide.png", rng.integers(0, 256, (20, 200, 3), dtype=np.uint8)),
    }
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    names = [*files, "broken"]
    paths = [tmp_path / f"{n}.png" for n in files] + [tmp_path / "broken.jpg"]
    measures = measure_all(paths, workers=2)
    zeros = pd.Series(np.zeros(len(paths), np.int64))
    flags = quality_flags(measures, zeros, zeros, LabelOptions(min_side=32)).set_index(pd.Index(names))
    assert not flags.loc["good"].any()
    assert flags.at["dark", "dark"] and flags.at["light", "light"] and flags.at["blurry", "blurry"]
    assert flags.at["flat", "low_information"] and flags.at["wide", "odd_aspect"] and flags.at["wide", "odd_size"]
    assert flags.at["broken", "unreadable"] and measure(tmp_path / "broken.jpg") is None
    # the size before download wins where the manifest has it: a 64 px file that was 1000 x 100
    original = quality_flags(measures, pd.Series([1000] + [0] * 6), pd.Series([100] + [0] * 6), LabelOptions())
    assert original.at[0, "odd_aspect"]


def test_options_reject_out_of_range_values():
    with pytest.raises(ConfigError, match="near_duplicate"):
        LabelOptions(near_duplicate=1.5).check()
    with pytest.raises(ConfigError, match="auto_drop"):
        LabelOptions(auto_drop=("no_such_issue",)).check()
    with pytest.raises(ConfigError, match="folds"):
        LabelOptions(folds=1).check()


def _decisions(tmp_path, decisions, version="v1"):
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps({"label_version": version, "decisions": decisions}))
    return path


def test_a_bad_decisions_file_lists_every_problem(tmp_path):
    keys, classes = ["k1", "k2", "k3"], ["cat", "dog"]
    path = _decisions(
        tmp_path,
        {
            "k1": {"action": "relabel", "label": "dgo"},
            "zz": {"action": "drop"},
            "k2": {"action": "burn"},
            "k3": {"action": "keep"},
        },
    )
    with pytest.raises(InputError) as err:
        check_decisions(read_decisions(path), path, keys, classes, "v1")
    message = str(err.value)
    for word in ("unknown key(s): 'zz'", "unknown label(s): 'dgo'", "unknown action(s)", "burn", "nothing written"):
        assert word in message
    with pytest.raises(InputError, match="another label version"):
        check_decisions(read_decisions(_decisions(tmp_path, {}, "v0")), path, keys, classes, "v1")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_decisions(tmp_path / "broken.json")
    good = check_decisions(
        read_decisions(_decisions(tmp_path, {"k1": {"action": "relabel", "label": "dog"}})), path, keys, classes, "v1"
    )
    assert good["k1"].action == "relabel" and good["k1"].label == "dog" and good["k1"].source == "review"


def test_the_automatic_policy_drops_junk_and_relabels_only_confident_suggestions():
    table = pd.DataFrame(
        {
            "key": ["a", "b", "c", "d", "e"],
            "issues": ["label", "label", "cross_class_duplicate,label", "low_information", "blurry"],
            "label_issue": [True, True, True, False, False],
            "suggested_label": ["x", "y", "x", "y", "x"],
            "suggested_prob": [0.95, 0.6, 0.99, 0.2, 0.1],
        }
    )
    chosen = auto_decisions(table, LabelOptions(auto_threshold=0.9))
    assert {k: (d.action, d.label) for k, d in chosen.items()} == {
        "a": ("relabel", "x"),
        "c": ("drop", ""),
        "d": ("drop", ""),
    }
    assert chosen["c"].reason == "cross_class_duplicate" and chosen["a"].source == "auto"
    # "label" in auto_drop prunes the label issues it does not relabel (b), never the confident ones (a)
    pruned = auto_decisions(table, LabelOptions(auto_threshold=0.9, auto_drop=("cross_class_duplicate", "label")))
    assert {k: d.action for k, d in pruned.items()} == {"a": "relabel", "b": "drop", "c": "drop"}
