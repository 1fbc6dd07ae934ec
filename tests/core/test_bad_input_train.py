"""``make train`` on settings and folders it cannot use: an absurd or non-finite setting is one ``error:``
line before any model is built; a folder's unusable entries are counted by reason and named in the log
while the run goes on; a loss that becomes NaN stops the run without saving it or moving ``latest``."""

from __future__ import annotations

import dataclasses

import os
import struct
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers.bad_input import one_clear_line, run_stage, snapshot
from tests.helpers.train_data import make_download_output, tiny_transfer_options

pytestmark = pytest.mark.slow

REFUSED = {  # settings (|-separated) -> words the error line must hold
    "train.learning_rate=nan": ["train.learning_rate", "finite"],
    "train.learning_rate=inf": ["train.learning_rate", "finite"],
    "train.fine_tune_learning_rate=-inf": ["train.fine_tune_learning_rate", "finite"],
    "train.split=[0.8, nan, 0.1]": ["train.split", "finite"],
    "train.image_size=100000": ["train.image_size", "100,000", "1,024"],
    "train.batch_size=1000000": ["train.batch_size", "4,096"],
    "train.batch_size=4096|train.image_size=512": ["train.batch_size", "GiB"],  # each fine alone
    "train.epochs=99999999999999999999": ["train.epochs"],
    "train.learning_rate=5": ["train.learning_rate", "at most 1"],
    "train.seed=-1": ["train.seed"],
    "trian.epochs=1": ["'trian'", "unknown section", "did you mean 'train'"],
    "träin.epochs=1": ["'träin'", "unknown section"],
    "serve.request_timeout=nan": ["serve.request_timeout", "finite"],  # every section: nan <= 0 is false
}


@pytest.mark.parametrize("setting", list(REFUSED))
def test_an_absurd_setting_is_refused_before_anything(setting, tmp_path):
    sets = [part for one in setting.split("|") for part in ("--set", one)]
    stage = "deploy.serve" if setting.startswith("serve.") else "train.train"
    proc = run_stage(stage, "--set", f"paths.root={tmp_path}", *sets, timeout=60)
    one_clear_line(proc, *REFUSED[setting])
    assert snapshot(tmp_path) == {tmp_path.as_posix(): None}  # nothing written, no model built


def test_a_huge_value_is_not_echoed_whole(tmp_path):
    huge = "b" * 20_000
    proc = run_stage("train.train", "--set", f"paths.root={tmp_path}", "--set", f"train.backbone={huge}")
    line = one_clear_line(proc, "train.backbone", "characters", "choose one of")
    assert len(line) < 1_100, line[:300]


def _bomb_png(path: Path, side: int = 20_000) -> None:
    """A complete, valid 1-bit PNG of ``side`` x ``side`` pixels: a few kilobytes that decode to gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * (side // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _hostile_folder(tmp_path: Path) -> Path:
    """A class-folder tree of good photos plus one of each thing a folder may hold that is no training image."""
    manifest = make_download_output(tmp_path / "download", per_class=6, size=40)
    folder = manifest.parent  # <label>/<key>.jpg
    manifest.unlink()
    first = sorted(p for p in folder.iterdir() if p.is_dir())[0]
    (first / "scan.tiff").write_bytes(b"II*\x00" + b"\x00" * 64)
    (first / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (first / "loop.jpg").symlink_to(first / "loop.jpg")
    (first / "deeper").mkdir()
    (first / "deeper" / "old.jpg").write_bytes(next(first.glob("*.jpg")).read_bytes())
    (folder / "Empty_Class").mkdir()
    (folder / ".cache").mkdir()  # a hidden folder is no class
    (folder / ".cache" / "thumb.jpg").write_bytes(next(first.glob("*.jpg")).read_bytes())
    _bomb_png(first / "bomb.png")
    return folder


def test_a_folder_s_unusable_entries_are_counted_by_reason_and_named(tmp_path):
    folder = _hostile_folder(tmp_path)
    proc = run_stage(
        "train.train",
        "--set", f"paths.root={tmp_path / 'root'}",
        "--set", f"train.images={folder}",
        "--set", "train.backbone=tiny", "--set", "train.weights=none", "--set", "train.recipe=transfer",
        "--set", "train.image_size=32", "--set", "train.epochs=1", "--set", "train.fine_tune_epochs=0",
        "--set", "train.split=[0.6, 0.2, 0.2]", "--set", f"train.cache_dir={tmp_path / 'cache'}",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    log = proc.stderr
    for reason, name in [
        ("unsupported_format", "scan.tiff"),
        ("broken_symlink", "gone.jpg"),
        ("symlink_loop", "loop.jpg"),
        ("nested_too_deep", "deeper/old.jpg"),
        ("empty_class_folder", "Empty_Class"),
        ("in_hidden_folder", ".cache/thumb.jpg"),
    ]:
        line = next((line for line in log.splitlines() if f", {reason} (" in line), "")
        assert name in line, (reason, log[-3000:])
    bomb = next((line for line in log.splitlines() if "bomb.png" in line), "")
    assert "too many pixels" in bomb and "20000x20000" in bomb, log[-3000:]
    runs = tmp_path / "root" / "runs"
    metrics = (runs / (runs / "latest").read_text().strip() / "metrics.json").read_text()
    reasons = ("unsupported_format", "broken_symlink", "symlink_loop", "nested_too_deep", "empty_class_folder")
    for reason in (*reasons, "in_hidden_folder"):
        assert f'"{reason}": 1' in metrics, reason
    assert '"too_many_pixels": 1' in metrics


class _Poison(keras.callbacks.Callback):
    """A fault, not a mock: after the first batch every weight becomes NaN, as a diverging run's do."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == 0:
            for weight in self.model.weights:
                weight.assign(np.full(weight.shape, np.nan, dtype=weight.dtype))


def test_a_nan_loss_stops_the_run_without_saving_it(tmp_path):
    from train.errors import TrainingDiverged
    from train.train import train

    manifest = make_download_output(tmp_path / "processed", per_class=8, size=40)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "latest").write_text("an-earlier-run\n", encoding="utf-8")
    with pytest.raises(TrainingDiverged, match=r"loss nan at epoch 1, batch 2") as caught:
        # the original head trains by epochs (the linear one is solved: tests/train/test_linear_probe.py)
        options = dataclasses.replace(tiny_transfer_options(tmp_path / "cache"), head="original")
        train(manifest, runs, options, callbacks=[_Poison()], run_id="nan")
    assert "latest was not moved" in str(caught.value)
    assert sorted(os.listdir(runs)) == ["latest"]  # no run folder, no .incomplete/ to resume
    assert (runs / "latest").read_text() == "an-earlier-run\n"
