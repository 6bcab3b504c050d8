"""POST /zendesk/webhook: an agent's public comment in Zendesk is replied on the network once."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from connector.helpdesks.zendesk.client import WEBHOOK_BODY_TEMPLATE
from tests.conftest import post_dict
from tests.fakes.zendesk import FakeZendesk

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rz"
EMAIL, TOKEN = "agent@example.com", "zd-token"


@pytest.fixture
def fake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


@pytest.fixture
def zapp(app_factory, httpserver, fake):
    return app_factory(YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                       ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN, ZENDESK_WEBHOOK_SECRET=SECRET)


@pytest.fixture
def ticket_id(zapp):
    svc = zapp.extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="1", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.deliver()
    return svc.store.outbox.list_tickets()[0]["ticket_id"]


def signed(body: bytes, secret: str = SECRET, when: datetime | None = None) -> dict[str, str]:
    timestamp = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "Content-Type": "application/json"}


def body(ticket_id: str, **overrides: str) -> bytes:
    data = {"ticket_id": str(ticket_id), "comment_id": "9001", "public": "true",
            "text": "ご不便をおかけしております。", "agent": "佐藤", "author_role": "Agent"}
    data.update(overrides)
    return json.dumps(data, ensure_ascii=False).encode()


def post(client, raw: bytes, headers: dict[str, str]):
    return client.post("/zendesk/webhook", data=raw, headers=headers)


def test_agent_reply_is_sent_once_and_recorded(zapp, ticket_id):
    client = zapp.test_client()
    raw = body(ticket_id)
    first = post(client, raw, signed(raw))
    assert first.status_code == 200, first.json
    assert first.json["status"] == "recorded" and first.json["exchange"]["text"].endswith("（ソラモバイル 佐藤）")
    again = post(client, raw, signed(raw))  # Zendesk delivered it twice
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    exchanges = zapp.extensions["yorisoi"].store.exchanges.list_exchanges("x:1")
    assert [e["dedupe_key"] for e in exchanges] == [f"zendesk:{ticket_id}:9001"]


@pytest.mark.parametrize("headers", [
    {},
    {"X-Zendesk-Webhook-Signature": "bm9wZQ==", "X-Zendesk-Webhook-Signature-Timestamp": "2026-11-20T09:00:00Z"},
])
def test_bad_or_missing_signature_is_401(zapp, ticket_id, headers):
    response = post(zapp.test_client(), body(ticket_id), headers)
    assert response.status_code == 401 and "Signature" in response.json["error"]


def test_signature_with_another_secret_or_hex_is_401(zapp, ticket_id):
    raw = body(ticket_id)
    assert post(zapp.test_client(), raw, signed(raw, secret="other")).status_code == 401
    headers = signed(raw)
    timestamp = headers["X-Zendesk-Webhook-Signature-Timestamp"]
    headers["X-Zendesk-Webhook-Signature"] = hmac.new(SECRET.encode(), timestamp.encode() + raw, hashlib.sha256).hexdigest()
    assert post(zapp.test_client(), raw, headers).status_code == 401


def test_stale_timestamp_is_401(zapp, ticket_id):
    raw = body(ticket_id)
    response = post(zapp.test_client(), raw, signed(raw, when=datetime.now(timezone.utc) - timedelta(minutes=6)))
    assert response.status_code == 401 and "stale" in response.json["error"]
    fresh = post(zapp.test_client(), raw, signed(raw, when=datetime.now(timezone.utc) - timedelta(minutes=4)))
    assert fresh.status_code == 200


@pytest.mark.parametrize("overrides", [{"public": "false"}, {"author_role": "End-user"}])
def test_private_notes_and_customer_comments_are_ignored(zapp, ticket_id, overrides):
    raw = body(ticket_id, **overrides)
    response = post(zapp.test_client(), raw, signed(raw))
    assert response.status_code == 200 and response.json["status"] == "ignored"
    assert zapp.extensions["yorisoi"].store.exchanges.list_exchanges("x:1") == []


@pytest.mark.parametrize("raw, field", [
    (b"{not json", "body"),
    (json.dumps({"ticket_id": "12", "comment_id": "", "text": "x", "agent": "a"}).encode(), "comment_id"),
    (json.dumps({"ticket_id": "{{ticket.id}}", "comment_id": "1", "text": "x", "agent": "a"}).encode(), "ticket_id"),
    (json.dumps({"ticket_id": "12", "comment_id": "1", "text": "", "agent": "a"}).encode(), "text"),
    (json.dumps({"ticket_id": "12", "comment_id": "1", "text": "x"}).encode(), "agent"),
])
def test_bad_body_is_400_naming_the_field(zapp, raw, field):
    response = post(zapp.test_client(), raw, signed(raw))
    assert response.status_code == 400 and response.json["field"] == field and field in response.json["error"]


def test_ticket_not_created_by_yorisoi_is_404(zapp, ticket_id):
    raw = body("424242")
    response = post(zapp.test_client(), raw, signed(raw))
    assert response.status_code == 404 and response.json["status"] == "unknown_ticket"


def test_webhook_disabled_without_secret(app_factory, httpserver, fake):
    app = app_factory(YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                      ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN)
    response = app.test_client().post("/zendesk/webhook", data=b"{}")
    assert response.status_code == 503 and "ZENDESK_WEBHOOK_SECRET" in response.json["error"]


def test_webhook_needs_zendesk_as_helpdesk(client):
    response = client.post("/zendesk/webhook", data=b"{}")
    assert response.status_code == 503


def test_documented_body_template_is_json_once_filled():
    filled = re.sub(r"\{%.*?%\}", "", WEBHOOK_BODY_TEMPLATE)
    filled = re.sub(r"\{\{[^}]+\}\}", "1", filled)
    assert set(json.loads(filled)) == {"ticket_id", "comment_id", "public", "text", "agent", "author_role"}
