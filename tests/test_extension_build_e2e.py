"""The packaged Chrome/Edge build (`yorisoi extension build`) in headless Chromium: it loads from
its zip with the id its signing key gives, an agent signs in from the options page instead of
pasting a token, and the panel opens only on Yorisoi tickets, remembers being collapsed, never
covers the helpdesk's own right-hand panel, and its toggle works by keyboard.

The build is the release build plus the loopback test pages (the hidden `--test-origin` option:
release builds never match http://127.0.0.1/…). The fake helpdesk page has a fixed right-hand
panel like Zendesk's context panel and Freshdesk's ticket properties.

YORISOI_E2E_SHOTS or YORISOI_SCREENSHOT_DIR=<dir> keeps the screenshots (1280 px, Japanese).
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask, Response

from tests.test_extension_e2e import CHROMIUM, CHROMIUM_ARGS, STRICT_CSP, ServerThread, sync_playwright

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="python playwright is not installed (pip install -e '.[test]')"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed: apt-get install chromium (.ci/run does this)"),
]

ACCOUNT = ("佐藤", "a-long-password-for-sato")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/page.css"></head>
<body><div id="app"><main id="conversation"><h1>{title}</h1>
<p>お客様とのやり取り / the conversation</p>
<a href="#reply">返信 / reply</a>
<div class="ck-editor"><div class="ck-editor__editable" contenteditable="true" role="textbox"></div></div>
</main>
<aside id="own-panel"><h2>チケットのプロパティ</h2><p>担当者・優先度・タグ</p><button type="button">更新</button></aside>
</div></body></html>"""

# The helpdesks' agent UIs are app shells pinned to the viewport: a fixed right-hand panel
# (Zendesk's context panel, Freshdesk's ticket properties) that an overlay would cover.
PAGE_CSS = """body { margin: 0; font-family: sans-serif; }
#conversation { padding: 16px; margin-right: 300px; }
#own-panel { position: fixed; top: 0; right: 0; bottom: 0; width: 280px; background: #eef3fb;
  border-left: 2px solid #1f73b7; padding: 10px; box-sizing: border-box; }
.ck-editor__editable { border: 1px solid #999; min-height: 120px; }"""


def fake_helpdesk() -> Flask:
    app = Flask("fake-helpdesk-with-own-panel")

    @app.get("/agent/tickets/<int:ticket>")
    def zendesk(ticket: int):
        return Response(PAGE.format(title=f"Zendesk #{ticket}"), headers={"Content-Security-Policy": STRICT_CSP})

    @app.get("/page.css")
    def css():
        return Response(PAGE_CSS, mimetype="text/css")

    return app


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, Any]]:
    from connector import create_app
    from connector import extension_build as eb
    from connector.config import Settings
    from connector.web.auth import hash_password
    from tests.conftest import FIXTURES
    from tests.sidebar_seed import seed

    base = tmp_path_factory.mktemp("ext-build-e2e")
    app = create_app(Settings.from_env({"YORISOI_DATA_DIR": str(base / "data"), "YORISOI_WATCH": str(FIXTURES / "watch.toml"),
                                        "YORISOI_LOG_LEVEL": "WARNING"}))
    svc = app.extensions["yorisoi"]
    seed(svc)
    svc.store.accounts.create_user(ACCOUNT[0], hash_password(ACCOUNT[1]))
    connector, pages = ServerThread(app), ServerThread(fake_helpdesk())
    key = eb.generate_private_key_pem()
    result = eb.build(base / "out", eb.BuildOptions(connector_url=connector.url, test_origins=("http://127.0.0.1",),
                                                    signing_key_pem=key))
    unpacked = base / "unpacked"
    with zipfile.ZipFile(result.chrome_zip) as archive:
        archive.extractall(unpacked)
    shots = Path(os.environ.get("YORISOI_SCREENSHOT_DIR") or os.environ.get("YORISOI_E2E_SHOTS") or base / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(base / "profile"), executable_path=CHROMIUM, headless=True,
            args=[f"--disable-extensions-except={unpacked}", f"--load-extension={unpacked}", *CHROMIUM_ARGS],
            viewport={"width": 1280, "height": 800}, locale="ja-JP", env={**os.environ, "LANGUAGE": "ja"})
        try:
            worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker", timeout=15000)
            yield {"context": context, "ext_id": worker.url.split("/")[2], "api": connector.url, "pages": pages.url,
                   "svc": svc, "result": result, "shots": shots}
        finally:
            context.close()
            connector.stop()
            pages.stop()
            svc.close()
            shutil.rmtree(unpacked, ignore_errors=True)


def reset(stack: dict[str, Any], **values: Any) -> None:
    """Clear the extension's storage (a fresh install), then set `values`."""
    values.setdefault("uiLang", "ja")
    page = stack["context"].new_page()
    page.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    page.evaluate("async (values) => { await chrome.storage.local.clear(); await chrome.storage.local.set(values); }", values)
    page.close()


def sign_in(stack: dict[str, Any], name: str = ACCOUNT[0], password: str = ACCOUNT[1]):
    page = stack["context"].new_page()
    page.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    page.wait_for_selector("html[lang]", state="attached", timeout=15000)
    page.fill("#account", name)
    page.fill("#password", password)
    page.click("#signin")
    return page


def open_ticket(stack: dict[str, Any], ticket: int, state: str = "ok"):
    page = stack["context"].new_page()
    page.goto(f"{stack['pages']}/agent/tickets/{ticket}")
    page.wait_for_selector(f"#yorisoi-sidebar-host[data-state='{state}']", state="attached", timeout=15000)
    return page


def rect(page, selector: str) -> dict[str, float]:
    return page.locator(selector).evaluate("n => { const r = n.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; }")


def our_panel(page):
    return page.locator("#yorisoi-sidebar-host aside.panel")


def assert_own_panel_uncovered(page) -> None:
    own = rect(page, "#own-panel")
    ours = our_panel(page).evaluate("n => { const r = n.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; }")
    assert own["width"] == pytest.approx(280, abs=1)
    assert own["right"] <= ours["left"] + 0.5, (own, ours)
    # What the agent clicks on in the helpdesk's panel is the helpdesk's, not ours.
    hit = page.evaluate("""() => { const b = document.querySelector('#own-panel button').getBoundingClientRect();
        const n = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2); return n && n.textContent; }""")
    assert hit == "更新"


def test_the_built_zip_loads_with_the_id_its_key_gives(stack):
    assert stack["ext_id"] == stack["result"].chrome_id


def test_sign_in_from_the_options_page_end_to_end(stack):
    reset(stack)  # a fresh install: no token, the connector URL comes from the build
    page = sign_in(stack, password="wrong password")
    page.locator("#status.error").wait_for(timeout=15000)
    assert "アカウント名またはパスワードが違います" in page.inner_text("#status")
    assert page.input_value("#url") == stack["api"]  # preset by the build
    assert page.input_value("#password") == ""
    page.close()
    page = sign_in(stack)
    page.locator("#status", has_text="佐藤").wait_for(timeout=15000)
    assert "接続できました（佐藤 として）" in page.inner_text("#status")
    assert page.locator("#signed-in").inner_text() == "佐藤 としてログインしています。"
    assert not page.locator("#signin-form").is_visible() and page.locator("#signout").is_visible()
    page.screenshot(path=str(stack["shots"] / "extension-options-signed-in-ja.png"))
    stored = page.evaluate("chrome.storage.local.get(['apiToken', 'signedInAs'])")
    assert stored["apiToken"].startswith("ysi_") and stored["signedInAs"] == "佐藤"
    page.close()
    # The minted token is this agent's, made by sign-in, and works on /api/v1.
    rows = [r for r in stack["svc"].store.accounts.list_agent_tokens() if r["revoked_at"] is None]
    assert [(r["agent"], r["origin"]) for r in rows] == [("佐藤", "signin")]
    ticket = open_ticket(stack, 101)
    assert "田中 健" in our_panel(ticket).inner_text()
    ticket.close()
    # `yorisoi token revoke` cuts it off: the sidebar says the token was refused.
    stack["svc"].store.accounts.revoke_agent_token(rows[0]["id"])
    ticket = open_ticket(stack, 101, state="unauthorized")
    ticket.close()


def test_sign_out_revokes_the_token(stack):
    reset(stack)
    page = sign_in(stack)
    page.locator("#signout").wait_for(state="visible", timeout=15000)
    token = page.evaluate("chrome.storage.local.get('apiToken')")["apiToken"]
    page.click("#signout")
    page.locator("#status", has_text="ログアウトしました").wait_for(timeout=15000)
    assert page.evaluate("chrome.storage.local.get('apiToken')") == {}
    from connector.agents import authenticate
    assert authenticate(stack["svc"].store, token) is None
    page.close()


def test_panel_on_a_yorisoi_ticket_sits_beside_the_helpdesks_own_panel(stack):
    reset(stack)
    sign_in(stack).locator("#status", has_text="佐藤").wait_for(timeout=15000)
    page = open_ticket(stack, 101)
    toggle = our_panel(page).locator("button.toggle")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert our_panel(page).evaluate("n => n.getBoundingClientRect().width") == pytest.approx(360, abs=1)
    assert_own_panel_uncovered(page)
    page.screenshot(path=str(stack["shots"] / "extension-panel-beside-ticket-1280-ja.png"))
    assert (stack["shots"] / "extension-panel-beside-ticket-1280-ja.png").stat().st_size > 30_000
    page.close()


def test_not_a_yorisoi_ticket_opens_nothing_and_leaves_the_page_alone(stack):
    reset(stack)
    sign_in(stack).locator("#status", has_text="佐藤").wait_for(timeout=15000)
    page = open_ticket(stack, 999, state="not_found")
    assert not page.locator("#yorisoi-sidebar-host").is_visible()
    assert rect(page, "#own-panel")["right"] == pytest.approx(1280, abs=1)
    assert page.evaluate("document.documentElement.style.marginRight") == ""
    page.close()


def test_collapse_is_keyboard_reachable_and_remembered_for_the_next_ticket(stack):
    reset(stack)
    sign_in(stack).locator("#status", has_text="佐藤").wait_for(timeout=15000)
    page = open_ticket(stack, 101)
    # Tab through the page until the focus lands on our toggle (it is in the Tab order).
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("() => { const h = document.getElementById('yorisoi-sidebar-host');"
                         " return document.activeElement === h && h.shadowRoot.activeElement.classList.contains('toggle'); }"):
            break
    else:
        pytest.fail("the collapse button is not reachable with Tab")
    outline = page.evaluate("() => getComputedStyle(document.getElementById('yorisoi-sidebar-host').shadowRoot.activeElement).outlineStyle")
    assert outline not in ("", "none")  # a visible focus ring
    page.keyboard.press("Enter")
    toggle = our_panel(page).locator("button.toggle")
    assert toggle.get_attribute("aria-expanded") == "false" and toggle.get_attribute("aria-label") == "開く"
    assert our_panel(page).evaluate("n => n.getBoundingClientRect().width") == pytest.approx(36, abs=1)
    assert toggle.is_visible()
    assert_own_panel_uncovered(page)  # the collapsed strip does not cover it either
    page.screenshot(path=str(stack["shots"] / "extension-panel-collapsed-1280-ja.png"))
    page.close()
    # Remembered for every ticket (storage.local), not only this one.
    page = open_ticket(stack, 100)
    toggle = our_panel(page).locator("button.toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.focus()
    page.keyboard.press("Space")
    assert toggle.get_attribute("aria-expanded") == "true"
    page.close()
    helper = stack["context"].new_page()
    helper.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    assert helper.evaluate("chrome.storage.local.get('panelCollapsed')") == {"panelCollapsed": False}
    helper.close()
