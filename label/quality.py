"""Image-quality flags with OpenCV: very dark or light, blurry, low information, odd size or aspect, grayscale.

Each image is read once in colour, scaled so that its shorter side is :data:`MEASURE_SIDE` pixels (so the
blur measure does not depend on the stored size), and measured: mean and standard deviation of the grey
levels, variance of the Laplacian (sharpness), the entropy of the 256-bin histogram, in bits, and the
colourfulness (mean spread between a pixel's largest and smallest channel, 0 for a grey picture). An image
OpenCV cannot decode is flagged ``unreadable`` and kept out of the embedding pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from data.core.images import difference_hash
from label.options import LabelOptions

MEASURE_SIDE = 128
MEASURES = ("brightness", "contrast", "sharpness", "entropy", "colourfulness", "width", "height")
FLAGS = ("unreadable", "dark", "light", "blurry", "low_information", "odd_size", "odd_aspect", "grayscale")


def measure(path: Path) -> tuple[float, ...] | None:
    """``MEASURES`` of one image file and its difference hash, or None when OpenCV cannot decode it.

    The hash confirms a near-duplicate pair the embeddings propose.
    """
    colour = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if colour is None or colour.size == 0:
        return None
    height, width = colour.shape[:2]
    scale = MEASURE_SIDE / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    small = cv2.cvtColor(small_colour, cv2.COLOR_BGR2GRAY)
    # a grey photo saved as RGB keeps its channels equal up to JPEG's chroma rounding (a level or two)
    colourfulness = float((small_colour.max(axis=2).astype(np.int16) - small_colour.min(axis=2)).mean())
    mean, std = (float(v[0][0]) for v in cv2.meanStdDev(small))
    sharpness = float(cv2.Laplacian(small, cv2.CV_64F).var())
    counts = np.bincount(small.ravel(), minlength=256).astype(np.float64)
    share = counts[counts > 0] / counts.sum()
    entropy = float(-(share * np.log2(share)).sum())
    return mean, std, sharpness, entropy, colourfulness, float(width), float(height), difference_hash(small)


def measure_all(files: Sequence[Path], workers: int) -> pd.DataFrame:
    """``MEASURES`` of every file (NaN where unreadable), a boolean ``unreadable`` column and ``dhash`` (the
    difference hash as a signed 64-bit integer, 0 where unreadable).

    OpenCV releases the GIL while it decodes, so threads measure in parallel.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(tqdm(pool.map(measure, files, chunksize=64), total=len(files), desc="image quality", unit="img"))
    values = np.full((len(files), len(MEASURES)), np.nan)
    hashes = np.zeros(len(files), np.uint64)
    for i, row in enumerate(found):
        if row is not None:
            values[i], hashes[i] = row[:-1], row[-1]
    frame = pd.DataFrame(values, columns=list(MEASURES))
    frame["unreadable"] = [row is None for row in found]
    frame["dhash"] = hashes.view(np.int64)  # Parquet has no unsigned 64-bit type everywhere
    return frame


def hash_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between two arrays of difference hashes (int64), element by element."""
    diff = np.bitwise_xor(a.astype(np.int64), b.astype(np.int64)).view(np.uint64)
    return np.unpackbits(diff.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def quality_flags(
    measures: pd.DataFrame, orig_width: pd.Series, orig_height: pd.Series, options: LabelOptions
) -> pd.DataFrame:
    """The boolean ``FLAGS`` of every image from its measures and (when known) its size before download.

    The downloader resizes every image, so odd size and aspect are judged on the original size when the
    manifest has it (``orig_width``/``orig_height`` above 0), else on the stored file.
    """
    width = np.where(orig_width.to_numpy() > 0, orig_width.to_numpy(), measures["width"].to_numpy())
    height = np.where(orig_height.to_numpy() > 0, orig_height.to_numpy(), measures["height"].to_numpy())
    readable = ~measures["unreadable"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        aspect = np.maximum(width, height) / np.minimum(width, height)
    flags = pd.DataFrame({"unreadable": ~readable})
    flags["dark"] = readable & (measures["brightness"].to_numpy() < options.dark)
    flags["light"] = readable & (measures["brightness"].to_numpy() > options.light)
    flags["blurry"] = readable & (measures["sharpness"].to_numpy() < options.blur)
    flags["low_information"] = readable & (
        (measures["contrast"].to_numpy() < options.low_std) | (measures["entropy"].to_numpy() < options.low_entropy)
    )
    flags["odd_size"] = readable & (np.minimum(width, height) < options.min_side)
    flags["odd_aspect"] = readable & (aspect > options.max_aspect)
    flags["grayscale"] = readable & (measures["colourfulness"].to_numpy() < options.grayscale)
    return flags
