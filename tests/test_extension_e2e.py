"""The sidebar extension end to end in headless Chromium (Debian's /usr/bin/chromium, driven by
Python playwright; never `playwright install`).

The real connector app (seeded SQLite, tests/sidebar_seed.py) serves /api/v1 on one loopback
port; a fake agent page on another serves pages whose paths mimic Zendesk (/agent/tickets/<id>)
and Freshdesk (/a/tickets/<id>) under a strict CSP, with a reply editor and a link that
switches tickets with history.pushState like both helpdesks do. The manifest's content script
matches http://127.0.0.1/agent/* and /a/* for these pages (a match pattern without a port
matches every port), as extension.md's recipe does.

Set YORISOI_E2E_SHOTS=<dir> to keep the screenshots somewhere you can look at them.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask, Response

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "extension"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="python playwright is not installed (pip install -e '.[test]')"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed: apt-get install chromium (.ci/run does this)"),
]

# Flags from extension.md: both extension flags (Debian's wrapper and playwright would otherwise
# disable extensions), root needs --no-sandbox, and nothing may reach the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--lang=ja"]

STRICT_CSP = "default-src 'self'; style-src 'self'; frame-src 'self'; img-src 'self'"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/page.css"><script src="/app.js" defer></script></head>
<body><main><h1 id="heading">{title}</h1>
<nav><a data-spa href="{next}">次のチケット / next ticket</a> · <a data-spa href="{dashboard}">ダッシュボード</a></nav>
<div class="{editor_wrap}"><div class="{editor_class}" contenteditable="true" role="textbox"></div></div>
</main></body></html>"""

APP_JS = """// The helpdesks switch tickets without reloading: pushState and a re-render.
window.pageLoads = (window.pageLoads || 0) + 1;
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-spa]');
  if (!link) return;
  event.preventDefault();
  history.pushState({}, '', link.getAttribute('href'));
  document.getElementById('heading').textContent = location.pathname;
  document.title = location.pathname;
});
"""


def fake_agent_app() -> Flask:
    app = Flask("fake-agent-pages")

    def page(title: str, next_href: str, dashboard: str, editor_wrap: str, editor_class: str) -> Response:
        html = PAGE.format(title=title, next=next_href, dashboard=dashboard, editor_wrap=editor_wrap,
                           editor_class=editor_class)
        return Response(html, headers={"Content-Security-Policy": STRICT_CSP})

    @app.get("/agent/tickets/<int:ticket>")
    def zendesk(ticket: int):
        # Zendesk Agent Workspace: CKEditor 5 in the omnicomposer.
        return page(f"Zendesk #{ticket}", f"/agent/tickets/{ticket + 1}", "/agent/dashboard", "ck-editor",
                    "ck-editor__editable")

    @app.get("/agent/dashboard")
    def dashboard():
        return page("Zendesk dashboard", "/agent/tickets/101", "/agent/dashboard", "ck-editor", "ck-editor__editable")

    @app.get("/a/tickets/<int:ticket>")
    def freshdesk(ticket: int):
        # Freshdesk: the Froala editor of the reply box.
        return page(f"Freshdesk #{ticket}", f"/a/tickets/{ticket + 1}", "/a/dashboard/default", "fr-box",
                    "fr-element fr-view")

    @app.get("/app.js")
    def app_js():
        return Response(APP_JS, mimetype="text/javascript")

    @app.get("/page.css")
    def page_css():
        return Response("body{font-family:sans-serif;margin:0;padding:16px;max-width:900px}"
                        ".ck-editor__editable,.fr-element{border:1px solid #999;min-height:120px;padding:8px}",
                        mimetype="text/css")

    return app


class ServerThread:
    """A WSGI app on 127.0.0.1 (any free port) in a daemon thread."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, Any]]:
    from connector import create_app
    from connector.agents import create_token
    from connector.config import Settings
    from tests.conftest import FIXTURES
    from tests.sidebar_seed import seed

    base = tmp_path_factory.mktemp("sidebar-e2e")
    app = create_app(Settings.from_env({"YORISOI_DATA_DIR": str(base / "data"), "YORISOI_WATCH": str(FIXTURES / "watch.toml"),
                                        "YORISOI_LOG_LEVEL": "WARNING"}))
    svc = app.extensions["yorisoi"]
    seeded = seed(svc)
    _, token = create_token(svc.store, "佐藤")
    _, revoked = create_token(svc.store, "退職者")
    svc.store.accounts.revoke_agent_token(2)
    connector, pages = ServerThread(app), ServerThread(fake_agent_app())
    extension = base / "extension"
    shutil.copytree(EXTENSION, extension)
    shots = Path(os.environ.get("YORISOI_E2E_SHOTS") or base / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(base / "profile"), executable_path=CHROMIUM, headless=True,
            args=[f"--disable-extensions-except={extension}", f"--load-extension={extension}", *CHROMIUM_ARGS],
            viewport={"width": 1280, "height": 1100}, locale="ja-JP", env={**os.environ, "LANGUAGE": "ja"})
        try:
            worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker", timeout=15000)
            ext_id = worker.url.split("/")[2]
            yield {"context": context, "ext_id": ext_id, "api": connector.url, "pages": pages.url, "token": token,
                   "revoked": revoked, "svc": svc, "seeded": seeded, "shots": shots, "worker": worker}
        finally:
            context.close()
            connector.stop()
            pages.stop()
            svc.close()


def configure(stack: dict[str, Any], **values: Any) -> None:
    """Set the extension's settings (after clearing them) through one of its own pages. The UI
    is Japanese unless uiLang says otherwise: Debian's chromium ships only the en-US locale
    (chromium-l10n has the rest), so the browser itself stays English here."""
    values.setdefault("uiLang", "ja")
    page = stack["context"].new_page()
    page.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    page.evaluate("""async (values) => {
        await chrome.storage.local.clear();
        const set = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null));
        await chrome.storage.local.set(set);
    }""", values)
    page.close()


def open_ticket(stack: dict[str, Any], path: str, state: str = "ok"):
    page = stack["context"].new_page()
    page.goto(stack["pages"] + path)
    page.wait_for_selector(f"#yorisoi-sidebar-host[data-state='{state}']", state="attached", timeout=15000)
    return page


def panel(page):
    return page.locator("#yorisoi-sidebar-host aside.panel")


def test_sidebar_renders_profile_and_history(stack):
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101")
    assert page.locator("#yorisoi-sidebar-host").get_attribute("data-rendered") == "101"
    side = panel(page)
    text = side.inner_text()
    # Profile card (Japanese UI: the browser runs with --lang=ja)
    for expected in ["田中 健", "@tanaka_k", "フォロワー 1,520", "開設 10年", "通勤は毎日ソラモバイル", "東京"]:
        assert expected in text, expected
    assert side.locator("a.handle").get_attribute("href") == "https://x.com/tanaka_k"
    # Risk, priority, labels with evidence
    assert "優先度: 緊急" in text and "拡散リスク: 高" in text and "最悪 (-0.9)" in text
    # The post, its link and X's prepared-reply link (X refuses API replies here)
    assert "また駅で全然繋がらない" in text
    assert side.locator("a.link-post").get_attribute("href") == "https://x.com/tanaka_k/status/1860000000000000103"
    assert side.locator("a.link-reply").get_attribute("href") == "https://x.com/intent/tweet?in_reply_to=1860000000000000103"
    # Earlier posts newest first, our earlier reply, the other ticket, the chart
    history = side.locator("ol.history li").all_inner_texts()
    assert "駅で繋がりにくい" in history[0] and "乗り換えて正解" in history[1]
    assert "鈴木" in side.locator("ol.exchanges").inner_text()
    assert "#100" in side.locator("ul.tickets").inner_text()
    assert side.locator("svg.chart circle").count() == 3
    page.screenshot(path=str(stack["shots"] / "sidebar-zendesk-101.png"))
    assert (stack["shots"] / "sidebar-zendesk-101.png").stat().st_size > 30_000
    page.close()


def test_follows_navigation_and_hostile_text_stays_inert(stack):
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101")
    page.click("text=次のチケット / next ticket")  # pushState to /agent/tickets/102: no reload
    page.wait_for_selector("#yorisoi-sidebar-host[data-rendered='102']", state="attached", timeout=15000)
    assert page.evaluate("window.pageLoads") == 1
    side = panel(page)
    text = side.inner_text()
    # The attacker's post, name and bio are shown as text; nothing ran, nothing became markup.
    assert "<script>document.title='pwned2'</script>" in text and '<img src=x onerror="document.title=' in text
    assert "<script>document.title='pwned-bio'</script>" in text
    assert page.title() == "/agent/tickets/102"  # not 'pwned'
    assert side.locator("script").count() == 0
    assert side.locator("img").count() == 0  # the javascript: avatar was dropped, the <img> text is text
    hrefs = side.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href') || '')")
    assert hrefs and not any(h.lower().startswith("javascript:") for h in hrefs)
    assert side.locator("a.link-post").count() == 0  # its javascript: post URL was dropped
    # Back (popstate) returns to 101; a page without a ticket has no sidebar.
    page.go_back()
    page.wait_for_selector("#yorisoi-sidebar-host[data-rendered='101']", state="attached", timeout=15000)
    page.click("text=ダッシュボード")
    page.wait_for_selector("#yorisoi-sidebar-host", state="detached", timeout=15000)
    page.close()


def test_freshdesk_ticket_page(stack):
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/a/tickets/7")
    text = panel(page).inner_text()
    assert "山田" in text and "家族割" in text
    assert panel(page).locator("a.handle").get_attribute("href") == "https://mstdn.example/@yamada"
    page.close()


def test_draft_check_shows_findings(stack):
    from tests.sidebar_seed import BAD_REPLY
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101")
    page.locator(".ck-editor__editable").fill(BAD_REPLY)
    panel(page).locator("button.check-btn").click()
    page.wait_for_selector("#yorisoi-sidebar-host li.finding", timeout=15000)
    findings = panel(page).locator("li.finding")
    rules = set(findings.evaluate_all("items => items.map(li => li.dataset.rule)"))
    assert rules == {"length", "signature", "similar_reply", "stock_phrase", "personal_data", "tone"}
    text = panel(page).locator(".findings").inner_text()
    assert "要修正" in text and "電話番号" in text and "DM" in text and "/ 280" in text
    assert panel(page).locator("textarea.draft").input_value().startswith("鈴木様")
    panel(page).locator(".findings").scroll_into_view_if_needed()
    page.screenshot(path=str(stack["shots"] / "sidebar-draft-check.png"))
    page.close()


def expanded(page):
    """A problem shows as the collapsed strip (it never opens itself over the ticket): expand it."""
    toggle = panel(page).locator("button.toggle")
    if toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    return panel(page)


def test_clear_states(stack):
    # Not configured
    configure(stack)
    page = open_ticket(stack, "/agent/tickets/101", state="not_configured")
    assert "未設定" in expanded(page).inner_text()
    page.close()
    # Token rejected (revoked)
    configure(stack, connectorUrl=stack["api"], apiToken=stack["revoked"])
    page = open_ticket(stack, "/agent/tickets/101", state="unauthorized")
    assert "トークンが拒否されました" in expanded(page).inner_text()
    page.close()
    # Connector unreachable (nothing listens there)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    configure(stack, connectorUrl=f"http://127.0.0.1:{closed}", apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101", state="unreachable")
    assert "接続できません" in expanded(page).inner_text()
    page.close()
    # A ticket Yorisoi did not create: the panel does not open at all (issue 18)
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/999", state="not_found")
    assert not page.locator("#yorisoi-sidebar-host").is_visible()
    assert "Yorisoi が作成したものではありません" in panel(page).text_content()
    page.close()


def test_options_page_saves_and_checks_the_connection(stack):
    configure(stack, uiLang=None)  # `auto`: the browser's language
    page = stack["context"].new_page()
    page.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    # options.js binds the form after asking the background for the UI messages, in the same
    # turn as it sets <html lang>: on a busy machine a click before that submits the bare form.
    page.wait_for_selector("html[lang]", state="attached", timeout=15000)
    page.fill("#url", "javascript:alert(1)")
    page.click("#save")
    assert "http(s)://" in page.inner_text("#status") and page.input_value("#lang") == "auto"
    page.fill("#url", stack["api"] + "/")
    page.click("#token-box summary")  # pasting a token is the fallback to signing in
    page.fill("#token", stack["token"])
    page.click("#save")  # loopback is granted in the manifest: permissions.request resolves at once
    # A locator wait, not wait_for_function: the options page's CSP (script-src 'self') forbids
    # the eval that wait_for_function's polling uses, so it failed whenever the check was slow.
    page.locator("#status", has_text="佐藤").wait_for(timeout=15000)
    stored = page.evaluate("chrome.storage.local.get(['connectorUrl', 'apiToken'])")
    # `auto` follows chrome.i18n.getUILanguage(): ja-JP here (launched with locale ja-JP).
    assert "接続できました（佐藤 として）" in page.inner_text("#status")
    assert stored == {"connectorUrl": stack["api"], "apiToken": stack["token"]}
    assert page.evaluate("chrome.storage.local.get('uiLang')") == {"uiLang": "auto"}
    assert page.input_value("#token") == ""  # not left on screen
    page.close()


def test_side_panel_shows_the_same_view(stack):
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101")
    helper = stack["context"].new_page()
    helper.goto(f"chrome-extension://{stack['ext_id']}/options.html")
    tab_id = helper.evaluate("""async (url) => {
        const tabs = await chrome.tabs.query({});
        return tabs.find(t => t.url === url).id;
    }""", page.url)
    enabled = helper.evaluate("async (tabId) => (await chrome.sidePanel.getOptions({tabId})).enabled", tab_id)
    assert enabled is True
    # sidePanel.open() needs a user gesture: open the panel's page as a tab for that ticket tab.
    helper.goto(f"chrome-extension://{stack['ext_id']}/sidepanel.html?tabId={tab_id}")
    helper.wait_for_selector("aside.panel[data-rendered='101']", timeout=15000)
    assert "田中 健" in helper.inner_text("aside.panel")
    helper.close()
    page.close()


def test_correction_buttons_store_a_correction(stack):
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/a/tickets/7")  # the Mastodon question (nobody else corrects it)
    row = panel(page).locator(".label[data-label='intent']")
    row.locator("button.correct-btn[data-value='request']").click()
    row.locator("button.correct-btn.done").wait_for(timeout=15000)
    assert "✓" in row.locator(".label-value").inner_text()
    [correction] = stack["svc"].store.corrections.list_corrections(label="intent")
    assert (correction["new_value"], correction["agent"]) == ("request", "佐藤")
    page.reload()
    page.wait_for_selector("#yorisoi-sidebar-host[data-state='ok']", state="attached", timeout=15000)
    assert "要望 に修正済み（佐藤）" in panel(page).locator(".label[data-label='intent']").inner_text()
    page.close()


def test_suggested_draft_inserts_on_click_and_the_check_follows_typing(stack):
    """Help writing the reply (issue 18): the suggested draft reaches the helpdesk editor only on
    the agent's click, and the draft check runs by itself 400 ms after typing stops."""
    configure(stack, connectorUrl=stack["api"], apiToken=stack["token"])
    page = open_ticket(stack, "/agent/tickets/101")
    editor = page.locator(".ck-editor__editable")
    assert editor.inner_text().strip() == ""  # nothing is put anywhere by itself
    suggested = panel(page).locator("[data-field='suggested-draft'] .suggested-text").inner_text()
    assert suggested.startswith("田中 健様、") and "繋がらない" in suggested
    assert panel(page).locator("[data-field='similar-cases'] li").count() >= 1
    panel(page).locator("button.insert-btn").click()
    page.wait_for_function("() => document.querySelector('.ck-editor__editable').innerText.includes('田中 健様')", timeout=10000)
    # Typing in the editor re-checks the draft without a click.
    editor.click()
    page.keyboard.press("End")
    page.keyboard.type("草")
    page.wait_for_selector("#yorisoi-sidebar-host [data-field='grapheme-count']", state="attached", timeout=15000)
    assert panel(page).locator("textarea.draft").input_value().endswith("草")
    assert "tone" in panel(page).locator("li.finding").evaluate_all("items => items.map(li => li.dataset.rule)")
    panel(page).locator("[data-field='reply-help']").scroll_into_view_if_needed()
    page.screenshot(path=str(stack["shots"] / "sidebar-reply-help.png"))
    page.close()
