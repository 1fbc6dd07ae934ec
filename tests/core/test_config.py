"""The one source of configuration: defaults, overrides, path expansion, the saved resolved copy."""

from __future__ import annotations

import json

import pytest

from data.core.config import ConfigError, load_config


def test_defaults_and_path_expansion():
    cfg = load_config()
    assert str(cfg.path("processed")) == "data/processed/v1"
    moved = load_config(overrides=["paths.root=/tmp/x", "paths.version=v2"])
    assert str(moved.path("raw")) == "/tmp/x/raw/v2"
    assert str(moved.path("label_mapping")) == "data/label_mapping.csv"


def test_overrides_are_typed_like_toml():
    cfg = load_config(
        overrides=[
            "download.concurrency=7",
            "train.split=[0.7, 0.2, 0.1]",
            "extract.fail_on_unmapped=true",
            "train.backbone=resnet50",
            "new.key='quoted'",
        ]
    )
    assert cfg.section("download")["concurrency"] == 7
    assert cfg.section("train")["split"] == [0.7, 0.2, 0.1]
    assert cfg.section("extract")["fail_on_unmapped"] is True
    assert cfg.section("train")["backbone"] == "resnet50"
    assert cfg.section("new") == {"key": "quoted"}


def test_a_list_of_bare_words_is_a_list_of_strings():
    # what make's SET gives after its shell-like split has removed the quotes: SET='k=["a","b"]' -> k=[a,b]
    cfg = load_config(overrides=["label.auto_drop=[unreadable, label]", "train.split=[0.7,0.2,0.1]", "x.y=[]"])
    assert cfg.section("label")["auto_drop"] == ["unreadable", "label"]
    assert cfg.section("train")["split"] == [0.7, 0.2, 0.1]
    assert cfg.section("x")["y"] == []
    assert load_config(overrides=["x.y=[a, 2, true]"]).section("x")["y"] == ["a", 2, True]
    assert load_config(overrides=["x.y=[[a], b]"]).section("x")["y"] == "[[a], b]"  # nested: left as text


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
