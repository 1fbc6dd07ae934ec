"""Image utilities every stage shares: what bytes are, decoding with the bomb guard, the model's square crop,
thumbnails and the difference hash.

A file's format is read from its first bytes and its size from its header, before anything is decoded, so a
decompression bomb (a small file whose header announces gigapixels) is refused without allocating it.
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

MAX_PIXELS = 60_000_000  # download.max_pixels' default: the limit download, train, label and serve apply
SNIFF_BYTES = 32  # enough for every signature below and WebP's RIFF header
HEAD_BYTES = 4096  # every header but a JPEG's behind a large EXIF or ICC block
JPEG_HEAD_BYTES = 1 << 16  # where a JPEG's frame header lies, after its EXIF, usually well within
TF_FORMATS = ("jpeg", "png", "gif", "bmp", "webp")  # what tf.io.decode_image reads (OpenCV reads TIFF too)
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_OTHER_FORMATS = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4))
HASH_SIDE = 8  # the difference hash compares 9 x 8 grey pixels: 64 bits


class HeaderError(ValueError):
    """A header that is malformed (not merely cut short): the message says where."""


class TooManyPixels(ValueError):
    """A header announcing more than the pixel limit (a decompression bomb is refused before decoding)."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(f"{width}x{height} over {limit} pixels")
        self.width, self.height, self.limit = width, height, limit


def sniff_format(head: bytes) -> str | None:
    """The format named by the first bytes (jpeg, png, gif, bmp, tiff, webp), or None for anything else."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def unsupported_format(data: bytes) -> str | None:
    """The name of an image or document format TensorFlow cannot decode (TIFF, PDF, HEIC/AVIF, SVG...)."""
    for signature, name in _OTHER_FORMATS:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIC/AVIF"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None


def _u16(data: bytes, at: int, order: str) -> int:
    return int.from_bytes(data[at : at + 2], order)  # type: ignore[arg-type]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment; None when the data ends before one."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise HeaderError(f"the JPEG has no segment marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        elif marker in _SOF_MARKERS:
            return (_u16(data, i + 7, "big"), _u16(data, i + 5, "big")) if i + 9 <= len(data) else None
        elif marker in (0xDA, 0xD9):
            raise HeaderError("the JPEG has image data before its frame header")
        else:
            i += 2 + _u16(data, i + 2, "big")
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24:
        return None
    if data[12:16] != b"IHDR":
        raise HeaderError("the PNG does not start with its IHDR header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _gif_size(data: bytes) -> tuple[int, int] | None:
    return (_u16(data, 6, "little"), _u16(data, 8, "little")) if len(data) >= 10 else None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sizes
        return _u16(data, 18, "little"), _u16(data, 20, "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    return abs(width), abs(int.from_bytes(data[22:26], "little", signed=True))  # negative height: top-down


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":
        return _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise HeaderError(f"the WebP file has an unknown first chunk {chunk!r}")


_SIZES: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "jpeg": _jpeg_size,
    "png": _png_size,
    "gif": _gif_size,
    "bmp": _bmp_size,
    "webp": _webp_size,
}


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height as the header of ``fmt`` states them, without decoding.

    Returns:
        None when the data ends inside the header, or for a format whose size is not parsed (TIFF: OpenCV's
        own pixel limit guards it).

    Raises:
        HeaderError: the header is malformed.
    """
    parse = _SIZES.get(fmt)
    return parse(data) if parse else None


def lenient_header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """:func:`header_size`, with None for a malformed header too (the decoder then has the last word)."""
    try:
        return header_size(data, fmt)
    except HeaderError:
        return None


def over_limit(path: Path | str, max_pixels: int = MAX_PIXELS) -> tuple[int, int] | None:
    """The size a file's header announces when it is over ``max_pixels`` (a decompression bomb), read from
    its first bytes without decoding; None when within the limit, not stated, or the file cannot be read (the
    decoder names those)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            fmt = sniff_format(head[:SNIFF_BYTES])
            dims = lenient_header_size(head, fmt) if fmt else None
            if fmt == "jpeg" and dims is None:
                dims = lenient_header_size(head + handle.read(JPEG_HEAD_BYTES), fmt)
    except OSError:
        return None
    return dims if dims and dims[0] * dims[1] > max_pixels else None


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
