"""Status comes back: the helpdesk's status of our tickets (webhook + catch-up sweep), "open"
on the dashboard meaning open in the helpdesk, and the first public agent reply wherever it
was written counting as the ticket's first reply (issue 15)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.helpdesks.zendesk.client import STATUS_BODY_TEMPLATE
from connector.reports import open_tickets
from connector.store import ReportFilter
from connector.ticket_status import sync_status
from tests.conftest import post_dict
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk
from tests.freshdesk_support import API_KEY, WEBHOOK_TOKEN, freshdesk_env, serve

EMAIL, TOKEN = "agent@example.com", "zd-token"
STATUS_SECRET = "c3RhdHVzX3NlY3JldF9mb3JfdGVzdHM="


def signed(body: bytes, secret: str = STATUS_SECRET) -> dict[str, str]:
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "Content-Type": "application/json"}


def everything() -> ReportFilter:
    return ReportFilter(since="2000-01-01", until="2100-01-01")  # days, as the filter takes them


def open_keys(store) -> list[str]:
    _, board = open_tickets(store, everything())
    return [row[-1] for row in board.rows]


# --- Zendesk ---------------------------------------------------------------------------------
@pytest.fixture
def zfake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


@pytest.fixture
def zenv(httpserver, zfake):
    return {"YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": httpserver.url_for("/").rstrip("/"),
            "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN, "ZENDESK_STATUS_WEBHOOK_SECRET": STATUS_SECRET}


@pytest.fixture
def zapp(app_factory, zenv):
    return app_factory(**zenv)


def deliver_posts(svc, *ids: str) -> dict[str, str]:
    for post_id in ids:
        assert svc.pipeline.ingest_raw(post_dict(id=post_id, text=f"ソラモバイル、請求が二重です {post_id}"),
                                       "test").status == "queued"
    svc.pipeline.deliver()
    return {row["post_key"]: row["ticket_id"] for row in svc.store.outbox.list_tickets()}


def test_zendesk_status_webhook_records_status_and_open_means_open_in_zendesk(zapp):
    svc = zapp.extensions["yorisoi"]
    tickets = deliver_posts(svc, "501", "502")
    (key1, id1), (key2, id2) = sorted(tickets.items())
    assert sorted(open_keys(svc.store)) == sorted(tickets)
    client = zapp.test_client()
    raw = json.dumps({"ticket_id": id1, "status": "Solved", "updated_at": "", "comment_public": "",
                      "author_role": "Agent"}).encode()
    answer = client.post("/zendesk/status", data=raw, headers=signed(raw))
    assert answer.status_code == 200 and answer.get_json()["ticket_status"] == "solved"
    assert svc.store.ticket_status.status_of(key1)["status"] == "solved"
    assert open_keys(svc.store) == [key2]  # solved in Zendesk: no longer open on the risk page
    # A later webhook reopens it (Japanese account labels too).
    raw = json.dumps({"ticket_id": id1, "status": "オープン"}).encode()
    assert client.post("/zendesk/status", data=raw, headers=signed(raw)).status_code == 200
    assert sorted(open_keys(svc.store)) == sorted(tickets)


def test_zendesk_status_webhook_is_verified_and_ignores_other_tickets(zapp):
    client = zapp.test_client()
    raw = json.dumps({"ticket_id": "424242", "status": "open"}).encode()
    assert client.post("/zendesk/status", data=raw, headers=signed(raw, "wrong")).status_code == 401
    assert client.post("/zendesk/status", data=raw, headers={"Content-Type": "application/json"}).status_code == 401
    answer = client.post("/zendesk/status", data=raw, headers=signed(raw))
    assert answer.status_code == 200 and answer.get_json()["status"] == "ignored"
    bad = json.dumps({"ticket_id": "1", "status": "frozen"}).encode()
    answer = client.post("/zendesk/status", data=bad, headers=signed(bad))
    assert answer.status_code == 400 and answer.get_json()["field"] == "status"


def test_zendesk_public_agent_comment_counts_as_first_reply(zapp):
    svc = zapp.extensions["yorisoi"]
    (key, ticket_id), = deliver_posts(svc, "511").items()
    assert svc.store.reports.report_response_times(everything())[0][3] == []
    raw = json.dumps({"ticket_id": ticket_id, "status": "pending", "updated_at": "2026-11-20T09:30:00Z",
                      "comment_public": "true", "author_role": "Agent"}).encode()
    assert zapp.test_client().post("/zendesk/status", data=raw, headers=signed(raw)).status_code == 200
    state = svc.store.ticket_status.status_of(key)
    assert state["first_public_reply_at"].isoformat().startswith("2026-11-20T09:30:00")
    # The post was at 09:00: first reply 30 minutes later, though Yorisoi sent nothing.
    assert svc.store.reports.report_response_times(everything())[0][3] == [1800]


def test_status_body_template_is_valid_json_with_placeholders():
    data = json.loads(STATUS_BODY_TEMPLATE)
    assert data["ticket_id"] == "{{ticket.id}}" and data["status"] == "{{ticket.status}}"


def test_zendesk_sweep_catches_up_from_a_stored_cursor(zapp, zfake):
    svc = zapp.extensions["yorisoi"]
    tickets = deliver_posts(svc, "521", "522")
    (key1, id1), (key2, id2) = sorted(tickets.items())
    zfake.agent_comment(int(id1), "ご迷惑をおかけしております。", status="solved")
    zfake.set_status(int(id2), "pending")
    report = sync_status(svc.store, svc.helpdesk)
    assert report.errors == [] and report.matched == 2 and not report.more
    first = zfake.calls("GET", "/api/v2/incremental/tickets/cursor")[0]
    assert svc.store.ticket_status.status_of(key1)["status"] == "solved"
    assert svc.store.ticket_status.status_of(key1)["first_public_reply_at"] is not None
    assert svc.store.ticket_status.status_of(key2)["status"] == "pending"
    assert open_keys(svc.store) == [key2]
    # Second sweep: from the stored cursor, and only what changed since.
    zfake.set_status(int(id2), "solved")
    report = sync_status(svc.store, svc.helpdesk)
    assert report.matched == 1
    calls = zfake.calls("GET", "/api/v2/incremental/tickets/cursor")
    assert len(calls) == 2
    assert svc.store.ticket_status.status_of(key2)["status"] == "solved"
    assert open_keys(svc.store) == []
    assert first is not None


def test_zendesk_sweep_sends_start_time_then_cursor(zapp, zfake, httpserver):
    svc = zapp.extensions["yorisoi"]
    deliver_posts(svc, "531")
    seen: list[dict[str, str]] = []
    original = zfake.handle

    def spy(request):
        if request.path.startswith("/api/v2/incremental/"):
            seen.append(dict(request.args))
        return original(request)
    httpserver.clear()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(spy)
    sync_status(svc.store, svc.helpdesk)
    sync_status(svc.store, svc.helpdesk)
    assert "start_time" in seen[0] and seen[0]["include"] == "metric_sets"
    assert "cursor" in seen[1] and "start_time" not in seen[1]


def test_sync_status_command(env, zenv, zfake, app_factory):
    deliver_posts(app_factory(**zenv).extensions["yorisoi"], "541")
    result = CliRunner(env={**env, **zenv}).invoke(main, ["sync-status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["helpdesk"] == "zendesk" and report["matched"] == 1 and report["errors"] == []


def test_sync_status_on_the_local_helpdesk_says_there_is_nothing(env):
    result = CliRunner(env=env).invoke(main, ["sync-status"])
    assert result.exit_code == 0 and "no status to sync" in result.output


def test_poll_runs_the_sweep_on_its_schedule(zapp):
    from connector.poller import Poller
    svc = zapp.extensions["yorisoi"]
    deliver_posts(svc, "551")
    poller = Poller(svc)
    assert poller.run_once().status.matched == 1
    assert poller.run_once().status is None  # not due again for SWEEP_EVERY


# --- Freshdesk -------------------------------------------------------------------------------
@pytest.fixture
def ffake(httpserver):
    return serve(httpserver, FakeFreshdesk(api_key=API_KEY))


@pytest.fixture
def fapp(app_factory, httpserver, ffake):
    return app_factory(**freshdesk_env(httpserver))


def test_freshdesk_status_webhook_is_token_verified_and_records_status(fapp):
    svc = fapp.extensions["yorisoi"]
    (key, ticket_id), = deliver_posts(svc, "601").items()
    client = fapp.test_client()
    payload = {"ticket_id": ticket_id, "status": "Resolved"}
    assert client.post("/freshdesk/status", json=payload).status_code == 401
    assert client.post("/freshdesk/status", json=payload, headers={"X-Yorisoi-Token": "nope-nope-nope-nope"}).status_code == 401
    answer = client.post("/freshdesk/status", json=payload, headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert answer.status_code == 200 and answer.get_json()["ticket_status"] == "solved"
    assert open_keys(svc.store) == []
    answer = client.post("/freshdesk/status", json={"ticket_id": ticket_id, "status": "2", "agent_reply": "true"},
                         headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert answer.get_json()["ticket_status"] == "open"
    assert open_keys(svc.store) == [key]
    assert svc.store.ticket_status.status_of(key)["first_public_reply_at"] is not None
    answer = client.post("/freshdesk/status", json={"ticket_id": "99999", "status": "Open"},
                         headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert answer.get_json()["status"] == "ignored"
    answer = client.post("/freshdesk/status", json={"ticket_id": ticket_id, "status": "Frozen"},
                         headers={"X-Yorisoi-Token": WEBHOOK_TOKEN})
    assert answer.status_code == 400


def test_freshdesk_sweep_reads_updated_since_with_stats(fapp, ffake):
    svc = fapp.extensions["yorisoi"]
    tickets = deliver_posts(svc, "611", "612")
    (key1, id1), (key2, id2) = sorted(tickets.items())
    ffake.agent_reply(int(id1), "<div>ご不便をおかけしております。</div>")
    ffake.set_status(int(id1), 4)
    ffake.set_status(int(id2), 3)
    report = sync_status(svc.store, svc.helpdesk)
    assert report.errors == [] and report.matched == 2
    assert svc.store.ticket_status.status_of(key1)["status"] == "solved"
    assert svc.store.ticket_status.status_of(key1)["first_public_reply_at"] is not None
    assert svc.store.ticket_status.status_of(key2)["status"] == "pending"
    assert open_keys(svc.store) == [key2]
    [call] = [r for r in ffake.log if r[0] == "GET" and r[1] == "/api/v2/tickets"][-1:]
    # The cursor moved on to the newest change seen.
    cursor = svc.store.sources.get_state("helpdesk_status:freshdesk:cursor")
    assert cursor["page"] == 1 and cursor["since"] >= "2026"
    assert call is not None


def test_a_deeply_nested_status_body_is_a_named_body_error_not_a_crash():
    # The status webhook parses its body as the reply webhook does (connector/jsonsafe.py's
    # nesting bound): 5,000 nested arrays are a clear error, not a RecursionError (a 500).
    from connector.helpdesks.zendesk.client import WebhookBodyError, parse_status_webhook
    with pytest.raises(WebhookBodyError, match="not valid JSON"):
        parse_status_webhook(b"[" * 5000 + b"]" * 5000, datetime.now(timezone.utc))


def test_home_backlog_follows_the_helpdesk_status(zapp, zfake):
    """The home page's backlog is what is still open in Zendesk: solved leaves it, a replied-to
    ticket still open stays (first response met), and the page says what is known and when."""
    from connector import today as today_module
    from tests.test_today import _sign_in

    svc = zapp.extensions["yorisoi"]
    tickets = deliver_posts(svc, "601", "602", "603", "604")
    (k1, id1), (k2, id2), (k3, id3), (k4, id4) = sorted(tickets.items())
    client = zapp.test_client()
    _sign_in(zapp, client)
    before = client.get("/?lang=ja").get_data(as_text=True)
    assert "Zendesk のステータスはまだ同期されていません" in before and "yorisoi sync-status" in before
    assert before.count("s-unsynced") == 4 and "未対応（返信なし）" in before

    zfake.agent_comment(int(id1), "ご不便をおかけしております。確認します。", status="open")  # replied, still open
    zfake.set_status(int(id2), "solved")  # solved without a public reply
    zfake.set_status(int(id3), "pending")
    assert sync_status(svc.store, svc.helpdesk).errors == []
    raw = json.dumps({"ticket_id": id4, "status": "hold"}).encode()
    assert client.post("/zendesk/status", data=raw, headers=signed(raw)).status_code == 200

    data = today_module.build(svc.store, svc.settings.env, helpdesk=svc.helpdesk)
    shown = {i.row.post_key: i for i in data.backlog}
    assert set(shown) == {k1, k3, k4} and data.open_total == 3  # solved is not open
    assert shown[k1].row.status == "open" and shown[k1].answered and not shown[k1].breached
    assert shown[k3].row.status == "pending" and not shown[k3].answered
    assert data.sync.by_status == {"open": 1, "solved": 1, "pending": 1, "hold": 1}
    assert data.sync.last_sweep_at is not None and data.sync.last_webhook_at is not None

    page = client.get("/?lang=ja").get_data(as_text=True)
    assert "対応中" in page and "保留（お客様の返答待ち）" in page and "保留（社内確認中）" in page
    assert "一次回答済み" in page and "s-unsynced" not in page
    assert "Zendesk のステータスを表示しています" in page and "最終同期: 定期同期 20" in page and "Webhook 20" in page
    assert "解決済み 1 件" in page and " JST" in page
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Statuses from Zendesk" in english and "Pending (awaiting the customer)" in english
    assert "First response sent" in english and "Last sync: sweep 20" in english
