"""The home page 「いま対応が必要なもの」 and the weekly report in real Chromium (Debian's, through
Playwright; never `playwright install`), in Japanese and English, at 1400 px and 400 px wide.
Screenshots are kept in YORISOI_SCREENSHOT_DIR when it is set."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_serve_browser import CHROMIUM, CHROMIUM_FLAGS, USER, served_demo  # noqa: F401 (a fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


def _keep(shot: Path) -> None:
    if os.environ.get("YORISOI_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["YORISOI_SCREENSHOT_DIR"]) / shot.name)


def _no_sideways_scroll(page, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width + 1, f"the page is {overflow} px wide in a {width} px window"


def test_home_and_weekly_report_in_chromium(served_demo, tmp_path):
    url, _summary = served_demo
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS[1:])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url)
        page.fill("input[name=name]", USER[0])
        page.fill("input[name=password]", USER[1])
        page.click("button[type=submit]")
        page.wait_for_selector("#backlog")
        for width in (1400, 400):
            page.set_viewport_size({"width": width, "height": 1000})
            for lang, heading, weekly_heading in (("ja", "いま対応が必要なもの", "週次レポート"),
                                                  ("en", "Needs attention now", "Weekly report")):
                page.goto(f"{url}?lang={lang}")
                assert page.inner_text("h1") == heading
                # The demo was placed relative to now: it has open tickets, some past their SLA.
                assert int(page.inner_text("#open-total")) > 0
                assert page.locator("table.backlog tbody tr").count() > 0
                assert page.locator("#status-note").is_visible()
                first = page.locator("table.backlog tbody tr").first
                assert first.locator("a[href^='/posts/']").count() == 1
                if lang == "ja":
                    assert "未対応" in page.inner_text("#backlog") and "拡散リスク" in page.inner_text("#backlog")
                    assert "時間" in page.inner_text("#backlog") or "分" in page.inner_text("#backlog")
                _no_sideways_scroll(page, width)
                shot = tmp_path / f"home-{lang}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                _keep(shot)

                page.goto(f"{url}reports/weekly?lang={lang}")
                assert page.inner_text("h1") == weekly_heading
                assert page.locator("svg.chart").count() >= 2  # daily lines, sources, topics
                assert page.locator('table[data-table="weekly_summary"] tbody tr').count() >= 5
                if lang == "ja":
                    assert "今週" in page.inner_text("#fig-weekly_summary") and "前週" in page.inner_text("#fig-weekly_summary")
                _no_sideways_scroll(page, width)
                shot = tmp_path / f"weekly-{lang}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                _keep(shot)
        # Print: the navigation is hidden and the charts stay.
        page.emulate_media(media="print")
        page.goto(f"{url}reports/weekly?lang=ja")
        assert not page.locator("header").is_visible()
        assert page.locator("svg.chart").first.is_visible()
        pdf = tmp_path / "weekly.pdf"
        page.pdf(path=str(pdf), prefer_css_page_size=True)
        assert pdf.read_bytes()[:4] == b"%PDF"
        _keep(pdf)
        # The tickets search works in the browser too.
        page.emulate_media(media="screen")
        page.goto(f"{url}tickets?lang=ja")
        page.fill("input[name=q]", "eSIM")
        page.click("#ticket-search button[type=submit]")
        assert "q=eSIM" in page.url and page.locator("tr[data-external-id]").count() >= 1
        assert not [e for e in errors if "Content Security Policy" in e]
        browser.close()
