"""A real labelled data set for the label tests: synthetic product photos with planted flips, one
placeholder image under three classes, a dark photo and an unreadable file; a tiny model really trained on
it; and one ``make label`` run (the Python entry point) shared by the tests of this folder. Added after
training (as a catalogue grows): a grayscale copy of a photo, an off-topic picture (noise) among a class,
and a class with a single image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from develop.synthetic import CLASSES, encode_jpeg
from tests.helpers.train_data import make_download_output

FLIPS = 6  # planted label flips
PLACEHOLDER_CLASSES = CLASSES[:3]


@dataclass(frozen=True)
class Labelled:
    """The data set, the run and the label version the tests read."""

    root: Path  # paths.root: processed/v1/images, runs/, cache/
    manifest: Path
    images: Path
    run_dir: Path
    flipped: dict[str, str]  # key -> the true label
    placeholders: tuple[str, ...]
    unreadable: str
    dark: str
    version_dir: Path
    grey: str = "greycopy"
    off_topic: str = "offtopic"
    rare: tuple[str, str] = ("rarephoto", "Rare")


def placeholder_jpeg(size: int = 48) -> bytes:
    """An "image not available" picture: grey text on white, the same bytes wherever it is listed."""
    image = np.full((size, size, 3), 250, np.uint8)
    cv2.putText(image, "N/A", (4, size // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (160, 160, 160), 2)
    return encode_jpeg(image)


def _add_file_rows(manifest: Path, files: list[tuple[str, str, bytes]]) -> None:
    """Add stored images (key, label, bytes) to a download manifest, files under ``<label>/<key>.jpg``."""
    frame = pd.read_parquet(manifest)
    rows = []
    for key, label, payload in files:
        target = manifest.parent / label / f"{key}.jpg"
        target.write_bytes(payload)
        row = {c: frame[c].iloc[0] for c in frame.columns}
        row.update(
            key=key, url=f"http://127.0.0.1/{key}.jpg", label=label, bytes=len(payload), path=f"{label}/{key}.jpg"
        )
        row["sha256"] = hashlib.sha256(payload).hexdigest()
        rows.append(row)
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).to_parquet(manifest, index=False)


def _plant_flips(manifest: Path, seed: int = 7) -> dict[str, str]:
    frame = pd.read_parquet(manifest)
    ok = frame.index[frame["status"].eq("ok")]
    chosen = np.random.default_rng(seed).choice(ok, FLIPS, replace=False)
    truth = {}
    for i in chosen:
        given = frame.at[i, "label"]
        truth[frame.at[i, "key"]] = given
        frame.at[i, "label"] = CLASSES[(CLASSES.index(given) + 3) % len(CLASSES)]
    frame.to_parquet(manifest, index=False)
    return truth


def _add_planted(manifest: Path) -> None:
    """A grayscale copy of a stored photo, an off-topic picture (coloured noise) and a one-image class."""
    from develop.synthetic import draw_product_image

    photo = cv2.imdecode(np.frombuffer(encode_jpeg(draw_product_image(2, seed=99, size=40)), np.uint8), 1)
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    noise = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    rare = draw_product_image(1, seed=77, size=40)
    files = [("greycopy", CLASSES[2], encode_jpeg(grey)), ("offtopic", CLASSES[0], encode_jpeg(noise))]
    (manifest.parent / "Rare").mkdir(exist_ok=True)
    _add_file_rows(manifest, [*files, ("rarephoto", "Rare", encode_jpeg(rare))])


def build_labelled(root: Path) -> Labelled:
    """Write the data set under ``root``, train the model and run ``make label`` once (version ``v1``)."""
    from label.options import LabelOptions
    from label.stage import find_issues
    from train.options import TrainOptions
    from train.train import train

    manifest = make_download_output(root / "processed" / "v1", per_class=24, size=40)
    flipped = _plant_flips(manifest)
    placeholders = tuple(f"placeholder{i}" for i in range(len(PLACEHOLDER_CLASSES)))
    dark = encode_jpeg(np.full((40, 40, 3), 6, np.uint8))
    _add_file_rows(manifest, [(k, c, placeholder_jpeg()) for k, c in zip(placeholders, PLACEHOLDER_CLASSES)])
    _add_file_rows(manifest, [("darkphoto", CLASSES[4], dark)])
    options = TrainOptions(
        backbone="tiny",
        weights="none",
        recipe="scratch",
        image_size=32,
        batch_size=16,
        epochs=12,
        learning_rate=3e-3,
        patience=10,
        augment="none",
        cache_dir=str(root / "cache" / "embeddings"),
    )
    result = train(manifest, root / "runs", options)
    # A file that went bad after training (a truncated copy): the label stage must survive it.
    _add_file_rows(manifest, [("brokenfile", CLASSES[5], b"\xff\xd8 not a jpeg"), ("gonefile", CLASSES[6], b"x")])
    (manifest.parent / CLASSES[6] / "gonefile.jpg").unlink()  # listed as stored, file gone
    _add_planted(manifest)
    label_options = LabelOptions(cache_dir=str(root / "cache" / "embeddings"), workers=2, min_side=16)
    version = find_issues(
        result.run_dir, manifest, manifest.parent, root / "processed" / "v1" / "labels" / "v1", label_options
    )
    return Labelled(
        root,
        manifest,
        manifest.parent,
        result.run_dir,
        flipped,
        placeholders,
        "brokenfile",
        "darkphoto",
        version.out_dir,
    )


@pytest.fixture(scope="session")
def labelled(tmp_path_factory) -> Labelled:
    return build_labelled(tmp_path_factory.mktemp("label-root"))
