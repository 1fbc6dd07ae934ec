"""The report's building blocks on small real inputs: the near-duplicate search against brute force, PCA,
histograms that add up, the page's own size in its footer, options that refuse bad values."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from data.core.config import ConfigError, load_config
from visualise.duplicates import near_pairs
from visualise.embedding import pca_2d
from visualise.html import SIZE_TOKEN, Page, fmt, table
from visualise.options import VisualiseOptions
from visualise.plots import funnel
from visualise.run_stats import calibration
from visualise.tabular import describe, histogram


def _brute_force(hashes: np.ndarray, distance: int) -> np.ndarray:
    bits = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    i, j = np.triu_indices(len(hashes), 1)
    near = bits[i, j] <= distance
    return np.stack([i[near], j[near]], axis=1)


@pytest.mark.parametrize("distance", [0, 1, 3, 4, 6])
def test_near_pairs_equal_brute_force(distance):
    rng = np.random.default_rng(distance)
    hashes = rng.integers(0, 2**63, 1500, dtype=np.int64).astype(np.uint64)
    hashes[rng.random(1500) < 0.5] |= np.uint64(1) << np.uint64(63)
    for _ in range(300):  # copies with a few flipped bits: pairs at every distance up to 8
        i, j = rng.integers(0, len(hashes), 2)
        value = hashes[i]
        for bit in rng.choice(64, rng.integers(0, 9), replace=False):
            value ^= np.uint64(1) << np.uint64(int(bit))
        hashes[j] = value
    found = near_pairs(hashes, distance)
    assert len(found) > 0
    np.testing.assert_array_equal(found, _brute_force(hashes, distance))


def test_pca_is_deterministic_in_sign_and_explains_the_variance():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 2)) @ np.array([[5.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    coords, shares = pca_2d(features)
    again, _ = pca_2d(-features)  # the same cloud mirrored: the component signs are fixed by the loadings
    np.testing.assert_allclose(np.abs(coords), np.abs(again), atol=1e-9)
    assert shares[0] > 0.9 and abs(sum(shares) - 1.0) < 1e-3
    assert coords.shape == (200, 2)


def test_histogram_counts_add_up_with_values_outside_the_edges():
    values = np.array([0.1, 0.3, 0.3, 4.0, 9.0, 100.0])
    result = histogram(values, np.geomspace(0.25, 4.0, 5))
    assert sum(result["counts"]) == len(values)
    assert result["counts"][0] == 3 and result["counts"][-1] == 3


def test_describe_matches_pandas():
    series = pd.Series([3.0, None, 1.5, 10.0, 2.0, None, 7.25])
    doc = describe(series)
    assert doc["count"] == 5 and doc["missing"] == 2
    for name, q in (("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)):
        assert doc[name] == round(series.quantile(q), 4)
    assert describe(pd.Series([None, None], dtype=float))["p50"] is None


def test_calibration_of_a_known_case():
    frame = pd.DataFrame(
        {
            "label": ["a", "a", "b", "b"],
            "predicted": ["a", "b", "b", "b"],
            "confidence": [0.95, 0.95, 0.55, 0.15],
        }
    )
    result = calibration(frame, 10)
    by_low = {b["low"]: b for b in result["bins"]}
    assert by_low[0.9]["count"] == 2 and by_low[0.9]["accuracy"] == 0.5 and by_low[0.9]["confidence"] == 0.95
    assert by_low[0.5]["accuracy"] == 1.0 and by_low[0.1]["accuracy"] == 1.0
    # ECE = 2/4 * |0.5 - 0.95| + 1/4 * |1 - 0.55| + 1/4 * |1 - 0.15|
    assert result["ece"] == round(0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.85, 4)
    assert calibration(frame.assign(confidence=[1.0, 1.0, 1.0, 1.0]), 10)["bins"][-1]["count"] == 4


def test_page_footer_states_its_own_size_and_escapes_text():
    page = Page("a <title>", "sub")
    page.add("s", "Section", table(["name", "n"], [("<b>x</b>", 1234), ("y", 0.5)]))
    payload = page.render([f"this file is {SIZE_TOKEN} bytes"])
    text = payload.decode("utf-8")
    stated = re.search(r"this file is\s+([\d,]+) bytes", text)
    assert stated and int(stated.group(1).replace(",", "")) == len(payload) and SIZE_TOKEN not in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text
    assert 'data-v="1234"' in text and fmt(1234) == "1,234" and fmt(0.5) == "0.500" and fmt(None) == "–"


def test_charts_are_byte_identical_for_the_same_numbers():
    steps = [("rows", 1000, "total"), ("dropped", 10, "drop"), ("kept", 990, "keep")]
    first, second = funnel(steps), funnel(steps)
    assert first == second and first.startswith(b"\x89PNG") and b"Software" not in first
    assert funnel([*steps[:2], ("kept", 991, "keep")]) != first


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("visualise.thumbnail_px=0", "thumbnail_px must be > 0"),
        ("visualise.map_method='tsne'", "map_method must be one of"),
        ("visualise.duplicate_distance=40", "duplicate_distance"),
        ("visualise.seed=1.5", "whole number"),
        ("visualise.thumbnails=3", "unknown key"),
    ],
)
def test_options_refuse_bad_values(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        VisualiseOptions.from_config(load_config(overrides=[override]))


def test_the_reviewed_config_gives_the_defaults():
    assert VisualiseOptions.from_config(load_config()) == VisualiseOptions()
