"""A seeded run's split is the same as before the from-scratch rework (issue 15).

``fixtures/split_before_rework.csv`` was computed by the code of commit 877966f (``ImageDataSet.from_manifest``
on the manifest :func:`fixture_manifest` builds, for the seeds and ratios in its columns), before train/ was
reworked; it is data written by that code, not typed by hand. The manifest's ``sha256`` column is derived
from the keys (not from the JPEG bytes), so the fixture does not depend on the JPEG encoder's version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from data.core.contracts import RUN_FILES, SPLIT
from tests.helpers.train_data import make_download_output
from train.dataset import ImageDataSet
from train.options import TrainOptions
from train.train import train

FIXTURE = Path(__file__).parent / "fixtures" / "split_before_rework.csv"
CASES = {"seed42": (42, (0.8, 0.1, 0.1)), "seed7": (7, (0.8, 0.1, 0.1)), "seed42_70_15_15": (42, (0.7, 0.15, 0.15))}
PER_CLASS = (3, 4, 5, 7, 10, 13, 20)  # images kept of each of the 7 classes: uneven, some just enough


def fixture_manifest(processed: Path) -> Path:
    """A download manifest with uneven classes, failed rows and duplicate photos (shared sha256)."""
    split_manifest = make_download_output(processed, per_class=max(PER_CLASS), size=32)
    rows = pd.read_parquet(split_manifest)
    ok = rows[rows["status"] == "ok"]
    keep = [i for n, (_, group) in zip(PER_CLASS, ok.groupby("label", sort=True)) for i in group.index[:n]]
    rows = pd.concat([rows.loc[keep], rows[rows["status"] != "ok"]])
    rows["sha256"] = [
        hashlib.sha256(k.encode()).hexdigest() if s == "ok" else "" for k, s in zip(rows["key"], rows["status"])
    ]
    stored = rows.index[rows["status"] == "ok"]
    for source, copy in ((stored[20], stored[21]), (stored[30], stored[33]), (stored[40], stored[48])):
        rows.loc[copy, "sha256"] = rows.loc[source, "sha256"]  # the same photo under two products
    rows.sample(frac=1.0, random_state=0).to_parquet(split_manifest, index=False)
    return split_manifest


@pytest.fixture(scope="module")
def split_manifest(tmp_path_factory):
    return fixture_manifest(tmp_path_factory.mktemp("processed"))


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, dtype=str).set_index("key")


def _split_of(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["key"], frame["split"]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_split_is_the_one_computed_before_the_rework(split_manifest, expected, case):
    seed, ratios = CASES[case]
    data = ImageDataSet.from_manifest(split_manifest, seed=seed, ratios=ratios)
    assert _split_of(data.frame) == expected[case].to_dict()
    assert set(data.frame["path"]) == set(expected["path"])


@pytest.mark.slow
def test_a_seeded_training_run_writes_the_same_split_csv(split_manifest, expected, tmp_path):
    options = TrainOptions(backbone="tiny", weights="none", image_size=32, batch_size=32, epochs=1, seed=42)
    result = train(split_manifest, tmp_path / "runs", options)
    saved = pd.read_csv(result.run_dir / RUN_FILES["split"], dtype=str)
    assert list(saved.columns) == list(SPLIT.columns)
    assert _split_of(saved) == expected["seed42"].to_dict()
