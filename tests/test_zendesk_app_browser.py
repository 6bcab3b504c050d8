"""The Zendesk app's ticket sidebar in headless Chromium (Debian's /usr/bin/chromium through
Python playwright), inside a fake Zendesk agent page at 1280 px, in Japanese.

Zendesk's side is played by the test: a stub `ZAFClient` is served where the page loads the ZAF
SDK from (static.zdassets.com; nothing leaves the machine), and the iframe's first request is
turned into the POST Zendesk makes for signed URLs, with a ZAF JWT signed by tests/zaf_support.py's
app key. The connector serves the real page, the extension's renderer and /api/v1.
Set YORISOI_SCREENSHOT_DIR=<dir> to keep the screenshot (zendesk-app-sidebar.png).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask, Response

from connector.helpdesks.zendesk.app.web import ZAF_SDK_URL
from tests.test_extension_e2e import CHROMIUM, CHROMIUM_ARGS, ServerThread, sync_playwright
from tests.zaf_support import key_pair, zaf_token

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="python playwright is not installed (pip install -e '.[test]')"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed: apt-get install chromium (.ci/run does this)"),
]

#: The part of ZAF's client the page uses (init, get with one key or a list, invoke, on), with
#: a ticket's values; `calls` records what the page asked for.
ZAF_STUB = """
window.zafCalls = [];
window.ZAFClient = { init: function () {
  var values = { 'ticket.id': %(ticket)s, 'ticket.externalId': null, 'currentUser.locale': 'ja',
                 'comment.text': '<p>田中様、ご不便をおかけしております。</p>' };
  return {
    get: function (keys) {
      window.zafCalls.push(['get', keys]);
      var out = {}; [].concat(keys).forEach(function (k) { out[k] = values[k]; });
      return Promise.resolve(out);
    },
    invoke: function (name, arg) { window.zafCalls.push(['invoke', name, arg]); return Promise.resolve({}); },
    on: function () {}
  };
} };
"""

HOST_PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>チケット #101 – Zendesk</title>
<style>
body { margin: 0; font: 14px system-ui, sans-serif; display: grid; grid-template-columns: 60px 1fr 340px; height: 100vh; }
nav { background: #03363d; } main { padding: 16px 24px; overflow: auto; background: #fff; }
aside { border-left: 1px solid #d8dcde; background: #f8f9f9; display: flex; flex-direction: column; }
aside h2 { font-size: 13px; margin: 10px 12px; } iframe { border: 0; flex: 1; width: 100%; }
.comment { border-bottom: 1px solid #e9ebed; padding: 12px 0; } .editor { border: 1px solid #c2c8cc; min-height: 90px; padding: 8px; }
</style></head><body>
<nav></nav>
<main><h1>ソラモバイル、また駅で全然繋がらない</h1>
<div class="comment"><b>田中 健 (@tanaka_k)</b><p>ソラモバイル、また駅で全然繋がらない。最悪。もう解約したい</p></div>
<div class="editor">田中様、ご不便をおかけしております。</div></main>
<aside><h2>アプリ</h2><iframe id="yorisoi" title="Yorisoi" src="{sidebar}"></iframe></aside>
</body></html>"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, Any]]:
    from connector import create_app
    from connector.config import Settings
    from tests.conftest import FIXTURES
    from tests.sidebar_seed import seed

    base = tmp_path_factory.mktemp("zendesk-app")
    app = create_app(Settings.from_env({"YORISOI_DATA_DIR": str(base / "data"), "YORISOI_WATCH": str(FIXTURES / "watch.toml"),
                                        "YORISOI_LOG_LEVEL": "WARNING", "ZENDESK_SUBDOMAIN": "sora",
                                        "ZENDESK_APP_PUBLIC_KEY": key_pair()[1]}))
    seed(app.extensions["yorisoi"])
    connector = ServerThread(app)
    host = Flask("fake-zendesk")
    host.add_url_rule("/agent/tickets/101", "ticket",
                      lambda: Response(HOST_PAGE.replace("{sidebar}", connector.url + "/zendesk/app/sidebar")))
    zendesk = ServerThread(host)
    yield {"connector": connector.url, "zendesk": zendesk.url}
    connector.stop()
    zendesk.stop()
    app.extensions["yorisoi"].close()


def _open(p, stack: dict[str, Any], token: str, ticket: int = 101):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.route(ZAF_SDK_URL, lambda route: route.fulfill(status=200, content_type="text/javascript",
                                                        body=ZAF_STUB % {"ticket": ticket}))

    def signed_load(route):
        # Zendesk loads a signed location with a form POST carrying the JWT; its page is on
        # *.zendesk.com, which the sidebar's frame-ancestors allows. Our stand-in host is on
        # 127.0.0.1, so that one directive is widened for it; every other header is the connector's.
        answer = route.fetch(method="POST", post_data=urlencode({"token": token}),
                             headers={**route.request.headers, "content-type": "application/x-www-form-urlencoded"})
        headers = dict(answer.headers)
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            "frame-ancestors ", f"frame-ancestors {stack['zendesk']} ")
        route.fulfill(response=answer, headers=headers)

    page.route(stack["connector"] + "/zendesk/app/sidebar", signed_load)
    page.goto(stack["zendesk"] + "/agent/tickets/101")
    return browser, page, errors


def sidebar_frame(page):
    """The sidebar's frame (another origin than the host page: reached through playwright)."""
    return next(f for f in page.frames if f.url.endswith("/zendesk/app/sidebar"))


def test_zendesk_app_sidebar_in_chromium(stack, tmp_path):
    with sync_playwright() as p:
        browser, page, errors = _open(p, stack, zaf_token())
        frame = page.frame_locator("iframe#yorisoi")
        panel = frame.locator("aside.panel[data-rendered='101']")
        panel.wait_for(timeout=20_000)
        text = panel.inner_text()
        assert "田中 健" in text and "また駅で全然繋がらない" in text
        assert "感情" in text and "ネガティブ" in text  # the labels in Japanese
        assert "$P1$" not in text and "フォロワー 1,520" in text  # chrome.i18n placeholders filled in
        assert frame.locator("html").get_attribute("lang") == "ja"
        # The draft comes from Zendesk's editor through the ZAF client and is checked.
        frame.locator("button.check-btn").click()
        frame.locator(".findings[data-count]").wait_for(timeout=20_000)
        calls = sidebar_frame(page).evaluate("() => window.zafCalls")
        assert ["get", "comment.text"] in calls and any(c[0] == "invoke" and c[1] == "resize" for c in calls)
        shot = tmp_path / "zendesk-app-sidebar.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("YORISOI_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["YORISOI_SCREENSHOT_DIR"]) / "zendesk-app-sidebar.png")
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
        browser.close()


def test_expired_token_shows_a_bilingual_error_in_the_panel(stack):
    with sync_playwright() as p:
        browser, page, _ = _open(p, stack, zaf_token(lifetime=-3600))
        frame = page.frame_locator("iframe#yorisoi")
        state = frame.locator("[data-state='expired']")
        state.wait_for(timeout=20_000)
        assert "有効期限が切れています" in state.inner_text() and "expired" in state.inner_text()
        browser.close()


def test_hostile_post_stays_text_in_the_app_sidebar(stack):
    with sync_playwright() as p:
        browser, page, _ = _open(p, stack, zaf_token(), ticket=102)
        frame = page.frame_locator("iframe#yorisoi")
        frame.locator("aside.panel[data-rendered='102']").wait_for(timeout=20_000)
        assert frame.locator("aside.panel img[src=x]").count() == 0 and frame.locator("aside.panel script").count() == 0
        assert "<script>document.title='pwned2'</script>" in frame.locator("aside.panel").inner_text()
        title = sidebar_frame(page).evaluate("() => document.title")
        assert "pwned" not in title
        browser.close()
