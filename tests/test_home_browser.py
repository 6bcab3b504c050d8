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
    if overflow > width + 1:
        widest = page.evaluate("""(w) => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > w + 1)
            .map(e => e.tagName + '.' + e.className + '#' + e.id).slice(-5)""", width)
        pytest.fail(f"{page.url} is {overflow} px wide in a {width} px window: {widest}")


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
                    # The local helpdesk has no statuses: the page says what "open" means here.
                    assert "ローカルのヘルプデスクにはチケットのステータスがありません" in page.inner_text("#status-note")
                    assert first.locator(".status").inner_text() == "未対応（返信なし）"
                else:
                    assert "The local helpdesk has no ticket statuses" in page.inner_text("#status-note")
                    assert first.locator(".status").inner_text() == "Open (no reply yet)"
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

                # The tickets search: a word, a filter, the count line, no sideways scroll.
                page.goto(f"{url}tickets?lang={lang}")
                page.fill("input[name=q]", "eSIM")
                page.click("#ticket-search button[type=submit]")
                assert "q=eSIM" in page.url and page.locator("tr[data-external-id]").count() >= 1
                count = page.inner_text("#ticket-count")
                assert ("件中" in count) if lang == "ja" else ("tickets; showing" in count)
                page.select_option("select[name=priority]", index=1)
                page.click("#ticket-search button[type=submit]")
                assert "priority=" in page.url and "q=eSIM" in page.url
                page.goto(f"{url}tickets?lang={lang}&q=eSIM")
                _no_sideways_scroll(page, width)
                shot = tmp_path / f"tickets-{lang}-{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                _keep(shot)

                # A ticket's post page: evidence and reasons in the UI language.
                page.locator("tr[data-external-id] a[href^='/posts/']").first.click()
                page.wait_for_selector("#post-text")
                body = page.inner_text("#analysis") + page.inner_text("#decision")
                if lang == "ja":
                    assert "到達範囲" in body and "に一致" in body and "reach " not in body and "matched " not in body
                else:
                    assert "→ reach" in body and "matched " in body
                _no_sideways_scroll(page, width)
                shot = tmp_path / f"post-{lang}-{width}.png"
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
        assert not [e for e in errors if "Content Security Policy" in e]
        browser.close()
