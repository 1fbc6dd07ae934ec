"""What a request's bytes are, before any decoder sees them: format by signature, size from the header.

The server refuses here what it cannot or must not decode: an empty body, bytes of no image format, a
format the graph cannot decode (TIFF, HEIC, SVG, PDF...), a header cut short, and a picture whose header
announces more pixels than ``serve.max_pixels`` (a decompression bomb is a small file with a huge
header). Each refusal has an HTTP status and a typed ``code``; the same codes name the reasons of the
``image_decode_failures_total`` metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SUPPORTED = ("jpeg", "png", "gif", "bmp", "webp")
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_OTHER_FORMATS = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


class ImageRejected(Exception):
    """An image the server will not classify: HTTP ``status``, a typed ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ImageInfo:
    """A supported image's format and the size its header announces."""

    format: str
    width: int
    height: int


def _u16(data: bytes, at: int, order: str) -> int:
    return int.from_bytes(data[at : at + 2], order)  # type: ignore[arg-type]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment; None when the data ends before one."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageRejected(400, "corrupt_image", f"the JPEG has no segment marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
        elif marker in _SOF_MARKERS:
            return (_u16(data, i + 7, "big"), _u16(data, i + 5, "big")) if i + 9 <= len(data) else None
        elif marker in (0xDA, 0xD9):
            raise ImageRejected(400, "corrupt_image", "the JPEG has image data before its frame header")
        else:
            i += 2 + _u16(data, i + 2, "big")
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24:
        return None
    if data[12:16] != b"IHDR":
        raise ImageRejected(400, "corrupt_image", "the PNG does not start with its IHDR header")
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
    raise ImageRejected(400, "corrupt_image", f"the WebP file has an unknown first chunk {chunk!r}")


_SIZES: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    "jpeg": _jpeg_size,
    "png": _png_size,
    "gif": _gif_size,
    "bmp": _bmp_size,
    "webp": _webp_size,
}


def sniff(data: bytes) -> str | None:
    """The supported format whose signature ``data`` starts with, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _other_format(data: bytes) -> str | None:
    for signature, name in _OTHER_FORMATS:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIC/AVIF"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """Check ``data`` before decoding it.

    Raises:
        ImageRejected: ``empty_body`` (400), ``not_an_image`` (400), ``unsupported_image_format`` (415),
            ``truncated_image`` / ``corrupt_image`` (400) for a broken header, ``too_many_pixels`` (413).
    """
    if not data:
        raise ImageRejected(400, "empty_body", "no image bytes were sent")
    fmt = sniff(data)
    if fmt is None:
        other = _other_format(data)
        if other:
            raise ImageRejected(
                415, "unsupported_image_format", f"{other} is not supported: send JPEG, PNG, GIF, BMP or WebP"
            )
        raise ImageRejected(400, "not_an_image", "the bytes are not a JPEG, PNG, GIF, BMP or WebP image")
    size = _SIZES[fmt](data)
    if size is None:
        raise ImageRejected(400, "truncated_image", f"the {fmt.upper()} file ends inside its header")
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(400, "corrupt_image", f"the {fmt.upper()} header gives a size of {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            413, "too_many_pixels", f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}"
        )
    return ImageInfo(fmt, width, height)


def decode_failure(data: bytes, fmt: str) -> ImageRejected:
    """The refusal for an image whose header passed but which the graph could not decode."""
    ending = data.rstrip(b"\x00")
    if (fmt == "jpeg" and not ending.endswith(b"\xff\xd9")) or (fmt == "png" and b"IEND" not in data[-16:]):
        return ImageRejected(400, "truncated_image", f"the {fmt.upper()} file is cut short (an incomplete upload?)")
    return ImageRejected(400, "corrupt_image", f"the {fmt.upper()} file could not be decoded")
