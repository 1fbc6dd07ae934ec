"""Pictures read from the image folder: thumbnails, contact sheets, projector sprites, difference hashes.

OpenCV decodes JPEGs at 1/2, 1/4 or 1/8 scale straight from the DCT (``IMREAD_REDUCED_*``), so a
thumbnail or a hash of a stored 256 px image costs a fraction of a full decode; that is what keeps the
near-duplicate search over 100k+ images to a minute or so on two cores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

BACKGROUND = 244  # letterbox colour: the light grey of the page's tiles
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
_REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4))


def _read(path: Path, side: int, grey: bool = False) -> np.ndarray | None:
    """The image at ``path`` decoded at the smallest scale that still gives ``side`` pixels (None: unreadable)."""
    probe = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if probe is None:
        return None
    shorter8 = min(probe.shape[:2])  # the size at 1/8 tells which reduction still reaches `side`
    if grey and shorter8 >= side:
        return probe
    for factor, flag in _REDUCED_GREY if grey else _REDUCED:
        if shorter8 * 8 // factor >= side:
            return cv2.imread(str(path), flag)
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)


def thumbnail(path: Path, side: int) -> np.ndarray:
    """A BGR ``side`` x ``side`` thumbnail, letterboxed (a grey square when the file cannot be read)."""
    canvas = np.full((side, side, 3), BACKGROUND, np.uint8)
    image = _read(path, side)
    if image is None:
        cv2.line(canvas, (0, 0), (side - 1, side - 1), (0, 0, 200), 2)  # a visible "unreadable" mark
        return canvas
    scale = side / max(image.shape[:2])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
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


def dhash(path: Path) -> int | None:
    """A 64-bit difference hash (is each pixel of a 9x8 grey thumbnail brighter than its right neighbour).

    Resizing, recompression and small colour changes keep most bits; a different photo flips about half.
    """
    grey = _read(path, 32, grey=True)
    if grey is None:
        return None
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def dhash_files(paths: Sequence[Path], threads: int = 2, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of many files (uint64) and whether each file could be read, decoded on ``threads`` threads.

    OpenCV releases the GIL while it decodes, so threads use both cores without worker processes.
    """
    hashes = np.zeros(len(paths), np.uint64)
    readable = np.zeros(len(paths), bool)
    bar = tqdm(total=len(paths), desc="hashing images", unit="img", disable=not progress)
    with ThreadPoolExecutor(max(1, threads)) as pool, bar:
        for i, value in enumerate(pool.map(dhash, paths)):
            if value is not None:
                hashes[i], readable[i] = value, True
            bar.update()
    return hashes, readable
