"""``make train``: transfer learning on the downloaded images, one run folder per run.

    python -m train.train [--config data/config.toml] [--set train.backbone=resnet50 ...]
                          [--run-id ID] [--resume latest|RUN_ID|RUN_DIR]

Reads ``{processed}/images/manifest.parquet``; writes ``{runs}/<run_id>/``: config.resolved.json,
options.json, classes.json, split.csv, model.keras, metrics.json, checkpoints/, logs/ (TensorBoard), and
points ``{runs}/latest`` at it.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data.core.cli import fail, setup_logging
from data.core.io import write_json
from data.core.config import Config, ConfigError, add_config_args, config_from_args

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the run went and its final validation metrics."""

    run_dir: Path
    metrics: dict[str, Any]


def _epoch_summary(history: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    records = [r for r in history if r["phase"] == phase]
    if not records:
        return {"epochs": 0}
    seconds = [r["seconds"] for r in records]
    best = min(records, key=lambda r: r.get("val_loss", float("inf")))
    return {
        "epochs": len(records),
        "seconds": round(sum(seconds), 3),
        "seconds_per_epoch": round(sum(seconds) / len(seconds), 4),
        "best_epoch": best["epoch"],
        "best": {k: round(v, 4) for k, v in best.items() if k.startswith("val_")},
    }


def _save_model(model: Any, target: Path) -> None:
    """``model.save`` through a temporary ``.keras`` file and a rename, so a reader never sees half a model."""
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, target)


def _validation_report(
    model: Any, data: Any, options: Any, global_batch: int, log_dir: Path, step: int
) -> dict[str, Any]:
    """Final numbers on the validation split, and its confusion matrix as a TensorBoard image."""
    from train.metrics import classification_report
    from train.reporting import confusion_png, log_png

    ds = data.tf_dataset("validation", options.image_size, global_batch)
    probs = model.predict(ds, verbose=0)
    report = classification_report(data.labels("validation"), probs, data.classes)
    png = confusion_png(np.asarray(report["confusion_matrix"]), data.classes, "validation confusion matrix")
    log_png(log_dir / "validation", "confusion_matrix", png, step)
    return report


def train(
    manifest: Path,
    runs_dir: Path,
    options: Any,
    *,
    images_dir: Path | None = None,
    run_id: str | None = None,
    resume: Path | None = None,
    config: Config | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train a classifier from the download manifest; resume an interrupted run with ``resume``.

    Args:
        manifest: ``{processed}/images/manifest.parquet``.
        runs_dir: ``{runs}``: the run folder is created below it.
        options: a ``train.options.TrainOptions``.
        images_dir: folder of the manifest's image paths (default: the manifest's folder).
        run_id: name of a new run folder (default: timestamp plus backbone).
        resume: an existing run folder to continue from its checkpoints (its split and classes are reused).
        config: the resolved configuration, saved into the run folder.
        callbacks: extra Keras callbacks for both phases.
    """
    import keras

    from train.backbones import build_backbone
    from train.dataset import DataSetError, ImageDataSet
    from train.distribute import is_chief, make_strategy, precision_policy
    from train.model import build_classifier, build_head
    from train.options import save_options
    from train.phases import PhaseContext, run_phases
    from train.reporting import log_hparams
    from train.runs import mark_latest, new_run_id

    started = time.perf_counter()
    keras.utils.set_random_seed(options.seed)
    images_dir = Path(images_dir) if images_dir is not None else manifest.parent
    run_dir = Path(resume) if resume else runs_dir / (run_id or new_run_id(options.backbone))
    if resume:
        data = ImageDataSet.from_run(run_dir, images_dir)
    else:
        split_file = Path(options.split_file) if options.split_file else None
        data = ImageDataSet.from_manifest(
            manifest, images_dir, ratios=options.split, seed=options.seed, split_file=split_file
        )
    for split in ("train", "validation"):
        if not len(data.rows(split)):
            raise DataSetError(f"the {split} split is empty ({data.summary.get('splits')}): need more images")
    strategy = make_strategy(options.strategy)
    chief = is_chief(strategy)
    out_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="train-worker-"))
    log.info(
        "run %s: %s images %s, %d classes", run_dir.name, len(data.frame), data.summary["splits"], len(data.classes)
    )
    global_batch = options.batch_size * strategy.num_replicas_in_sync
    with precision_policy(options.mixed_precision) as policy, strategy.scope():
        backbone = build_backbone(options.backbone, options.image_size, options.weights)
        head = build_head(backbone.output_shape[-1], len(data.classes), options.head, options.dropout)
        model = build_classifier(backbone, head)
        if not resume and chief:  # only now: a run that cannot start (no weights) leaves no folder behind
            data.save(out_dir)
            save_options(out_dir, options)
            if config is not None:
                config.save(out_dir)
        ctx = PhaseContext(data, options, out_dir, global_batch, policy, tuple(callbacks))
        report = run_phases(ctx, backbone, head, model)
        history = ctx.history()
        validation = _validation_report(
            model, data, options, global_batch, out_dir / "logs", max((r["epoch"] for r in history), default=0)
        )
    if not chief:
        return TrainResult(run_dir, {})
    _save_model(model, out_dir / "model.keras")
    metrics = {
        "run_id": run_dir.name,
        "backbone": options.backbone,
        "weights": options.weights,
        "image_size": options.image_size,
        "data": data.summary,
        "phases": {name: {**info, **_epoch_summary(history, name)} for name, info in report.items()},
        "validation": validation,
        "history": history,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out_dir / "metrics.json", metrics)
    log_hparams(
        out_dir / "logs",
        run_dir.name,
        options.to_dict(),
        {k: float(validation[k]) for k in ("accuracy", "top3_accuracy", "macro_f1", "loss")},
    )
    mark_latest(runs_dir, run_dir.name)
    return TrainResult(run_dir, metrics)


def check_options(options: Any) -> None:
    """Raise ``ConfigError`` for an unknown backbone, head or strategy name or a bad count (before any work)."""
    from train.backbones import BACKBONES
    from train.distribute import STRATEGIES
    from train.model import HEADS

    for key, value, choices in (
        ("backbone", options.backbone, BACKBONES),
        ("head", options.head, HEADS),
        ("strategy", options.strategy, STRATEGIES),
    ):
        if value not in choices:
            raise ConfigError(f"train.{key} = {value!r}; choose one of {', '.join(choices)}")
    for key in ("epochs", "batch_size", "image_size"):
        if getattr(options, key) < 1:
            raise ConfigError(f"train.{key} must be at least 1")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (``make train``)."""
    parser = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.split("\n")[0])
    add_config_args(parser)
    parser.add_argument(
        "--run-id",
        help="name of the run folder (default: timestamp-backbone); with TF_CONFIG "
        "(multi-worker) pass the same id to every worker",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run from its checkpoints: latest, a run id or a run folder (train.* overrides still apply)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    from train.backbones import WeightsUnavailable
    from train.dataset import DataSetError
    from train.options import TrainOptions, resume_options
    from train.runs import RunNotFound, resolve_run

    try:
        cfg = config_from_args(args)
        runs_dir = cfg.path("runs")
        resume = resolve_run(runs_dir, args.resume) if args.resume else None
        options = resume_options(resume, args.overrides) if resume else TrainOptions.from_config(cfg)
        check_options(options)
        manifest = cfg.path("processed") / "images" / "manifest.parquet"
        result = train(manifest, runs_dir, options, run_id=args.run_id, resume=resume, config=cfg)
    except (ConfigError, DataSetError, WeightsUnavailable, RunNotFound) as exc:
        fail(str(exc))
    summary = {k: result.metrics.get("validation", {}).get(k) for k in ("accuracy", "top3_accuracy", "macro_f1")}
    print(f"run: {result.run_dir}")
    print(f"validation: {summary}  ({result.metrics.get('seconds')} s)")
    print(
        f"TensorBoard logs: {result.run_dir / 'logs'}  "
        f"(open with: make tensorboard, or .venv/bin/tensorboard --logdir {result.run_dir.parent})"
    )
    print("next: make evaluate   (test split of the latest run)")


if __name__ == "__main__":
    main()
