"""The two training phases, resumable: the head on a frozen backbone, then fine-tuning the backbone's top.

Checkpoints live in ``{run}/checkpoints/``: ``state.json`` (which phases are done), ``history.jsonl`` (one
line per finished epoch), the best weights of each phase, and Keras ``BackupAndRestore`` folders holding the
last finished epoch of the phase in progress (weights, optimizer state, epoch) for ``--resume``.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras

from data.core.io import write_json
from train.backbones import unfreeze_top, weights_fingerprint
from train.dataset import ImageDataSet
from train.embeddings import EmbeddingCache, embed_files
from train.model import compile_model
from train.options import TrainOptions
from train.pipeline import vector_dataset


@dataclass
class PhaseContext:
    """What both phases need: data, options, where to write, batch size, extra callbacks."""

    data: ImageDataSet
    options: TrainOptions
    run_dir: Path
    global_batch: int
    policy: str = "float32"
    extra_callbacks: Sequence[keras.callbacks.Callback] = field(default_factory=tuple)

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def state(self) -> dict[str, Any]:
        path = self.checkpoints / "state.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def update_state(self, **values: Any) -> None:
        write_json(self.checkpoints / "state.json", {**self.state(), **values})

    def history(self) -> list[dict[str, Any]]:
        """Finished epochs, oldest first (the last record wins if an epoch was logged twice)."""
        path = self.checkpoints / "history.jsonl"
        if not path.is_file():
            return []
        records = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            records[(record["phase"], record["epoch"])] = record
        return sorted(records.values(), key=lambda r: r["epoch"])


class EpochLog(keras.callbacks.Callback):
    """Append each finished epoch's metrics and duration to ``history.jsonl``."""

    def __init__(self, path: Path, phase: str):
        super().__init__()
        self.path, self.phase, self.started = path, phase, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = {"phase": self.phase, "epoch": epoch + 1, "seconds": round(time.perf_counter() - self.started, 4)}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        record["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def load_weights(model: keras.Model, path: Path) -> None:
    """Load a weights checkpoint; its optimizer state, from another phase's optimizer, is not wanted here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _best_val_loss(ctx: PhaseContext, phases: Sequence[str]) -> float | None:
    losses = [r["val_loss"] for r in ctx.history() if r["phase"] in phases and "val_loss" in r]
    return min(losses) if losses else None


def _fit(
    ctx: PhaseContext,
    model: keras.Model,
    phase: str,
    train_ds: Any,
    val_ds: Any,
    initial_epoch: int,
    epochs: int,
    threshold: float | None,
) -> Path:
    """``model.fit`` with backup/restore, best-weights checkpoint, early stopping, TensorBoard, epoch log."""
    best = ctx.checkpoints / f"{phase}_best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(ctx.checkpoints / f"{phase}_backup")),
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=threshold,
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=ctx.options.patience),
        keras.callbacks.TensorBoard(log_dir=str(ctx.run_dir / "logs"), write_graph=False),
        EpochLog(ctx.checkpoints / "history.jsonl", phase),
        *ctx.extra_callbacks,
    ]
    model.fit(
        train_ds,
        validation_data=val_ds,
        shuffle=False,
        initial_epoch=initial_epoch,
        epochs=epochs,
        class_weight=ctx.data.class_weights(),
        callbacks=callbacks,
        verbose=2,
    )
    return best


def _image_datasets(ctx: PhaseContext) -> tuple[Any, Any]:
    o = ctx.options
    train_ds = ctx.data.tf_dataset(
        "train", o.image_size, ctx.global_batch, augment=o.augment, shuffle=True, seed=o.seed
    )
    return train_ds, ctx.data.tf_dataset("validation", o.image_size, ctx.global_batch)


def frozen_on_cache(ctx: PhaseContext, backbone: keras.Model, head: keras.Model) -> dict[str, Any]:
    """Phase 1, fast path: embed every image once (cached on disk), train the head on the vectors."""
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
    n_train = len(ctx.data.rows("train"))
    vectors, stats = embed_files(
        backbone, ctx.data.files("train") + ctx.data.files("validation"), cache, o.image_size, ctx.global_batch
    )
    x_train, x_val = vectors[:n_train], vectors[n_train:]
    embedding_seconds = time.perf_counter() - started
    compile_model(head, o.learning_rate)
    train_ds = vector_dataset(
        x_train, ctx.data.labels("train"), len(ctx.data.classes), ctx.global_batch, shuffle=True, seed=o.seed
    )
    val_ds = vector_dataset(x_val, ctx.data.labels("validation"), len(ctx.data.classes), ctx.global_batch)
    best = _fit(ctx, head, "frozen", train_ds, val_ds, 0, o.epochs, _best_val_loss(ctx, ["frozen"]))
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
    train_ds, val_ds = _image_datasets(ctx)
    best = _fit(ctx, model, "frozen", train_ds, val_ds, 0, ctx.options.epochs, _best_val_loss(ctx, ["frozen"]))
    load_weights(model, best)
    return {"mode": "images"}


def fine_tune(ctx: PhaseContext, backbone: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Phase 2: unfreeze the top of the backbone, train at a low learning rate; keep it only if it helps.

    Epochs continue the numbering of phase 1 (one TensorBoard curve). The best-weights checkpoint starts
    from phase 1's best validation loss, so fine-tuning replaces the model only when it improves on it.
    """
    o = ctx.options
    unfrozen = unfreeze_top(backbone, o.fine_tune_layers)
    compile_model(model, o.fine_tune_learning_rate)
    start = max((r["epoch"] for r in ctx.history() if r["phase"] == "frozen"), default=0)
    train_ds, val_ds = _image_datasets(ctx)
    best = _fit(
        ctx,
        model,
        "fine_tune",
        train_ds,
        val_ds,
        start,
        start + o.fine_tune_epochs,
        _best_val_loss(ctx, ["frozen", "fine_tune"]),
    )
    improved = best.is_file()
    load_weights(model, best if improved else ctx.checkpoints / "phase1_model.weights.h5")
    return {"mode": "fine_tune", "unfrozen_layers": unfrozen, "improved": improved}


def run_phases(ctx: PhaseContext, backbone: keras.Model, head: keras.Model, model: keras.Model) -> dict[str, Any]:
    """Run (or resume) both phases; ``model`` ends with the best weights found. Returns a phase report."""
    ctx.checkpoints.mkdir(parents=True, exist_ok=True)
    phase1_weights = ctx.checkpoints / "phase1_model.weights.h5"
    report = ctx.state().get("report", {})
    if ctx.state().get("frozen_done"):
        load_weights(model, phase1_weights)
    else:
        backbone.trainable = False
        phase1 = frozen_on_cache if ctx.options.embedding_cache else frozen_on_images
        report["frozen"] = phase1(ctx, backbone, head if ctx.options.embedding_cache else model)
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
