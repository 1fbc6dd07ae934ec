"""make predict with titles (title only, photo only, both) and a fusion run, on real tiny runs in tmp; the text and
fusion runs through make evaluate and make visualise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from data.core.config import load_config
from tests.helpers.train_data import make_download_output, tiny_transfer_options
from tests.train.test_text import VOCAB, toy_titles, write_catalogue
from train.fusion import FusionOptions, train_fusion
from train.options import TrainOptions
from train.predict import main as predict_main
from train.text import TextOptions
from train.text_run import train_text

CLASSES = tuple(VOCAB)


@dataclass(frozen=True)
class Runs:
    root: Path
    images: Path
    photos: dict[str, Path]  # one stored photo per class


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    from train.train import train

    root = tmp_path_factory.mktemp("titles")
    manifest = make_download_output(root / "processed", per_class=8, size=40, classes=CLASSES)
    options = tiny_transfer_options(root / "cache")
    photo_run = train(manifest, root / "runs", options, config=load_config()).run_dir
    stored = pd.read_parquet(manifest).query("status == 'ok'")
    titles, labels = toy_titles(per_class=40)
    by_label = {c: [t for t, lab in zip(titles, labels) if lab == c] for c in CLASSES}
    names = [by_label[lab].pop() for lab in stored["label"]]  # each photo's product gets a title of its class
    keys = [*stored["key"], *[f"t{i}" for i in range(len(titles) - len(stored))]]
    rest = [t for c in CLASSES for t in by_label[c]]
    rest_labels = [c for c in CLASSES for _ in by_label[c]]
    catalogue = write_catalogue(
        root / "processed" / "catalogue.parquet", [*names, *rest], [*stored["label"], *rest_labels]
    )
    frame = pd.read_parquet(catalogue).assign(key=keys)
    frame.to_parquet(catalogue, index=False)
    # the text run on the photo run's split (as make demo does), so the fusion has held-out test rows too
    text_options = TrainOptions(split_file=str(photo_run / "split.csv"))
    train_text(catalogue, root / "runs", text_options, TextOptions(hash_bits=14))
    train_fusion(root / "runs", catalogue, manifest.parent, FusionOptions())
    photos = {lab: manifest.parent / p for lab, p in stored.groupby("label")["path"].first().items()}
    return Runs(root, manifest.parent, photos)


def _predict(runs: Runs, tmp_path: Path, rows: list[dict[str, str]], *extra: str) -> pd.DataFrame:
    csv = tmp_path / "titles.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "out.csv"
    code = predict_main(["--set", f"paths.runs={runs.root / 'runs'}", "--out", str(out), str(csv), *extra])
    assert code == 0
    return pd.read_csv(out, keep_default_na=False)


def test_title_only_photo_only_and_both_are_each_answered_by_their_model(runs, tmp_path):
    fashion, sports = runs.photos["Fashion"], runs.photos["sports_fitness"]
    rows = [
        {"name": "premium cricket set for men", "path": ""},
        {"name": "", "path": str(fashion)},
        {"name": "black yoga set", "path": str(sports)},
        {"name": "", "path": ""},
    ]
    out = _predict(runs, tmp_path, rows, str(runs.photos["Electronics_and_Appliances"]))
    assert len(out) == 5  # the photo given beside the CSV, then the CSV's four rows in order
    sources = [m.split(":")[0] for m in out["model"]]
    assert sources == ["image", "text", "image", "fusion", ""]
    assert out.loc[1, "class_1"] == "sports_fitness" and out.loc[4, "skipped"] == "no title and no photo"
    assert out.loc[3, "model"].startswith("fusion:") and "equal-weights" not in out.loc[3, "model"]
    assert out["class_1"].iloc[:4].isin(CLASSES).all()


def test_a_titles_csv_without_a_name_column_is_refused(runs, tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("title\nshoes\n", encoding="utf-8")
    assert predict_main(["--set", f"paths.runs={runs.root / 'runs'}", str(csv)]) == 2
    assert "has no name column" in capsys.readouterr().err


def test_the_fusion_run_reports_each_source_on_validation(runs):
    from train.fusion import LATEST_FUSION, read_fusion
    from train.runs import resolve_run

    run = resolve_run(runs.root / "runs", LATEST_FUSION)
    doc = read_fusion(run)
    assert 0.0 <= doc["image_weight"] <= 1.0 and tuple(doc["classes"]) == CLASSES
    metrics = pd.read_json(run / "metrics.json", typ="series")
    validation = metrics["validation"]
    assert set(validation) == {"image", "text", "fusion"}
    assert validation["fusion"]["accuracy"] >= max(validation["image"]["accuracy"], validation["text"]["accuracy"])


def test_make_evaluate_scores_a_fusion_run_with_each_source_beside_it(runs, capsys):
    import json

    from train.evaluate import main as evaluate_main
    from train.fusion import LATEST_FUSION
    from train.runs import resolve_run

    run = resolve_run(runs.root / "runs", LATEST_FUSION)
    args = ["--set", f"paths.runs={runs.root / 'runs'}", "--set", f"paths.images={runs.images}"]
    assert evaluate_main([*args, "--run", LATEST_FUSION, "--split", "validation"]) == 0
    assert "fusion: accuracy" in capsys.readouterr().out
    out = run / "evaluation_validation"
    report = json.loads((out / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())["validation"]
    assert report["modality"] == "both" and report["sources"] == trained  # the same rows, the same scores
    assert report["accuracy"] == trained["fusion"]["accuracy"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == trained["fusion"]["samples"]
    assert {"name", "path", "predicted", "image_predicted", "text_predicted"} <= set(predictions.columns)
    assert (out / "gallery.png").is_file()
    # a fusion run holds no training rows: a one-line refusal, nothing written
    assert evaluate_main([*args, "--run", LATEST_FUSION, "--split", "train"]) == 2
    assert "only validation and test rows" in capsys.readouterr().err
    assert not (run / "evaluation_train").exists()


def test_make_visualise_reports_a_text_run_and_a_fusion_run(runs, tmp_path, capsys):
    import json

    from train.evaluate import main as evaluate_main
    from visualise.report import main as visualise_main

    args = ["--set", f"paths.runs={runs.root / 'runs'}", "--set", f"paths.images={runs.images}"]
    args += ["--set", f"paths.labels={tmp_path / 'labels'}"]
    for ref, out in (("latest-text", tmp_path / "text"), ("latest-fusion", tmp_path / "fusion")):
        assert evaluate_main([*args, "--run", ref]) == 0
        assert visualise_main([*args, "--run", ref, "--out", str(out)]) == 0, capsys.readouterr().err
        doc = json.loads((out / "report.json").read_text())
        page = (out / "report.html").read_text()
        worst = doc["top_losses"]
        assert worst and all(r["title"] for r in worst) and doc["embedding"]["points"] == 0
        assert worst[0]["title"].split()[0] in page and "no map:" in page
        assert not (out / "projector").exists()
        assert ("<th>source</th>" in page) == (ref == "latest-fusion")  # the fusion's sources side by side
        photos = page.count('<div class="tile">')
        assert photos == (len(worst) if ref == "latest-fusion" else 0)  # a title run has no photos to show
    assert "no map (a title run has no photos to map)" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["deploy.export", "label.stage", "train.predict"])
def test_a_stage_that_needs_a_photo_model_names_a_text_or_fusion_run_as_such(runs, module, tmp_path, capsys):
    import importlib

    main = importlib.import_module(module).main
    args = ["--set", f"paths.runs={runs.root / 'runs'}", "--set", f"paths.images={runs.images}"]
    args += ["--set", f"paths.exports={tmp_path / 'exports'}", "--set", f"paths.labels={tmp_path / 'labels'}"]
    extra = [str(runs.photos[CLASSES[0]])] if module == "train.predict" else []
    for ref, kind in (("latest-text", "a text (title) run"), ("latest-fusion", "a fusion run")):
        assert main([*args, "--run", ref, *extra]) == 2
        assert f"is {kind}, which has no photo model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before writing anything
