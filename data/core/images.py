"""Image utilities every stage shares: decoding with the bomb guard, the model's square crop, thumbnails and the
difference hash. What bytes are (format, header size, the pixel limit) is :mod:`data.core.image_headers`.

OpenCV decodes JPEGs at 1/2, 1/4 or 1/8 scale straight from the DCT (``IMREAD_REDUCED_*``), so a small
thumbnail or a hash of a stored image costs a fraction of a full decode. Training's tf.data pipeline and the
exported serving graph run the same TensorFlow decode, centre crop and resize (:func:`model_pixels`);
TensorFlow is imported only when those functions run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from data.core.image_headers import SNIFF_BYTES, TooManyPixels, lenient_header_size, sniff_format

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4))
HASH_SIDE = 8  # the difference hash compares 9 x 8 grey pixels: 64 bits


@dataclass(frozen=True)
class Decoded:
    """A decoded body: its format (``unknown`` without a signature), header size and BGR pixels."""

    fmt: str
    dims: tuple[int, int] | None  # width, height from the header (None when not stated)
    image: np.ndarray | None  # uint8 BGR, alpha composited on white; None when OpenCV cannot decode


def _reduction(dims: tuple[int, int], fit: int, longer: bool) -> int:
    """The largest JPEG DCT scaling (8, 4, 2) that still decodes at least ``fit`` pixels on the chosen side."""
    side = max(dims) if longer else min(dims)
    for factor in (8, 4, 2):
        if side // factor >= fit:
            return factor
    return 1


def _to_bgr(img: np.ndarray) -> np.ndarray:
    """8-bit, 3-channel BGR from OpenCV's unchanged decode (grey expanded, alpha composited on white)."""
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1.0, float(img.max())))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        return (img[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return img


def decode(data: bytes, max_pixels: int, fit: int = 0, longer: bool = False) -> Decoded:
    """Decode an encoded image after checking the pixel count its header announces.

    Args:
        data: the encoded bytes.
        max_pixels: the largest width x height accepted.
        fit: a JPEG is decoded at 1/2..1/8 scale while its shorter (``longer``: longer) side stays at least
            ``fit`` pixels; 0 decodes it whole. ``IMREAD_COLOR`` applies the EXIF orientation.
        longer: measure ``fit`` on the longer side.

    Raises:
        TooManyPixels: the header announces more than ``max_pixels``.
        cv2.error: OpenCV's own limits (e.g. ``OPENCV_IO_MAX_IMAGE_PIXELS``).
    """
    fmt = sniff_format(data[:SNIFF_BYTES]) or "unknown"
    dims = lenient_header_size(data, fmt)
    if dims and dims[0] * dims[1] > max_pixels:
        raise TooManyPixels(dims[0], dims[1], max_pixels)
    buf = np.frombuffer(data, np.uint8)
    if fmt == "jpeg":
        factor = _reduction(dims, fit, longer) if dims and fit else 1
        return Decoded(fmt, dims, cv2.imdecode(buf, _REDUCED[factor]))
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return Decoded(fmt, dims, None if img is None else _to_bgr(img))


def square_box(height: Any, width: Any, minimum: Callable[[Any, Any], Any] = min) -> tuple[Any, Any, Any]:
    """``(top, left, side)`` of the centred square of an image: the one crop geometry of training and serving.

    Plain ints, or scalar tensors with ``minimum=tf.minimum`` in TensorFlow graph code (same arithmetic).
    """
    side = minimum(height, width)
    return (height - side) // 2, (width - side) // 2, side


def centre_square(image: Any, image_size: int) -> Any:
    """Centre-crop ``[h, w, 3]`` or ``[n, h, w, 3]`` pixels (a tensor) to a square and resize it, antialiased,
    to ``image_size``: RGB float 0-255, the model input of training's evaluation pipeline and of serving."""
    import tensorflow as tf

    shape = tf.shape(image)
    top, left, side = square_box(shape[-3], shape[-2], tf.minimum)
    image = tf.image.crop_to_bounding_box(image, top, left, side, side)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def tf_decode(data: Any) -> Any:
    """Encoded bytes (a scalar tf.string) as ``[h, w, 3]`` uint8 RGB: TensorFlow's decoder as training, the
    bad-image screen and the serving graph all run it (JPEG, PNG, BMP, WebP, a GIF's first frame)."""
    import tensorflow as tf

    return tf.io.decode_image(data, channels=3, expand_animations=False)


def model_pixels(data: Any, image_size: int) -> Any:
    """Encoded bytes (a scalar tf.string) as model input: :func:`tf_decode`, then :func:`centre_square`."""
    return centre_square(tf_decode(data), image_size)


def read_reduced(path: Path, side: int, grey: bool = False) -> np.ndarray | None:
    """The image at ``path`` decoded at the smallest scale that still gives ``side`` pixels (None: unreadable)."""
    probe = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if probe is None:
        return None
    shorter8 = min(probe.shape[:2])  # the size at 1/8 tells which reduction still reaches `side`
    if grey and shorter8 >= side:
        return probe
    reductions = _REDUCED_GREY if grey else ((f, _REDUCED[f]) for f in (8, 4, 2))
    for factor, flag in reductions:
        if shorter8 * 8 // factor >= side:
            return cv2.imread(str(path), flag)
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)


def thumbnail(
    path: Path, side: int, *, reduced: bool = True, enlarge: bool = True, interpolation: int = cv2.INTER_AREA
) -> np.ndarray | None:
    """A BGR thumbnail of an image file whose longer side is ``side`` (None when it cannot be read).

    Args:
        path: the image file.
        side: the longer side of the thumbnail.
        reduced: decode a JPEG at the smallest DCT scale that still gives ``side`` pixels (fast; pixels differ
            slightly from a full decode).
        enlarge: scale a smaller image up to ``side``; otherwise it keeps its size.
        interpolation: OpenCV's resize interpolation.
    """
    image = read_reduced(path, side) if reduced else cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    scale = side / max(image.shape[:2])
    if scale < 1.0 or (enlarge and scale != 1.0):
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=interpolation)
    return image


def difference_hash(grey: np.ndarray) -> int:
    """A 64-bit difference hash of a grey image: whether each of 8 x 8 pixels is brighter than its right
    neighbour.

    A copy that was resized, re-encoded or lightly retouched keeps nearly the same bits; two different
    photos differ in about half of them.
    """
    small = cv2.resize(grey, (HASH_SIDE + 1, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def file_dhash(path: Path) -> int | None:
    """The difference hash of an image file, decoded reduced in grey (None when it cannot be read)."""
    grey = read_reduced(path, 32, grey=True)
    return None if grey is None else difference_hash(grey)
