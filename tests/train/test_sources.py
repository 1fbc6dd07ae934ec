"""Training from a folder of images, the bad-image pre-pass, and the checks that refuse a data set before
any model is built."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest

from data.core.errors import InputError
from develop.synthetic import draw_product_image, encode_jpeg
from train.dataset import DataSetError, ImageDataSet
from train.screen import screen_files

CLASSES = ("apple", "banana", "cherry")


def _folder(root: Path, layout: dict[str, int], splits: tuple[str, ...] = ()) -> Path:
    """``root/[<split>/]<label>/<n>.jpg``: ``layout`` maps a class to its images per split folder."""
    for split in splits or ("",):
        for index, (label, count) in enumerate(layout.items()):
            target = root / split / label
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                seed = 100 * index + i + (50 if split == "test" else 0)
                (target / f"{i}.jpg").write_bytes(encode_jpeg(draw_product_image(index, seed=seed, size=32)))
    return root


def test_label_folders_are_split_by_the_ratios(tmp_path):
    folder = _folder(tmp_path / "photos", {c: 10 for c in CLASSES})
    (folder / "stray.jpg").write_bytes((folder / "apple" / "0.jpg").read_bytes())  # not in a class folder
    data = ImageDataSet.from_folder(folder, seed=3)
    assert data.classes == CLASSES and not data.predefined_split
    assert data.summary["layout"] == "label" and data.summary["dropped"]["outside_class_folder"] == 1
    assert data.summary["splits"] == {"train": 24, "validation": 3, "test": 3}
    assert (data.files("test")[0]).is_file() and data.images_dir == folder
    again = ImageDataSet.from_folder(folder, seed=3)
    pd.testing.assert_frame_equal(again.frame, data.frame)


def test_split_folders_keep_their_split_and_validation_is_carved_when_missing(tmp_path):
    folder = _folder(tmp_path / "sets", {c: 6 for c in CLASSES}, splits=("train", "validation", "test"))
    data = ImageDataSet.from_folder(folder)
    assert data.predefined_split and data.summary["layout"] == "split"
    for split in ("train", "validation", "test"):
        assert all(Path(p).parts[0] == split for p in data.rows(split)["path"])
        assert len(data.rows(split)) == 18

    no_validation = _folder(tmp_path / "two", {c: 10 for c in CLASSES}, splits=("train", "test"))
    carved = ImageDataSet.from_folder(no_validation, ratios=(0.8, 0.1, 0.1))
    assert carved.summary["splits"] == {"train": 27, "validation": 3, "test": 30}
    assert all(Path(p).parts[0] == "train" for p in carved.rows("validation")["path"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: _folder(r, {"a": 2}, splits=("train", "valid")), "unknown split name"),
        (lambda r: _folder(r, {"a": 2}, splits=("validation", "test")), "no train/"),
        (lambda r: (r.mkdir(), r)[1], "has no subfolders"),
        (lambda r: r / "absent", "is not a folder"),
        (lambda r: (r.joinpath("a").mkdir(parents=True), r)[1], "holds no image files"),
    ],
)
def test_unusable_folders_are_clear_errors(tmp_path, make, message):
    with pytest.raises(DataSetError, match=message):
        ImageDataSet.from_folder(make(tmp_path / "images"))


def test_one_class_or_too_few_images_are_refused_before_training(tmp_path):
    single = ImageDataSet.from_folder(_folder(tmp_path / "one", {"apple": 9}))
    with pytest.raises(DataSetError, match="only one class .'apple', 9 images.*at least two"):
        single.check_trainable((0.8, 0.1, 0.1))
    short = ImageDataSet.from_folder(_folder(tmp_path / "short", {"apple": 9, "banana": 2}))
    with pytest.raises(DataSetError, match=r"too few images.*'banana' \(2 images"):
        short.check_trainable((0.8, 0.1, 0.1))
    predefined = ImageDataSet.from_folder(
        _folder(tmp_path / "sets", {"apple": 3, "banana": 3}, splits=("train", "validation"))
    )
    predefined.check_trainable((0.8, 0.1, 0.1))  # a kept split needs one training image per class only
    ImageDataSet.from_folder(_folder(tmp_path / "ok", {"apple": 3, "banana": 3})).check_trainable((0.8, 0.1, 0.1))


def _corrupt(folder: Path) -> tuple[Path, Path]:
    truncated, garbage = folder / "apple" / "0.jpg", folder / "banana" / "1.jpg"
    payload = truncated.read_bytes()
    truncated.write_bytes(payload[: len(payload) * 2 // 3])  # OpenCV still reads this one; TensorFlow does not
    garbage.write_bytes(b"<html>not an image</html>")
    return truncated, garbage


def test_undecodable_images_are_skipped_counted_and_named(tmp_path, caplog):
    folder = _folder(tmp_path / "photos", {c: 10 for c in CLASSES})
    truncated, garbage = _corrupt(folder)
    data = ImageDataSet.from_folder(folder)
    with caplog.at_level(logging.WARNING, logger="train.screen"):
        screened = data.screened("skip")
    assert len(screened.frame) == len(data.frame) - 2
    assert screened.summary["dropped"]["undecodable"] == 2 and screened.summary["used"] == 28
    assert str(truncated) in caplog.text and str(garbage) in caplog.text
    kept = set(screened.frame["key"])
    assert {k: s for k, s in zip(data.frame["key"], data.frame["split"]) if k in kept} == dict(
        zip(screened.frame["key"], screened.frame["split"])
    )  # the others keep their split
    with pytest.raises(InputError, match="2 of the 30 images cannot be used: ") as info:
        data.screened("fail")
    assert str(truncated) in str(info.value) and str(garbage) in str(info.value)


def test_screen_agrees_with_the_pipeline_and_reports_missing_files(tmp_path):
    folder = _folder(tmp_path / "photos", {"apple": 3})
    truncated, _ = _corrupt(_folder(tmp_path / "more", {"apple": 2, "banana": 2}))
    png = tmp_path / "ok.png"
    shutil.copy(folder / "apple" / "1.jpg", png)  # a JPEG named .png: the decoder goes by content
    files = [folder / "apple" / "0.jpg", truncated, tmp_path / "gone.jpg", png]
    assert cv2.imread(str(truncated)) is not None  # why the pre-pass decodes with TensorFlow, not OpenCV
    bad = screen_files(files)
    assert bad[2] == "missing file" and "not a decodable image" in bad[1] and set(bad) == {1, 2}
