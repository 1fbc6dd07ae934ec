"""Version swaps without a restart or a failed request.

The watcher looks at ``{exports}/<model>/`` every ``poll_interval`` seconds. When the highest finished
version is not the one being served (a new export, or the newest one was removed: a rollback), it loads
that version and warms it up on a thread of its own while the current version keeps answering, then
swaps one reference. A batch reads the reference once when it starts, so it finishes on the version it
began with; the old version is freed when its last batch ends. A version that fails to load or warm up is
skipped (and reported by the status route) until its folder changes.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploy import layout
from deploy.metrics import Metrics
from deploy.model import ModelLoadError, ServedModel

log = logging.getLogger(__name__)


class ModelWatcher:
    """Holds the version being served (``current``) and replaces it when the export folder changes."""

    def __init__(self, model_dir: Path, name: str, metrics: Metrics, warm_up_batches: tuple[int, ...]) -> None:
        self.model_dir, self.name = model_dir, name
        self.current: ServedModel | None = None
        self.loading: int | None = None
        self.failed: dict[int, tuple[float, str]] = {}  # version -> (folder mtime, why)
        self._metrics = metrics
        self._warm_up_batches = warm_up_batches
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="model-loader")

    @property
    def not_ready_reason(self) -> str:
        """Why there is no version to serve yet (for /readyz)."""
        if self.loading is not None:
            return f"loading and warming up version {self.loading}"
        if self.failed:
            version, (_, why) = max(self.failed.items())
            return f"version {version} could not be loaded: {why}"
        return f"no exported version in {self.model_dir} yet (run make export)"

    def _mtime(self, version: int) -> float:
        try:
            return layout.version_dir(self.model_dir, version).stat().st_mtime
        except OSError:
            return 0.0

    def _target(self) -> int | None:
        """The highest finished version that has not failed (as it is now)."""
        usable = [
            v for v in layout.versions(self.model_dir) if v not in self.failed or self.failed[v][0] != self._mtime(v)
        ]
        return usable[-1] if usable else None

    def _load(self, version: int) -> ServedModel:
        model = ServedModel.load(self.name, layout.version_dir(self.model_dir, version))
        model.warm_up(self._warm_up_batches)
        return model

    async def poll(self) -> None:
        """Look once; load, warm up and swap in a different target version."""
        target = await asyncio.to_thread(self._target)
        if target is None or (self.current is not None and self.current.version == target):
            return
        self.loading = target
        try:
            model = await asyncio.get_running_loop().run_in_executor(self._loader, self._load, target)
        except Exception as exc:  # whatever TensorFlow raises, the current version must keep serving
            if not isinstance(exc, ModelLoadError):
                log.exception("version %d of %s failed to load", target, self.name)
            self._fail(target, str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}")
            return
        finally:
            self.loading = None
        previous, self.current = self.current, model
        self.failed.pop(target, None)
        self._metrics.model_version.set(target)
        self._metrics.model_loads.labels("ok").inc()
        log.info("serving %s version %d%s", self.name, target, f" (was {previous.version})" if previous else "")

    def _fail(self, version: int, why: str) -> None:
        self.failed[version] = (self._mtime(version), why)
        self._metrics.model_loads.labels("failed").inc()
        log.error("not serving %s version %d: %s", self.name, version, why)

    async def watch(self, interval: float) -> None:
        """Poll forever (the application's background task)."""
        while True:
            await self.poll()
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Let the loader thread go."""
        self._loader.shutdown(wait=False, cancel_futures=True)

    def status(self, version: int | None = None) -> list[dict[str, Any]]:
        """TF Serving's ``model_version_status`` list: the served, loading and failed versions."""
        rows = []
        if self.current is not None:
            rows.append(_status(self.current.version, "AVAILABLE"))
        if self.loading is not None:
            rows.append(_status(self.loading, "LOADING"))
        for failed, (_, why) in sorted(self.failed.items()):
            rows.append(_status(failed, "END", "UNKNOWN", why))
        rows.sort(key=lambda row: -int(row["version"]))
        return [row for row in rows if version is None or int(row["version"]) == version]


def _status(version: int, state: str, code: str = "OK", message: str = "") -> dict[str, Any]:
    return {"version": str(version), "state": state, "status": {"error_code": code, "error_message": message}}
