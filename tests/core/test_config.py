"""The one source of configuration: defaults, overrides, path expansion, the saved resolved copy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data.core.config import REPO_ROOT, ConfigError, load_config


def test_defaults_and_path_expansion():
    cfg = load_config()
    assert str(cfg.path("processed")) == "data/processed/v1"
    moved = load_config(overrides=["paths.root=/tmp/x", "paths.version=v2"])
    assert str(moved.path("raw")) == "/tmp/x/raw/v2"
    assert str(moved.path("label_mapping")) == "data/label_mapping.csv"


@pytest.mark.parametrize(
    ("override", "module", "wrong"),
    [
        ("train.split_file={runz}/split.csv", "train.train", "{runz} is not one"),
        ("label.cache_dir={cache}", "label", "{cache} is not one"),
        ("paths.runs={root}/runs}", "train.train", "braces do not pair up"),
    ],
)
def test_a_placeholder_that_is_no_path_entry_is_a_one_line_error(override, module, wrong, tmp_path):
    command = [sys.executable, "-m", module, "--set", f"paths.root={tmp_path}", "--set", override]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert wrong in proc.stderr and "[paths] entry" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_overrides_are_typed_like_toml():
    cfg = load_config(
        overrides=[
            "download.concurrency=7",
            "train.split=[0.7, 0.2, 0.1]",
            "extract.fail_on_unmapped=true",
            "train.backbone=resnet50",
            "publish.title='quoted'",
        ]
    )
    assert cfg.section("download")["concurrency"] == 7
    assert cfg.section("train")["split"] == [0.7, 0.2, 0.1]
    assert cfg.section("extract")["fail_on_unmapped"] is True
    assert cfg.section("train")["backbone"] == "resnet50"
    assert cfg.section("publish")["title"] == "quoted"


def test_a_list_of_bare_words_is_a_list_of_strings():
    # what make's SET gives after its shell-like split has removed the quotes: SET='k=["a","b"]' -> k=[a,b]
    cfg = load_config(overrides=["label.auto_drop=[unreadable, label]", "train.split=[0.7,0.2,0.1]", "label.y=[]"])
    assert cfg.section("label")["auto_drop"] == ["unreadable", "label"]
    assert cfg.section("train")["split"] == [0.7, 0.2, 0.1]
    assert cfg.section("label")["y"] == []
    assert load_config(overrides=["label.y=[a, 2, true]"]).section("label")["y"] == ["a", 2, True]
    assert load_config(overrides=["label.y=[[a], b]"]).section("label")["y"] == "[[a], b]"  # nested: left as text


@pytest.mark.parametrize("bad", ["nodot=1", "download.concurrency", "=3", "download..x=1"])
def test_bad_overrides_are_rejected(bad):
    with pytest.raises(ConfigError):
        load_config(overrides=[bad])


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[paths\nroot = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_resolved_config_is_saved(tmp_path):
    cfg = load_config(overrides=["paths.root=elsewhere"])
    saved = json.loads(cfg.save(tmp_path).read_text())
    assert saved["overrides"] == ["paths.root=elsewhere"]
    assert saved["config"]["paths"]["processed"] == "elsewhere/processed/v1"


@pytest.mark.parametrize("override", ["trian.epochs=1", "träin.epochs=1", "Train.epochs=1"])
def test_an_unknown_section_is_refused_like_an_unknown_key(override):
    with pytest.raises(ConfigError, match="unknown section") as caught:
        load_config(overrides=[override])
    assert override.split(".")[0] in str(caught.value)


def test_a_huge_value_is_not_echoed_whole():
    from data.core.options import options_from_section
    from train.options import TrainOptions

    huge = "x" * 20_000
    for override in [f"train.epochs={huge}", f"{huge}.epochs=1", f"train.{huge}=1"]:
        with pytest.raises(ConfigError) as caught:
            cfg = load_config(overrides=[override])
            options_from_section(TrainOptions, cfg.section("train"), "train")
        assert len(str(caught.value)) < 1_000, override[:30]
        assert "20,0" in str(caught.value)  # says how long the value was
