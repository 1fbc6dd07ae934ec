"""One training session on checked images: build the model, hold the run folder, run the recipe, save.

``train.train.train`` checks the inputs first (without TensorFlow) and then hands them here.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from data.core.config import Config
from data.core.contracts import RUN_FILES
from data.core.figures import confusion_png
from data.core.io import write_json
from train.backbones import base_model, build_backbone
from train.dataset import ImageDataSet
from train.distribute import is_chief, make_strategy, precision_policy, synchronize_batch_norm
from train.fitting import PhaseContext
from train.gate import sanity_check
from train.metrics import classification_report
from train.model import build_classifier, build_head
from train.options import TrainOptions, save_options
from train.phases import run_transfer
from train.reporting import log_hparams, log_png
from train.runs import TrainResult, run_folder
from train.scratch import run_scratch

log = logging.getLogger(__name__)


def build_model(options: TrainOptions, num_classes: int) -> tuple[keras.Model, keras.Model, keras.Model]:
    """Backbone, head and the classifier joining them (raises ``WeightsUnavailable`` before any folder)."""
    backbone = build_backbone(options.backbone, options.image_size, options.weights)
    head = build_head(backbone.output_shape[-1], num_classes, options.head, options.dropout)
    return backbone, head, build_classifier(backbone, head, train_backbone=options.from_scratch)


def _epoch_summary(history: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    records = [r for r in history if r["phase"] == phase]
    if not records:
        return {"epochs": 0}
    seconds = [r["seconds"] for r in records]
    best = min(records, key=lambda r: r.get("val_loss", float("inf")))
    rates = [r["images_per_second"] for r in records if "images_per_second" in r]
    return {
        "epochs": len(records),
        "seconds": round(sum(seconds), 3),
        "seconds_per_epoch": round(sum(seconds) / len(seconds), 4),
        "images_per_second": round(float(np.median(rates)), 1) if rates else None,
        "best_epoch": best["epoch"],
        "best": {k: round(v, 4) for k, v in best.items() if k.startswith("val_")},
    }


def _validate(ctx: PhaseContext, model: keras.Model, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Final numbers on the validation split, its confusion matrix in TensorBoard, and the sanity gate."""
    data, o = ctx.data, ctx.options
    probs = model.predict(data.tf_dataset("validation", o.image_size, ctx.global_batch), verbose=0)
    report = classification_report(data.labels("validation"), probs, data.classes)
    png = confusion_png(np.asarray(report["confusion_matrix"]), data.classes, "validation confusion matrix")
    log_png(ctx.run_dir / "logs" / "validation", "confusion_matrix", png, step)
    majority = int(np.bincount(data.labels("train"), minlength=len(data.classes)).argmax())
    hints = {"frozen_random_backbone": not o.from_scratch and str(o.weights).lower() in ("none", "", "random")}
    return report, sanity_check(data.labels("validation"), probs, data.classes, majority, hints)


def _save_model(model: keras.Model, target: Path) -> None:
    """``model.save`` through a temporary ``.keras`` file and a rename (a resumed run rewrites its model)."""
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, target)


def _finish(ctx: PhaseContext, model: keras.Model, backbone: keras.Model, report: dict[str, Any]) -> dict[str, Any]:
    """Validate, save the model (and a scratch run's backbone weights), log hyperparameters; the metrics."""
    history = ctx.history()
    validation, sanity = _validate(ctx, model, max((r["epoch"] for r in history), default=0))
    _save_model(model, ctx.run_dir / RUN_FILES["model"])
    o = ctx.options
    if o.from_scratch:  # reusable as train.weights=<file> by a later transfer run
        base_model(backbone).save_weights(ctx.run_dir / RUN_FILES["backbone_weights"])
    results = {k: float(validation[k]) for k in ("accuracy", "top3_accuracy", "macro_f1", "loss")}
    log_hparams(ctx.run_dir / "logs", ctx.run_dir.name, o.to_dict(), results)
    return {
        "recipe": "scratch" if o.from_scratch else "transfer",
        **{k: getattr(o, k) for k in ("backbone", "weights", "image_size")},
        "data": ctx.data.summary,
        "phases": {name: {**info, **_epoch_summary(history, name)} for name, info in report.items()},
        "validation": validation,
        "sanity": sanity,
        "history": history,
    }


def run_training(
    data: ImageDataSet,
    runs_dir: Path,
    run_id: str,
    options: TrainOptions,
    *,
    resume: Path | None = None,
    config: Config | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    started: float | None = None,
) -> TrainResult:
    """Train on ``data`` into ``{runs}/<run_id>`` (built in ``.incomplete/`` and renamed when saved)."""
    started = time.perf_counter() if started is None else started
    recipe = "scratch" if options.from_scratch else "transfer"
    splits, classes = data.summary["splits"], len(data.classes)
    log.info("run %s (%s): %d images %s, %d classes", run_id, recipe, len(data.frame), splits, classes)
    keras.utils.set_random_seed(options.seed)
    strategy = make_strategy(options.strategy)
    with precision_policy(options.mixed_precision) as policy, strategy.scope():
        backbone, head, model = build_model(options, len(data.classes))
        synchronize_batch_norm(model, strategy)
        with run_folder(runs_dir, run_id, resume, is_chief(strategy)) as folder:
            if resume is None:
                data.save(folder.work)
                save_options(folder.work, options)
                if config is not None:
                    config.save(folder.work)
            deadline = started + options.time_budget_s if options.time_budget_s else None
            batch = options.batch_size * strategy.num_replicas_in_sync
            ctx = PhaseContext(data, options, folder.work, batch, policy, tuple(callbacks), deadline)
            report = (run_scratch if options.from_scratch else run_transfer)(ctx, backbone, head, model)
            metrics = {"run_id": run_id, **_finish(ctx, model, backbone, report)}
            metrics["seconds"] = round(time.perf_counter() - started, 2)
            write_json(folder.work / RUN_FILES["metrics"], metrics)
    return TrainResult(folder.final, metrics if is_chief(strategy) else {})
