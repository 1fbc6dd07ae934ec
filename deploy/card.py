"""The model card: one JSON beside each export saying what the model is, what it takes and how good it is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from data.core.contracts import RUN_FILES
from data.core.io import file_sha256, read_json_lenient
from deploy.layout import BYTES_INPUT, BYTES_SIGNATURE, PIXELS_INPUT, PIXELS_SIGNATURE

# what deploy/graph.py does to an image inside the SavedModel
PREPROCESSING = (
    "decode (JPEG, PNG, GIF first frame, BMP, WebP) to RGB, centre square crop, antialiased bilinear resize "
    "to {size}x{size}, float 0-255 (the model rescales inside)"
)
VALIDATION_KEYS = ("accuracy", "top3_accuracy", "macro_f1", "loss", "samples")


def provenance(run_dir: Path) -> dict[str, Any]:
    """Where the model comes from: the run, its model file, its data version and the labels it learnt."""
    metrics = read_json_lenient(run_dir / RUN_FILES["metrics"]) or {}
    options = read_json_lenient(run_dir / RUN_FILES["options"]) or {}
    config = (read_json_lenient(run_dir / RUN_FILES["config"]) or {}).get("config", {})
    validation = metrics.get("validation", {}) if isinstance(metrics.get("validation"), dict) else {}
    split = run_dir / RUN_FILES["split"]
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir.resolve()),
        "model_sha256": file_sha256(run_dir / RUN_FILES["model"]),
        "backbone": options.get("backbone", metrics.get("backbone")),
        "weights": options.get("weights", metrics.get("weights")),
        "recipe": options.get("recipe"),
        "image_size": options.get("image_size", metrics.get("image_size")),
        "data_version": config.get("paths", {}).get("version"),
        # the exact labels and split the model learnt from: changes with any relabelling (make apply-labels)
        "labels_sha256": file_sha256(split) if split.is_file() else None,
        "validation": {k: validation[k] for k in VALIDATION_KEYS if k in validation},
    }


def input_spec(image_size: int) -> dict[str, Any]:
    """The signatures' inputs and outputs, and what the TFLite variants take instead."""
    outputs = {
        "probabilities": {"dtype": "float32", "shape": [-1, "classes"]},
        "classes": {"dtype": "string", "shape": [-1, "classes"], "meaning": "the class name of each column"},
    }
    return {
        "signatures": {
            BYTES_SIGNATURE: {
                "inputs": {BYTES_INPUT: {"dtype": "string", "shape": [-1], "meaning": "encoded image files"}},
                "outputs": outputs,
            },
            PIXELS_SIGNATURE: {
                "inputs": {PIXELS_INPUT: {"dtype": "uint8", "shape": [-1, -1, -1, 3], "meaning": "RGB, any size"}},
                "outputs": outputs,
            },
        },
        "preprocessing": PREPROCESSING.format(size=image_size),
        "rest_example": {"instances": [{"b64": "<base64 of a JPEG file>"}]},
        "tflite_input": {
            "name": PIXELS_INPUT,
            "dtype": "float32",
            "shape": [1, image_size, image_size, 3],
            "meaning": "RGB 0-255, already decoded, centre-cropped and resized as above",
        },
    }


def build_card(
    *,
    model_name: str,
    version: int,
    classes: tuple[str, ...],
    image_size: int,
    source: dict[str, Any],
    metrics: dict[str, Any],
    tflite: list[dict[str, Any]],
    export_options: dict[str, Any],
) -> dict[str, Any]:
    """The whole card (``model_card.json``)."""
    return {
        "model_name": model_name,
        "version": version,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": "TensorFlow SavedModel (TF Serving layout <model>/<version>/)",
        "classes": list(classes),
        "image_size": image_size,
        "input": input_spec(image_size),
        "source_run": source,
        "metrics": metrics,
        "tflite": tflite,
        "export_options": export_options,
    }
