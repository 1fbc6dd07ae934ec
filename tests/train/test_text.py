"""The title model: a real text run on a toy catalogue, the gate, the split rules, make evaluate, fusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.core.contracts import CATALOGUE
from data.core.errors import StageError
from train.evaluate import EvaluateOptions, evaluate
from train.fusion import choose_weight, compare, fuse
from train.options import TrainOptions
from train.runs import resolve_run
from train.text import TextModel, TextOptions, normalise_title
from train.text_run import LATEST_TEXT, train_text

# Each class has its own words; every title also gets shared filler words, so it must learn which matter.
VOCAB = {
    "Electronics_and_Appliances": ["television", "laptop", "charger", "speaker", "refrigerator"],
    "Fashion": ["shirt", "jeans", "kurta", "saree", "sneakers"],
    "sports_fitness": ["dumbbell", "yoga", "cricket", "treadmill", "badminton"],
}
FILLER = ["new", "pack", "black", "premium", "for", "men", "women", "with", "set", "large"]


def write_catalogue(path: Path, titles: list[str], labels: list[str]) -> Path:
    """A catalogue.parquet with every column of the contract (as make extract writes it)."""
    n = len(titles)
    frame = pd.DataFrame({c: [""] * n for c in CATALOGUE.columns})
    frame["key"] = [f"k{i:05d}" for i in range(n)]
    frame["url"] = [f"https://example.invalid/{i}.jpg" for i in range(n)]
    frame["name"], frame["label"] = titles, labels
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def toy_titles(per_class: int = 40, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    titles, labels = [], []
    for label, words in VOCAB.items():
        for n in range(per_class):
            parts = [*rng.choice(FILLER, 3), rng.choice(words), f"model{rng.integers(1_000_000)}"]
            rng.shuffle(parts)
            titles.append(" ".join(parts))
            labels.append(label)
    return titles, labels


def test_a_text_run_learns_a_separable_catalogue_and_make_evaluate_scores_it(tmp_path):
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", *toy_titles())
    result = train_text(catalogue, tmp_path / "runs", TrainOptions(), TextOptions(hash_bits=14))
    run = result.run_dir
    for name in ("classes.json", "split.csv", "metrics.json", "options.json", "text_model.npz"):
        assert (run / name).is_file(), name
    assert resolve_run(tmp_path / "runs", LATEST_TEXT) == run
    assert not (tmp_path / "runs" / "latest").exists()  # latest stays the photo runs' pointer
    metrics = result.metrics
    assert metrics["validation"]["accuracy"] >= 0.9 and metrics["sanity"]["passed"]
    report = evaluate(run, tmp_path, EvaluateOptions())
    assert report["accuracy"] >= 0.9 and report["modality"] == "text" and report["sanity"]["passed"]
    assert json.loads((run / "evaluation" / "metrics.json").read_text())["samples"] == report["samples"]
    predictions = pd.read_csv(run / "evaluation" / "predictions.csv")
    assert {"key", "name", "label", "predicted", "confidence"} <= set(predictions.columns)
    model = TextModel.load(run)
    probs = model.predict_proba(["cricket bat premium", "slim fit jeans"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert [model.classes[i] for i in probs.argmax(axis=1)] == ["sports_fitness", "Fashion"]


def test_the_gate_fires_on_a_constant_model(tmp_path):
    # Titles without a clue and a regularisation so strong that only the intercept is left: one answer for all.
    rng = np.random.default_rng(0)
    titles = [" ".join(rng.choice(FILLER, 4)) + f" item{i}" for i in range(90)]
    labels = ["Electronics_and_Appliances"] * 50 + ["Fashion"] * 20 + ["sports_fitness"] * 20
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", titles, labels)
    text = TextOptions(hash_bits=12, regularization=1e-4, balanced=False)
    result = train_text(catalogue, tmp_path / "runs", TrainOptions(), text)
    sanity = result.metrics["sanity"]
    assert not sanity["passed"] and sanity["most_predicted_share"] == 1.0
    with pytest.raises(StageError):  # strict: the command fails, latest-text is not moved
        train_text(catalogue, tmp_path / "runs2", TrainOptions(strict=True), text)
    assert not (tmp_path / "runs2" / LATEST_TEXT).exists()


def test_duplicate_titles_stay_in_one_split(tmp_path):
    titles, labels = toy_titles(per_class=20)
    titles += [t.upper() + "  " for t in titles[:30]]  # the same titles, other case and spacing
    labels += labels[:30]
    catalogue = write_catalogue(tmp_path / "catalogue.parquet", titles, labels)
    result = train_text(catalogue, tmp_path / "runs", TrainOptions(), TextOptions(hash_bits=12, distinct=False))
    split = pd.read_csv(result.run_dir / "split.csv")
    grouped = split.groupby(split["name"].map(normalise_title))["split"]
    assert len(split) == 90 and grouped.nunique().max() == 1 and grouped.size().max() == 2
    assert set(split["split"]) == {"train", "validation", "test"}
    distinct = train_text(catalogue, tmp_path / "runs", TrainOptions(), TextOptions(hash_bits=12))
    assert distinct.metrics["data"]["left_out"]["duplicate_title"] == 30


def test_refusals_name_the_input(tmp_path):
    one_class = write_catalogue(tmp_path / "one.parquet", ["a b c"] * 5, ["Fashion"] * 5)
    with pytest.raises(StageError, match="two classes"):
        train_text(one_class, tmp_path / "runs", TrainOptions(), TextOptions())
    with pytest.raises(StageError, match="hash_bits"):
        train_text(one_class, tmp_path / "runs", TrainOptions(), TextOptions(hash_bits=40))
    assert not (tmp_path / "runs").exists()


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four classes: the photo sees classes 0-1 well and guesses 2-3, the title the other way round."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    image, text = (rng.dirichlet(np.ones(4), n).astype(np.float32) for _ in range(2))
    for probs, good in ((image, y < 2), (text, y >= 2)):
        sure = good & (rng.random(n) < 0.9)
        probs[sure] = 0.6 * np.eye(4, dtype=np.float32)[y[sure]] + 0.4 * probs[sure]
    return y, image, text


def test_fusion_is_never_worse_than_the_better_source_on_a_planted_case():
    classes = ("a", "b", "c", "d")
    yv, iv, tv = _planted(400, 0)
    yt, it, tt = _planted(400, 1)
    weight = choose_weight(yv, iv, tv)
    assert 0 < weight < 1
    for y, image, text in ((yv, iv, tv), (yt, it, tt)):
        scores = compare(y, image, text, weight, classes)
        best = max(scores["image"]["accuracy"], scores["text"]["accuracy"])
        assert scores["fusion"]["accuracy"] >= best + 0.05  # each source fixes the other's blind half
    # one useless source: the weight goes to the other, and the fusion is not dragged down
    useless = np.full_like(iv, 0.25)
    assert (
        compare(yv, iv, useless, choose_weight(yv, iv, useless), classes)["fusion"]["accuracy"]
        >= (compare(yv, iv, useless, 1.0, classes)["image"]["accuracy"])
    )
    assert np.allclose(fuse(iv, tv, 1.0), iv / iv.sum(axis=1, keepdims=True), atol=1e-5)


def _one_hot(labels: list[int], sure: float = 0.9) -> np.ndarray:
    probs = np.full((len(labels), 3), (1 - sure) / 2, np.float32)
    probs[np.arange(len(labels)), labels] = sure
    return probs


def test_a_mix_that_wins_by_a_row_on_validation_is_refused():
    # 40 rows; the photo is right on 30, the title on 20. A mix is right where the photo is, plus one row where
    # only a hesitant title is right against an unsure photo: one gain, no loss, not evidence of anything.
    y = np.zeros(40, np.int64)
    photo = _one_hot([0] * 30 + [1] * 10)
    title = _one_hot([0] * 10 + [2] * 20 + [0] * 10, sure=0.5)
    photo[30] = (0.34, 0.36, 0.30)  # the photo's narrowest miss, which any mix turns right
    mixed = fuse(photo, title, 0.5).argmax(axis=1) == y
    assert mixed.sum() > 30 and (mixed | ~(photo.argmax(axis=1) == y)).all()  # the setup: a mix gains, loses none
    assert choose_weight(y, photo, title) == 1.0
    assert 0 < choose_weight(y, photo, title, min_gain_p=1.0) < 1  # unguarded, the one-row win is taken


def test_a_mix_with_a_clear_gain_is_taken():
    # the photo is right on rows 0-59, the title on rows 40-99 (of 100): a mix gets the union where each source
    # is sure on its own rows and unsure elsewhere
    y = np.zeros(100, np.int64)
    photo = np.vstack([_one_hot([0] * 60), _one_hot([1] * 40, sure=0.4)])
    title = np.vstack([_one_hot([2] * 40, sure=0.4), _one_hot([0] * 60)])
    weight = choose_weight(y, photo, title)
    assert 0 < weight < 1 and (fuse(photo, title, weight).argmax(axis=1) == y).mean() > 0.9


def test_resume_trains_an_interrupted_text_run_again_and_refuses_a_finished_one(tmp_path, capsys):
    from train.train import main

    root = tmp_path / "data"
    write_catalogue(root / "processed" / "v1" / "catalogue.parquet", *toy_titles(per_class=20))
    args = ["--set", f"paths.root={root}", "--set", "text.hash_bits=12"]
    runs = root / "runs"
    # a text run killed while writing its folder: what run_folder leaves (.incomplete/<id> with part of the files)
    partial = runs / ".incomplete" / "20260101-000000-text"
    partial.mkdir(parents=True)
    (partial / "classes.json").write_text('["Fashion"]')
    assert main([*args, "--resume", partial.name]) == 0
    assert "training it again from the start" in capsys.readouterr().out
    run = runs / partial.name
    assert (run / "text_model.npz").is_file() and len(json.loads((run / "classes.json").read_text())) == 3
    assert not (runs / ".incomplete").exists() and resolve_run(runs, LATEST_TEXT) == run
    # a finished one: nothing to resume, a one-line refusal, the runs folder as it was
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    assert main([*args, "--resume", partial.name]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before
    # an interrupted one that cannot be trained again (the catalogue is gone) is left as it was
    other = runs / ".incomplete" / "20260101-000001-text"
    other.mkdir(parents=True)
    (root / "processed" / "v1" / "catalogue.parquet").unlink()
    assert main([*args, "--resume", other.name]) == 2
    assert sorted(p.name for p in other.parent.iterdir()) == [other.name]


def test_the_saved_model_is_numbers_only_and_a_tampered_or_pickled_file_is_refused(tmp_path):
    titles, labels = toy_titles(per_class=20)
    y = np.array([sorted(VOCAB).index(label) for label in labels])
    model = TextModel(sorted(VOCAB), TextOptions(hash_bits=10)).fit(titles, y)
    model.calibrate(titles[:30], y[:30])
    model.save(tmp_path)
    back = TextModel.load(tmp_path)
    assert back.classes == model.classes and back.temperature == model.temperature
    assert np.array_equal(back.predict_proba(titles), model.predict_proba(titles))
    with np.load(tmp_path / "text_model.npz", allow_pickle=False) as npz:  # no object array anywhere in it
        saved = {k: npz[k] for k in npz.files}
    assert all(a.dtype != object for a in saved.values())

    def refused(folder: Path, match: str) -> None:
        with pytest.raises(StageError, match=match):
            TextModel.load(folder)

    for name, bad in (
        ("coef", saved["coef"][:, :5]),  # another width
        ("word_idf", np.full_like(saved["word_idf"], np.nan)),
        ("fitted", np.array([0, 7])),  # a class the model does not have
        ("meta", np.array('{"format": 1}')),
    ):
        folder = tmp_path / f"bad-{name}"
        folder.mkdir()
        np.savez(folder / "text_model.npz", **{**saved, name: bad})
        refused(folder, "cannot be used as a title model")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    np.savez(pickled / "text_model.npz", **{**saved, "coef": np.array([{"a": 1}], dtype=object)})
    refused(pickled, "cannot be used")  # an object array would need unpickling: never done
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "text_model.pkl").write_bytes(b"\x80\x04K\x01.")  # an earlier run's pickle: named, not read
    refused(legacy, "no longer read")
