"""The ``make train`` / ``make evaluate`` command lines: a real run, and clear errors without stack traces."""

from __future__ import annotations

from data.core.config import REPO_ROOT
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers.train_data import make_download_output

REPO = REPO_ROOT
TINY = [
    "train.backbone=tiny",
    "train.weights=none",
    "train.image_size=32",
    "train.batch_size=16",
    "train.epochs=2",
    "train.fine_tune_epochs=1",
    "train.fine_tune_layers=10",
]


def _cli(
    module: str, root: Path, overrides: list[str], env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, "--set", f"paths.root={root}"]
    for override in overrides:
        command += ["--set", override]
    return subprocess.run(
        command + list(args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def test_train_and_evaluate_commands(tmp_path):
    make_download_output(tmp_path / "processed" / "v1", per_class=6, size=40)
    trained = _cli("train.train", tmp_path, TINY)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = (tmp_path / "runs" / "latest").read_text().strip()
    assert f"TensorBoard logs: {tmp_path / 'runs' / run_id / 'logs'}" in trained.stdout
    assert "make tensorboard" in trained.stdout
    resolved = json.loads((tmp_path / "runs" / run_id / "config.resolved.json").read_text())
    assert resolved["config"]["train"]["backbone"] == "tiny"
    assert any((tmp_path / "cache" / "embeddings").iterdir())

    evaluated = _cli("train.evaluate", tmp_path, [])
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "accuracy" in evaluated.stdout and "macro-F1" in evaluated.stdout
    assert (tmp_path / "runs" / run_id / "evaluation" / "metrics.json").is_file()

    resumed = _cli("train.train", tmp_path, [], args=("--resume", "latest"))  # a finished run: nothing to redo
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Epoch" not in resumed.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_imagenet_is_a_message_not_a_stack_trace(tmp_path):
    make_download_output(tmp_path / "processed" / "v1", per_class=3, size=32)
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {"https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""}
    result = _cli(
        "train.train",
        tmp_path,
        ["train.backbone=mobilenet_v3_small", "train.weights=imagenet", "train.image_size=32"],
        env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: cannot download the imagenet weights" in result.stderr
    assert "train.weights=none" in result.stderr
    assert not (tmp_path / "runs").exists()  # a run that cannot start leaves no half-written folder


def test_user_errors_are_messages(tmp_path):
    missing = _cli("train.evaluate", tmp_path, [])
    assert missing.returncode == 2 and "make train" in missing.stderr and "Traceback" not in missing.stderr
    no_images = _cli("train.train", tmp_path, ["train.backbone=tiny"])
    assert no_images.returncode == 2 and "make download-images" in no_images.stderr
    bad = _cli("train.train", tmp_path, ["train.backbone=alexnet"])
    assert bad.returncode == 2 and "choose one of" in bad.stderr and "Traceback" not in bad.stderr
