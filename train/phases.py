"""The transfer recipe, resumable: the head on a frozen backbone, then fine-tuning the backbone's top.

Used when the backbone starts from learned weights (``imagenet`` or a weights file): the frozen phase
trains the head on the embedding cache (``train/embeddings.py``) or on images, and fine-tuning keeps
batch norm in inference mode (``train/model.py``).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import keras

from train.backbones import unfreeze_top, weights_fingerprint
from train.callbacks import WarmupCosine
from train.embeddings import EmbeddingCache, embed_files
from train.fitting import PhaseContext, fit_phase, load_weights
from train.linear_probe import fit_linear_head, is_linear, log_solved
from train.model import compile_model
from train.pipeline import vector_dataset


def frozen_on_cache(ctx: PhaseContext, backbone: keras.Model, head: keras.Model) -> dict[str, Any]:
    """Phase 1, fast path: embed every image once (cached on disk), train the head on the vectors.

    The ``linear`` head is solved exactly (a logistic regression, ``train/linear_probe.py``); other heads
    train with Adam and early stopping on the validation loss.
    """
    o = ctx.options
    started = time.perf_counter()
    cache = EmbeddingCache(
        Path(o.cache_dir),
        {
            "backbone": o.backbone,
            "image_size": o.image_size,
            "weights": weights_fingerprint(backbone),
            "policy": ctx.policy,
        },
    )
    n_train, classes = len(ctx.data.rows("train")), len(ctx.data.classes)
    vectors, stats = embed_files(
        backbone, ctx.data.files("train") + ctx.data.files("validation"), cache, o.image_size, ctx.global_batch
    )
    embedding_seconds = time.perf_counter() - started
    compile_model(head, o.learning_rate)
    if is_linear(head):  # a convex problem: solve it rather than stop a descent early (train/linear_probe.py)
        splits = ((vectors[:n_train], ctx.data.labels("train")), (vectors[n_train:], ctx.data.labels("validation")))
        record, solver = fit_linear_head(head, splits, ctx.data.class_weights(), o.head_c, o.seed, ctx.deadline)
        log_solved(ctx.checkpoints / "history.jsonl", ctx.run_dir / "logs", record)
        return {
            "mode": "embedding_cache",
            "head": "solved",
            **solver,
            "cache_dir": str(cache.dir),
            "embedding_seconds": round(embedding_seconds, 3),
            "cache": stats,
        }
    train_ds = vector_dataset(
        vectors[:n_train], ctx.data.labels("train"), classes, ctx.global_batch, shuffle=True, seed=o.seed
    )
    val_ds = vector_dataset(vectors[n_train:], ctx.data.labels("validation"), classes, ctx.global_batch)
    best, _ = fit_phase(ctx, head, "frozen", (train_ds, val_ds), (0, o.epochs), ctx.best_val_loss(["frozen"]))
    load_weights(head, best)
    return {
        "mode": "embedding_cache",
        "cache_dir": str(cache.dir),
        "embedding_seconds": round(embedding_seconds, 3),
        "cache": stats,
    }


def frozen_on_images(ctx: PhaseContext, backbone: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Phase 1, original recipe: the frozen backbone runs over every (augmented) image every epoch."""
    backbone.trainable = False
    compile_model(model, ctx.options.learning_rate)
    datasets = ctx.image_datasets("light")
    best, _ = fit_phase(ctx, model, "frozen", datasets, (0, ctx.options.epochs), ctx.best_val_loss(["frozen"]))
    load_weights(model, best)
    return {"mode": "images"}


def fine_tune(ctx: PhaseContext, backbone: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Phase 2: unfreeze the top of the backbone, train at a low learning rate; keep it only if it helps.

    Batch norm stays frozen (inference mode); the learning rate warms up linearly over the first tenth of
    the steps to ``fine_tune_learning_rate``, then follows a cosine to 0 (``train/callbacks.py``).

    Epochs continue the numbering of phase 1 (one TensorBoard curve). The best-weights checkpoint starts
    from phase 1's best validation loss, so fine-tuning replaces the model only when it improves on it.
    """
    o = ctx.options
    unfrozen = unfreeze_top(backbone, o.fine_tune_layers)
    compile_model(model, o.fine_tune_learning_rate)
    start = max((r["epoch"] for r in ctx.history() if r["phase"] == "frozen"), default=0)
    steps = math.ceil(len(ctx.data.rows("train")) / ctx.global_batch) * o.fine_tune_epochs
    # A short linear warm-up (the new head's gradients are large at first), then cosine decay to 0 at the
    # last epoch or the time budget, whichever comes first.
    schedule = WarmupCosine(o.fine_tune_learning_rate, steps, max(1, steps // 10), ctx.deadline)
    best, _ = fit_phase(
        ctx,
        model,
        "fine_tune",
        ctx.image_datasets("light"),
        (start, start + o.fine_tune_epochs),
        ctx.best_val_loss(["frozen", "fine_tune"]),
        callbacks=[schedule],
    )
    improved = best.is_file()
    load_weights(model, best if improved else ctx.checkpoints / "phase1_model.weights.h5")
    return {"mode": "fine_tune", "unfrozen_layers": unfrozen, "improved": improved}


def run_transfer(ctx: PhaseContext, backbone: keras.Model, head: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Run (or resume) both phases; ``model`` ends with the best weights found. Returns a phase report."""
    ctx.checkpoints.mkdir(parents=True, exist_ok=True)
    phase1_weights = ctx.checkpoints / "phase1_model.weights.h5"
    report = ctx.state().get("report", {})
    if ctx.state().get("frozen_done"):
        load_weights(model, phase1_weights)
    else:
        backbone.trainable = False
        cached = ctx.options.embedding_cache
        report["frozen"] = (frozen_on_cache if cached else frozen_on_images)(ctx, backbone, head if cached else model)
        model.save_weights(phase1_weights)
        ctx.update_state(frozen_done=True, report=report)
    if ctx.options.fine_tune_epochs > 0 and not ctx.state().get("fine_tune_done"):
        report["fine_tune"] = fine_tune(ctx, backbone, model)
        ctx.update_state(fine_tune_done=True, report=report)
    elif (ctx.checkpoints / "fine_tune_best.weights.h5").is_file():
        load_weights(model, ctx.checkpoints / "fine_tune_best.weights.h5")
    for phase in ("frozen", "fine_tune"):
        shutil.rmtree(ctx.checkpoints / f"{phase}_backup", ignore_errors=True)
    return report
