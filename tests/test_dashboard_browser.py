"""A supervisor signs in with real Chromium (through Playwright, using Debian's /usr/bin/chromium;
never `playwright install`), the overview renders its SVG charts from the demo data, a screenshot
is taken, and hostile post text in the ticket list stays text."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_serve_browser import CHROMIUM, CHROMIUM_FLAGS, USER, served_demo  # noqa: F401 (a fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


@pytest.fixture
def demo_server(served_demo):
    """The real `yorisoi demo` data served by `yorisoi serve` (started as in test_serve_browser)."""
    url, _summary = served_demo
    return url


def test_overview_renders_charts_in_chromium(demo_server, tmp_path):
    url = demo_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS[1:])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url)
        assert "/login" in page.url
        page.fill("input[name=name]", USER[0])
        page.fill("input[name=password]", USER[1])
        page.click("button[type=submit]")
        page.wait_for_selector("#backlog")  # the home page: 「いま対応が必要なもの」
        page.goto(url + "overview")
        page.wait_for_selector("svg.chart")
        assert page.inner_text("h1") == "お客様の声の概要"
        assert int(page.inner_text("#total-posts")) == 90  # the whole demo feed
        charts = page.locator("svg.chart")
        assert charts.count() == 7
        # Drawn, not empty: the sentiment chart has bars, each with its number as a tooltip.
        assert page.locator('svg[data-chart="volume_sentiment"] rect title').count() >= 3
        box = charts.first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
        shot = tmp_path / "overview.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        if os.environ.get("YORISOI_SCREENSHOT_DIR"):  # keep it for a human to look at
            shutil.copy(shot, Path(os.environ["YORISOI_SCREENSHOT_DIR"]) / "overview.png")
        # The other pages render under the same strict CSP, with their charts.
        for path, selector in (("topics", 'svg[data-chart="topics"]'), ("response-times", 'svg[data-chart="ticket_over_time"]'),
                               ("risk", 'table[data-table="risk_leaderboard"]'), ("decisions", 'svg[data-chart="dropped_reasons"]')):
            page.goto(url + path)
            assert page.locator(selector).count() == 1, path
        # Hostile demo post: in the ticket list as text, never as an element.
        page.goto(url + "tickets?lang=ja")
        assert page.locator("tr[data-external-id]").count() == 50  # a page; the rest behind 次へ
        assert page.locator("a[rel=next]").count() == 1
        assert "<script>alert(1)</script>" in page.inner_text("body")
        assert page.locator("main script").count() == 0 and page.locator("main img[src=x]").count() == 0
        assert not [e for e in errors if "Content Security Policy" in e]
        browser.close()
