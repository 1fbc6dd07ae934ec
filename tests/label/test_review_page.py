"""The review page in a real headless Chromium, opened from the file system: decisions by keyboard and by
click, kept across pages and a reload, one decision for a whole duplicate cluster, and the saved
decisions.json accepted by ``make apply-labels``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from label.apply import apply_labels
from label.decisions import check_decisions, read_decisions
from label.options import LabelOptions
from label.review import write_review
from label.table import order_for_review
from tests.helpers.browser import Browser, chromium_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CARD_KEYS = "[...document.querySelectorAll('#grid .card')].map(c => c.dataset.key)"
STORED = "Object.keys(JSON.parse(localStorage.getItem('label-review:v1') || '{}')).length"


def _filter(page, issue: str) -> None:
    page.evaluate(
        f"(s => {{ s.value = {json.dumps(issue)}; s.dispatchEvent(new Event('change')); }})"
        "(document.getElementById('filter-issue'))"
    )


def _review_page(labelled, tmp_path, options: LabelOptions, look_alikes: bool = False):
    """The run's own issues table and summary, and the review page written from them with its images: the
    table, the summary and the page's file URL."""
    table = pd.read_parquet(labelled.version_dir / "issues.parquet")
    summary = json.loads((labelled.version_dir / "summary.json").read_text())
    page_dir = tmp_path / "review"
    write_review(page_dir, order_for_review(table), labelled.images, summary, options, table if look_alikes else None)
    return table, summary, (page_dir / "review.html").as_uri()


def test_review_page_records_decisions_across_pages_and_saves_them(labelled, tmp_path):
    exe = chromium_or_skip()
    table, summary, url = _review_page(labelled, tmp_path, LabelOptions(page_size=4, workers=2))  # 4 cards a page
    with Browser(exe, download_dir=tmp_path / "downloads") as browser:
        page = browser.open(url)
        page.wait_for("document.querySelectorAll('#grid .card').length === 4")
        assert page.evaluate("document.querySelectorAll('#grid .card img').length") >= 3  # thumbnails load offline
        first_page = page.evaluate(CARD_KEYS)
        page.press("d")  # drop the focused first card
        page.press("j")
        page.press("a")  # keep the second
        page.press("n")
        assert page.evaluate("document.getElementById('pageinfo').textContent").startswith("page 2 /")
        third = page.evaluate(CARD_KEYS)[0]
        relabel_to = page.evaluate("document.querySelector('#grid .card .relabel-to').value")
        page.click("#grid .card button.relabel")
        page.press("p")
        assert page.evaluate(CARD_KEYS) == first_page
        assert page.evaluate("document.querySelector('#grid .card .decision').textContent") == "drop"

        page.goto(url)  # a reload keeps every decision (localStorage; the last write may reach it a moment late)
        page.wait_for("document.querySelectorAll('#grid .card').length === 4")
        page.wait_for(f"{STORED} === 3")
        page.wait_for("document.querySelector('#grid .card .decision').textContent === 'drop'")

        _filter(page, "cross_class_duplicate")
        assert sorted(page.evaluate(CARD_KEYS)) == sorted(labelled.placeholders)
        page.press("d")
        page.press("c")  # the same decision for the whole cluster
        assert page.evaluate(STORED) == len({first_page[0], first_page[1], third, *labelled.placeholders})
        page.click("#save")
        saved = browser.wait_download("decisions.json")
        page.screenshot(tmp_path / "review.png")
        assert page.console_errors == []
        assert all(u.startswith(("file://", "data:", "blob:")) for u in page.requests), page.requests

    doc = read_decisions(saved)
    decisions = check_decisions(doc, saved, table["key"], summary["classes"], "v1")
    kept = first_page[1] not in labelled.placeholders  # a placeholder kept on page 1 was then dropped with its cluster
    assert decisions[first_page[0]].action == "drop"
    assert decisions[first_page[1]].action == ("keep" if kept else "drop")
    assert decisions[third].action == "relabel" and decisions[third].label == relabel_to
    assert all(decisions[k].action == "drop" for k in labelled.placeholders)

    result = apply_labels(labelled.version_dir, labelled.manifest, saved, LabelOptions())
    changes = pd.read_csv(result.out_dir / "changes.csv").set_index("key")
    assert set(labelled.placeholders) | {first_page[0]} <= set(changes.index[changes["action"] == "drop"])
    assert changes.at[third, "new_label"] == relabel_to or relabel_to == table.set_index("key").at[third, "label"]
    assert not kept or first_page[1] not in changes.index  # keep changes nothing


def test_two_tabs_of_one_review_keep_each_others_decisions(labelled, tmp_path):
    # each tab holds the decisions in memory and stores them all at every change: without the storage event,
    # the second tab's first decision wrote over the first tab's
    exe = chromium_or_skip()
    _, _, url = _review_page(labelled, tmp_path, LabelOptions(page_size=4, workers=2))
    decided = "[...document.querySelectorAll('#grid .card.d-drop, #grid .card.d-keep')].map(c => c.dataset.key)"
    with Browser(exe, download_dir=tmp_path / "downloads") as browser:
        first, second = browser.open(url), browser.open(url)
        for page in (first, second):
            page.wait_for("document.querySelectorAll('#grid .card').length === 4")
        keys = first.evaluate(CARD_KEYS)
        first.press("d")  # drop the first card in the first tab
        second.wait_for(f"{decided}.length === 1")  # the second tab shows it without a reload
        assert second.evaluate(decided) == keys[:1]
        second.press("j")
        second.press("a")  # keep the second card in the second tab
        first.wait_for(f"{decided}.length === 2")
        stored = first.evaluate("JSON.parse(localStorage.getItem('label-review:v1'))")
        assert stored == {keys[0]: {"action": "drop"}, keys[1]: {"action": "keep"}}
        assert first.console_errors == [] and second.console_errors == []


def test_more_like_this_shows_the_neighbours_and_decides_them_at_once(labelled, tmp_path):
    exe = chromium_or_skip()
    options = LabelOptions(page_size=6, workers=2, similar=4)
    table, summary, url = _review_page(labelled, tmp_path, options, look_alikes=True)
    by_key = table.set_index("key")
    with Browser(exe, download_dir=tmp_path / "downloads") as browser:
        page = browser.open(url)
        page.wait_for("document.querySelectorAll('#grid .card').length === 6")
        issues = page.evaluate("[...document.querySelectorAll('#filter-issue option')].map(o => o.value)")
        assert {"outlier", "grayscale", "class_imbalance"} <= set(issues), issues  # a filter for each new type
        _filter(page, "grayscale")
        assert labelled.grey in page.evaluate(CARD_KEYS)
        _filter(page, "outlier")
        assert labelled.off_topic in page.evaluate(CARD_KEYS)

        key = page.evaluate(CARD_KEYS)[0]
        assert page.evaluate("getComputedStyle(document.querySelector('#grid .card .similar')).display") == "none"
        page.press("m")  # more like this: the focused card's nearest neighbours, with thumbnails and labels
        panel = "document.querySelector('#grid .card .similar')"
        assert page.evaluate(f"getComputedStyle({panel}).display") == "block"
        shown = page.evaluate(f"[...{panel}.querySelectorAll('figure')].map(f => f.dataset.key)")
        assert shown == by_key.at[key, "similar_keys"].split("|")[:4]
        page.wait_for(f"[...{panel}.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)")
        labels = page.evaluate(f"[...{panel}.querySelectorAll('figure span')].map(s => s.textContent)")
        assert labels == [by_key.at[k, "label"] for k in shown]

        page.press("l")  # undecided: the look-alikes keep what they had (nothing)
        assert page.evaluate(STORED) == 0
        page.press("d")
        page.press("l")  # the same decision for the image and every look-alike shown
        stored = page.evaluate("JSON.parse(localStorage.getItem('label-review:v1'))")
        assert set(stored) == {key, *shown} and all(d["action"] == "drop" for d in stored.values())
        assert page.evaluate(f"{panel}.querySelectorAll('figure.d-drop').length") == len(shown)
        page.click("#save")
        saved = browser.wait_download("decisions.json")
        page.screenshot(tmp_path / "similar.png")
        assert page.console_errors == []
    decisions = check_decisions(read_decisions(saved), saved, table["key"], summary["classes"], "v1")
    assert {k for k, d in decisions.items() if d.action == "drop"} == {key, *shown}
