"""``make train`` with ``train.modality = text`` (a title run) or ``both`` (a fusion run): the dispatch.

Text and fusion runs train in one go and keep no checkpoints. ``--resume`` of one that was killed while writing
its folder (``{runs}/.incomplete/<id>``) trains it again from the start under the same id, replacing only that
partial folder once the new run is written; ``--resume`` of a finished one is refused (nothing to continue).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

from data.core.config import Config
from data.core.contracts import CATALOGUE, IMAGES, RUN_FILES, RUNS
from data.core.errors import InputError
from data.core.runs import run_kind
from train.gate import describe
from train.options import TrainOptions
from train.runs import INCOMPLETE

KIND_NAMES = {"text": "text (title)", "both": "fusion"}


def run_modality(run_dir: Path) -> str:
    """``image``, ``text`` or ``both``: what a run folder trained, also one killed before its model file was
    written (then told by its options.json, else by its id's suffix)."""
    kind = run_kind(run_dir)
    if kind != "image" or (run_dir / RUN_FILES["model"]).is_file():
        return kind
    if run_dir.name.endswith("-fusion"):
        return "both"
    options = run_dir / RUN_FILES["options"]
    if options.is_file():
        return str(json.loads(options.read_text(encoding="utf-8")).get("modality", "image"))
    return "text" if run_dir.name.endswith("-text") else "image"


def restart_modality(cfg: Config, options: TrainOptions, resume: Path) -> int:
    """``--resume`` of a text or fusion run: train an interrupted one again under its id; refuse a finished one."""
    kind = run_modality(resume)
    if resume.parent.name != INCOMPLETE:
        raise InputError(
            f"{resume.name} is a finished {KIND_NAMES[kind]} run: such runs train in one go and keep no checkpoints, "
            f"so there is nothing to resume; train a new one (make train SET=train.modality={kind})"
        )
    print(f"{resume.name}: an interrupted {KIND_NAMES[kind]} run; training it again from the start (no checkpoints)")
    aside, final = resume.with_name(f"{resume.name}.interrupted"), resume.parent.parent / resume.name
    os.replace(resume, aside)  # the partial folder stays until the new run is written
    try:
        return train_modality(cfg, dataclasses.replace(options, modality=kind), resume.name)
    finally:
        if final.is_dir():  # written (even where train.strict then refuses it): the partial folder is obsolete
            shutil.rmtree(aside, ignore_errors=True)
            with contextlib.suppress(OSError):
                aside.parent.rmdir()  # .incomplete/, when no other interrupted run is in it
        elif not resume.exists():
            os.replace(aside, resume)


def train_modality(cfg: Config, options: TrainOptions, run_id: str | None) -> int:
    """Train the run ``options.modality`` asks for and print its summary; the exit code."""
    if options.modality == "both":
        from train.fusion import FusionOptions, summary_lines, train_fusion

        fusion = FusionOptions.from_config(cfg)
        result = train_fusion(
            cfg.path(RUNS), cfg.path(CATALOGUE.path_key), cfg.path(IMAGES), fusion, run_id=run_id, config=cfg
        )
        print("\n".join(summary_lines(result)))
        return 0
    from train.text import TextOptions
    from train.text_run import LATEST_TEXT, train_text

    text = TextOptions.from_config(cfg)
    result = train_text(cfg.path(CATALOGUE.path_key), cfg.path(RUNS), options, text, run_id=run_id, config=cfg)
    m, v = result.metrics, result.metrics["validation"]
    data = m["data"]
    print(f"run: {result.run_dir}  (titles: {data['rows']} rows {data['splits']}, left out {data['left_out']})")
    print(
        f"validation: accuracy {v['accuracy']:.3f}  top-3 {v['top3_accuracy']:.3f}  macro-F1 {v['macro_f1']:.3f}  "
        f"({m['speed']['train_titles_per_s']:.0f} titles/s training, "
        f"{m['speed']['predict_titles_per_s']:.0f} predicting)"
    )
    print("\n".join(describe(m["sanity"], "validation")))
    print(f"next: make evaluate ARGS='--run {LATEST_TEXT}'")
    return 0
