"""The tree keeps one way for each job, read from the source itself (AST, no imports run):

* a stage package imports another stage's modules only through ``data.core`` and ``train.predict`` (whose
  ``PUBLIC`` table is the training stage's whole surface for the others); the demo's pre-flight check in
  ``develop/`` is the one exception, listed below, and an entry nobody needs any more fails too;
* no folder is swapped by hand: ``os.replace``/``os.rename``/``shutil.move``/``Path.rename`` and
  ``replace_dir`` appear only in ``data/core/io.py`` (``staged_dir``, ``staged_files``), apart from the file
  moves listed below;
* no ``to_parquet(`` / ``pq.write_table(`` outside ``data/core/io.py`` (``write_parquet``: atomic).
"""

from __future__ import annotations

import ast
from pathlib import Path

from data.core.config import REPO_ROOT

STAGES = ("data.extract", "data.download", "data.kaggle", "train", "label", "deploy", "visualise", "develop")
GATEWAYS = ("train.predict",)  # the one way every stage loads a run's model

# develop/ is not a pipeline stage: the demo's pre-flight check reads every stage's options class as that stage does.
_CHECKS = "develop/checks.py checks every config section against the stage's own options class: it needs them all"
# (importing file, imported module) -> why it is still allowed
ALLOWED_IMPORTS: dict[tuple[str, str], str] = {
    ("develop/checks.py", module): _CHECKS
    for module in (
        "data.download.records",
        "data.extract.stage",
        "data.kaggle.fetch",
        "data.kaggle.publish",
        "deploy.options",
        "label.options",
        "train.evaluate",
        "train.fusion",
        "train.options",
        "train.text",
        "visualise.options",
    )
}

_FILE_MOVE = "moves one file, not a folder"
# (file, function) -> why it may rename by hand
ALLOWED_MOVES: dict[tuple[str, str], str] = {
    ("train/runs.py", "run_folder"): "a run's work folder outlives an interruption for --resume (staged_dir would "
    "remove it); on success it is renamed once to a name that does not exist yet",
    ("train/modality.py", "restart_modality"): "an interrupted text or fusion run's partial folder is set aside "
    "while the run is trained again under its id, and put back where that is refused (nothing is replaced)",
    ("data/download/stage.py", "_move_image"): _FILE_MOVE + ": a stored image to its new label's folder",
    ("train/session.py", "_save_model"): _FILE_MOVE + ": Keras needs the .keras suffix on the temporary name",
    ("train/efficientnet_lite.py", "imagenet_weights"): _FILE_MOVE + ": Keras needs the .weights.h5 suffix",
}
_MOVES = {("os", "replace"), ("os", "rename"), ("shutil", "move")}


def _package_files() -> list[Path]:
    folders = [REPO_ROOT / Path(*stage.split(".")) for stage in STAGES]
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def _stage_of(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def _name(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _only_allowed(found: list[tuple[tuple[str, str], str]], allowed: dict, advice: str, table: str) -> None:
    """Fail for a found ``(key, where)`` not in ``allowed``, and for an entry of ``allowed`` nothing uses."""
    refused = [where for key, where in found if key not in allowed]
    assert not refused, f"{advice}:\n" + "\n".join(refused)
    stale = sorted(set(allowed) - {key for key, _ in found})
    assert not stale, f"allowed entries nothing needs any more: remove them from {table}: {stale}"


def test_no_stage_imports_another_stage_except_through_the_core():
    found = []
    for path in _package_files():
        mine = _stage_of(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            theirs = _stage_of(module)
            if theirs is not None and theirs != mine and module not in GATEWAYS:
                found.append(((_name(path), module), f"{_name(path)}:{line} imports {module}"))
    advice = "a stage reaches into another stage (share it through data/core)"
    _only_allowed(found, ALLOWED_IMPORTS, advice, "ALLOWED_IMPORTS")


def _functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Every node of the tree mapped to the name of the outermost function around it ('' at module level)."""
    owner: dict[ast.AST, str] = {}
    for top in ast.iter_child_nodes(tree):
        name = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else ""
        for node in ast.walk(top):
            owner[node] = name
    return owner


def _calls(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, receiver, attribute or name, function around it) of every call in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    owner = _functions(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = func.value.id if isinstance(func.value, ast.Name) else ""
            found.append((node.lineno, receiver, func.attr, owner.get(node, "")))
        elif isinstance(func, ast.Name):
            found.append((node.lineno, "", func.id, owner.get(node, "")))
    return found


def test_no_hand_written_folder_swap_outside_the_core_io():
    io_module = REPO_ROOT / "data" / "core" / "io.py"
    found = []
    for path in (p for p in _package_files() if p != io_module):
        for line, receiver, name, function in _calls(path):
            if (receiver, name) in _MOVES or name == "replace_dir" or (name == "rename" and receiver != "os"):
                where = f"{_name(path)}:{line} {receiver + '.' if receiver else ''}{name} in {function or 'module'}"
                found.append(((_name(path), function), where))
    advice = "write a folder through data.core.io.staged_dir (or staged_files)"
    _only_allowed(found, ALLOWED_MOVES, advice, "ALLOWED_MOVES")


def test_parquet_is_written_only_through_the_core_io():
    io_module = REPO_ROOT / "data" / "core" / "io.py"
    direct = [
        f"{_name(path)}:{line} {receiver + '.' if receiver else ''}{name}"
        for path in _package_files()
        if path != io_module
        for line, receiver, name, _ in _calls(path)
        if name == "to_parquet" or (receiver == "pq" and name == "write_table")
    ]
    assert not direct, "write Parquet with data.core.io.write_parquet (atomic):\n" + "\n".join(direct)


def test_every_name_train_predict_offers_the_other_stages_exists():
    import train.predict as gateway

    for name, module in gateway.PUBLIC.items():
        assert getattr(gateway, name) is getattr(__import__(module, fromlist=[name]), name), name
    try:
        gateway.not_a_public_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_public_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
