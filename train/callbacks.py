"""Keras callbacks of the training phases: the epoch log, images per second, the learning-rate schedule
(linear warm-up, then cosine decay over the epochs or the time budget) and the time budget itself."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import keras

log = logging.getLogger(__name__)


def append_epoch(path: Path, record: dict) -> None:
    """Append one finished epoch's record to ``history.jsonl`` (a Keras epoch, or the solved linear head)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


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
        append_epoch(self.path, record)


class StopOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Keras's ``TerminateOnNaN`` (stop after the first batch whose loss is NaN or infinite), remembering
    where, so the phase can refuse to keep the model; a non-finite validation loss stops it too."""

    def __init__(self, phase: str):
        super().__init__()
        self.phase, self.epoch, self.where = phase, 0, ""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if not self.where and loss is not None and not math.isfinite(float(loss)):
            self.where = f"training loss {float(loss)} at epoch {self.epoch}, batch {batch + 1} of phase {self.phase}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("val_loss")
        if not self.where and loss is not None and not math.isfinite(float(loss)):
            self.where = f"validation loss {float(loss)} after epoch {epoch + 1} of phase {self.phase}"
            self.model.stop_training = True


class Throughput(keras.callbacks.Callback):
    """Training images per second of each epoch (validation left out), added to the epoch's logs.

    Put first in the callback list: the later ones (TensorBoard: ``epoch_images_per_second``, the epoch
    log) see the value because Keras hands every callback the same logs mapping.
    """

    def __init__(self, images_per_epoch: int, batch_size: int, phase: str):
        super().__init__()
        self.images, self.batch_size, self.phase = images_per_epoch, batch_size, phase
        self.started = self.train_end = 0.0
        self.batches = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started, self.train_end, self.batches = time.perf_counter(), 0.0, 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches += 1

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.train_end = self.train_end or time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = (self.train_end or time.perf_counter()) - self.started
        images = min(self.images, self.batches * self.batch_size)  # fewer when a time budget cut the epoch
        rate = images / seconds if seconds > 0 else 0.0
        if logs is not None:
            logs["images_per_second"] = rate
        log.info("%s epoch %d: %.0f images/s (%d images in %.1f s)", self.phase, epoch + 1, rate, images, seconds)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float, time_fraction: float = 0.0) -> float:
    """The learning rate at ``step``: linear warm-up to ``peak``, then cosine decay towards 0.

    The decay's progress is the larger of the steps done (of ``total_steps``) and ``time_fraction`` (the
    share of a time budget used), so a run cut short by its budget still ends at a low learning rate.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(progress, time_fraction))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(keras.callbacks.Callback):
    """Set the optimizer's learning rate before every training step from :func:`warmup_cosine`.

    The step is the optimizer's own counter, so a run resumed from its backup continues the schedule.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, deadline: float | None = None):
        super().__init__()
        self.peak, self.total, self.warmup, self.deadline = peak, total_steps, warmup_steps, deadline
        self.fit_started = time.perf_counter()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.fit_started = time.perf_counter()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        fraction = 0.0
        if self.deadline is not None and self.deadline > self.fit_started:
            fraction = (time.perf_counter() - self.fit_started) / (self.deadline - self.fit_started)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = warmup_cosine(step, self.total, self.warmup, self.peak, fraction)


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch whose successor (and the validation after it) would end past ``deadline``.

    An epoch longer than the whole budget is cut when the deadline comes (then validated as usual).
    """

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.started = self.validation_started = self.validation_seconds = 0.0
        self.stopped_after: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.validation_started = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        self.validation_seconds = time.perf_counter() - self.validation_started

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.model.stop_training and time.perf_counter() + self.validation_seconds > self.deadline:
            self.model.stop_training = True
            log.info("time budget: cutting the epoch short after batch %d", batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        # the next epoch, its validation pass, and the final report's pass over the validation split
        if now + (now - self.started) + 2 * self.validation_seconds > self.deadline:
            self.model.stop_training = True
            self.stopped_after = epoch + 1
            log.info("time budget: stopping after epoch %d (the next one would end past the budget)", epoch + 1)
