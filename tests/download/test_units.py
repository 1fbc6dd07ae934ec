"""Pieces of the downloader on their own: image checks and resizing, URL and header parsing, options, input."""

from __future__ import annotations

import email.utils
import hashlib
import time

import cv2
import numpy as np
import pytest

from data.core.config import Config, ConfigError
from data.download.fetch import check_url, classify_status, parse_retry_after
from data.core.image_headers import header_size, sniff_format
from data.download.image import ImageParams, process_image, resize
from data.download.shards import Columns, InputError, read_input, safe_folder
from data.download.records import DECODE_ERROR, OK, TOO_MANY_PIXELS, DownloadOptions
from develop.synthetic import draw_product_image, encode_jpeg
from tests.helpers.image_server import decodes, write_input


@pytest.mark.parametrize(
    "ext,fmt", [(".jpg", "jpeg"), (".png", "png"), (".gif", "gif"), (".webp", "webp"), (".bmp", "bmp")]
)
def test_sniff_and_header_size_match_opencv(ext, fmt):
    img = draw_product_image(0, seed=7, size=64)[:40, :]  # 64 wide, 40 high
    data = cv2.imencode(ext, img)[1].tobytes()
    assert sniff_format(data[:32]) == fmt
    assert header_size(data, fmt) == (64, 40)


def test_sniff_rejects_html_and_empty():
    assert sniff_format(b"<!doctype html><html>") is None
    assert sniff_format(b"") is None


@pytest.mark.parametrize(
    "mode,expected", [("shorter", (150, 100)), ("longer", (100, 67)), ("pad", (100, 100)), ("none", (300, 200))]
)
def test_resize_modes_keep_aspect_ratio(mode, expected):
    img = np.full((200, 300, 3), 40, np.uint8)
    out = resize(img, ImageParams(size=100, mode=mode))
    assert (out.shape[1], out.shape[0]) == expected
    if mode == "pad":  # letterbox bars are white, the picture stays in the middle
        assert out[0, 50].tolist() == [255, 255, 255] and out[50, 50].tolist() == [40, 40, 40]


@pytest.mark.parametrize(
    "mode,upscale,expected",
    [
        ("shorter", False, (60, 40)),
        ("shorter", True, (150, 100)),
        ("longer", False, (60, 40)),
        ("longer", True, (100, 67)),
        ("pad", False, (100, 100)),
        ("pad", True, (100, 100)),
    ],
)
def test_smaller_images_are_enlarged_only_when_asked(mode, upscale, expected):
    img = np.full((40, 60, 3), 40, np.uint8)
    out = resize(img, ImageParams(size=100, mode=mode, upscale=upscale))
    assert (out.shape[1], out.shape[0]) == expected
    if mode == "pad" and not upscale:  # the picture keeps its 60x40 pixels in the middle of white bars
        assert out[50, 20:80].tolist() == [[40, 40, 40]] * 60 and out[50, 19].tolist() == [255, 255, 255]


def _options(section: dict) -> DownloadOptions:
    """Download options from a configuration whose ``[download]`` section is ``section``."""
    return DownloadOptions.from_config(Config({"download": section}))


def test_upscale_option_is_a_boolean():
    assert _options({"upscale": True}).upscale is True
    with pytest.raises(ConfigError, match="upscale"):
        _options({"upscale": "yes"})
    with pytest.raises(ConfigError, match="retries"):
        _options({"retries": True})


def test_process_image_stores_resized_jpeg_with_hash(tmp_path):
    data = encode_jpeg(draw_product_image(1, seed=3, size=256)[:128, :])
    target = tmp_path / "Fashion" / "k1.jpg"
    result = process_image(data, str(target), ImageParams(size=64))
    assert result.status == OK
    assert (result.orig_width, result.orig_height, result.width, result.height) == (256, 128, 128, 64)
    assert decodes(target) and cv2.imread(str(target)).shape == (64, 128, 3)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == result.sha256
    assert [p.name for p in target.parent.iterdir()] == ["k1.jpg"]  # no temporary file left


def test_large_jpeg_is_decoded_at_reduced_scale_to_the_same_size(tmp_path):
    data = encode_jpeg(draw_product_image(2, seed=4, size=1024))
    result = process_image(data, str(tmp_path / "a.jpg"), ImageParams(size=100))
    assert result.status == OK and (result.orig_width, result.width, result.height) == (1024, 100, 100)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    # a 20000 x 20000 PNG header: the guard answers from the header alone
    png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    bomb = png[:16] + (20000).to_bytes(4, "big") * 2 + png[24:]
    result = process_image(bomb, str(tmp_path / "bomb.jpg"), ImageParams(max_pixels=60_000_000))
    assert result.status == TOO_MANY_PIXELS and "20000x20000" in result.reason
    assert not (tmp_path / "bomb.jpg").exists()


def test_corrupt_body_is_a_decode_error_without_file(tmp_path):
    data = encode_jpeg(draw_product_image(3, seed=5, size=64))
    result = process_image(data[: len(data) // 2], str(tmp_path / "c.jpg"), ImageParams())
    assert result.status == DECODE_ERROR and not (tmp_path / "c.jpg").exists()


@pytest.mark.parametrize(
    "url,ok",
    [
        ("http://a.example/x.jpg", True),
        ("https://a.example/x.jpg", True),
        ("ftp://a.example/x.jpg", False),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("", False),
        ("http://", False),
        ("//a.example/x.jpg", False),
    ],
)
def test_check_url_accepts_only_http_and_https(url, ok):
    assert (check_url(url) is None) is ok


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(soon) <= 31
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    "code,status",
    [
        (404, "not_found"),
        (410, "not_found"),
        (403, "forbidden"),
        (429, "rate_limited"),
        (500, "server_error"),
        (503, "server_error"),
        (408, "timeout"),
        (400, "http_error"),
        (501, "http_error"),
    ],
)
def test_classify_status(code, status):
    assert classify_status(code) == status


def test_options_from_config_reject_typos_and_bad_values():
    assert _options({"concurrency": 8, "backoff": 1}).backoff == 1.0
    with pytest.raises(ConfigError, match="concurency"):
        _options({"concurency": 8})
    with pytest.raises(ConfigError, match="resize_mode"):
        _options({"resize_mode": "stretch"})
    with pytest.raises(ConfigError, match="workers"):
        _options({"workers": 0})


def test_read_input_csv_with_named_columns_derived_keys_and_duplicates(tmp_path):
    rows = [("http://h/a.jpg", "Sports & Fitness"), ("http://h/b.jpg", "Fashion"), ("http://h/a.jpg", "Fashion")]
    path = tmp_path / "list.csv"
    write_input(path, [(u, lab, "x") for u, lab in rows], columns=("image", "category", "other"))
    table = read_input(path, Columns(url="image", key="id", label="category"))
    assert table.input_rows == 3 and len(table.rows) == 2
    assert table.duplicate_keys == table.conflicting_keys  # same URL (same derived key), another label
    assert len(table.duplicate_keys) == 1
    assert all(len(r.key) == 16 for r in table.rows) and table.rows[0].folder == "Sports_Fitness"
    with pytest.raises(InputError, match="no URL column"):
        read_input(path, Columns(url="link"))
    with pytest.raises(InputError, match="not found"):
        read_input(tmp_path / "missing.parquet")


def test_safe_folder():
    assert safe_folder("Electronics_and_Appliances") == "Electronics_and_Appliances"
    assert safe_folder("../..") == "" and safe_folder("a/b c") == "a_b_c"
