"""One way per job: every stage's options come from ``Options.from_config(cfg, cli=args)`` (command-line
values merged into the section before one ``check()``), and every run a stage reads is named by ``--run`` /
``<section>.run`` and found by :func:`data.core.runs.resolve_run` alone.

The first tests read the package source (an AST walk, so a comment or a docstring never counts); the others
exercise the base class on a small options class of their own and on two real stages."""

from __future__ import annotations

import argparse
import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from data.core.config import REPO_ROOT, Config, ConfigError, load_config
from data.core.options import StageOptions
from data.core.runs import RunNotFound, resolve_run

PACKAGES = ("data", "train", "label", "deploy", "visualise", "develop")
CORE = REPO_ROOT / "data" / "core"
OPTIONS_MODULES = (  # where the stages' options classes live (the test finds every subclass they define)
    "data.download.records",
    "data.extract.stage",
    "data.kaggle.fetch",
    "data.kaggle.publish",
    "deploy.options",
    "label.options",
    "label.title",
    "train.evaluate",
    "train.fusion",
    "train.options",
    "train.predict",
    "train.text",
    "visualise.options",
)


def _modules() -> dict[Path, ast.Module]:
    files = sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))
    return {p.relative_to(REPO_ROOT): ast.parse(p.read_text(encoding="utf-8")) for p in files}


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _stage_options() -> dict[str, type]:
    """Every options class of the stages: each module that defines one is imported to list them."""
    for module in OPTIONS_MODULES:
        importlib.import_module(module)
    found: dict[str, type] = {}
    pending = list(StageOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return {name: cls for name, cls in found.items() if cls.__module__.split(".")[0] in PACKAGES}


def test_every_stage_reads_its_options_through_from_config():
    stage_options = _stage_options()
    sections = set(load_config().data)
    assert len(stage_options) >= 14, sorted(stage_options)
    for name, cls in stage_options.items():
        assert cls.SECTION in sections, f"{name}.SECTION = {cls.SECTION!r} is no section of data/config.toml"
    wrong = []
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _called(node)
                if name == "options_from_section" and path.parent != CORE.relative_to(REPO_ROOT):
                    wrong.append(f"{path}:{node.lineno}: options_from_section (use Options.from_config)")
                if name in stage_options and (node.args or node.keywords):  # bare Options(): the defaults
                    wrong.append(f"{path}:{node.lineno}: {name}(...) built by hand (use {name}.from_config)")
                if any(k.arg == "ignore" for k in node.keywords):
                    wrong.append(f"{path}:{node.lineno}: a key read beside the options (ignore=)")
            if isinstance(node, ast.FunctionDef) and node.name == "__post_init__":
                checks = [n for n in ast.walk(node) if isinstance(n, ast.Raise)]
                if checks:
                    wrong.append(f"{path}:{node.lineno}: a check in __post_init__ (it belongs in check())")
    assert not wrong, "\n".join(wrong)


def test_every_run_is_named_by_run_and_found_by_the_one_resolver():
    wrong = []
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("resolve_run", "_cli_value"):
                if path != Path("data/core/runs.py"):
                    wrong.append(f"{path}:{node.lineno}: def {node.name} (runs are found by data.core.runs)")
            if isinstance(node, ast.ImportFrom) and any(a.name in ("resolve_run", "RunNotFound") for a in node.names):
                if node.module != "data.core.runs":
                    wrong.append(f"{path}:{node.lineno}: resolve_run from {node.module} (import data.core.runs)")
            if isinstance(node, ast.Call) and _called(node) == "add_argument" and node.args:
                flag = node.args[0]
                if isinstance(flag, ast.Constant) and flag.value == "--run" and path != Path("data/core/runs.py"):
                    wrong.append(f"{path}:{node.lineno}: its own --run (use data.core.runs.add_run_argument)")
    assert not wrong, "\n".join(wrong)


@dataclass(frozen=True)
class Toy(StageOptions):
    """A small options class: a section key with a flag, a path, a local switch, a derived value."""

    SECTION = "toy"
    CLI = {"size": "size", "out": "out_dir", "force": "force"}
    PATHS = {"out_dir": "out"}
    LOCAL = ("force",)

    out_dir: Path = Path(".")
    size: int = 3
    name: str = ""
    force: bool = False

    def resolve(self, cfg: Config) -> "Toy":
        return self if self.name else Toy(self.out_dir, self.size, f"toy-{self.size}", self.force)

    def check(self) -> None:
        if not 1 <= self.size <= 9:
            raise ConfigError(f"toy.size = {self.size} (--size {self.size}): choose 1-9")


def _cfg(**toy: object) -> Config:
    return Config({"toy": toy, "paths": {"root": "r", "out": "{root}/toy"}})


def _cli(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"size": None, "out": None, "force": False, **values})


def test_a_command_line_value_replaces_the_sections_before_the_check():
    assert Toy.from_config(_cfg(size=50), cli=_cli(size=5)).size == 5  # 50 alone is refused: merged first
    options = Toy.from_config(_cfg(size=4), cli=_cli())  # a flag left out keeps the section's value
    assert options == Toy(Path("r/toy"), 4, "toy-4", False)  # [paths] filled, then resolve() before check()
    assert Toy.from_config(_cfg(), cli=_cli(out=Path("x"), force=True)) == Toy(Path("x"), 3, "toy-3", True)
    with pytest.raises(ConfigError, match=r"\[toy\] has unknown key\(s\) force, out_dir; known: size, name"):
        Toy.from_config(_cfg(out_dir="elsewhere", force=True))  # a path or a local switch is no section key


@pytest.mark.parametrize("bad", [50, 0, "5", 2.5, True])
def test_a_bad_command_line_value_is_refused_as_the_same_bad_config_value(bad):
    with pytest.raises(ConfigError) as from_file:
        Toy.from_config(_cfg(size=bad))
    with pytest.raises(ConfigError) as from_flag:
        Toy.from_config(_cfg(size=4), cli=_cli(size=bad))
    assert str(from_flag.value) == str(from_file.value) and "toy.size" in str(from_file.value)


def test_serve_and_predict_refuse_a_flag_as_they_refuse_the_key():
    from deploy.options import ServeOptions
    from train.predict import PredictOptions

    for cls, key, dest, value in ((ServeOptions, "port", "port", 70000), (PredictOptions, "top_k", "top_k", 0)):
        with pytest.raises(ConfigError) as from_file:
            cls.from_config(load_config(overrides=[f"{cls.SECTION}.{key}={value}"]))
        with pytest.raises(ConfigError) as from_flag:
            cls.from_config(load_config(), cli=argparse.Namespace(**{dest: value}))
        assert str(from_flag.value) == str(from_file.value)
    served = ServeOptions.from_config(load_config(), cli=argparse.Namespace(host=None, port=0))
    assert served.port == 0 and served.host == "127.0.0.1" and served.model_name == "product_categorizer"


def test_a_run_is_latest_a_run_id_or_a_folder(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(RunNotFound, match="no training run yet"):
        resolve_run(runs)
    (runs / "20240501-101500-tiny").mkdir(parents=True)
    (runs / "latest").write_text("20240501-101500-tiny\n")
    assert resolve_run(runs) == resolve_run(runs, "20240501-101500-tiny") == runs / "20240501-101500-tiny"
    assert resolve_run(runs, runs / "20240501-101500-tiny") == runs / "20240501-101500-tiny"
    with pytest.raises(RunNotFound, match="no run folder 'nope'"):
        resolve_run(runs, "nope")
