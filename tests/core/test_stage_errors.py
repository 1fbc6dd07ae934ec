"""Every stage answers a mistyped key, a wrong type, a missing config file and a missing input with one
``error:`` line and exit 2, never a traceback, and writes nothing; and make passes a SET value with spaces
intact. Each stage's own bad inputs are in tests/core/test_bad_input_*.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data.core.config import REPO_ROOT

STAGES = {  # module -> its own config section
    "data.extract": "extract",
    "data.download": "download",
    "data.kaggle.fetch": "fetch",
    "data.kaggle.publish": "publish",
    "train.train": "train",
    "train.evaluate": "evaluate",
    "train.predict": "predict",
    "label": "label",
    "label.apply": "label",
    "deploy.export": "export",
    "deploy.serve": "serve",
    "visualise.eda": "visualise",
    "visualise.report": "visualise",
    "develop.demo": "train",  # the demo reads every stage's section before it writes anything
}
WRONG_TYPE = {  # a value of the wrong type for a key the stage reads
    "data.extract": "extract.fail_on_unmapped=no",
    "data.download": "download.concurrency=1.5",
    "data.kaggle.fetch": "fetch.dataset=3",
    "data.kaggle.publish": "publish.private=1",
    "train.train": "train.image_size=1.5",
    "train.evaluate": "evaluate.batch_size=yes",
    "train.predict": "predict.top_k=1.5",
    "label": "label.folds=1.5",
    "label.apply": "label.auto_threshold=yes",
    "deploy.export": "export.batch_size=yes",
    "deploy.serve": "serve.port=1.5",
    "visualise.eda": "visualise.seed=1.5",
    "visualise.report": "visualise.top_losses=many",
    "develop.demo": "label.folds=1.5",
}
ARGS = {"train.predict": ("photo.jpg",)}  # its files: the settings are refused before they are looked at
# What each stage needs first, missing below an empty paths.root (the demo has no input: tests/core/
# test_bad_input_demo.py gives it a --root it may not use).
MISSING_INPUT = [
    pytest.param(module, args, id=module)
    for module, args in [
        ("data.extract", ()),
        ("data.download", ()),
        ("data.kaggle.publish", ("--dry-run",)),
        ("train.train", ()),
        ("train.evaluate", ()),
        ("train.predict", ()),
        ("label", ()),
        ("label.apply", ()),
        ("deploy.export", ()),
        ("deploy.serve", ()),
        ("visualise.eda", ()),
        ("visualise.report", ()),
    ]
]


def _run(module: str, *args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args, *ARGS.get(module, ())],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _one_clear_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(STAGES))
def test_mistyped_key(module, tmp_path):
    section = STAGES[module]
    proc = _run(module, "--set", f"paths.root={tmp_path}", "--set", f"{section}.no_such_kee=1")
    _one_clear_line(proc, "no_such_kee", "unknown")
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(WRONG_TYPE))
def test_wrong_type(module, tmp_path):
    override = WRONG_TYPE[module]
    proc = _run(module, "--set", f"paths.root={tmp_path}", "--set", override)
    _one_clear_line(proc, override.split("=")[0])
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(STAGES))
def test_missing_config_file(module, tmp_path):
    proc = _run(module, "--config", str(tmp_path / "nope.toml"))
    _one_clear_line(proc, "nope.toml")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("module, args", MISSING_INPUT)
def test_missing_input(module, args, tmp_path):
    proc = _run(module, "--set", f"paths.root={tmp_path}", *args)
    _one_clear_line(proc, str(tmp_path))
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_make_keeps_spaces_in_set_values(tmp_path):
    raw = tmp_path / "raw" / "v1"
    raw.mkdir(parents=True)
    (raw / "Some.csv").write_text(
        "name,main_category,sub_category,image,link,ratings,no_of_ratings,discount_price,actual_price\n"
        "A,accessories,Watches,https://example.invalid/a.jpg,,,,,\n",
        encoding="utf-8",
    )
    sets = f'paths.root={tmp_path} extract.merged_file="Two Words.csv"'
    proc = subprocess.run(
        ["make", "-s", "extract", f"SET={sets}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads((tmp_path / "processed" / "v1" / "config.resolved.json").read_text(encoding="utf-8"))
    assert resolved["config"]["extract"]["merged_file"] == "Two Words.csv"
    assert (tmp_path / "processed" / "v1" / "catalogue.parquet").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(STAGES))
def test_an_unknown_command_line_flag(module, tmp_path):
    proc = _run(module, "--set", f"paths.root={tmp_path}", "--no-such-flag")
    _one_clear_line(proc, "--no-such-flag", "--help")
    assert "usage:" not in proc.stderr and not any(tmp_path.iterdir())
