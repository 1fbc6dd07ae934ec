"""Helpers for the training tests: a download-stage output (images + manifest.parquet) built from
``develop/synthetic.py``, in exactly the format of the download contract."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from data.core.contracts import MANIFEST
from develop.synthetic import CLASSES, draw_product_image, encode_jpeg

if TYPE_CHECKING:
    from train.options import TrainOptions

MANIFEST_COLUMNS = list(MANIFEST.columns)  # exactly the download contract


def _row(key: str, url: str, label: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "key": key,
        "url": url,
        "label": label,
        "status": "ok",
        "reason": "",
        "http_status": 200,
        "attempts": 1,
        "bytes": 0,
        "orig_width": 0,
        "orig_height": 0,
        "width": 0,
        "height": 0,
        "sha256": "",
        "elapsed_s": 0.01,
        "path": "",
    }
    row.update(values)
    return row


def make_download_output(
    processed: Path, per_class: int = 10, size: int = 48, classes: tuple[str, ...] = CLASSES, failures: int = 3
) -> Path:
    """Write ``{processed}/images/<label>/<key>.jpg`` and ``manifest.parquet``; returns the manifest path.

    Adds ``failures`` rows that were not stored (a 404, a timeout, a non-image) like the downloader would.
    """
    images = processed / "images"
    rows = []
    for class_index, label in enumerate(classes):
        for i in range(per_class):
            url = f"http://127.0.0.1/img/{label}/{i}.jpg"
            key = hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]
            payload = encode_jpeg(draw_product_image(class_index, seed=1000 * class_index + i, size=size))
            target = images / label / f"{key}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            rows.append(
                _row(
                    key,
                    url,
                    label,
                    bytes=len(payload),
                    orig_width=size,
                    orig_height=size,
                    width=size,
                    height=size,
                    sha256=hashlib.sha256(payload).hexdigest(),
                    path=f"{label}/{key}.jpg",
                )
            )
    for i, (status, reason, code) in enumerate(
        [("http_error", "404 Not Found", 404), ("timeout", "read", None), ("invalid_image", "not an image", 200)][
            :failures
        ]
    ):
        url = f"http://127.0.0.1/broken/{i}.jpg"
        rows.append(
            _row(
                hashlib.sha1(url.encode("utf-8")).hexdigest()[:16],
                url,
                classes[i % len(classes)],
                status=status,
                reason=reason,
                http_status=code,
            )
        )
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).astype({"http_status": "Int64"})
    manifest = images / "manifest.parquet"
    frame.to_parquet(manifest, index=False)
    return manifest


def tiny_transfer_options(cache_dir: Path) -> "TrainOptions":
    """The session fixtures' model: a tiny backbone, 32 px, two frozen-phase epochs, no fine-tuning; seconds."""
    from train.options import TrainOptions

    return TrainOptions(
        backbone="tiny",
        weights="none",
        recipe="transfer",
        image_size=32,
        batch_size=16,
        epochs=2,
        fine_tune_epochs=0,
        learning_rate=1e-2,
        split=(0.6, 0.2, 0.2),
        cache_dir=str(cache_dir),
    )
