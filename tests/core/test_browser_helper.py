"""The headless-Chromium test driver against real pages: an aiohttp server on 127.0.0.1 and file:// pages."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from aiohttp import web

from data.core.server import BackgroundServer
from tests.helpers.browser import VIEWPORT, Browser, BrowserError, chromium_or_skip

pytestmark = pytest.mark.browser

SERVED_PAGE = """<!doctype html><title>served</title><button id="add">add</button><ul id="cards"></ul>
<script>
window.keys = [];
document.addEventListener("keydown", e => window.keys.push(e.key + "/" + e.code + "/" + e.keyCode));
document.getElementById("add").addEventListener("click", () => {
  document.getElementById("cards").insertAdjacentHTML("beforeend", "<li class='card'>clicked</li>");
});
fetch("/data.json?from=page").then(r => r.json()).then(d => { window.fetched = d.items; });
console.error("broken", {code: 7});
setTimeout(() => { throw new Error("uncaught-in-timer"); }, 0);
</script>"""

FILE_PAGE = """<!doctype html><title>file page</title><input type="file" id="photo"><a id="save">save</a>
<script>
document.getElementById("photo").addEventListener("change", e => {
  window.picked = [...e.target.files].map(f => f.name + ":" + f.size);
});
document.getElementById("save").addEventListener("click", e => {
  const blob = new Blob([JSON.stringify({decisions: [1, 2, 3]})], {type: "application/json"});
  e.target.href = URL.createObjectURL(blob);
  e.target.download = "decisions.json";
});
</script>"""


FAVICON_HITS: list[str] = []  # chromium asks for /favicon.ico by itself: the helper must not report it


def _app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=SERVED_PAGE, content_type="text/html")

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"items": ["a", "b"]})

    async def favicon(request: web.Request) -> web.Response:
        FAVICON_HITS.append(request.path)
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/data.json", data)
    return app


@pytest.fixture(scope="module")
def page_server():
    with BackgroundServer(_app) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # one browser for the module: start-up is the slow part; each test opens its own tab
    with Browser(chromium_or_skip(), download_dir=tmp_path_factory.mktemp("dl")) as b:
        yield b


def test_served_page_evaluate_wait_click_press_and_what_it_logged(browser, page_server):
    page = browser.open(page_server.url("/"))
    assert page.evaluate("document.title") == "served"
    assert page.evaluate("Promise.resolve(6 * 7)") == 42  # promises are awaited
    assert page.wait_for("window.fetched", timeout=10) == ["a", "b"]
    assert page.evaluate("document.querySelectorAll('.card').length") == 0
    page.click("#add")
    page.click("#add")
    assert page.wait_for("document.querySelectorAll('.card').length == 2", timeout=5)
    page.press("j")
    page.press("Enter")
    page.press("7")
    assert page.wait_for("window.keys.length >= 3", timeout=5)
    assert page.evaluate("window.keys") == ["j/KeyJ/74", "Enter/Enter/13", "7/Digit7/55"]
    page.wait_for("true")  # the timer's exception is queued behind the page's load
    deadline = time.monotonic() + 5
    while (len(page.console_errors) < 2 or not FAVICON_HITS) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # let the favicon's 404 reach the log, where it must not show
    assert len(page.console_errors) == 2, page.console_errors
    assert page.console_errors[0].startswith("broken")
    assert "uncaught-in-timer" in page.console_errors[1]
    assert FAVICON_HITS
    assert page.requests == [page_server.url("/"), page_server.url("/data.json?from=page")]


def test_file_page_set_files_screenshot_and_blob_download(browser, tmp_path):
    html = tmp_path / "report.html"
    html.write_text(FILE_PAGE)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg " * 3)
    page = browser.open(html.as_uri())
    assert page.requests == [html.as_uri()]
    assert page.evaluate("document.title") == "file page"

    page.set_files("input[type=file]", [photo])
    assert page.wait_for("window.picked", timeout=5) == [f"photo.jpg:{photo.stat().st_size}"]

    shot = page.screenshot(tmp_path / "shot.png")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    assert struct.unpack(">II", head[16:24]) == VIEWPORT

    page.click("#save")
    saved = browser.wait_download("decisions.json", timeout=10)
    assert saved == browser.download_dir / "decisions.json"
    assert json.loads(saved.read_text()) == {"decisions": [1, 2, 3]}
    assert page.console_errors == []


def test_failures_are_clear_errors(browser, tmp_path):
    html = tmp_path / "empty.html"
    html.write_text("<!doctype html><title>empty</title>")
    page = browser.open(html.as_uri())
    with pytest.raises(AssertionError, match="#missing"):
        page.click("#missing")
    with pytest.raises(AssertionError, match="input.none"):
        page.set_files("input.none", [html])
    with pytest.raises(TimeoutError, match="window.never"):
        page.wait_for("window.never", timeout=0.3)
    with pytest.raises(BrowserError, match="nope"):
        page.evaluate("(() => { throw new Error('nope') })()")
    with pytest.raises(TimeoutError, match="never.json"):
        browser.wait_download("never.json", timeout=0.3)
    with pytest.raises(ValueError, match="unknown key"):
        page.press("NoSuchKey")


def _live_group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we read
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def test_exit_kills_every_chromium_process_and_removes_the_profile(tmp_path):
    with Browser(chromium_or_skip(), download_dir=tmp_path / "dl") as b:
        assert b.open("about:blank").evaluate("1 + 1") == 2
        assert b.profile_dir.is_dir()
        assert b._proc is not None
        pgid = b._proc.pid
        assert len(_live_group_members(pgid)) > 1  # the browser and its renderer/utility children
    deadline = time.monotonic() + 5
    while _live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_group_members(pgid) == []
    assert not b.profile_dir.exists()
    assert (tmp_path / "dl").is_dir()  # the caller's download folder is theirs to keep
