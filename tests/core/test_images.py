"""The shared image utilities on real files written by OpenCV: headers, the bomb guard, the crop geometry,
thumbnails, the difference hash and figures as PNG."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data.core.figures import figure_png
from data.core.image_headers import (
    HeaderError,
    TooManyPixels,
    header_size,
    over_limit,
    sniff_format,
    unsupported_format,
)
from data.core.images import decode, difference_hash, file_dhash, square_box, thumbnail


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random BGR picture (blurred noise: structure a difference hash can see)."""
    noise = np.random.default_rng(seed).integers(0, 256, (max(8, height // 8), max(8, width // 8), 3), np.uint8)
    return cv2.resize(cv2.GaussianBlur(noise, (3, 3), 0), (width, height), interpolation=cv2.INTER_CUBIC)


def written(tmp_path, name: str, image: np.ndarray) -> bytes:
    path = tmp_path / name
    assert cv2.imwrite(str(path), image)
    return path.read_bytes()


@pytest.mark.parametrize(
    "ext,fmt", [("jpg", "jpeg"), ("png", "png"), ("webp", "webp"), ("bmp", "bmp"), ("tiff", "tiff")]
)
def test_format_and_size_come_from_the_header(tmp_path, ext, fmt):
    data = written(tmp_path, f"a.{ext}", photo(64, 40))
    assert sniff_format(data[:32]) == fmt
    assert header_size(data, fmt) == (None if fmt == "tiff" else (64, 40))  # TIFF: OpenCV's own limit guards it


def test_gif_header_is_sniffed_and_sized():
    # OpenCV writes no GIF: the header of a 3 x 2 GIF89a (logical screen size, little-endian)
    data = b"GIF89a" + (3).to_bytes(2, "little") + (2).to_bytes(2, "little") + b"\x00" * 20
    assert sniff_format(data) == "gif"
    assert header_size(data, "gif") == (3, 2)


def test_other_bytes_are_not_an_image_or_are_named():
    assert sniff_format(b"<!doctype html><html>") is None
    assert sniff_format(b"") is None
    assert unsupported_format(b"%PDF-1.7 ...") == "PDF"
    assert unsupported_format(b"  <svg xmlns='http://www.w3.org/2000/svg'/>") == "SVG"
    assert unsupported_format(b"<html></html>") is None


def test_a_header_cut_short_has_no_size_and_a_broken_one_is_an_error(tmp_path):
    png = written(tmp_path, "a.png", photo(64, 40))
    jpeg = written(tmp_path, "a.jpg", photo(64, 40))
    assert header_size(png[:20], "png") is None
    assert header_size(jpeg[:10], "jpeg") is None
    with pytest.raises(HeaderError, match="IHDR"):
        header_size(png[:12] + b"XXXX" + png[16:], "png")
    with pytest.raises(HeaderError, match="segment marker"):
        header_size(jpeg[:2] + b"\x00" * 40, "jpeg")


def test_a_truncated_file_does_not_decode(tmp_path):
    jpeg = written(tmp_path, "a.jpg", photo(64, 40))
    decoded = decode(jpeg[:100], max_pixels=10_000)
    assert decoded.fmt == "jpeg" and decoded.image is None


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    png = bytearray(written(tmp_path, "a.png", photo(64, 40)))
    png[16:24] = (20_000).to_bytes(4, "big") * 2  # the header now announces 20000 x 20000
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(png))
    with pytest.raises(TooManyPixels) as caught:
        decode(bytes(png), max_pixels=60_000_000)
    assert (caught.value.width, caught.value.height) == (20_000, 20_000)
    assert over_limit(bomb, 60_000_000) == (20_000, 20_000)
    assert over_limit(tmp_path / "a.png", 60_000_000) is None
    assert over_limit(tmp_path / "missing.png", 1) is None  # the decoder names a missing file


def test_decode_gives_bgr_with_alpha_on_white_and_reduces_large_jpegs(tmp_path):
    rgba = np.dstack([photo(32, 32), np.zeros((32, 32), np.uint8)])  # fully transparent
    image = decode(written(tmp_path, "a.png", rgba), max_pixels=10_000).image
    assert image is not None and image.shape == (32, 32, 3) and (image == 255).all()
    grey = decode(written(tmp_path, "g.png", photo(20, 10)[:, :, 0]), max_pixels=10_000).image
    assert grey is not None and grey.shape == (10, 20, 3)
    jpeg = written(tmp_path, "big.jpg", photo(256, 128))
    assert decode(jpeg, 1_000_000, fit=32).image.shape == (32, 64, 3)  # 1/4 scale still gives 32 px
    assert decode(jpeg, 1_000_000, fit=32, longer=True).image.shape == (16, 32, 3)  # 1/8: longer side 32
    assert decode(jpeg, 1_000_000).image.shape == (128, 256, 3)


@pytest.mark.parametrize(
    "height,width,box",
    [(40, 64, (0, 12, 40)), (64, 40, (12, 0, 40)), (50, 50, (0, 0, 50)), (41, 64, (0, 11, 41)), (64, 41, (11, 0, 41))],
)
def test_square_box_is_centred(height, width, box):
    assert square_box(height, width) == box


def test_centre_square_crops_the_middle_in_tensorflow_with_the_same_box():
    import tensorflow as tf

    from data.core.images import centre_square

    assert [int(v) for v in square_box(tf.constant(40), tf.constant(64), tf.minimum)] == [0, 12, 40]
    image = np.zeros((40, 64, 3), np.uint8)
    image[:, 12:52] = 200  # the centred square is grey, the bands either side black
    out = centre_square(tf.constant(image), 20).numpy()
    assert out.shape == (20, 20, 3) and np.allclose(out, 200.0)
    tall = np.stack([image.transpose(1, 0, 2)] * 2)  # portrait, batched: the grey band is now rows 12-51
    batch = centre_square(tf.constant(tall), 10).numpy()
    assert batch.shape == (2, 10, 10, 3) and np.allclose(batch, 200.0)


def test_thumbnail_fits_the_longer_side(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), photo(64, 40))
    assert thumbnail(path, 32).shape == (20, 32, 3)
    assert thumbnail(path, 32, reduced=False).shape == (20, 32, 3)
    assert thumbnail(path, 128).shape == (80, 128, 3)
    assert thumbnail(path, 128, enlarge=False).shape == (40, 64, 3)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    assert thumbnail(tmp_path / "bad.jpg", 32) is None


def test_difference_hash_survives_a_resize_and_tells_photos_apart(tmp_path):
    original, other = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(original), photo(256, 192, seed=1))
    cv2.imwrite(
        str(tmp_path / "small.jpg"), cv2.resize(photo(256, 192, seed=1), (128, 96), interpolation=cv2.INTER_AREA)
    )
    cv2.imwrite(str(other), photo(256, 192, seed=2))
    a, small, b = file_dhash(original), file_dhash(tmp_path / "small.jpg"), file_dhash(other)
    assert a is not None and small is not None and b is not None
    assert bin(a ^ small).count("1") <= 2
    assert bin(a ^ b).count("1") >= 16
    assert difference_hash(cv2.imread(str(original), cv2.IMREAD_GRAYSCALE)) == a
    assert file_dhash(tmp_path / "missing.png") is None


def test_figure_png_is_a_decodable_png_without_a_stamp():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def drawn(dpi: int) -> bytes:
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], [1, 0])
        png = figure_png(fig, dpi)
        assert not plt.fignum_exists(fig.number)  # closed: a report draws hundreds
        return png

    small, large = drawn(50), drawn(100)
    assert small.startswith(b"\x89PNG\r\n\x1a\n") and b"Software" not in small
    assert drawn(50) == small  # no stamp: the same figure gives the same bytes
    widths = [cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape[1] for png in (small, large)]
    assert 1.8 < widths[1] / widths[0] < 2.2
