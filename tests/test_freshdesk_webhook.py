"""POST /freshdesk/webhook: the automation rule's call with an agent's reply goes back to the
network once, only with the right token."""
from __future__ import annotations

import pytest

from connector.helpdesks.freshdesk.webhook import comment_text, dedupe_key
from tests.conftest import post_dict
from tests.freshdesk_support import WEBHOOK_TOKEN, fake, fd_app, fd_svc  # noqa: F401
from tests.test_replies import RecordingSource


@pytest.fixture
def ticketed(fd_app, fd_svc):
    fd_svc.pipeline.ingest_raw(post_dict(id="7001", text="ソラモバイル、請求が二重です"), "test")
    fd_svc.pipeline.deliver()
    source = RecordingSource()
    fd_svc.sources["x"] = source
    return fd_app.test_client(), fd_svc.store.outbox.ticket_for("x:7001").ticket_id, source


def body(ticket_id, text="ご迷惑をおかけしております。DMで確認させてください。", agent="佐藤"):
    # What the README's rule sends: {{ticket.id}}, {{ticket.agent.name}}, {{ticket.latest_public_comment}}
    return {"ticket_id": ticket_id, "agent": agent, "text": text}


def test_good_token_in_header_posts_the_reply_signed_once(ticketed, fd_svc):
    client, ticket_id, source = ticketed
    first = client.post("/freshdesk/webhook", json=body(ticket_id), headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert first.status_code == 200, first.json
    assert first.json["status"] == "sent"
    again = client.post("/freshdesk/webhook", json=body(ticket_id), headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert again.status_code == 200 and again.json["status"] == "duplicate"  # Freshdesk re-sent the event
    assert len(source.calls) == 1
    post_key, text, key = source.calls[0]
    assert post_key == "x:7001" and text.endswith("（ソラモバイル 佐藤）")
    assert key.startswith(f"freshdesk:{ticket_id}:")
    [exchange] = fd_svc.store.exchanges.list_exchanges("x:7001")
    assert exchange["helpdesk"] == "freshdesk" and exchange["agent"] == "佐藤"


def test_token_in_query_string_also_works(ticketed):
    client, ticket_id, source = ticketed
    response = client.post(f"/freshdesk/webhook?token={WEBHOOK_TOKEN}", json=body(ticket_id))
    assert response.status_code == 200 and len(source.calls) == 1


@pytest.mark.parametrize("headers, query", [({}, ""), ({"X-Yorisoi-Token": "wrong-token-000000000"}, ""),
                                            ({}, "?token=wrong"), ({"X-Yorisoi-Token": WEBHOOK_TOKEN[:-1]}, "")])
def test_bad_or_missing_token_is_refused_before_anything_happens(ticketed, headers, query):
    client, ticket_id, source = ticketed
    response = client.post(f"/freshdesk/webhook{query}", json=body(ticket_id), headers=headers)
    assert response.status_code == 401 and "X-Yorisoi-Token" in response.json["error"]
    assert WEBHOOK_TOKEN not in response.get_data(as_text=True)
    assert source.calls == []


def test_webhook_disabled_without_a_token(app_factory, httpserver, fake):  # noqa: F811
    from tests.freshdesk_support import freshdesk_env
    app = app_factory(**freshdesk_env(httpserver, FRESHDESK_WEBHOOK_TOKEN=""))
    response = app.test_client().post("/freshdesk/webhook", json=body("1"), headers={"X-Yorisoi-Token": "x"})
    assert response.status_code == 503 and "FRESHDESK_WEBHOOK_TOKEN" in response.json["error"]


def test_webhook_is_absent_for_other_helpdesks(client):
    assert client.post("/freshdesk/webhook", json=body("1")).status_code == 404


def test_unknown_ticket_and_own_notes_are_ignored_without_error(ticketed):
    client, ticket_id, source = ticketed
    headers = {"X-Yorisoi-Token": WEBHOOK_TOKEN}
    unknown = client.post("/freshdesk/webhook", json=body("999999"), headers=headers)
    assert unknown.status_code == 200 and unknown.json["status"] == "ignored"
    echo = client.post("/freshdesk/webhook", json=body(ticket_id, text="まだです\nyorisoi-ref: yorisoi:x:7002"),
                       headers=headers)
    assert echo.status_code == 200 and echo.json["status"] == "ignored"
    assert source.calls == []


@pytest.mark.parametrize("payload, words", [
    ({"ticket_id": "{{ticket.id}}", "agent": "佐藤", "text": "はい"}, "not a Freshdesk ticket number"),
    ({"ticket_id": "12", "agent": "", "text": "はい"}, "missing agent"),
])
def test_bad_payload_names_the_field(ticketed, payload, words):
    client, _, source = ticketed
    response = client.post("/freshdesk/webhook", json=payload, headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert response.status_code == 400 and words in response.json["error"]
    not_json = client.post("/freshdesk/webhook", data="{oops", headers={"X-Yorisoi-Token": WEBHOOK_TOKEN,
                                                                        "Content-Type": "application/json"})
    assert not_json.status_code == 400


def test_form_encoded_body_and_html_comment(ticketed):
    client, ticket_id, source = ticketed
    response = client.post("/freshdesk/webhook", data={"ticket_id": ticket_id, "agent": "佐藤",
                                                       "text": "<div>確認します。<br>少々お待ちください &amp; DMへ</div>"},
                           headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert response.status_code == 200
    assert source.calls[0][1].startswith("確認します。\n少々お待ちください & DMへ")


def test_dedupe_key_is_stable_and_distinguishes_replies():
    assert dedupe_key("5", "佐藤", "はい  わかりました", None) == dedupe_key("5", "佐藤", "はい わかりました", None)
    assert dedupe_key("5", "佐藤", "はい", None) != dedupe_key("5", "鈴木", "はい", None)
    assert dedupe_key("5", "佐藤", "はい", None) != dedupe_key("6", "佐藤", "はい", None)
    assert dedupe_key("5", "佐藤", "はい", "88") == "freshdesk:5:comment:88"
    assert comment_text("<p>a</p><p>b &lt;c&gt;</p>") == "a\nb <c>"
