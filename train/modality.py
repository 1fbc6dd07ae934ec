"""``make train`` with ``train.modality = text`` (a title run) or ``both`` (a fusion run): the dispatch."""

from __future__ import annotations

from data.core.config import Config
from data.core.contracts import CATALOGUE, IMAGES, RUNS
from train.gate import describe
from train.options import TrainOptions


def train_modality(cfg: Config, options: TrainOptions, run_id: str | None) -> int:
    """Train the run ``options.modality`` asks for and print its summary; the exit code."""
    if options.modality == "both":
        from train.fusion import FusionOptions, summary_lines, train_fusion

        fusion = FusionOptions.from_config(cfg)
        result = train_fusion(
            cfg.path(RUNS), cfg.path(CATALOGUE.path_key), cfg.path(IMAGES), fusion, run_id=run_id, config=cfg
        )
        print("\n".join(summary_lines(result)))
        return 0
    from train.text import TextOptions
    from train.text_run import LATEST_TEXT, train_text

    text = TextOptions.from_config(cfg)
    result = train_text(cfg.path(CATALOGUE.path_key), cfg.path(RUNS), options, text, run_id=run_id, config=cfg)
    m, v = result.metrics, result.metrics["validation"]
    data = m["data"]
    print(f"run: {result.run_dir}  (titles: {data['rows']} rows {data['splits']}, left out {data['left_out']})")
    print(
        f"validation: accuracy {v['accuracy']:.3f}  top-3 {v['top3_accuracy']:.3f}  macro-F1 {v['macro_f1']:.3f}  "
        f"({m['speed']['train_titles_per_s']:.0f} titles/s training, "
        f"{m['speed']['predict_titles_per_s']:.0f} predicting)"
    )
    print("\n".join(describe(m["sanity"], "validation")))
    print(f"next: make evaluate ARGS='--run {LATEST_TEXT}'")
    return 0
