"""ImageDataSet: the split is deterministic, stratified and disjoint; the pipeline neither rescales nor
augments outside the training split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from develop.synthetic import CLASSES
from tests.helpers.train_data import make_download_output
from train.dataset import SPLITS, DataSetError, ImageDataSet, split_counts


@pytest.fixture(scope="module")
def dataset_manifest(tmp_path_factory):
    return make_download_output(tmp_path_factory.mktemp("processed"), per_class=10, size=40)


def _assignment(data: ImageDataSet) -> dict[str, str]:
    return dict(zip(data.frame["key"], data.frame["split"]))


def test_split_is_deterministic_stratified_and_disjoint(dataset_manifest, tmp_path):
    data = ImageDataSet.from_manifest(dataset_manifest, seed=7)
    # the same rows in another order give the same split
    shuffled = pd.read_parquet(dataset_manifest).sample(frac=1.0, random_state=3)
    shuffled.to_parquet(tmp_path / "manifest.parquet")
    again = ImageDataSet.from_manifest(tmp_path / "manifest.parquet", dataset_manifest.parent, seed=7)
    assert _assignment(data) == _assignment(again)

    keys = {s: set(data.rows(s)["key"]) for s in SPLITS}
    assert not (keys["train"] & keys["validation"] or keys["train"] & keys["test"] or keys["validation"] & keys["test"])
    assert sum(len(k) for k in keys.values()) == len(data.frame) == 70
    for split, expected in zip(SPLITS, (8, 1, 1)):
        assert data.summary["per_class"][split] == {c: expected for c in CLASSES}
    assert data.summary["dropped"] == {"not_ok": 3, "missing_file": 0, "duplicate_key": 0}
    screened = data.screened()
    assert screened.summary["dropped"] == {"not_ok": 3, "missing_file": 0, "duplicate_key": 0, "undecodable": 0}
    pd.testing.assert_frame_equal(screened.frame, data.frame)
    assert data.summary["manifest_rows"] == 73

    other_seed = ImageDataSet.from_manifest(dataset_manifest, seed=8)
    assert _assignment(other_seed) != _assignment(data)


@pytest.mark.parametrize(
    "n, expected", [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (10, (8, 1, 1)), (100, (80, 10, 10))]
)
def test_split_counts(n, expected):
    assert split_counts(n, (0.8, 0.1, 0.1)) == expected


def test_bad_ratios_are_refused(dataset_manifest):
    with pytest.raises(DataSetError, match="ratios"):
        ImageDataSet.from_manifest(dataset_manifest, ratios=(0.5, 0.2, 0.2))


def test_saved_split_is_read_back_and_reused_by_later_runs(dataset_manifest, tmp_path):
    data = ImageDataSet.from_manifest(dataset_manifest, seed=1)
    data.save(tmp_path / "run")
    back = ImageDataSet.from_run(tmp_path / "run", dataset_manifest.parent)
    assert back.classes == data.classes == tuple(sorted(CLASSES))
    pd.testing.assert_frame_equal(back.frame, data.frame)

    # a later run with another seed and more images keeps the saved assignment of the known images
    bigger = make_download_output(tmp_path / "bigger", per_class=14, size=40)
    later = ImageDataSet.from_manifest(bigger, seed=99, split_file=tmp_path / "run" / "split.csv")
    later_split = _assignment(later)
    assert all(later_split[k] == s for k, s in _assignment(data).items())
    assert len(later.frame) == 98


def test_classes_sorted_missing_files_and_duplicate_photos(tmp_path):
    classes = ("zeta", "Alpha", "mid")
    dataset_manifest = make_download_output(tmp_path, per_class=6, size=32, classes=classes, failures=0)
    rows = pd.read_parquet(dataset_manifest)
    (dataset_manifest.parent / rows.loc[0, "path"]).unlink()
    # the same photo listed under two products of one class: both must land in the same split
    dup = rows[rows["label"] == "mid"].index[:2]
    src = dataset_manifest.parent / rows.loc[dup[0], "path"]
    (dataset_manifest.parent / rows.loc[dup[1], "path"]).write_bytes(src.read_bytes())
    rows.loc[dup[1], "sha256"] = rows.loc[dup[0], "sha256"]
    rows.to_parquet(dataset_manifest)
    for seed in range(20):
        data = ImageDataSet.from_manifest(dataset_manifest, seed=seed)
        split = _assignment(data)
        assert split[rows.loc[dup[0], "key"]] == split[rows.loc[dup[1], "key"]]
    assert data.classes == ("Alpha", "mid", "zeta")
    assert data.summary["dropped"]["missing_file"] == 1
    assert (data.frame["label"].map(data.classes.index) == data.frame["label_index"]).all()


def test_class_weights_balance_the_training_split(tmp_path):
    dataset_manifest = make_download_output(tmp_path, per_class=10, size=32, classes=("a", "b"), failures=0)
    rows = pd.read_parquet(dataset_manifest)
    rows = rows.drop(rows[rows["label"] == "b"].index[:5])  # b: 5 images (3 train), a: 10 (8 train)
    rows.to_parquet(dataset_manifest)
    data = ImageDataSet.from_manifest(dataset_manifest)
    counts = np.bincount(data.labels("train"))
    assert counts.tolist() == [8, 3]
    weights = data.class_weights()
    assert weights == pytest.approx({0: 11 / (2 * 8), 1: 11 / (2 * 3)})


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataSetError, match="make download-images"):
        ImageDataSet.from_manifest(tmp_path / "images" / "manifest.parquet")


def test_pipeline_yields_raw_0_255_pixels_and_augments_train_only(dataset_manifest):
    import tensorflow as tf

    data = ImageDataSet.from_manifest(dataset_manifest)
    files = data.files("validation")
    batch_x, batch_y = next(iter(data.tf_dataset("validation", 40, 64)))
    # same size as stored: the pipeline must hand over the decoded pixels unchanged (no [0, 1] scaling)
    expected = np.stack([tf.io.decode_jpeg(tf.io.read_file(str(f)), channels=3).numpy() for f in files])
    assert batch_x.dtype == tf.float32
    np.testing.assert_allclose(batch_x.numpy(), expected.astype(np.float32), atol=1e-3)
    assert batch_x.numpy().max() > 200
    np.testing.assert_array_equal(batch_y.numpy().argmax(axis=1), data.labels("validation"))

    again = next(iter(data.tf_dataset("validation", 40, 64)))[0]
    np.testing.assert_array_equal(again.numpy(), batch_x.numpy())

    tf.random.set_seed(0)
    for augment in ("light", "strong"):
        train = data.tf_dataset("train", 40, 64, augment=augment)
        first, second = (next(iter(train))[0].numpy() for _ in range(2))
        assert first.shape == (56, 40, 40, 3)
        assert not np.allclose(first, second)
        assert 0.0 <= first.min() and first.max() <= 255.0 and first.max() > 200
    with pytest.raises(ValueError, match="unknown augmentation"):
        data.tf_dataset("train", 40, 64, augment="heavy")


def test_unknown_split_name_is_a_clear_error(dataset_manifest):
    with pytest.raises(DataSetError, match="unknown split 'val'; choose one of train, validation, test"):
        ImageDataSet.from_manifest(dataset_manifest).rows("val")
