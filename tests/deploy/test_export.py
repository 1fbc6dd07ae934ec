"""make export on a really trained tiny model: TF Serving layout, in-graph preprocessing equal to training's,
TFLite variants measured and refused beyond the allowed drop, the model card, the command line."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from data.core.errors import InputError
from deploy import layout
from deploy.export import export_run, main
from deploy.options import ExportOptions
from tests.deploy.support import MODEL, decode_rgb, photo
from train.dataset import ImageDataSet
from train.pipeline import decode_square
from train.predict import Predictor

pytestmark = pytest.mark.slow


def test_the_version_folder_has_tf_servings_layout_and_a_model_card(exported, trained):
    folder = exported.version_dir
    assert exported.created and exported.version == 1 and folder == folder.parent / "1"
    assert folder.parent.name == MODEL
    for name in ("saved_model.pb", "variables/variables.index", "model_card.json", "config.resolved.json"):
        assert (folder / name).is_file(), name
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".") and p.name != ".export.lock"]

    card = json.loads((folder / "model_card.json").read_text())
    classes = json.loads((trained.run_dir / "classes.json").read_text())
    assert card["classes"] == classes and card["image_size"] == 32 and card["version"] == 1
    source = card["source_run"]
    assert source["run_id"] == trained.run_dir.name and source["data_version"] == "v1"
    assert source["model_sha256"] == hashlib.sha256((trained.run_dir / "model.keras").read_bytes()).hexdigest()
    assert source["labels_sha256"] == hashlib.sha256((trained.run_dir / "split.csv").read_bytes()).hexdigest()
    assert card["input"]["signatures"]["serving_default"]["inputs"]["image_bytes"]["dtype"] == "string"
    assert card["input"]["tflite_input"]["shape"] == [1, 32, 32, 3]

    data = ImageDataSet.from_run(trained.run_dir, trained.images_dir)
    keras_probs = Predictor.load(trained.run_dir).predict_files(data.files("test"))
    metrics = card["metrics"]
    assert metrics["images"] == len(data.files("test")) > 0
    assert metrics["keras_accuracy"] == pytest.approx(np.mean(keras_probs.argmax(1) == data.labels("test")), abs=1e-6)
    assert metrics["bytes_signature_max_abs_diff"] <= 1e-4 and metrics["pixels_signature_max_abs_diff"] <= 1e-4


def test_signatures_take_image_bytes_and_uint8_pixels_and_decode_like_training(exported, trained, tmp_path):
    loaded = tf.saved_model.load(str(exported.version_dir))
    by_bytes, by_pixels = loaded.signatures["serving_default"], loaded.signatures["serving_pixels"]
    assert by_bytes.structured_input_signature[1]["image_bytes"].dtype == tf.string
    assert by_pixels.structured_input_signature[1]["pixels"].dtype == tf.uint8
    assert set(by_bytes.structured_outputs) == {"probabilities", "classes"}

    shapes = [(60, 40, "jpg"), (30, 52, "png"), (41, 41, "gif"), (70, 33, "bmp"), (45, 64, "webp")]
    files = []
    for i, (width, height, fmt) in enumerate(shapes):  # wide, tall and square: the centre crop is exercised
        files.append(tmp_path / f"image{i}.{fmt}")
        files[-1].write_bytes(photo(width, height, fmt, seed=i))
    expected = Predictor.load(trained.run_dir).predict_files(files)  # train/pipeline.py's decode_square
    out = by_bytes(image_bytes=tf.constant([f.read_bytes() for f in files]))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [c.decode() for c in out["classes"].numpy()[0]] == exported.card["classes"]

    png = files[1].read_bytes()
    pixels = by_pixels(pixels=tf.constant(decode_rgb(png)[None]))["probabilities"].numpy()
    np.testing.assert_allclose(pixels, expected[1:2], atol=1e-5)
    direct = decode_square(tf.constant(str(files[1])), 32).numpy()
    np.testing.assert_allclose(Predictor.load(trained.run_dir).predict_arrays(direct[None]), expected[1:2], atol=1e-5)


def test_tflite_variants_are_written_measured_and_run(exported, trained):
    rows = {row["variant"]: row for row in exported.card["tflite"]}
    assert set(rows) == {"float32", "float16", "dynamic_int8", "full_int8"}
    assert rows["dynamic_int8"]["bytes"] < rows["float16"]["bytes"] < rows["float32"]["bytes"]
    assert rows["full_int8"]["bytes"] < rows["float16"]["bytes"]
    data = ImageDataSet.from_run(trained.run_dir, trained.images_dir)
    files = data.files("test")
    pixels = np.stack([decode_square(tf.constant(str(f)), 32).numpy() for f in files])
    keras_probs = Predictor.load(trained.run_dir).predict_arrays(pixels)
    for name, row in rows.items():
        # the rule: refused exactly when its accuracy drops by more than allowed (the tiny model's random
        # backbone features are not robust to full-integer quantisation, so full_int8 may be refused here)
        assert row["accepted"] == (row["accuracy_drop"] <= 0.02) and row["latency_ms"] > 0
        assert row["accepted"] or name == "full_int8", name
        if not row["accepted"]:  # measured, then not written
            assert "file" not in row and not list(exported.version_dir.glob(f"*{name}*")), row
            continue
        content = (exported.version_dir / row["file"]).read_bytes()
        assert len(content) == row["bytes"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=content)
        runner = interpreter.get_signature_runner()
        probs = np.concatenate([runner(pixels=p[None])["probabilities"] for p in pixels])
        assert row["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == data.labels("test")), abs=1e-6)
        np.testing.assert_allclose(probs, keras_probs, atol={"float32": 1e-5, "full_int8": 0.15}.get(name, 0.05))


def _config(tmp_path, trained, exports):
    path = tmp_path / "config.toml"
    path.write_text(
        f'[paths]\nroot = "{tmp_path}"\nversion = "v1"\nruns = "{trained.run_dir.parent}"\n'
        f'images = "{trained.images_dir}"\nexports = "{exports}"\n\n[export]\nlatency_runs = 2\n'
    )
    return str(path)


def test_the_command_line_refuses_variants_beyond_the_drop_and_does_not_export_twice(trained, tmp_path, capsys):
    exports = tmp_path / "exports"
    config = _config(tmp_path, trained, exports)
    # a negative allowance demands that a variant be more accurate than Keras: each one is refused
    args = ["--config", config, "--set", "export.max_accuracy_drop=-1.0", "--set", "export.tflite=['dynamic_int8']"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "REFUSED" in out and "version 1" in out
    folder = exports / MODEL / "1"
    card = layout.read_card(folder)
    assert card is not None and not (folder / "tflite").exists()
    assert card["tflite"][0]["accepted"] is False and "max_accuracy_drop" in card["tflite"][0]["reason"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}

    assert main(args) == 0  # the same model with the same options: nothing new
    assert "nothing to do" in capsys.readouterr().out
    assert layout.versions(exports / MODEL) == [1]
    assert main(args + ["--force"]) == 0
    assert layout.versions(exports / MODEL) == [1, 2]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # version 1 untouched

    assert main(["--config", config, "--run", "no-such-run"]) == 2
    assert "error: no run folder 'no-such-run'" in capsys.readouterr().err
    assert main(["--config", config, "--set", "export.tflite=['int4']"]) == 2
    assert "unknown variant" in capsys.readouterr().err
    assert main(["--config", config, "--set", "export.colour=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert layout.versions(exports / MODEL) == [1, 2]


def test_unusable_inputs_are_refused_before_anything_is_written(trained, tmp_path):
    options = ExportOptions(latency_runs=1)
    with pytest.raises(InputError, match="model.keras"):
        export_run(tmp_path, trained.images_dir, tmp_path / "exports", options)
    with pytest.raises(InputError, match="missing"):
        export_run(trained.run_dir, tmp_path / "elsewhere", tmp_path / "exports", options)
    assert not (tmp_path / "exports").exists()
