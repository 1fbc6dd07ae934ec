"""The from-scratch recipe: one phase, every layer trainable, batch norm in training mode.

Used when there are no learned weights to start from (``train.weights = none``, or ``train.recipe =
scratch``): strong augmentation in tf.data (random resized crop, flip, colour), AdamW with a linear
warm-up and cosine decay (over ``train.epochs``, or over ``train.time_budget_s`` when that ends first),
label smoothing, early stopping on validation loss (not during warm-up), the best weights kept.
Resumable like the transfer phases (``BackupAndRestore``; the schedule follows the optimizer's step count).
"""

from __future__ import annotations

import math
import shutil
from typing import Any

import keras

from train.backbones import make_trainable
from train.callbacks import WarmupCosine
from train.fitting import PhaseContext, fit_phase, load_weights
from train.model import compile_scratch
from train.pipeline import pipeline_throughput

PHASE = "scratch"


def run_scratch(ctx: PhaseContext, backbone: keras.Model, head: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Train the whole classifier from its initial weights (or resume); returns the phase report."""
    o = ctx.options
    ctx.checkpoints.mkdir(parents=True, exist_ok=True)
    best = ctx.checkpoints / f"{PHASE}_best.weights.h5"
    if ctx.state().get("scratch_done"):
        load_weights(model, best)
        return ctx.state().get("report", {})
    trainable = make_trainable(backbone)
    compile_scratch(model, o.learning_rate, o.weight_decay, o.label_smoothing)
    train_ds, val_ds = ctx.image_datasets("strong")
    steps = math.ceil(len(ctx.data.rows("train")) / ctx.global_batch)
    schedule = WarmupCosine(o.learning_rate, steps * o.epochs, round(steps * o.warmup_epochs), ctx.deadline)
    input_rate = pipeline_throughput(train_ds, batches=min(10, steps))
    best, budget = fit_phase(
        ctx,
        model,
        PHASE,
        (train_ds, val_ds),
        (0, o.epochs),
        ctx.best_val_loss([PHASE]),
        callbacks=[schedule],
        early_stop_from=math.ceil(o.warmup_epochs),
    )
    if best.is_file():
        load_weights(model, best)
    report = {
        PHASE: {
            "mode": "scratch",
            "trainable_weights": trainable,
            "input_pipeline": input_rate,
            "stopped_by_time_budget_after": budget.stopped_after if budget else None,
        }
    }
    ctx.update_state(scratch_done=True, report=report)
    shutil.rmtree(ctx.checkpoints / f"{PHASE}_backup", ignore_errors=True)
    return report
