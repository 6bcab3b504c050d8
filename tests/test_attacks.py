"""Attacks: secrets never reach logs, error pages or CLI output; every signature and token check
is constant-time (hmac.compare_digest); hostile post text is never markup anywhere it is shown."""
from __future__ import annotations

import ast
import hmac
import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import Settings
from connector.helpdesks.zendesk.channel.tokens import VERSION
from connector.poller import Poller
from tests.conftest import SUPERVISOR, login, post_dict, sign
from tests.fakes.base import LoopbackServer
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk
from tests.test_channel import PUBLIC_URL, install

ROOT = Path(__file__).resolve().parents[1]

#: A distinctive value for every secret variable (README: the variables marked Secret, the
#: helpdesks' and networks' credentials, the database password).
SECRETS = {
    "YORISOI_WEBHOOK_SECRET": "SEKRET-webhook-4f1d9a",
    "YORISOI_CHANNEL_SECRET": "SEKRET-channel-7b2c0e55aa",
    "YORISOI_SECRET_KEY": "SEKRET-flask-key-0c3e",
    "ZENDESK_API_TOKEN": "SEKRETzendeskToken91",
    "ZENDESK_WEBHOOK_SECRET": "SEKRET-zd-webhook-55e1",
    "FRESHDESK_API_KEY": "SEKRETfreshdeskKey23",
    "FRESHDESK_WEBHOOK_TOKEN": "SEKRET-fd-webhook-8d7a",
    "X_BEARER_TOKEN": "SEKRETxBearer0451",
    "X_USER_ACCESS_TOKEN": "SEKRETxUserAccess77",
    "X_USER_REFRESH_TOKEN": "SEKRETxUserRefresh88",
    "X_CLIENT_SECRET": "SEKRETxClientSecret99",
    "MASTODON_ACCESS_TOKEN": "SEKRETmastodon3141",
    "BLUESKY_APP_PASSWORD": "SEKRET-bsky-app-pass",
}
DB_PASSWORD = "SEKRET-db-password-2718"
LEAK = re.compile("SEKRET")


def _dead_url() -> str:
    server = LoopbackServer(lambda e, s: None)
    server.reserve_port()  # nothing listens there: connection refused
    return server.url


def test_secrets_never_appear_in_logs_error_pages_or_cli_output(env, app_factory, caplog, monkeypatch):
    import tests.test_channel
    monkeypatch.setattr(tests.test_channel, "SECRET", SECRETS["YORISOI_CHANNEL_SECRET"])  # install() signs with it
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    fake = FakeZendesk(token=SECRETS["ZENDESK_API_TOKEN"])
    fake.set_mode("error")  # every delivery fails with a 500 …
    zendesk = LoopbackServer(fake.wsgi).start()
    dead = _dead_url()
    secrets_env = {**SECRETS, "YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": zendesk.url, "ZENDESK_EMAIL": "agent@example.com",
                   "YORISOI_PUBLIC_URL": PUBLIC_URL, "X_API_URL": dead, "X_USER_ID": "1", "X_CLIENT_ID": "cid",
                   "MASTODON_INSTANCES": dead, "BLUESKY_HANDLE": "brand.example.com", "BLUESKY_SERVICE": dead}
    app = app_factory(**secrets_env)
    svc = app.extensions["yorisoi"]
    client = app.test_client()
    try:
        body = json.dumps([post_dict(id="s1"), post_dict(id="s2", text="ソラモバイル遅い", author={"id": "s2"})]).encode()
        seen.append(client.post("/sources/webhook", data=body,
                                headers={"X-Yorisoi-Signature": sign(body, SECRETS["YORISOI_WEBHOOK_SECRET"])}).get_data(as_text=True))
        seen.append(client.post("/sources/webhook", data=body, headers={"X-Yorisoi-Signature": "sha256=00"}).get_data(as_text=True))
        seen.append(client.post("/zendesk/webhook", data=b"{}", headers={"X-Zendesk-Webhook-Signature": "x",
                                                                         "X-Zendesk-Webhook-Signature-Timestamp": "1"}).get_data(as_text=True))
        seen.append(client.post("/zendesk/channel/pull", data={"metadata": "forged.metadata"}).get_data(as_text=True))
        seen.append(client.post("/zendesk/channel/admin_ui/save", data={"form_token": "x", "install_code": "y"}).get_data(as_text=True))
        seen.append(client.get("/no/such/page").get_data(as_text=True))
        seen.append(client.post("/sources/webhook", data=b"x" * 2_000_000).get_data(as_text=True))
        metadata = install(client, subdomain="acme")
        seen.append(client.post("/zendesk/channel/pull", data={"metadata": metadata}).get_data(as_text=True))
        seen.append(json.dumps(svc.pipeline.deliver().errors, ensure_ascii=False))  # 500s from Zendesk
        fake.token = "another"  # … and then 401s (bad credentials)
        fake.set_mode("ok")
        svc.store.outbox.retry_failed()
        svc.pipeline.deliver()
        seen.append(json.dumps(svc.store.outbox.outbox_rows(), default=str, ensure_ascii=False))
        report = Poller(svc).run_once(compliance=False)  # every network unreachable
        seen.append(json.dumps([u.as_dict() for u in report.units], ensure_ascii=False))
        seen.append(repr(svc.settings) + repr(svc.helpdesk) + repr(svc.store) + json.dumps(svc.helpdesk.describe()))
        seen.append(client.post("/login", data={"name": SUPERVISOR[0], "password": "wrong"}).get_data(as_text=True))
        login(client, app)
        for page in ("/", "/tickets", "/decisions", "/outbox", "/posts/x:s1", "/healthz", "/risk"):
            seen.append(client.get(page).get_data(as_text=True))
        seen.append(client.get("/api/v1/me", headers={"Authorization": "Bearer SEKRET-not-a-token"}).get_data(as_text=True)
                    .replace("SEKRET-not-a-token", ""))  # (an echo of the caller's own guess would not be a leak)
    finally:
        zendesk.stop()
    runner = CliRunner()
    cli_env = {**env, **secrets_env, "YORISOI_DATABASE": f"postgresql://yorisoi:{DB_PASSWORD}@127.0.0.1:1/none"}
    seen.append(runner.invoke(main, ["--help"], env=cli_env).output)
    seen.append(repr(Settings.from_env(cli_env)))
    result = runner.invoke(main, ["check-config"], env={**env, **secrets_env})
    seen.append(result.output + str(result.exception or ""))
    seen.append(caplog.text)
    leaks = [(index, text[max(0, m.start() - 80):m.end() + 40]) for index, text in enumerate(seen)
             for m in LEAK.finditer(text)]
    assert not leaks, leaks


# --- constant-time checks -------------------------------------------------------------------
def test_every_secret_comparison_uses_compare_digest():
    """Audit: in connector/, a comparison whose operand names a secret, token, signature, MAC
    or digest is an `==`/`!=` nowhere; every such check goes through hmac.compare_digest.

    Not flagged: row ids (`token_id`), and SQL expressions (`table.c.token_hash == …`): the
    sidebar's tokens are looked up by the SHA-256 of 32 random bytes through a unique index,
    where timing could at most reveal a prefix of a digest nobody can steer (connector/agents.py)."""
    suspicious = re.compile(r"(secret|token|signature|digest|mac|password|install_code|expected)", re.I)
    offenders = []
    for path in (ROOT / "connector").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                names = [ast.unparse(part) for part in (node.left, *node.comparators)]
                if any(".c." in name for name in names):
                    continue
                names = [name for name in names if not name.endswith("_id")]
                if any(suspicious.search(name) for name in names) and not any(
                        name.startswith(("'", '"')) or name in ("None",) for name in names[1:]):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, offenders


@pytest.fixture
def compare_spy(monkeypatch):
    calls: list[tuple[bytes | str, bytes | str]] = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_each_signature_and_token_check_calls_compare_digest(app_factory, compare_spy):
    fd = FakeFreshdesk(api_key="k")
    server = LoopbackServer(fd.wsgi).start()
    try:
        zapp = app_factory(YORISOI_HELPDESK="zendesk", ZENDESK_SUBDOMAIN="acme", ZENDESK_EMAIL="a@example.com",
                           ZENDESK_API_TOKEN="t", ZENDESK_WEBHOOK_SECRET="zsecret-0123456789abcdef", YORISOI_PUBLIC_URL=PUBLIC_URL,
                           YORISOI_CHANNEL_SECRET="channel-secret-for-tests-0123456789")
        fapp = app_factory(YORISOI_HELPDESK="freshdesk", FRESHDESK_URL=server.url, FRESHDESK_API_KEY="k",
                           FRESHDESK_WEBHOOK_TOKEN="fd-token-0123456789abcdef", FRESHDESK_GROUP_ID="1")
        checks = {
            "source webhook": lambda: zapp.test_client().post("/sources/webhook", data=b"{}",
                                                               headers={"X-Yorisoi-Signature": "sha256=" + "0" * 64}),
            "zendesk webhook": lambda: zapp.test_client().post("/zendesk/webhook", data=b"{}", headers={
                "X-Zendesk-Webhook-Signature": "AAAA", "X-Zendesk-Webhook-Signature-Timestamp": "2026-01-01T00:00:00Z"}),
            "freshdesk webhook": lambda: fapp.test_client().post("/freshdesk/webhook", json={},
                                                                 headers={"X-Yorisoi-Token": "wrong-token-value"}),
            "channel metadata": lambda: zapp.test_client().post("/zendesk/channel/pull",
                                                                data={"metadata": f"{VERSION}.eyJhIjoxfQ.AAAA"}),
        }
        for name, call in checks.items():
            compare_spy.clear()
            response = call()
            assert response.status_code in (400, 401, 403), (name, response.status_code)
            assert compare_spy, f"{name}: refused without hmac.compare_digest"
    finally:
        server.stop()


# --- stored XSS -----------------------------------------------------------------------------
HOSTILE = '<script>alert("xss")</script><img src=x onerror=alert(1)><a href="javascript:alert(2)">x</a>'
RAW_MARKUP = re.compile(r"<script>alert|<img src=x onerror|href=\"javascript:", re.I)


def test_hostile_post_text_is_never_markup(app_factory, monkeypatch):
    fd = FakeFreshdesk(api_key="k")
    server = LoopbackServer(fd.wsgi).start()
    try:
        hostile_author = {"id": "h1", "name": HOSTILE, "handle": "h<b>x</b>", "bio": HOSTILE}
        post = post_dict(id="xss1", text="ソラモバイル " + HOSTILE, author=hostile_author,
                         url='https://x.com/h/status/1"><script>alert(3)</script>')
        # Dashboard, post page, outbox and the Channel framework's html_message (Zendesk mode)
        zapp = app_factory(YORISOI_PUBLIC_URL=PUBLIC_URL, YORISOI_CHANNEL_SECRET="channel-secret-for-tests-0123456789")
        zsvc = zapp.extensions["yorisoi"]
        zsvc.pipeline.ingest_raw(post, "test")
        zsvc.pipeline.deliver()
        client = login(zapp.test_client(), zapp)
        pages = {page: client.get(page).get_data(as_text=True)
                 for page in ("/", "/topics", "/risk", "/response-times", "/tickets", "/decisions", "/outbox",
                              "/posts/x:xss1", "/tickets?lang=en")}
        assert all("xss" in pages[p] for p in ("/tickets", "/decisions", "/posts/x:xss1")), "the post is shown"
        metadata = install(client)
        pulled = client.post("/zendesk/channel/pull", data={"metadata": metadata}).get_json()
        pages["channel html_message"] = "".join(r["html_message"] for r in pulled["external_resources"])
        assert "xss" in pages["channel html_message"]  # the post is there, as text
        # Freshdesk: the ticket description is HTML built by Yorisoi
        fapp = app_factory(YORISOI_HELPDESK="freshdesk", FRESHDESK_URL=server.url, FRESHDESK_API_KEY="k",
                           FRESHDESK_GROUP_ID="43000190415")
        fsvc = fapp.extensions["yorisoi"]
        fsvc.pipeline.ingest_raw({**post, "id": "xss2"}, "test")
        assert fsvc.pipeline.deliver().created == 1
        pages["freshdesk description"] = "".join(t.get("description") or "" for t in fd.tickets.values())
        assert "xss" in pages["freshdesk description"]
    finally:
        server.stop()
    for where, page in pages.items():
        assert not RAW_MARKUP.search(page), (where, RAW_MARKUP.search(page).group(0),
                                            page[max(0, RAW_MARKUP.search(page).start() - 200):][:400])
    assert "&lt;script&gt;" in pages["/posts/x:xss1"]


def test_library_loggers_stay_at_warning_at_debug(app_factory, caplog):
    """At YORISOI_LOG_LEVEL=DEBUG zenpy logged every ticket it sent (post text, author names),
    urllib3/requests the URLs, SQLAlchemy the parameters: library loggers inherited DEBUG from
    the root. They are held at WARNING; Yorisoi's own loggers keep the level (issue 16 #18)."""
    caplog.set_level(logging.DEBUG)
    app_factory(YORISOI_LOG_LEVEL="DEBUG")
    text = "ソラモバイル最悪 by 田中花子"
    for name in ("zenpy.lib.api", "zenpy.lib.request", "urllib3.connectionpool", "requests.packages",
                 "sqlalchemy.engine.Engine", "httpx", "feedparser"):
        logging.getLogger(name).debug("POST /api/v2/tickets.json %s", text)
        logging.getLogger(name).info("ticket body %s", text)
    assert text not in caplog.text
    logging.getLogger("zenpy.lib.api").warning("rate limited")
    logging.getLogger("connector.pipeline").debug("our own debug line")
    assert "rate limited" in caplog.text and "our own debug line" in caplog.text
