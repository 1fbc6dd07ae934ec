"""A local stand-in for the few Kaggle API endpoints the ``kaggle`` client calls, for the tests.

With ``KAGGLE_API_ENVIRONMENT=TEST`` the client (kagglesdk) sends every call as ``POST
http://localhost:7777/api/v1/<service>/<Method>`` with a JSON body (camelCase field names), and expects
JSON back; errors are JSON ``{"code": <status>, "message": ...}`` with that HTTP status. The publish flow:

1. ``datasets.DatasetApiService/GetDatasetStatus`` -> ``{"status": "READY"}`` or 404 (does it exist?);
2. per file, ``blobs.BlobApiService/StartBlobUpload`` (name, contentLength) -> ``{"token", "createUrl"}``,
   then a ``PUT`` of the bytes to ``createUrl`` (a signed storage URL on kaggle.com; here on this server);
3. ``CreateDataset`` (title, slug, licenseName, isPrivate, files: [{token, description, columns}]) or
   ``CreateDatasetVersion`` (ownerSlug, datasetSlug, body: {versionNotes, files}) -> ``{"status": "ok", "url"}``.

A run that failed after its uploads resumes them: the client first PUTs ``Content-Range: bytes */<size>``
with no body, and a 200 answer means that blob is complete (its token is reused, nothing is sent again).
Downloads: ``DownloadDataset`` answers a redirect to the archive, which the client streams.
Port 7777 is fixed by the client, so :func:`port_lock` serialises the tests that use it, across processes.
"""

from __future__ import annotations

from data.core.config import REPO_ROOT
import asyncio
import base64
import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

HOST, PORT = "127.0.0.1", 7777
BASE = f"http://localhost:{PORT}"


class PortBusy(RuntimeError):
    """Port 7777 is taken by another program (the tests skip)."""


@contextlib.contextmanager
def port_lock(timeout: float = 120.0) -> Iterator[None]:
    """Hold a machine-wide lock so that only one test at a time uses port 7777 (pytest-xdist, parallel runs)."""
    path = Path(tempfile.gettempdir()) / "product-categorization-kaggle-7777.lock"
    with path.open("w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PortBusy(f"another test held {path} for {timeout:.0f} s")
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def port_free() -> bool:
    """Whether nothing listens on localhost:7777."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, PORT)) != 0


@contextlib.contextmanager
def serve(**kwargs: Any) -> Iterator["KaggleStub"]:
    """Run a :class:`KaggleStub` on localhost:7777 while holding the port lock; :class:`PortBusy` if taken."""
    with port_lock():
        if not port_free():
            raise PortBusy(f"port {PORT} is taken by another program; the kaggle client's TEST environment needs it")
        with KaggleStub(**kwargs) as stub:
            yield stub


def stub_fixture() -> Iterator["KaggleStub"]:
    """Body of the tests' ``stub`` fixture: the stand-in on localhost:7777, skipped when the port is taken."""
    server = serve()
    try:
        running = server.__enter__()
    except PortBusy as exc:
        pytest.skip(str(exc))
    yield running
    server.__exit__(None, None, None)


@dataclass
class Dataset:
    """What the stand-in holds for one dataset: its creation request and every version's files."""

    create: dict[str, Any]
    versions: list[dict[str, Any]] = field(default_factory=list)


class KaggleStub:
    """The stand-in server: run it with ``with KaggleStub(...) as stub:``; inspect what arrived afterwards.

    Args:
        username, key: the legacy API key it accepts (HTTP basic auth).
        token: an access token it accepts (bearer), answered by ``IntrospectToken``.
    """

    def __init__(self, username: str = "tester", key: str = "stub-key", token: str = "stub-token") -> None:
        self.username, self.key, self.token = username, key, token
        self.datasets: dict[str, Dataset] = {}
        self.blobs: dict[str, dict[str, Any]] = {}
        self.archives: dict[str, bytes] = {}  # owner/slug -> zip served by DownloadDataset
        self.calls: list[str] = []  # "<Method>" of every API call, in order
        self.create_answer: tuple[int, dict[str, Any]] | None = None  # (status, JSON) replacing CreateDataset's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # ---- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> "KaggleStub":
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        except OSError as exc:
            self._close_loop()
            raise PortBusy(f"cannot listen on {HOST}:{PORT}: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/api/v1/{service}/{method}", self._api)
        app.router.add_put("/upload/{token}", self._put_blob)
        app.router.add_get("/download/{owner}/{slug}.zip", self._get_archive)
        app.router.add_route("*", "/", self._root)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, PORT).start()

    # ---- helpers ----------------------------------------------------------------------------------
    def _caller(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] == self.token:
            return self.username
        if auth.startswith("Basic "):
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            if user == self.username and key == self.key:
                return user
        return None

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"code": status, "message": message}, status=status)

    def uploaded(self, ref: str, version: int = -1) -> dict[str, bytes]:
        """File name -> bytes of one version of ``ref`` as it arrived (default: the latest)."""
        files = self.datasets[ref].versions[version]["files"]
        return {self.blobs[f["token"]]["name"]: self.blobs[f["token"]]["data"] for f in files}

    # ---- endpoints --------------------------------------------------------------------------------
    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="kaggle stand-in")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        body = await request.json()
        if method == "IntrospectToken":
            active = body.get("token") == self.token
            return web.json_response({"active": active, "username": self.username if active else ""})
        if self._caller(request) is None:
            return self._error(401, "Unauthenticated")
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return self._error(404, f"the stand-in does not play {method}")
        return handler(body)

    def _GetDatasetStatus(self, body: dict[str, Any]) -> web.Response:
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        if ref not in self.datasets:
            return self._error(404, f"Dataset {ref} not found")
        return web.json_response({"status": "READY"})

    def _StartBlobUpload(self, body: dict[str, Any]) -> web.Response:
        token = f"blob-{len(self.blobs) + 1}"
        self.blobs[token] = {
            "name": body["name"],
            "type": body.get("type"),
            "length": int(body.get("contentLength", 0)),
            "data": None,
        }
        return web.json_response({"token": token, "createUrl": f"{BASE}/upload/{token}"})

    async def _put_blob(self, request: web.Request) -> web.Response:
        blob = self.blobs.get(request.match_info["token"])
        if blob is None:
            return web.Response(status=404)
        data = await request.read()
        if request.headers.get("Content-Range", "").startswith("bytes */"):  # "how much did you get?"
            return web.Response(status=200 if blob["data"] is not None else 308)
        if len(data) != blob["length"]:
            return web.Response(status=400, text=f"expected {blob['length']} bytes, got {len(data)}")
        blob["data"] = data
        return web.Response(status=200)

    def _check_files(self, files: list[dict[str, Any]]) -> str | None:
        for f in files:
            blob = self.blobs.get(f.get("token", ""))
            if blob is None or blob["data"] is None:
                return f"file token {f.get('token')!r} was never uploaded"
        return None

    def _CreateDataset(self, body: dict[str, Any]) -> web.Response:
        ref = f"{body.get('ownerSlug')}/{body.get('slug')}"
        if self.create_answer is not None:
            status, doc = self.create_answer
            return web.json_response(doc, status=status)
        problem = self._check_files(body.get("files", []))
        if problem:
            return self._error(400, problem)
        if body.get("ownerSlug") != self.username:
            return self._error(403, f"{self.username} may not create datasets for {body.get('ownerSlug')}")
        self.datasets[ref] = Dataset(create=body, versions=[{"notes": "", "files": body.get("files", [])}])
        return web.json_response({"ref": ref, "url": f"{BASE}/datasets/{ref}", "status": "ok"})

    def _CreateDatasetVersion(self, body: dict[str, Any]) -> web.Response:
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        if ref not in self.datasets:
            return self._error(404, f"Dataset {ref} not found")
        version = body.get("body", {})
        problem = self._check_files(version.get("files", []))
        if problem:
            return self._error(400, problem)
        self.datasets[ref].versions.append(
            {"notes": version.get("versionNotes", ""), "files": version.get("files", [])}
        )
        return web.json_response({"ref": ref, "url": f"{BASE}/datasets/{ref}", "status": "ok"})

    def _DownloadDataset(self, body: dict[str, Any]) -> web.Response:
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        if ref not in self.archives:
            return self._error(404, f"Dataset {ref} not found")
        raise web.HTTPFound(f"{BASE}/download/{ref}.zip")

    async def _get_archive(self, request: web.Request) -> web.Response:
        ref = f"{request.match_info['owner']}/{request.match_info['slug']}"
        data = self.archives[ref]
        return web.Response(
            body=data,
            content_type="application/zip",
            headers={"Content-Disposition": f"attachment; filename={ref.split('/')[1]}.zip"},
        )


# ---- helpers for the tests that run the CLIs against the stand-in ------------------------------------
REPO = REPO_ROOT


def cli_env(
    tmp: Path,
    *,
    username: str | None = "tester",
    key: str | None = "stub-key",
    token: str | None = None,
    environment: str | None = "TEST",
) -> dict[str, str]:
    """An environment for a CLI subprocess: a private HOME, no real Kaggle settings, the given credentials."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and "PROXY" not in k.upper()}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        TMPDIR=str(tmp / "tmp"),
        NO_PROXY="localhost,127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    for name, value in (
        ("KAGGLE_USERNAME", username),
        ("KAGGLE_KEY", key),
        ("KAGGLE_API_TOKEN", token),
        ("KAGGLE_API_ENVIRONMENT", environment),
    ):
        if value is not None:
            env[name] = value
    return env


def run_cli(module: str, args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` from the repository root; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
