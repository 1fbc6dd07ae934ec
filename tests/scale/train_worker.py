"""One task of a multi-worker training run, for test_train_multi_worker.py: ``train.train.train`` with the
``TF_CONFIG`` of the environment, recording the epochs this process ran and its weights at the end of
``fit``; ``--die-after N`` ends the process (``os._exit``) once epoch N is checkpointed, as a lost machine.

    TF_CONFIG=... python tests/scale/train_worker.py MANIFEST RUNS RUN_ID OUT_PREFIX [--resume] [--die-after N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from train.options import TrainOptions  # noqa: E402
from train.runs import INCOMPLETE  # noqa: E402
from train.train import train  # noqa: E402

OPTIONS = TrainOptions(
    backbone="tiny",
    weights="none",
    image_size=32,
    batch_size=8,
    epochs=3,
    warmup_epochs=1.0,
    patience=20,
    split=(0.6, 0.2, 0.2),
    strategy="multi_worker",
)


class Record(keras.callbacks.Callback):
    """Write the epochs begun and, at the end of fit, the weights; die after ``die_after`` if asked."""

    def __init__(self, prefix: str, die_after: int) -> None:
        super().__init__()
        self.prefix, self.die_after, self.epochs = prefix, die_after, []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append(epoch + 1)
        Path(f"{self.prefix}.epochs.json").write_text(json.dumps(self.epochs))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.die_after:  # the callbacks before this one have saved the epoch's backup
            os._exit(3)

    def on_train_end(self, logs: dict | None = None) -> None:
        np.savez(f"{self.prefix}.weights.npz", *self.model.get_weights())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest", type=Path)
    parser.add_argument("runs", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("prefix")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--die-after", type=int, default=0)
    args = parser.parse_args()
    resume = args.runs / INCOMPLETE / args.run_id if args.resume else None
    callbacks = [Record(args.prefix, args.die_after)]
    result = train(args.manifest, args.runs, OPTIONS, run_id=args.run_id, resume=resume, callbacks=callbacks)
    print(json.dumps({"chief": bool(result.metrics), "run_dir": str(result.run_dir)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
