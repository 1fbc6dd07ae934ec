"""A small synchronous driver for a real headless Chromium, for browser tests (no selenium, no mocks).

It speaks the Chrome DevTools Protocol over one websocket (aiohttp) to the browser target and attaches
to each page with a flattened session. The websocket lives on a private event loop in a daemon thread;
CDP events are recorded there (console errors, requested URLs, load lifecycle, downloads) and the test's
thread waits on them through one condition variable, so every public call is synchronous and every wait
ends in a clear error after its timeout.

Usage::

    exe = chromium_or_skip()
    with Browser(exe, download_dir=tmp_path / "dl") as browser:
        page = browser.open("http://127.0.0.1:8080/")
        page.click("#save")
        path = browser.wait_download("decisions.json", timeout=10)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import pytest

from data.core.io import atomic_write_bytes
from tests.helpers.cdp import BrowserError, Cdp

VIEWPORT = (1280, 900)
_FLAGS = [
    "--headless=new",
    "--remote-debugging-port=0",
    "--no-sandbox",  # chromium refuses to start as root without it
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
]
# Non-printable keys: (code, windowsVirtualKeyCode, text). Printable characters are derived in _key_params.
_SPECIAL_KEYS = {
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, ""),
    "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""),
    "Delete": ("Delete", 46, ""),
    "ArrowLeft": ("ArrowLeft", 37, ""),
    "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowRight": ("ArrowRight", 39, ""),
    "ArrowDown": ("ArrowDown", 40, ""),
    "Home": ("Home", 36, ""),
    "End": ("End", 35, ""),
    "PageUp": ("PageUp", 33, ""),
    "PageDown": ("PageDown", 34, ""),
    " ": ("Space", 32, " "),
}


def chromium_or_skip() -> str:
    """The chromium executable, or skip the calling test with the reason when none is installed."""
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium (browser test skipped)")
    return exe


def _describe(remote: dict[str, Any]) -> str:
    """A console argument or exception as text (a RemoteObject's value, else its description)."""
    if "value" in remote:
        return remote["value"] if isinstance(remote["value"], str) else json.dumps(remote["value"])
    return str(remote.get("description", remote.get("type", "")))


class Page:
    """One tab: navigation, JavaScript, input, screenshots, and what the page logged and requested."""

    def __init__(self, cdp: Cdp, session_id: str) -> None:
        self._cdp, self._session = cdp, session_id
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self._loaded: set[str] = set()  # loaderIds whose load event fired
        self._browser_fetches: set[str] = set()  # URLs chromium requested itself, not the page
        cdp.handlers[session_id] = self._on_event
        for domain in ("Runtime", "Log", "Page", "Network"):
            self._call(f"{domain}.enable")
        self._call("Page.setLifecycleEventsEnabled", enabled=True)
        width, height = VIEWPORT
        self._call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._cdp.call(method, self._session, **params)

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.console_errors.append(" ".join(_describe(arg) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console_errors.append(_describe(details["exception"]) if "exception" in details else details["text"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            if entry.get("url") not in self._browser_fetches:
                self.console_errors.append(f"{entry['text']} ({entry['url']})" if entry.get("url") else entry["text"])
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            # Chromium fetches /favicon.ico on its own: neither the page's request nor its error when absent
            if params.get("type") == "Other" and url.endswith("/favicon.ico"):
                self._browser_fetches.add(url)
            else:
                self.requests.append(url)
        elif method == "Page.lifecycleEvent" and params["name"] == "load":
            self._loaded.add(params["loaderId"])

    def goto(self, url: str, timeout: float = 30) -> Page:
        """Navigate to ``url`` and wait for its load event (matched by loader, not a stale one)."""
        nav = self._call("Page.navigate", url=url)
        if nav.get("errorText"):
            raise BrowserError(f"cannot open {url}: {nav['errorText']}")
        if "loaderId" in nav:  # absent for same-document navigations (a #fragment), which do not load
            self._cdp.wait(lambda: nav["loaderId"] in self._loaded, timeout, f"the load event of {url}")
        return self

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate a JavaScript expression (awaiting a promise) and return its JSON value (None: undefined)."""
        reply = self._cdp.call(
            "Runtime.evaluate",
            self._session,
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
            userGesture=True,
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = _describe(details["exception"]) if "exception" in details else details["text"]
            raise BrowserError(f"JavaScript {expression!r} threw: {text}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value, or raise TimeoutError with the last one."""
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = self.evaluate(expression, timeout=max(deadline - time.monotonic(), 0.1))
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {expression!r} (last value: {value!r})")

    def click(self, selector: str) -> None:
        """Click the first element matching the CSS ``selector`` (AssertionError when none matches)."""
        found = self.evaluate(
            f"(el => el ? (el.click(), true) : false)(document.querySelector({json.dumps(selector)}))"
        )
        if not found:
            raise AssertionError(f"click: no element matches {selector!r}")

    def press(self, key: str) -> None:
        """Send one key (a character such as ``"j"``, or a name such as ``"Enter"``) to the focused page."""
        params = _key_params(key)
        self._call("Input.dispatchKeyEvent", type="keyDown", **params)
        self._call("Input.dispatchKeyEvent", type="keyUp", **{k: v for k, v in params.items() if k != "text"})

    def set_files(self, selector: str, files: list[Path]) -> None:
        """Put ``files`` into the file input at ``selector`` and fire its ``change`` event."""
        root = self._call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self._call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise AssertionError(f"set_files: no element matches {selector!r}")
        self._call("DOM.setFileInputFiles", nodeId=node, files=[str(Path(f).resolve()) for f in files])

    def screenshot(self, path: Path) -> Path:
        """Write a PNG of the viewport (1280 x 900) to ``path`` and return it."""
        data = self._call("Page.captureScreenshot", format="png")["data"]
        atomic_write_bytes(Path(path), base64.b64decode(data))
        return Path(path)


def _key_params(key: str) -> dict[str, Any]:
    """``Input.dispatchKeyEvent`` fields for one key: its key, code, text and Windows virtual key code."""
    if key in _SPECIAL_KEYS:
        code, vk, text = _SPECIAL_KEYS[key]
    elif len(key) == 1 and key.isalnum() and key.isascii():
        code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        vk, text = ord(key.upper()), key
    elif len(key) == 1:
        code, vk, text = "", 0, key  # punctuation: the page sees the right key and text, no physical code
    else:
        raise ValueError(f"press: unknown key {key!r}; use one character or one of {sorted(_SPECIAL_KEYS)}")
    params: dict[str, Any] = {"key": key, "code": code, "windowsVirtualKeyCode": vk}
    if text:
        params["text"] = params["unmodifiedText"] = text
    return params


class Browser:
    """A headless Chromium with a throw-away profile; :meth:`open` gives a new tab per call.

    Args:
        executable: the chromium binary (see :func:`chromium_or_skip`).
        download_dir: where downloads land (created); default: a folder inside the temporary profile.
        timeout: seconds allowed for start-up and for each DevTools command.
    """

    def __init__(self, executable: str, download_dir: Path | None = None, timeout: float = 30) -> None:
        self.executable, self.timeout = executable, timeout
        self._tmp = Path(tempfile.mkdtemp(prefix="browser-test-"))
        self.profile_dir = self._tmp / "profile"
        self.download_dir = Path(download_dir) if download_dir is not None else self._tmp / "downloads"
        self._proc: subprocess.Popen[bytes] | None = None
        self._cdp: Cdp | None = None
        self._downloads: dict[str, dict[str, Any]] = {}  # guid -> suggestedFilename, state, filePath

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        with open(self._tmp / "chromium.log", "wb") as log:
            self._proc = subprocess.Popen(
                [self.executable, *_FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so __exit__ can kill every child
            )
        self._cdp = Cdp(self._ws_url(), self.timeout)
        self._cdp.handlers[""] = self._on_browser_event
        self._cdp.call(
            "Browser.setDownloadBehavior",
            behavior="allow",
            downloadPath=str(self.download_dir.resolve()),
            eventsEnabled=True,
        )

    def _ws_url(self) -> str:
        """The browser websocket from DevToolsActivePort (port on line 1, path on line 2)."""
        port_file, deadline = self.profile_dir / "DevToolsActivePort", time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            assert self._proc is not None
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        log = (self._tmp / "chromium.log").read_text(errors="replace")[-2000:]
        raise BrowserError(f"chromium ({self.executable}) did not open its DevTools port; its log ends:\n{log}")

    def _on_browser_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Browser.downloadWillBegin":
            self._downloads.setdefault(params["guid"], {}).update(name=params["suggestedFilename"])
        elif method == "Browser.downloadProgress":
            self._downloads.setdefault(params["guid"], {}).update(state=params["state"], path=params.get("filePath"))

    def open(self, url: str, timeout: float = 30) -> Page:
        """Open ``url`` in a new tab, wait for its load event, and return the :class:`Page`."""
        assert self._cdp is not None, "use Browser as a context manager: with Browser(exe) as browser"
        target = self._cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = self._cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Page(self._cdp, session).goto(url, timeout)

    def wait_download(self, name: str, timeout: float = 10) -> Path:
        """Wait until a download suggested as ``name`` has completed; return the file's path."""
        assert self._cdp is not None, "use Browser as a context manager: with Browser(exe) as browser"

        def finished() -> dict[str, Any] | None:
            ended = ("completed", "canceled")
            return next(
                (d for d in self._downloads.values() if d.get("name") == name and d.get("state") in ended), None
            )

        try:
            download = self._cdp.wait(finished, timeout, f"download {name!r}")
        except TimeoutError as err:
            seen = sorted(f"{d.get('name', '?')} ({d.get('state', 'starting')})" for d in self._downloads.values())
            raise TimeoutError(f"{err}; downloads seen: {seen or 'none'} in {self.download_dir}") from None
        if download["state"] != "completed":
            raise BrowserError(f"download {name!r} ended {download['state']}")
        path = Path(download["path"]) if download.get("path") else self.download_dir / name
        if not path.is_file():
            raise BrowserError(f"download {name!r} completed but {path} is not there")
        return path

    def __exit__(self, *exc: object) -> None:
        """Close the connection, kill chromium's whole process group, remove the temporary profile."""
        if self._cdp is not None:
            self._cdp.close()
            self._cdp = None
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait(10)
        shutil.rmtree(self._tmp, ignore_errors=True)
