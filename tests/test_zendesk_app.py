"""The Zendesk app: the package against Zendesk's documented formats, the ZAF signed-URL JWT,
the sidebar page and its session, and a reply with quotes and line breaks through the app's
webhook body."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import zipfile
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from connector.helpdesks.zendesk.app import formats
from connector.helpdesks.zendesk.app.package import AppPackageError, AppSettings, app_files, zip_bytes
from connector.helpdesks.zendesk.app.signed import (
    SidebarSession,
    SidebarSessions,
    ZafNotConfigured,
    ZafSettings,
    ZafTokenError,
    verify_zaf_token,
)
from connector.helpdesks.zendesk.client import (
    STATUS_BODY_TEMPLATE,
    WEBHOOK_BODY_TEMPLATE,
    WEBHOOK_BODY_TEMPLATE_V2,
    webhook_signing_secret,
)
from tests.conftest import post_dict
from tests.fakes.zendesk import FakeZendesk
from tests.zaf_support import ACCOUNT, AGENT_ID, INSTALLATION, key_pair, zaf_token

PUBLIC_URL = "https://yorisoi.example.co.jp"
CHANNEL_SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def files():
    return app_files(AppSettings.make(PUBLIC_URL, CHANNEL_SECRET))


# --- the package -------------------------------------------------------------------------
def test_package_follows_the_documented_formats(files):
    assert formats.check_package(files) == []
    manifest = json.loads(files["manifest.json"])
    sidebar = manifest["location"]["support"]["ticket_sidebar"]
    assert sidebar == {"url": PUBLIC_URL + "/zendesk/app/sidebar", "signed": True, "flexible": True}
    assert manifest["private"] is True and manifest["frameworkVersion"] == "2.0" and manifest["signedUrls"] is True
    req = json.loads(files["requirements.json"])
    assert req["channel_integrations"] == {"yorisoi_channel": {"manifest_url": PUBLIC_URL + "/zendesk/manifest.json"}}
    hooks = req["webhooks"]
    assert hooks["yorisoi_reply_webhook"]["endpoint"] == PUBLIC_URL + "/zendesk/webhook"
    assert hooks["yorisoi_status_webhook"]["endpoint"] == PUBLIC_URL + "/zendesk/status"
    # Both sides derive the signing secrets: the admin copies none.
    assert hooks["yorisoi_reply_webhook"]["signing_secret"] == {
        "algorithm": "SHA256", "secret": webhook_signing_secret(CHANNEL_SECRET, "reply")}
    assert webhook_signing_secret(CHANNEL_SECRET, "reply") != webhook_signing_secret(CHANNEL_SECRET, "status")
    reply = req["triggers"]["yorisoi_reply_trigger"]["actions"][0]
    assert reply == {"field": "notification_webhook", "value": ["yorisoi_reply_webhook", WEBHOOK_BODY_TEMPLATE_V2]}
    status = req["triggers"]["yorisoi_status_trigger"]["actions"][0]
    assert status["value"] == ["yorisoi_status_webhook", STATUS_BODY_TEMPLATE]
    assert req["views"]["yorisoi_view"]["title"] == "Yorisoi（SNS）"
    # One drop-down per tagged label; its option values are the tags tickets already carry.
    sentiment = req["ticket_fields"]["yorisoi_sentiment"]
    assert sentiment["type"] == "tagger"
    assert {o["value"] for o in sentiment["custom_field_options"]} == {
        "sentiment_negative", "sentiment_neutral", "sentiment_positive"}
    assert json.loads(files["translations/ja.json"])["app"]["name"] and json.loads(files["translations/en.json"])["app"]["name"]


def test_zip_has_the_manifest_at_its_root_and_is_reproducible(files):
    data = zip_bytes(files)
    assert data == zip_bytes(dict(files))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted(files)
        assert archive.read("assets/logo.png")[:8] == b"\x89PNG\r\n\x1a\n"


def _broken(files, path, change):
    out = dict(files)
    if change is None:
        del out[path]
        return out
    data = json.loads(out[path])
    change(data)
    out[path] = json.dumps(data, ensure_ascii=False).encode()
    return out


BROKEN = [
    ("no logo", lambda f: {k: v for k, v in f.items() if k != "assets/logo.png"}, "assets/logo.png: required file"),
    ("nested manifest", lambda f: {("app/" + k if k == "manifest.json" else k): v for k, v in f.items()}, "root"),
    ("small logo wrong size", lambda f: dict(f, **{"assets/logo-small.png": f["assets/logo.png"]}), "128×128"),
    ("no author", lambda f: _broken(f, "manifest.json", lambda m: m.pop("author")), "'author'"),
    ("framework 1.0", lambda f: _broken(f, "manifest.json", lambda m: m.update(frameworkVersion="1.0")), "frameworkVersion"),
    ("http sidebar", lambda f: _broken(f, "manifest.json", lambda m: m["location"]["support"]["ticket_sidebar"].update(
        url="http://yorisoi.example.co.jp/zendesk/app/sidebar")), "must be https"),
    ("unknown location", lambda f: _broken(f, "manifest.json", lambda m: m["location"]["support"].update(
        side_panel={"url": PUBLIC_URL})), "unknown location"),
    ("signed not boolean", lambda f: _broken(f, "manifest.json", lambda m: m.update(signedUrls="yes")), "signedUrls"),
    ("parameter called name", lambda f: _broken(f, "manifest.json", lambda m: m.update(
        parameters=[{"name": "name", "type": "text"}])), "called 'name'"),
    ("unknown requirement", lambda f: _broken(f, "requirements.json", lambda r: r.update(dashboards={})), "unknown resource"),
    ("two channels", lambda f: _broken(f, "requirements.json", lambda r: r["channel_integrations"].update(
        other={"manifest_url": PUBLIC_URL + "/x.json"})), "only one channel"),
    ("channel without manifest_url", lambda f: _broken(f, "requirements.json", lambda r: r["channel_integrations"].update(
        yorisoi_channel={"url": PUBLIC_URL})), "'manifest_url'"),
    ("webhook without endpoint", lambda f: _broken(f, "requirements.json", lambda r: r["webhooks"][
        "yorisoi_reply_webhook"].pop("endpoint")), "'endpoint'"),
    ("trigger without title", lambda f: _broken(f, "requirements.json", lambda r: r["triggers"][
        "yorisoi_reply_trigger"].pop("title")), "'title'"),
    ("trigger to an undeclared webhook", lambda f: _broken(f, "requirements.json", lambda r: r["triggers"][
        "yorisoi_reply_trigger"]["actions"][0].update(value=["nope", "{}"])), "not declared"),
    ("the old free-text body", lambda f: _broken(f, "requirements.json", lambda r: r["triggers"][
        "yorisoi_reply_trigger"]["actions"][0].update(value=["yorisoi_reply_webhook", WEBHOOK_BODY_TEMPLATE])),
     "comment.value"),
    ("body not JSON", lambda f: _broken(f, "requirements.json", lambda r: r["triggers"][
        "yorisoi_status_trigger"]["actions"][0].update(value=["yorisoi_status_webhook", '{"id": {{ticket.id}}'])),
     "not JSON"),
    ("drop-down option with a space", lambda f: _broken(f, "requirements.json", lambda r: r["ticket_fields"][
        "yorisoi_sentiment"]["custom_field_options"].append({"name": "x", "value": "bad tag"})), "tag-like"),
    ("view without conditions", lambda f: _broken(f, "requirements.json", lambda r: r["views"]["yorisoi_view"].pop(
        "conditions")), "conditions"),
    ("translation without name", lambda f: _broken(f, "translations/en.json", lambda t: t["app"].pop("name")),
     "app.name"),
]


@pytest.mark.parametrize("name,breaks,expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_checker_fails_on_a_broken_package(files, name, breaks, expected):
    problems = formats.check_package(breaks(files))
    assert problems and any(expected in p for p in problems), problems


def test_settings_need_https_and_the_channel_secret():
    with pytest.raises(AppPackageError, match="https"):
        AppSettings.make("http://yorisoi.example.co.jp", CHANNEL_SECRET)
    with pytest.raises(AppPackageError, match="YORISOI_CHANNEL_SECRET"):
        AppSettings.make(PUBLIC_URL, "short")
    with pytest.raises(AppPackageError, match="YORISOI_PUBLIC_URL"):
        AppSettings.make(None, CHANNEL_SECRET)


def test_cli_writes_the_zip(tmp_path, monkeypatch):
    from connector.cli import main
    monkeypatch.setenv("YORISOI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("YORISOI_CHANNEL_SECRET", CHANNEL_SECRET)
    monkeypatch.delenv("YORISOI_PUBLIC_URL", raising=False)
    out = tmp_path / "yorisoi-zendesk.zip"
    result = CliRunner().invoke(main, ["zendesk-app", "--out", str(out), "--public-url", PUBLIC_URL])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        unpacked = {name: archive.read(name) for name in archive.namelist()}
    assert formats.check_package(unpacked) == []
    assert CHANNEL_SECRET not in out.read_bytes().decode("latin-1")  # only derived secrets travel
    missing = CliRunner().invoke(main, ["zendesk-app", "--out", str(tmp_path / "x.zip")])
    assert missing.exit_code != 0 and "YORISOI_PUBLIC_URL" in missing.output


# --- the ZAF JWT -------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forged(alg: str, sign) -> str:
    """A token with a hand-made header (PyJWT refuses to make these, rightly)."""
    claims = {"iss": ACCOUNT, "iat": 1, "exp": 9999999999, "sub": AGENT_ID,
              "aud": f"https://{ACCOUNT}/api/v2/apps/installations/{INSTALLATION}.json"}
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + sign(head.encode())


def hs256_with_public_key() -> str:
    """The algorithm-confusion attack: HMAC-signed with the (public) RSA key as the secret."""
    return _forged("HS256", lambda m: _b64(hmac.new(key_pair()[1].encode(), m, hashlib.sha256).digest()))


def unsigned_token() -> str:
    return _forged("none", lambda m: "")


def settings(key: str = "app") -> ZafSettings:
    return ZafSettings(public_key=key_pair(key)[1], account=ACCOUNT)


def test_good_token_names_the_agent():
    agent = verify_zaf_token(zaf_token(), settings())
    assert (agent.account, agent.user_id, agent.installation_id) == (ACCOUNT, AGENT_ID, INSTALLATION)


@pytest.mark.parametrize("token,code,ja", [
    (lambda: zaf_token(issued=datetime.now(timezone.utc).timestamp() - 3600), "expired", "有効期限"),
    (lambda: zaf_token(key="attacker"), "bad_signature", "署名"),
    (lambda: zaf_token(aud="https://sora.zendesk.com/api/v2/users/1.json"), "wrong_audience", "インストール"),
    (lambda: zaf_token(aud=f"https://other.zendesk.com/api/v2/apps/installations/{INSTALLATION}.json"),
     "wrong_audience", "インストール"),
    (lambda: zaf_token(iss="other.zendesk.com"), "wrong_issuer", "別の Zendesk"),
    (lambda: zaf_token(sub=None), "invalid_token", "確認できません"),
    (lambda: zaf_token(exp=None), "invalid_token", "確認できません"),
    (lambda: hs256_with_public_key(), "invalid_token", "確認できません"),
    (lambda: unsigned_token(), "invalid_token", "確認できません"),
    (lambda: "", "missing_token", "トークンがありません"),
])
def test_refused_tokens_say_why_in_japanese_and_english(token, code, ja):
    with pytest.raises(ZafTokenError) as caught:
        verify_zaf_token(token(), settings())
    assert caught.value.code == code and ja in caught.value.message_ja and caught.value.message_en


def test_unconfigured_sidebar_names_the_variable():
    with pytest.raises(ZafNotConfigured, match="ZENDESK_APP_PUBLIC_KEY"):
        verify_zaf_token(zaf_token(), ZafSettings(public_key=None, account=ACCOUNT))


def test_public_key_may_be_a_file(tmp_path):
    pem = tmp_path / "public_key.pem"
    pem.write_text(key_pair()[1])
    loaded = ZafSettings.from_env({"ZENDESK_APP_PUBLIC_KEY": str(pem), "ZENDESK_SUBDOMAIN": "sora"})
    assert loaded.public_key == key_pair()[1].strip() and loaded.account == ACCOUNT
    assert "BEGIN" not in repr(loaded)


def test_sidebar_sessions_expire_and_resist_tampering():
    clock = SidebarSessions("k" * 32)
    credential = clock.issue(SidebarSession(agent="佐藤", user_id="42", account=ACCOUNT))
    assert clock.read(credential) == SidebarSession(agent="佐藤", user_id="42", account=ACCOUNT)
    assert clock.read(credential[:-2] + "xx") is None
    assert SidebarSessions("other" * 8).read(credential) is None
    assert SidebarSessions("k" * 32, max_age=-1).read(credential) is None  # older than its lifetime


# --- the sidebar page ----------------------------------------------------------------------
@pytest.fixture
def seeded(app_factory):
    from tests.sidebar_seed import seed
    app = app_factory(ZENDESK_APP_PUBLIC_KEY=key_pair()[1], ZENDESK_SUBDOMAIN="sora")
    seeded = seed(app.extensions["yorisoi"])
    return app, seeded


def test_sidebar_page_gives_a_session_the_api_accepts(seeded):
    app, _ = seeded
    client = app.test_client()
    page = client.post("/zendesk/app/sidebar", data={"token": zaf_token()})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "frame-ancestors https://*.zendesk.com" in page.headers["Content-Security-Policy"]
    assert "static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js" in html
    credential = re.search(r'name="yorisoi-session" content="([^"]+)"', html)[1]
    assert credential.startswith("zaf_")
    context = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers={"Authorization": f"Bearer {credential}"})
    assert context.status_code == 200 and context.json["post"]["text"].startswith("ソラモバイル、また駅で")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {credential}"})
    assert me.json["agent"] == f"Zendesk #{AGENT_ID}"  # not Zendesk here: the id names the agent
    correction = client.post("/api/v1/corrections", json={"helpdesk": "zendesk", "ticket": "101", "label": "intent",
                                                          "value": "complaint"},
                             headers={"Authorization": f"Bearer {credential}"})
    assert correction.status_code == 201 and correction.json["agent"] == f"Zendesk #{AGENT_ID}"
    for name in ("render.js", "zaf_sidebar.js"):
        script = client.get(f"/zendesk/app/static/{name}")
        assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert client.get("/zendesk/app/static/background.js").status_code == 404


def test_sidebar_refuses_bad_tokens_with_bilingual_pages(seeded):
    app, _ = seeded
    client = app.test_client()
    expired = client.post("/zendesk/app/sidebar", data={"token": zaf_token(lifetime=-3600)})
    assert expired.status_code == 401
    text = expired.get_data(as_text=True)
    assert "有効期限が切れています" in text and "has expired" in text and "yorisoi-session" not in text
    wrong = client.post("/zendesk/app/sidebar", data={"token": zaf_token(key="attacker")})
    assert wrong.status_code == 401 and "署名が一致しません" in wrong.get_data(as_text=True)
    assert client.get("/zendesk/app/sidebar").status_code == 401  # opened outside Zendesk
    stale = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers={"Authorization": "Bearer zaf_forged"})
    assert stale.status_code == 401 and "再読み込み" in stale.json["message_ja"]


def test_sidebar_without_key_is_503_naming_it(app_factory):
    app = app_factory(ZENDESK_SUBDOMAIN="sora")
    answer = app.test_client().post("/zendesk/app/sidebar", data={"token": zaf_token()})
    assert answer.status_code == 503 and "ZENDESK_APP_PUBLIC_KEY" in answer.get_data(as_text=True)


# --- a reply with quotes and line breaks through the app's webhook body ----------------------
EMAIL, TOKEN = "agent@example.com", "zd-token"


def render_liquid(template: str, values: dict[str, str]) -> str:
    """What Zendesk's Liquid makes of the app's body: each placeholder replaced by its value
    (the `for comment in ticket.comments limit:1` loop yields the newest comment)."""
    out = re.sub(r"\{% for comment in ticket\.comments limit:1 %\}(.*?)\{% endfor %\}", r"\1", template)
    return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], out)


@pytest.mark.parametrize("hand_made", ["", "a-hand-made-webhook-secret"], ids=["app secret only", "both secrets"])
def test_reply_with_quotes_and_line_breaks_reaches_the_network_intact(app_factory, httpserver, files, hand_made):
    """The app's webhook is signed with the secret derived from YORISOI_CHANNEL_SECRET, accepted
    alone or beside ZENDESK_WEBHOOK_SECRET (a webhook made by hand before the app)."""
    fake = FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)
    app = app_factory(YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                      ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN, YORISOI_CHANNEL_SECRET=CHANNEL_SECRET,
                      ZENDESK_WEBHOOK_SECRET=hand_made)
    svc = app.extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="1", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.deliver()
    ticket_id = int(svc.store.outbox.list_tickets()[0]["ticket_id"])
    reply = 'ご不便をおかけしております。\n"二重請求" は返金します\\。\r\n{"not": "json"} </script>'
    fake.agent_comment(ticket_id, reply)
    comment = fake.comments[ticket_id][-1]
    agent = fake.users[comment["author_id"]]
    template = json.loads(files["requirements.json"])["triggers"]["yorisoi_reply_trigger"]["actions"][0]["value"][1]
    body = render_liquid(template, {"ticket.id": str(ticket_id), "comment.id": str(comment["id"]),
                                    "comment.is_public": "true", "current_user.id": str(agent["id"])}).encode()
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = json.loads(files["requirements.json"])["webhooks"]["yorisoi_reply_webhook"]["signing_secret"]["secret"]
    signature = base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
               "Content-Type": "application/json"}
    answer = app.test_client().post("/zendesk/webhook", data=body, headers=headers)
    assert answer.status_code == 200, answer.json
    sent = svc.store.exchanges.list_exchanges("x:1")
    assert len(sent) == 1 and sent[0]["text"].startswith(reply.strip())  # every quote and line break kept
    assert sent[0]["agent"] == agent["name"] and sent[0]["dedupe_key"] == f"zendesk:{ticket_id}:{comment['id']}"
    # The same call again (Zendesk retries): one reply only; a forged signature: refused.
    again = app.test_client().post("/zendesk/webhook", data=body, headers=headers)
    assert again.json["status"] == "duplicate"
    headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(b"x" * 32).decode()
    assert app.test_client().post("/zendesk/webhook", data=body, headers=headers).status_code == 401
    # The app's status webhook, signed with its own derived secret, is accepted too.
    status = render_liquid(STATUS_BODY_TEMPLATE, {"ticket.id": str(ticket_id), "ticket.status": "解決済み",
                                                  "ticket.updated_at_with_timestamp": timestamp,
                                                  "comment.is_public": "false", "current_user.role": "Agent"}).encode()
    status_secret = webhook_signing_secret(CHANNEL_SECRET, "status")
    signature = base64.b64encode(hmac.new(status_secret.encode(), timestamp.encode() + status,
                                          hashlib.sha256).digest()).decode()
    answer = app.test_client().post("/zendesk/status", data=status, headers=dict(
        headers, **{"X-Zendesk-Webhook-Signature": signature}))
    assert answer.status_code == 200 and answer.json["ticket_status"] == "solved"
