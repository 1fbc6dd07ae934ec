"""Sniffing requests' bytes: formats and header sizes of real encoded files, bombs, truncation, other formats."""

from __future__ import annotations

import struct

import pytest

from deploy.images import ImageRejected, decode_failure, inspect
from tests.deploy.support import photo


@pytest.mark.parametrize(
    "fmt, name", [("jpg", "jpeg"), ("png", "png"), ("gif", "gif"), ("bmp", "bmp"), ("webp", "webp")]
)
def test_the_header_gives_format_and_size(fmt, name):
    info = inspect(photo(61, 37, fmt), max_pixels=10_000)
    assert (info.format, info.width, info.height) == (name, 61, 37)


def test_lossless_webp_header():
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".webp", np.zeros((23, 45, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok and bytes(data[12:16]) == b"VP8L"
    assert (inspect(data.tobytes(), 10_000).width, inspect(data.tobytes(), 10_000).height) == (45, 23)


def _rejected(data: bytes, max_pixels: int = 1_000_000) -> tuple[int, str]:
    with pytest.raises(ImageRejected) as caught:
        inspect(data, max_pixels)
    return caught.value.status, caught.value.code


def _with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0")  # baseline start of frame: FF C0, length, precision, height, width
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def test_decompression_bombs_are_refused_from_the_header():
    jpeg = photo(40, 30)
    assert _rejected(_with_jpeg_size(jpeg, 50_000, 50_000)) == (413, "too_many_pixels")
    png = photo(40, 30, "png")
    bomb = png[:16] + struct.pack(">II", 30_000, 30_000) + png[24:]
    assert _rejected(bomb) == (413, "too_many_pixels")
    assert inspect(jpeg, max_pixels=1200).width == 40  # exactly at the limit is allowed
    assert _rejected(jpeg, max_pixels=1199) == (413, "too_many_pixels")


def test_what_is_not_a_supported_image():
    assert _rejected(b"") == (400, "empty_body")
    assert _rejected(b"hello, this is text") == (400, "not_an_image")
    assert _rejected(b'{"instances": []}') == (400, "not_an_image")
    assert _rejected(photo(20, 20, "tiff")) == (415, "unsupported_image_format")
    assert _rejected(b"%PDF-1.7\n...") == (415, "unsupported_image_format")
    assert _rejected(b'<?xml version="1.0"?><svg width="10" height="10"></svg>') == (415, "unsupported_image_format")
    assert _rejected(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == (415, "unsupported_image_format")


def test_broken_headers():
    jpeg = photo(40, 30)
    assert _rejected(jpeg[:12]) == (400, "truncated_image")
    assert _rejected(photo(40, 30, "png")[:20]) == (400, "truncated_image")
    assert _rejected(jpeg[:4] + b"\x00" * 40) == (400, "corrupt_image")
    assert _rejected(_with_jpeg_size(jpeg, 0, 30)) == (400, "corrupt_image")


def test_a_decode_failure_says_whether_the_file_was_cut():
    jpeg = photo(40, 30)
    assert decode_failure(jpeg[: len(jpeg) // 2], "jpeg").code == "truncated_image"
    assert decode_failure(jpeg[:300] + b"\x00" * 200 + jpeg[-2:], "jpeg").code == "corrupt_image"
    png = photo(40, 30, "png")
    assert decode_failure(png[:-20], "png").code == "truncated_image"
