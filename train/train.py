"""``make train``: train an image classifier, one run folder per run.

    python -m train.train [--config data/config.toml] [--set train.backbone=resnet50 ...]
                          [--run-id ID] [--resume RUN_ID|latest|RUN_DIR]

Two recipes (``train.recipe``): ``transfer`` (a head on a frozen pretrained backbone, then fine-tuning;
``train/phases.py``) and ``scratch`` (every layer trained from random weights; ``train/scratch.py``);
``auto`` picks scratch when ``train.weights = none``. Reads the download manifest ``{manifest}``, the data
version of ``make apply-labels`` (``train.label_version=latest`` or a version name), or the folder
``train.images`` (``<label>/<file>`` or ``<split>/<label>/<file>``); writes ``{runs}/<run_id>/``:
config.resolved.json, options.json, classes.json, split.csv, model.keras, metrics.json (with the sanity
gate's verdict), backbone.weights.h5 (scratch), checkpoints/, logs/ (TensorBoard), and points
``{runs}/latest`` at it. Every input is checked before TensorFlow loads, so a refused run answers at once.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from data.core.cli import run, stage_parser
from data.core.config import Config, config_from_args
from data.core.contracts import IMAGES, LABELS, MANIFEST, RUNS, applied_manifest
from data.core.runs import mark_latest
from train.dataset import ImageDataSet
from train.errors import ModelNotUseful
from train.gate import describe
from train.modality import restart_modality, run_modality, train_modality
from train.options import TrainOptions, resume_options
from train.runs import TrainResult, new_run_id, resolve_resume

if TYPE_CHECKING:
    import keras

__all__ = ["TrainResult", "load_data", "main", "train"]

log = logging.getLogger(__name__)


def load_data(manifest: Path | None, images_dir: Path, options: TrainOptions, resume: Path | None) -> ImageDataSet:
    """The run's images: read back from a resumed run, else from ``train.images`` or the manifest; checked,
    and without the images the pipeline cannot decode."""
    if resume is not None:
        return ImageDataSet.from_run(resume, images_dir)
    split_file = Path(options.split_file) if options.split_file else None
    ratios, seed = options.split, options.seed
    if options.images:
        data = ImageDataSet.from_folder(Path(options.images), ratios=ratios, seed=seed, split_file=split_file)
    else:
        manifest = Path(manifest) if manifest else images_dir / MANIFEST.file_name
        data = ImageDataSet.from_manifest(manifest, images_dir, ratios=ratios, seed=seed, split_file=split_file)
    data.check_trainable(options.split)  # before the decode pre-pass: a refused run answers at once
    data = data.screened(options.bad_images)
    data.check_trainable(options.split)  # again: skipped images may leave a class short
    return data


def train(
    manifest: Path | None,
    runs_dir: Path,
    options: TrainOptions,
    *,
    images_dir: Path | None = None,
    run_id: str | None = None,
    resume: Path | None = None,
    config: Config | None = None,
    callbacks: Sequence["keras.callbacks.Callback"] = (),
) -> TrainResult:
    """Train a classifier; resume an interrupted run with ``resume``.

    Args:
        manifest: ``{manifest}``, the download manifest (unused when ``options.images`` names a folder).
        runs_dir: ``{runs}``: the run folder is created below it.
        options: how to train (``[train]``).
        images_dir: folder of the manifest's image paths (default: the manifest's folder).
        run_id: name of a new run folder (default: timestamp plus backbone).
        resume: a run folder to continue from its checkpoints (its split and classes are reused).
        config: the resolved configuration, saved into the run folder.
        callbacks: extra Keras callbacks for every phase.

    Raises:
        ConfigError: an option out of its range (before anything is read).
        DataSetError: images that cannot train a classifier (before TensorFlow loads).
        ModelNotUseful: ``options.strict`` and the sanity gate fired (the run is kept; ``latest`` is not moved).
    """
    started = time.perf_counter()
    options.check()
    if options.images:
        images_dir = Path(options.images)
    elif images_dir is None:
        images_dir = Path(manifest).parent if manifest else Path(".")
    if options.strategy == "multi_worker" or (options.strategy == "auto" and os.environ.get("TF_CONFIG")):
        from train.distribute import make_strategy

        make_strategy(options.strategy)  # before the image check runs TensorFlow: collective ops come first
    data = load_data(manifest, images_dir, options, resume)
    run_id = resume.name if resume else run_id or new_run_id(options.backbone, runs_dir)
    # TensorFlow loads here, after every input check.
    from train.session import run_training

    result = run_training(
        data, runs_dir, run_id, options, resume=resume, config=config, callbacks=callbacks, started=started
    )
    if result.metrics:  # the chief: the run is finished and in place
        _gate(runs_dir, result.run_dir, result.metrics, options.strict)
    return result


def _gate(runs_dir: Path, run_dir: Path, metrics: dict[str, Any], strict: bool) -> None:
    """Move ``latest`` to a finished run, unless ``strict`` and the sanity gate fired (then raise)."""
    sanity = metrics["sanity"]
    if not sanity["passed"]:
        log.warning("sanity gate: %s (metrics.json, 'sanity')", "; ".join(sanity["findings"]))
        if strict:
            raise ModelNotUseful(
                f"train.strict: the model of {run_dir} does not clearly beat the majority-class baseline "
                f"({'; '.join(sanity['findings'])}); the run is kept, but {runs_dir / 'latest'} was not moved"
            )
    mark_latest(runs_dir, run_dir.name)


def summary_lines(result: TrainResult) -> list[str]:
    """What ``make train`` prints at the end."""
    m = result.metrics
    v = m["validation"]
    rates = [p["images_per_second"] for p in m["phases"].values() if p.get("images_per_second")]
    speed = f"  ({rates[-1]:.0f} training images/s)" if rates else ""
    return [
        f"run: {result.run_dir}  ({m['recipe']} recipe, {m['backbone']} @ {m['image_size']} px, {m['seconds']} s)",
        f"validation: accuracy {v['accuracy']:.3f}  top-3 {v['top3_accuracy']:.3f}  "
        f"macro-F1 {v['macro_f1']:.3f}{speed}",
        *describe(m["sanity"], "validation"),
        f"TensorBoard logs: {result.run_dir / 'logs'}  "
        f"(open with: make tensorboard, or .venv/bin/tensorboard --logdir {result.run_dir.parent})",
        "next: make evaluate   (test split of the latest run)",
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make train``)."""
    parser = stage_parser("train.train", __doc__)
    parser.add_argument(
        "--run-id",
        help="name of the run folder (default: timestamp-backbone); with TF_CONFIG "
        "(multi-worker) pass the same id to every worker",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a run from its checkpoints: an interrupted run's id, latest, a run id or a run folder "
        "(train.* overrides still apply)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)
        runs_dir = cfg.path(RUNS)
        resume = resolve_resume(runs_dir, args.resume) if args.resume else None
        if resume is not None and run_modality(resume) != "image":  # a text or fusion run: no checkpoints
            return restart_modality(cfg, TrainOptions.from_config(cfg, cli=args), resume)
        options = resume_options(resume, args.overrides) if resume else TrainOptions.from_config(cfg, cli=args)
        if options.modality != "image":  # titles (train/text_run.py) or titles fused with photos (train/fusion.py)
            return train_modality(cfg, options, args.run_id)
        manifest, images = cfg.path(MANIFEST.path_key), cfg.path(IMAGES)
        if options.label_version and not options.images:  # the corrected data version of make apply-labels
            manifest = applied_manifest(cfg.path(LABELS), options.label_version)
            print(f"training on the data version {manifest}")
        result = train(manifest, runs_dir, options, images_dir=images, run_id=args.run_id, resume=resume, config=cfg)
        if not result.metrics:  # a multi-worker task other than the chief
            print(f"worker done: the chief (worker 0) writes the run folder in {runs_dir}")
            return 0
        print("\n".join(summary_lines(result)))
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
