"""What an image's bytes are, before anything is decoded: the format from its first bytes, the size from its
header, and the pixel limit every stage applies, so a decompression bomb (a small file whose header announces
gigapixels) is refused without allocating it. Decoding is :mod:`data.core.images`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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
