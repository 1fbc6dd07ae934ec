"""What ``make demo`` checks before it writes anything: every stage's settings, and that every output lies
inside the demo's own folder.

The demo runs the stages one after another for a minute or more; a mistyped ``--set`` key that only the
ninth stage reads would otherwise stop it there, after the others wrote their outputs. Each section is read
here exactly as its stage reads it, so the message is the stage's own.
"""

from __future__ import annotations

from pathlib import Path

from data.core.config import REPO_ROOT, Config
from data.core.errors import InputError

NOT_OUTPUTS = ("root", "version", "label_mapping")  # [paths] entries that are not folders the stages write


def check_settings(cfg: Config) -> None:
    """Read the section of every stage the demo runs, as that stage does.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of its range (the stage's message).
    """
    from data.download.records import DownloadOptions
    from data.extract.stage import ExtractOptions
    from data.kaggle.fetch import FetchOptions
    from data.kaggle.publish import PublishOptions
    from deploy.options import ExportOptions
    from label.options import LabelOptions
    from train.evaluate import EvaluateOptions
    from train.fusion import FusionOptions
    from train.options import TrainOptions
    from train.text import TextOptions
    from visualise.options import VisualiseOptions

    stages = (ExtractOptions, DownloadOptions, FetchOptions, PublishOptions, TrainOptions, EvaluateOptions)
    for options in (*stages, TextOptions, FusionOptions, LabelOptions, ExportOptions, VisualiseOptions):
        options.from_config(cfg)


def check_outputs_inside(cfg: Config, root: Path) -> None:
    """Every ``[paths]`` folder the stages write must lie inside ``root`` (the stages run in the repository).

    Raises:
        InputError: one that does not, named with its key.
    """
    for key in cfg.data.get("paths", {}):
        if key in NOT_OUTPUTS:
            continue
        path = cfg.path(key)
        path = path if path.is_absolute() else REPO_ROOT / path
        if not path.resolve().is_relative_to(root):
            raise InputError(
                f"paths.{key} ({path}) must lie inside the demo's folder {root}: the demo writes only there, "
                f"never into a folder of real data (nothing was changed)"
            )
