"""Pictures read from the image folder: letterboxed thumbnails, contact sheets, projector sprites, difference hashes.

Thumbnails and hashes come from :mod:`data.core.images`, which decodes JPEGs at 1/2, 1/4 or 1/8 scale straight
from the DCT; that is what keeps the near-duplicate search over 100k+ images to a minute or so on two cores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from data.core.images import file_dhash, thumbnail

BACKGROUND = 244  # letterbox colour: the light grey of the page's tiles


def letterboxed(path: Path, side: int) -> np.ndarray:
    """A BGR ``side`` x ``side`` thumbnail, letterboxed (a grey square when the file cannot be read)."""
    canvas = np.full((side, side, 3), BACKGROUND, np.uint8)
    small = thumbnail(path, side)
    if small is None:
        cv2.line(canvas, (0, 0), (side - 1, side - 1), (0, 0, 200), 2)  # a visible "unreadable" mark
        return canvas
    h, w = small.shape[:2]
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = small
    return canvas


def sheet(images: Sequence[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Equal-sized BGR images in a grid (``columns`` wide) on a white background."""
    if not images:
        return np.full((8, 8, 3), 255, np.uint8)
    side = images[0].shape[0]
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    canvas = np.full((rows * (side + gap) - gap, columns * (side + gap) - gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (side + gap) : r * (side + gap) + side, c * (side + gap) : c * (side + gap) + side] = image
    return canvas


def sprite(images: Sequence[np.ndarray]) -> np.ndarray:
    """TensorBoard projector's sprite: a square grid, row-major in data order, no gaps."""
    side = images[0].shape[0] if images else 1
    cells = max(1, int(np.ceil(np.sqrt(len(images)))))
    canvas = np.full((cells * side, cells * side, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cells)
        canvas[r * side : (r + 1) * side, c * side : (c + 1) * side] = image
    return canvas


def encode(image: np.ndarray, kind: str = ".jpg", quality: int = 82) -> bytes:
    """A BGR image as JPEG (or PNG with ``kind=".png"``) bytes."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, payload = cv2.imencode(kind, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {kind}")
    return payload.tobytes()


def dhash_files(paths: Sequence[Path], threads: int = 2, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of many files (uint64) and whether each file could be read, decoded on ``threads`` threads.

    OpenCV releases the GIL while it decodes, so threads use both cores without worker processes.
    """
    hashes = np.zeros(len(paths), np.uint64)
    readable = np.zeros(len(paths), bool)
    bar = tqdm(total=len(paths), desc="hashing images", unit="img", disable=not progress)
    with ThreadPoolExecutor(max(1, threads)) as pool, bar:
        for i, value in enumerate(pool.map(file_dhash, paths)):
            if value is not None:
                hashes[i], readable[i] = value, True
            bar.update()
    return hashes, readable
