"""What a request's bytes are, before any decoder sees them: format by signature, size from the header.

The server refuses here what it cannot or must not decode: an empty body, bytes of no image format, a
format the graph cannot decode (TIFF, HEIC, SVG, PDF...), a header cut short, and a picture whose header
announces more pixels than ``serve.max_pixels`` (a decompression bomb is a small file with a huge
header); signatures and headers are read by :mod:`data.core.image_headers`. Each refusal has an HTTP status and a
typed ``code``; the same codes name the reasons of the ``image_decode_failures_total`` metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from data.core.image_headers import TF_FORMATS, HeaderError, header_size, sniff_format, unsupported_format


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


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """Check ``data`` before decoding it.

    Raises:
        ImageRejected: ``empty_body`` (400), ``not_an_image`` (400), ``unsupported_image_format`` (415),
            ``truncated_image`` / ``corrupt_image`` (400) for a broken header, ``too_many_pixels`` (413).
    """
    if not data:
        raise ImageRejected(400, "empty_body", "no image bytes were sent")
    fmt = sniff_format(data)
    if fmt is None or fmt not in TF_FORMATS:
        other = unsupported_format(data)
        if other:
            raise ImageRejected(
                415, "unsupported_image_format", f"{other} is not supported: send JPEG, PNG, GIF, BMP or WebP"
            )
        raise ImageRejected(400, "not_an_image", "the bytes are not a JPEG, PNG, GIF, BMP or WebP image")
    try:
        size = header_size(data, fmt)
    except HeaderError as exc:
        raise ImageRejected(400, "corrupt_image", str(exc)) from exc
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
