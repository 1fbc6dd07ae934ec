"""``make export``: a training run as a TF Serving SavedModel, TFLite variants and a model card.

    python -m deploy.export [--config data/config.toml] [--run latest|RUN_ID|RUN_DIR] [--force]

Writes ``{exports}/<model>/<version>/`` (the next whole number): saved_model.pb and variables/ with the
preprocessing inside (signatures ``serving_default``: encoded ``image_bytes``; ``serving_pixels``: uint8
pixels), ``tflite/<variant>.tflite`` for each variant within ``export.max_accuracy_drop`` of the Keras
model's accuracy on the run's test split, ``model_card.json`` and ``config.resolved.json``. The version
is built in a hidden folder and renamed into place whole, so a running ``make serve`` (or TF Serving)
never sees half of it. Exporting the model the latest version already holds does nothing unless --force.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from data.core.cli import run, stage_parser
from data.core.contracts import EXPORTS, IMAGES, RUNS
from data.core.errors import InputError, StageError
from data.core.io import staged_dir, write_json
from data.core.runs import add_run_argument, require_photo_run, resolve_run
from deploy import layout
from deploy.options import ExportOptions

if TYPE_CHECKING:
    from data.core.config import Config
    from train.predict import Predictor

log = logging.getLogger(__name__)


class ExportError(StageError):
    """The exported graph does not reproduce the Keras model (a bug to report, not a user mistake)."""


@dataclass(frozen=True)
class ExportResult:
    """The version folder written (or found already holding this model) and its model card."""

    version_dir: Path
    version: int
    card: dict[str, Any]
    created: bool


def _split(run_dir: Path, images_dir: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """The files and labels of the split the export is measured on; ``InputError`` if unusable."""
    from train.predict import ImageDataSet

    data = ImageDataSet.from_run(run_dir, images_dir)
    files, labels = data.files(split), data.labels(split)
    if not files:
        raise InputError(f"the {split} split of {run_dir.name} is empty: nothing to measure the export on")
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} {split} image(s) of {run_dir.name} are missing, e.g. {missing[0]}: "
            f"are the run's images at {images_dir}? (set paths.images or the run's train.images)"
        )
    return files, labels


def _representative(predictor: "Predictor", images_dir: Path, count: int) -> np.ndarray:
    """Pixels of up to ``count`` training images (every class in turn), to calibrate full-integer TFLite."""
    from train.predict import ImageDataSet, image_dataset

    data = ImageDataSet.from_run(predictor.run_dir, images_dir)
    files, labels = data.files("train"), data.labels("train")
    order = np.lexsort((np.arange(len(labels)), labels))  # by class, then round-robin over the classes
    rank = np.empty(len(order), int)
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        rank[members] = np.arange(len(members))
    chosen = [str(files[i]) for i in np.argsort(rank, kind="stable")[:count] if files[i].is_file()]
    batches = image_dataset(chosen, None, len(predictor.classes), predictor.image_size, 32)
    return np.concatenate([b.numpy() for b in batches]) if chosen else np.zeros((0,))


def _lite_models(
    predictor: "Predictor", work: Path, options: ExportOptions, images_dir: Path
) -> dict[str, tuple[bytes, Any]]:
    """Every TFLite variant converted, with an interpreter for it."""
    from deploy.graph import write_float_saved_model
    from deploy.tflite import LiteModel, convert

    source = work / ".tflite-source"
    write_float_saved_model(predictor.model, source)
    sample = None
    if "full_int8" in options.tflite:
        sample = _representative(predictor, images_dir, options.representative_images)
        if not len(sample):
            raise InputError("full_int8 TFLite needs the run's training images to calibrate on: none could be read")
    try:
        contents = {name: convert(source, name, sample) for name in options.tflite}
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return {name: (content, LiteModel(content, predictor.image_size)) for name, content in contents.items()}


def _measure(
    predictor: "Predictor", work: Path, files: list[Path], lite: dict[str, tuple[bytes, Any]], batch_size: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float], np.ndarray]:
    """One pass over the split: Keras, the SavedModel's two signatures and each TFLite variant.

    Returns Keras probabilities, each variant's probabilities, the signatures' largest differences from
    Keras, and the first batch of pixels (for timing).
    """
    import tensorflow as tf

    from data.core.images import tf_decode
    from deploy.layout import BYTES_SIGNATURE, PIXELS_SIGNATURE
    from train.predict import image_dataset

    signatures = tf.saved_model.load(str(work)).signatures
    by_bytes, by_pixels = signatures[BYTES_SIGNATURE], signatures[PIXELS_SIGNATURE]
    keras_rows: list[np.ndarray] = []
    lite_rows: dict[str, list[np.ndarray]] = {name: [] for name in lite}
    diffs = {"bytes_signature_max_abs_diff": 0.0, "pixels_signature_max_abs_diff": 0.0}
    batches = image_dataset([str(f) for f in files], None, len(predictor.classes), predictor.image_size, batch_size)
    first = None
    starts = range(0, len(files), batch_size)
    for start, pixels in tqdm(zip(starts, batches), total=len(starts), desc="export: measure", unit="batch"):
        pixels = pixels.numpy()
        first = pixels if first is None else first
        keras_probs = predictor.predict_arrays(pixels)
        payload = [f.read_bytes() for f in files[start : start + batch_size]]
        served = by_bytes(image_bytes=tf.constant(payload))["probabilities"].numpy()
        diffs["bytes_signature_max_abs_diff"] = max(diffs["bytes_signature_max_abs_diff"], _diff(served, keras_probs))
        if start == 0:  # the pixel signature takes one size per call: a spot check on the first batch
            for data, row in zip(payload, keras_probs):
                image = tf_decode(data)[None]
                got = by_pixels(pixels=image)["probabilities"].numpy()
                diffs["pixels_signature_max_abs_diff"] = max(diffs["pixels_signature_max_abs_diff"], _diff(got, row))
        keras_rows.append(keras_probs)
        for name, (_, model) in lite.items():
            lite_rows[name].append(model.predict(pixels))
    assert first is not None  # _split refuses an empty split
    return np.concatenate(keras_rows), {k: np.concatenate(v) for k, v in lite_rows.items()}, diffs, first


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _build(
    predictor: "Predictor", work: Path, files: list[Path], labels: np.ndarray, options: ExportOptions, images_dir: Path
) -> dict:
    """Write the SavedModel and accepted TFLite files into ``work``; returns the card's metrics and TFLite rows."""
    from deploy.graph import write_saved_model
    from deploy.tflite import median_ms, time_calls, variant_report

    write_saved_model(predictor.model, predictor.classes, work)
    lite = _lite_models(predictor, work, options, images_dir)
    batch = min(options.batch_size, len(files))  # a batch is never larger than the split (10**8 padded memory)
    keras_probs, lite_probs, diffs, pixels = _measure(predictor, work, files, lite, batch)
    for key, value in diffs.items():
        if value > options.parity_tolerance:
            raise ExportError(
                f"the SavedModel's {key.split('_signature')[0]} signature differs from the Keras model by {value:.2e} "
                f"(over export.parity_tolerance = {options.parity_tolerance}): the export is not written"
            )
    rows = []
    for name, (content, model) in lite.items():
        row = variant_report(name, content, lite_probs[name], labels, keras_probs, options.max_accuracy_drop)
        row["latency_ms"] = median_ms(time_calls(model.predict, pixels, options.latency_runs))
        if row["accepted"]:
            row["file"] = f"{layout.TFLITE_DIR}/{name}.tflite"
            (work / layout.TFLITE_DIR).mkdir(exist_ok=True)
            (work / row["file"]).write_bytes(content)
        else:
            log.warning("TFLite %s refused: %s", name, row["reason"])
        rows.append(row)
    metrics = {
        "split": options.split,
        "images": int(len(labels)),
        "keras_accuracy": round(float(np.mean(keras_probs.argmax(axis=1) == labels)), 6),
        **{k: float(f"{v:.3g}") for k, v in diffs.items()},
        "keras_latency_ms": median_ms(time_calls(predictor.predict_arrays, pixels, options.latency_runs)),
        "saved_model_bytes": sum(p.stat().st_size for p in work.rglob("*") if p.is_file() and "tflite" not in p.parts),
    }
    return {"metrics": metrics, "tflite": rows}


def _same_model(model_dir: Path, existing: list[int], source: dict, options: dict) -> dict | None:
    """The latest version's card when it holds this very model, exported with these options."""
    if not existing:
        return None
    card = layout.read_card(layout.version_dir(model_dir, existing[-1]))
    if card and card.get("source_run", {}).get("model_sha256") == source["model_sha256"]:
        return card if card.get("export_options") == options else None
    return None


def export_run(
    run_dir: Path,
    images_dir: Path,
    exports_dir: Path,
    options: ExportOptions,
    *,
    config: "Config | None" = None,
    force: bool = False,
) -> ExportResult:
    """Export ``run_dir``'s model to ``exports_dir/<model_name>/<next version>/``.

    Args:
        run_dir: a finished training run (model.keras, classes.json, split.csv).
        images_dir: the folder the run's split paths are relative to.
        exports_dir: ``{exports}``.
        options: the ``[export]`` options.
        config: the resolved configuration, saved into the version folder.
        force: write a new version even when the latest one holds the same model.

    Raises:
        InputError: no finished model, an empty or missing split. ExportError: the graph does not match.
    """
    from deploy.card import provenance
    from train.predict import Predictor

    require_photo_run(run_dir, files=("model",))
    files, labels = _split(run_dir, images_dir, options.split)  # before TensorFlow loads: a wrong path fails fast
    predictor = Predictor.load(run_dir)
    model_dir = exports_dir / options.model_name
    doc = {k: v for k, v in dataclasses.asdict(options).items() if k != "run"}  # which run: the card's source_run
    source, options_doc = provenance(run_dir), {**doc, "tflite": list(options.tflite)}
    with layout.exclusive(model_dir):
        for stale in model_dir.glob(".*.tmp-*"):  # a killed export's folder (we hold the lock: nobody else's)
            shutil.rmtree(stale, ignore_errors=True)
        existing = layout.versions(model_dir)
        same = None if force else _same_model(model_dir, existing, source, options_doc)
        if same is not None:
            return ExportResult(layout.version_dir(model_dir, existing[-1]), existing[-1], same, created=False)
        stray = layout.strays(model_dir)
        if stray:  # TF Serving would load the highest number: refuse rather than write below or beside one
            raise InputError(
                f"{stray[-1]} is in the way (a numbered folder that is no finished export, which TF Serving "
                f"would try to load): move it elsewhere"
            )
        version = existing[-1] + 1 if existing else 1
        target = layout.version_dir(model_dir, version)
        if target.exists():
            raise InputError(f"{target} is in the way (a file that is no finished export): move it elsewhere")
        with staged_dir(target) as work:  # built as .<version>.tmp-*: what a killed export leaves, removed above
            built = _build(predictor, work, files, labels, options, images_dir)
            card = _write_card(work, predictor, version, source, options, options_doc, built, config)
    return ExportResult(target, version, card, created=True)


def _write_card(
    work: Path,
    predictor: "Predictor",
    version: int,
    source: dict[str, Any],
    options: ExportOptions,
    options_doc: dict[str, Any],
    built: dict[str, Any],
    config: "Config | None",
) -> dict[str, Any]:
    """Write the model card (and the resolved configuration) into the version being built; return the card."""
    from deploy.card import build_card

    card = build_card(
        model_name=options.model_name,
        version=version,
        classes=predictor.classes,
        image_size=predictor.image_size,
        source=source,
        export_options=options_doc,
        **built,
    )
    write_json(work / layout.CARD, card)
    if config is not None:
        config.save(work)
    return card


def summary(result: ExportResult) -> str:
    """The lines printed at the end of ``make export``."""
    card, metrics = result.card, result.card["metrics"]
    head = "export" if result.created else f"export: nothing to do, version {result.version} holds this model"
    lines = [
        f"{head}: run {card['source_run']['run_id']} -> {result.version_dir} (version {result.version})",
        f"  SavedModel: {len(card['classes'])} classes, {card['image_size']} px; {metrics['split']} accuracy "
        f"{metrics['keras_accuracy']:.3f} on {metrics['images']} images; signature vs Keras max |diff| "
        f"{metrics['bytes_signature_max_abs_diff']:.1e}",
    ]
    for row in card["tflite"]:
        state = row.get("file", "") if row["accepted"] else f"REFUSED ({row['reason']})"
        lines.append(
            f"  TFLite {row['variant']:<13} {row['bytes'] / 1024:8.1f} KiB  accuracy drop {row['accuracy_drop']:+.4f}  "
            f"{row['latency_ms']:.2f} ms/image  {state}"
        )
    lines.append(f"  model card: {result.version_dir / layout.CARD}   next: make serve")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``make export``)."""
    parser = stage_parser("deploy.export", __doc__)
    add_run_argument(parser, "export")
    parser.add_argument("--force", action="store_true", help="a new version even if the latest holds this model")
    args = parser.parse_args(argv)

    def body() -> int:
        from data.core.config import config_from_args
        from data.core.runs import run_images_dir

        cfg = config_from_args(args)
        options = ExportOptions.from_config(cfg, cli=args)
        run_dir = resolve_run(cfg.path(RUNS), options.run)
        images_dir = run_images_dir(run_dir, cfg.path(IMAGES))
        result = export_run(run_dir, images_dir, cfg.path(EXPORTS), options, config=cfg, force=args.force)
        print(summary(result))
        return 0

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
