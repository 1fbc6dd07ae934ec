"""Options: typed through ``options_from_section`` (never coerced), checked before any work, read back
for ``--resume``; the run folder's life: built aside, renamed when done, never over another run."""

from __future__ import annotations

import json

import pytest

from data.core.config import ConfigError, load_config
from data.core.options import options_from_section
from data.core.errors import BusyError
from train.evaluate import EvaluateOptions
from train.options import TrainOptions, resume_options
from train.runs import INCOMPLETE, new_run_id, resolve_resume, run_folder


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.image_size=1.5", "train.image_size = 1.5: expected a whole number"),
        ("train.strict='yes'", "train.strict = 'yes': expected true or false"),
        ("train.learning_rate='fast'", "expected a number"),
        ("train.split=[0.8, 0.2]", "expected 3 items"),
        ("train.epochz=3", "unknown key(s) epochz"),
    ],
)
def test_config_values_are_checked_not_coerced(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainOptions.from_config(load_config(overrides=[override]))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"recipe": "finetune"}, "train.recipe = 'finetune'; choose one of auto, scratch, transfer"),
        ({"augment": "heavy"}, "train.augment = 'heavy'"),
        ({"bad_images": "ignore"}, "train.bad_images = 'ignore'; choose one of skip, fail"),
        ({"image_size": 8}, "at least 16"),
        ({"epochs": 0}, "train.epochs = 0 must be at least 1"),
        ({"split": (0.5, 0.2, 0.2)}, "ratios summing to 1"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"weights": "/nowhere.h5"}, "no such weights file"),
    ],
)
def test_impossible_options_are_refused(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainOptions(**values).check()


def test_defaults_of_the_reviewed_config_pass_and_auto_picks_the_recipe():
    options = TrainOptions.from_config(load_config())
    options.check()
    assert not options.from_scratch  # imagenet weights: transfer
    assert (
        TrainOptions(weights="none").from_scratch and not TrainOptions(weights="none", recipe="transfer").from_scratch
    )
    assert TrainOptions(recipe="scratch").from_scratch
    moved = TrainOptions.from_config(load_config(overrides=["paths.root=/x", "train.images='{root}/photos'"]))
    assert moved.images == "/x/photos" and moved.cache_dir == "/x/cache/embeddings"


def test_resume_reads_an_older_runs_options(tmp_path):
    old = {**TrainOptions().to_dict(), "augment": True}
    del old["recipe"]  # written before the from-scratch recipe existed
    (tmp_path / "options.json").write_text(json.dumps(old))
    options = resume_options(tmp_path, ["train.epochs=30", "evaluate.split=test"])
    assert options.recipe == "transfer" and options.augment == "auto" and options.epochs == 30
    with pytest.raises(ConfigError, match="not a training run folder"):
        resume_options(tmp_path / "nothing")


def test_evaluate_options():
    section = load_config().section("evaluate")
    options = options_from_section(EvaluateOptions, section, "evaluate", ignore=("run",))
    options.check()
    assert options == EvaluateOptions()
    with pytest.raises(ConfigError, match="evaluate.split = 'dev' is not a split"):
        EvaluateOptions(split="dev").check()


def test_run_folder_is_built_aside_and_never_replaces_another(tmp_path):
    runs = tmp_path / "runs"
    with run_folder(runs, "one", None) as folder:
        assert folder.work == runs / INCOMPLETE / "one" and folder.work.is_dir() and not (runs / "one").exists()
        (folder.work / "model.keras").write_text("stands for a model")
    assert (runs / "one" / "model.keras").is_file() and not (runs / INCOMPLETE).exists()
    with pytest.raises(BusyError, match="run id 'one' is taken"):
        with run_folder(runs, "one", None):
            pass
    with pytest.raises(KeyError):  # a failure before any epoch: nothing is left
        with run_folder(runs, "two", None):
            raise KeyError("boom")
    assert sorted(p.name for p in runs.iterdir()) == ["one"]
    with pytest.raises(KeyError):  # after an epoch: kept for --resume two
        with run_folder(runs, "two", None) as folder:
            (folder.work / "checkpoints").mkdir()
            (folder.work / "checkpoints" / "history.jsonl").write_text("{}\n")
            raise KeyError("boom")
    assert resolve_resume(runs, "two") == runs / INCOMPLETE / "two" and not (runs / "two").exists()
    assert new_run_id("tiny", runs).endswith("-tiny")
