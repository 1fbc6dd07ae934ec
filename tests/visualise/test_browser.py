"""Both reports opened from disk in a real headless Chromium: they render (images decoded, tables sort), log
no error, and request nothing but the file itself and its embedded ``data:`` pictures."""

from __future__ import annotations

import cv2
import pytest

from tests.helpers.browser import Browser, chromium_or_skip
from visualise.eda import EdaInputs, eda
from visualise.inputs import RunInputs
from visualise.options import VisualiseOptions
from visualise.report import visualise_run

pytestmark = pytest.mark.browser

SORT_CHECK = """(() => {
  const table = document.querySelector('table.sortable');
  const column = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === 'count');
  const values = () => Array.from(table.tBodies[0].rows).map(r => parseFloat(r.cells[column].dataset.v));
  table.tHead.rows[0].cells[column].click();
  const up = values();
  table.tHead.rows[0].cells[column].click();
  const down = values();
  return {up, down};
})()"""


def _open_and_check(browser: Browser, html, shot) -> object:
    page = browser.open(html.resolve().as_uri())
    page.wait_for("document.readyState === 'complete'")
    broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
    assert page.evaluate("document.images.length") > 3 and broken == 0
    page.screenshot(shot)
    assert cv2.imread(str(shot)).shape[:2] == (900, 1280)
    assert page.console_errors == []
    assert page.requests and page.requests[0] == html.resolve().as_uri()
    assert all(url.startswith(("file://", "data:")) for url in page.requests), page.requests
    assert not [u for u in page.requests if u.startswith("file://") and u != html.resolve().as_uri()]
    return page


def test_the_eda_report_in_chromium(sample, tmp_path):
    exe = chromium_or_skip()
    result = eda(EdaInputs.from_config(sample.config()), tmp_path / "eda", VisualiseOptions())
    with Browser(exe) as browser:
        page = _open_and_check(browser, result.html, tmp_path / "eda.png")
        sections = page.evaluate("Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
        assert "Where the rows went" in sections and "Exact and near duplicates" in sections
        order = page.evaluate(SORT_CHECK)
        assert order["up"] == sorted(order["up"]) and order["down"] == sorted(order["down"], reverse=True)
        page.click("nav a[href='#duplicates']")
        assert page.evaluate("location.hash") == "#duplicates"
        assert page.console_errors == []


@pytest.mark.slow
def test_the_run_report_in_chromium(demo_runs, tmp_path):
    exe = chromium_or_skip()
    out = tmp_path / "run"
    visualise_run(RunInputs.from_config(demo_runs.config(), "latest"), out, VisualiseOptions(map_per_class=5))
    with Browser(exe) as browser:
        page = _open_and_check(browser, out / "report.html", tmp_path / "run.png")
        tiles = page.evaluate("document.querySelectorAll('#losses .tile').length")
        assert tiles == min(24, len(open(demo_runs.run_dir / "evaluation" / "predictions.csv").readlines()) - 1)
        assert page.evaluate("document.querySelector('#map img').naturalWidth") > 300
