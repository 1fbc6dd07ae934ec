"""The upload page in a real headless Chromium: choose photos, see their top classes."""

from __future__ import annotations

import pytest

from tests.deploy.support import photo, serving
from tests.helpers.browser import Browser, chromium_or_skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_choosing_photos_shows_their_top_classes(exported, tmp_path):
    exe = chromium_or_skip()
    good, bad = tmp_path / "shoe.jpg", tmp_path / "notes.txt"
    good.write_bytes(photo(64, 48, seed=3))
    bad.write_text("not a photo")
    classes = exported.card["classes"]
    with serving(exported.version_dir.parent) as server, Browser(exe, download_dir=tmp_path / "dl") as browser:
        page = browser.open(server.url("/"))
        page.wait_for("document.getElementById('status').textContent.includes('version 1')")
        page.set_files("input[type=file]", [good, bad])
        page.wait_for("document.querySelectorAll('.card[data-state]').length === 2", timeout=20)
        done = page.evaluate(
            "Array.from(document.querySelectorAll('.card[data-state=done] .bar .name')).map(e => e.textContent)"
        )
        assert len(done) == 3 and all(any(text.startswith(c + " ") for c in classes) for text in done)
        failed = page.evaluate("document.querySelector('.card[data-state=failed] .error').textContent")
        assert "not a JPEG" in failed
        # the thumbnail decodes after the card is marked done: wait for it rather than race it
        page.wait_for("document.querySelector('.card[data-state=done] img').naturalWidth > 0", timeout=20)
        assert page.evaluate("document.querySelector('.card[data-state=done] img').naturalWidth") == 64
        page.screenshot(tmp_path / "upload.png")
        assert all(url.startswith((server.base_url, "blob:", "data:")) for url in page.requests), page.requests
        assert [e for e in page.console_errors if "400" not in e] == []  # the refused file's 400 is expected
