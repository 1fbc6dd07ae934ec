"""The export folder, in TF Serving's layout: ``{exports}/<model>/<version>/`` with a whole-number version.

A version folder appears in one rename (export builds it in a hidden folder beside it), so a reader that
sees ``<version>/saved_model.pb`` sees a finished export. TF Serving ignores the extra files we add
(``model_card.json``, ``tflite/``, ``config.resolved.json``), and so do we when loading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ContextManager

from data.core.io import exclusive as lock
from data.core.io import read_json_lenient

SAVED_MODEL = "saved_model.pb"
CARD = "model_card.json"
TFLITE_DIR = "tflite"
# The SavedModel's signatures (deploy/graph.py writes them, deploy/model.py serves them).
BYTES_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"
BYTES_INPUT = "image_bytes"
PIXELS_INPUT = "pixels"
_VERSION = re.compile(r"[0-9]{1,18}")  # TF Serving parses the folder name as an int64


def versions(model_dir: Path) -> list[int]:
    """The finished versions under ``model_dir``, ascending (hidden temporary folders are not versions)."""
    if not model_dir.is_dir():
        return []
    found = []
    for child in model_dir.iterdir():
        if _VERSION.fullmatch(child.name) and (child / SAVED_MODEL).is_file():
            found.append(int(child.name))
    return sorted(found)


def strays(model_dir: Path) -> list[Path]:
    """Folders named by a number that hold no finished export: TF Serving would try to load such a folder
    (the highest number wins), so none may stand above or in the way of the next version."""
    if not model_dir.is_dir():
        return []
    numbered = [c for c in model_dir.iterdir() if c.name.isascii() and c.name.isdigit() and c.is_dir()]
    finished = [c for c in numbered if _VERSION.fullmatch(c.name) and (c / SAVED_MODEL).is_file()]
    return sorted(set(numbered) - set(finished), key=lambda c: int(c.name))


def version_dir(model_dir: Path, version: int) -> Path:
    """Where ``version`` lives (TF Serving reads the name as a number: no leading zeros are written)."""
    return model_dir / str(version)


def read_card(folder: Path) -> dict[str, Any] | None:
    """The model card of a version folder, or None when it has none or it is not JSON."""
    return read_json_lenient(folder / CARD)


def exclusive(model_dir: Path) -> ContextManager[None]:
    """Hold ``model_dir/.export.lock`` while choosing and writing a version (the kernel drops it on exit)."""
    return lock(model_dir / ".export.lock", f"another export is writing to {model_dir}; wait for it to finish")
