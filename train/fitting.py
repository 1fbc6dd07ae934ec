"""What every training phase shares: the run's checkpoint state and one resumable ``model.fit``.

Checkpoints live in ``{run}/checkpoints/``: ``state.json`` (which phases are done), ``history.jsonl`` (one
line per finished epoch), the best weights of each phase, and Keras ``BackupAndRestore`` folders holding the
last finished epoch of the phase in progress (weights, optimizer state, epoch) for ``--resume``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import tensorflow as tf

from data.core.io import write_json
from train.callbacks import EpochLog, StopOnNonFinite, Throughput, TimeBudget
from train.dataset import ImageDataSet
from train.errors import TrainingDiverged
from train.options import TrainOptions


@dataclass
class PhaseContext:
    """What the phases need: data, options, where to write, batch size, callbacks, the time budget."""

    data: ImageDataSet
    options: TrainOptions
    run_dir: Path
    global_batch: int
    policy: str = "float32"
    extra_callbacks: Sequence[keras.callbacks.Callback] = field(default_factory=tuple)
    deadline: float | None = None  # time.perf_counter() value by which training must end (train.time_budget_s)

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

    def best_val_loss(self, phases: Sequence[str]) -> float | None:
        """The lowest validation loss logged by ``phases`` so far (a resumed phase must beat it)."""
        losses = [r["val_loss"] for r in self.history() if r["phase"] in phases and "val_loss" in r]
        return min(losses) if losses else None

    def image_datasets(self, recipe_default: str) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """The shuffled, augmented training batches and the plain validation batches.

        ``train.augment`` names the augmentation; ``auto`` means ``recipe_default`` (the recipe's own).
        """
        o = self.options
        train_ds = self.data.tf_dataset(
            "train",
            o.image_size,
            self.global_batch,
            augment=recipe_default if o.augment == "auto" else o.augment,
            shuffle=True,
            seed=o.seed,
        )
        return train_ds, self.data.tf_dataset("validation", o.image_size, self.global_batch)


def load_weights(model: keras.Model, path: Path) -> None:
    """Load a weights checkpoint; its optimizer state, from another phase's optimizer, is not wanted here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def fit_phase(
    ctx: PhaseContext,
    model: keras.Model,
    phase: str,
    data: tuple[tf.data.Dataset, tf.data.Dataset],
    epochs: tuple[int, int],
    threshold: float | None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    early_stop_from: int = 0,
) -> tuple[Path, TimeBudget | None]:
    """``model.fit`` with backup/restore, best-weights checkpoint, early stopping, TensorBoard, epoch log.

    ``data``: training and validation batches; ``epochs``: the first epoch (where the previous phase ended)
    and the one to stop after; ``threshold``: the validation loss the best-weights checkpoint has to beat;
    ``callbacks``: the phase's own (the schedule); ``early_stop_from``: the first epoch early stopping counts.
    Returns the best-weights file (absent when no epoch beat ``threshold``) and the time-budget callback.
    """
    best = ctx.checkpoints / f"{phase}_best.weights.h5"
    budget = TimeBudget(ctx.deadline) if ctx.deadline is not None else None
    finite = StopOnNonFinite(phase)
    listed = [  # Throughput first: it adds images_per_second to the logs the later ones see
        Throughput(len(ctx.data.rows("train")), ctx.global_batch, phase),
        keras.callbacks.BackupAndRestore(str(ctx.checkpoints / f"{phase}_backup")),
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=threshold,
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=ctx.options.patience, start_from_epoch=early_stop_from
        ),
        keras.callbacks.TensorBoard(log_dir=str(ctx.run_dir / "logs"), write_graph=False),
        EpochLog(ctx.checkpoints / "history.jsonl", phase),
        *callbacks,
        *([budget] if budget else []),
        *ctx.extra_callbacks,
        finite,  # last: the epoch's logs (history.jsonl, TensorBoard) still show the NaN it stopped on
    ]
    model.fit(
        data[0],
        validation_data=data[1],
        shuffle=False,
        initial_epoch=epochs[0],
        epochs=epochs[1],
        class_weight=ctx.data.class_weights(),
        callbacks=listed,
        verbose=2,
    )
    if finite.where:
        raise TrainingDiverged(
            f"training stopped: {finite.where}; lower train.learning_rate (now {ctx.options.learning_rate}) or "
            f"train.fine_tune_learning_rate, or check the images; no run was saved and latest was not moved"
        )
    return best, budget
