"""Zendesk Tickets API mode: real zenpy against a stateful fake Zendesk at the HTTP level."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import ConfigError, Settings
from connector.helpdesks.base import Requester, TicketDraft
from connector.helpdesks.zendesk.client import (
    SLA_TITLE,
    ZendeskConfig,
    ZendeskHelpdesk,
    idempotency_key,
)
from tests.conftest import post_dict, write_jsonl
from tests.fakes.zendesk import FakeZendesk

EMAIL, TOKEN = "agent@example.com", "zd-secret-token-4f2b9c"


@pytest.fixture
def fake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


@pytest.fixture
def zd_env(httpserver, fake):
    return {"YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": httpserver.url_for("/").rstrip("/"),
            "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN, "ZENDESK_TIMEOUT": "1"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def zsvc(app_factory, zd_env):
    svc = app_factory(**zd_env).extensions["yorisoi"]
    svc.pipeline.clock = Clock()
    svc.helpdesk.poll_interval = 0.01
    return svc


def ingest(svc, *posts):
    for post in posts:
        outcome = svc.pipeline.ingest_raw(post, "test")
        assert outcome.status in ("queued", "follow_up"), outcome


def only_ticket(fake, external_id):
    found = fake.ticket_by_external_id(external_id)
    assert len(found) == 1, f"{len(found)} tickets for {external_id}"
    return found[0]


# --- ticket fields ------------------------------------------------------------------------
def test_ticket_fields_tags_requester_and_note(app_factory, zd_env, fake):
    svc = app_factory(**zd_env, ZENDESK_FIELDS="sentiment=360001,intent=360002:tag,post_url=360003")
    svc = svc.extensions["yorisoi"]
    ingest(svc, post_dict(id="501", url="https://x.com/tanaka_k/status/501", text="ソラモバイルの料金プランはどう変更できますか？", author={"name": "田中", "handle": "tanaka_k"}))
    report = svc.pipeline.deliver()
    assert report.created == 1 and not report.errors

    ticket = only_ticket(fake, "yorisoi:x:501")
    assert ticket["subject"].startswith("[ソラモバイル] ソラモバイルの料金プラン")
    assert ticket["priority"] in ("urgent", "high", "normal", "low")
    assert ticket["type"] == "question"
    assert {"yorisoi", "src_x", "intent_question"} <= set(ticket["tags"])
    assert any(t.startswith("sentiment_") for t in ticket["tags"])
    fields = {f["id"]: f["value"] for f in ticket["custom_fields"]}
    assert fields[360002] == "intent_question" and fields[360001] in ("negative", "neutral", "positive")
    assert fields[360003] == "https://x.com/tanaka_k/status/501"

    requester = fake.users[ticket["requester_id"]]
    assert requester["external_id"] == "yorisoi:x:90000001" and requester["name"] == "田中 (@tanaka_k)"
    first, note = fake.comments[ticket["id"]]
    # The customer's own words open the ticket, as their public comment.
    assert first["public"] and first["author_id"] == requester["id"] == ticket["submitter_id"]
    assert "ソラモバイルの料金プラン" in first["body"] and "https://x.com/tanaka_k/status/501" in first["body"]
    assert "田中 (@tanaka_k)" in first["body"]
    # The analysis with its evidence is an internal note.
    assert not note["public"] and "感情 / Sentiment" in note["body"] and "判定 / Qualification" in note["body"]

    stored = svc.store.outbox.list_tickets()[0]
    assert stored["helpdesk"] == "zendesk" and stored["ticket_id"] == str(ticket["id"])
    assert stored["url"].endswith(f"/agent/tickets/{ticket['id']}")


def test_requester_found_or_created_by_external_id(zsvc, fake):
    ingest(zsvc, post_dict(id="601"), post_dict(id="602", text="ソラモバイル、また圏外"),
           post_dict(id="603", author={"id": "555", "handle": "other", "name": None}))
    assert zsvc.pipeline.deliver().created == 3
    assert sorted(u["external_id"] for u in fake.users.values()) == ["yorisoi:x:555", "yorisoi:x:90000001"]
    assert fake.users[only_ticket(fake, "yorisoi:x:603")["requester_id"]]["name"] == "@other"
    # A fresh connector (cold cache) finds the same end user again instead of a second one.
    helpdesk = ZendeskHelpdesk(zsvc.helpdesk.config)
    again = helpdesk.requester_id(Requester("yorisoi:x:90000001", "田中", "tanaka_k"))
    assert again == only_ticket(fake, "yorisoi:x:601")["requester_id"] and len(fake.users) == 2


def test_ticket_type_follows_intent(zsvc, fake):
    ingest(zsvc, post_dict(id="701", text="ソラモバイル、駅で全然繋がらない。最悪"),
           post_dict(id="702", text="ソラモバイルの店員さん神対応でした、ありがとう！", author={"id": "7"}))
    zsvc.pipeline.deliver()
    assert only_ticket(fake, "yorisoi:x:701")["type"] in ("incident", None)
    assert only_ticket(fake, "yorisoi:x:702")["type"] is None  # praise: no Zendesk type fits


def test_follow_up_post_becomes_public_comment_by_the_customer(zsvc, fake):
    ingest(zsvc, post_dict(id="801", text="ソラモバイル、請求が二重です"))
    zsvc.pipeline.deliver()
    ingest(zsvc, post_dict(id="802", text="まだ直りません", conversation_id="801", in_reply_to="801",
                           created_at="2026-11-20T10:00:00Z"))
    assert zsvc.pipeline.deliver().commented == 1
    ticket = only_ticket(fake, "yorisoi:x:801")
    follow_up = fake.comments[ticket["id"]][-1]
    assert follow_up["public"] and "まだ直りません" in follow_up["body"]
    assert follow_up["author_id"] == ticket["requester_id"]


# --- exactly once -------------------------------------------------------------------------
def test_idempotency_key_and_lookup_after_a_timeout(zsvc, fake):
    ingest(zsvc, post_dict(id="901"))
    fake.slow_next("POST", r"^/api/v2/tickets$", seconds=1.6)  # Zendesk creates it; we time out
    first = zsvc.pipeline.deliver()
    assert first.created == 0 and first.retried == 1 and "did not answer in time" in first.errors[0]["message"]
    assert len(fake.ticket_by_external_id("yorisoi:x:901")) == 1  # it exists, without its note

    zsvc.pipeline.clock.advance(60)
    second = zsvc.pipeline.deliver()
    assert second.created == 1
    ticket = only_ticket(fake, "yorisoi:x:901")
    assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]  # note added exactly once
    assert fake.calls("GET", r"^/api/v2/tickets$")  # looked up before any re-send
    assert len(fake.calls("POST", r"^/api/v2/tickets$")) == 1
    assert fake.calls("POST", r"^/api/v2/tickets$")[0][2]["Idempotency-Key"] == "yorisoi:x:901"


def test_note_added_once_after_a_failure_between_ticket_and_note(zsvc, fake):
    ingest(zsvc, post_dict(id="902"))
    fake.fail_next("PUT", r"^/api/v2/tickets/\d+$", 500, {"error": "InternalError"})
    assert zsvc.pipeline.deliver().retried == 1
    zsvc.pipeline.clock.advance(60)
    assert zsvc.pipeline.deliver().created == 1
    zsvc.pipeline.clock.advance(60)
    assert zsvc.pipeline.deliver().created == 0
    ticket = only_ticket(fake, "yorisoi:x:902")
    assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]


def test_same_idempotency_key_returns_the_first_ticket(fake, zd_env):
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env))
    draft = TicketDraft("yorisoi:x:903", "s", "text", "note", "normal", ("yorisoi",),
                        Requester("yorisoi:x:1", "n", None), None, {})
    first = helpdesk.create_ticket(draft)
    second = helpdesk.create_ticket(draft)
    assert first.ticket_id == second.ticket_id and len(fake.tickets) == 1


def test_external_ids_are_encoded_in_lookups(fake, zd_env):
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env))
    odd = "yorisoi:rss:https://blog.example/p?a=1&b=2 #x"
    helpdesk.create_ticket(TicketDraft(odd, "s", "text", "note", "normal", ("yorisoi",),
                                       Requester("yorisoi:rss:blog", "blog", None), None, {}))
    assert helpdesk.find_ticket(odd) is not None
    assert helpdesk.find_ticket("yorisoi:rss:https://blog.example/p?a=1") is None
    assert idempotency_key("yorisoi:x:ソラ").isascii() and len(idempotency_key("x" * 500)) < 100


# --- errors and rate limits -----------------------------------------------------------------
def test_429_pauses_delivery_without_sleeping_then_succeeds(zsvc, fake):
    ingest(zsvc, post_dict(id="1001"), post_dict(id="1002", text="ソラモバイル圏外"))
    fake.fail_next("POST", r"^/api/v2/tickets$", 429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "30"})
    started = time.monotonic()
    report = zsvc.pipeline.deliver()
    assert time.monotonic() - started < 5  # zenpy did not sleep 30 s
    assert report.created == 0 and "429" in report.stopped and "30 s" in report.stopped
    assert zsvc.pipeline.deliver().stopped.startswith("helpdesk asked us to wait")
    zsvc.pipeline.clock.advance(31)
    assert zsvc.pipeline.deliver().created == 2
    only_ticket(fake, "yorisoi:x:1001")
    only_ticket(fake, "yorisoi:x:1002")


def test_5xx_then_recovery(zsvc, fake):
    ingest(zsvc, post_dict(id="1101"))
    fake.fail_next("POST", r"^/api/v2/tickets$", 503, {"error": "ServiceUnavailable", "description": "Maintenance"})
    report = zsvc.pipeline.deliver()
    assert report.retried == 1 and "503" in report.errors[0]["message"]
    zsvc.pipeline.clock.advance(60)
    assert zsvc.pipeline.deliver().created == 1
    only_ticket(fake, "yorisoi:x:1101")


def test_422_fails_one_ticket_and_not_the_others(zsvc, fake):
    fake.reject_ticket = lambda t: ({"subject": [{"description": "Subject: 禁止語が含まれています", "error": "InvalidValue"}]}
                                    if "禁止" in (t.get("subject") or "") else None)
    ingest(zsvc, post_dict(id="1201", text="ソラモバイル 禁止ワード"), post_dict(id="1202"), post_dict(id="1203", text="ソラモバイル遅い"))
    report = zsvc.pipeline.deliver()
    assert report.created == 2 and report.failed == 1
    error = report.errors[0]
    assert error["post"] == "x:1201" and "422" in error["message"] and "subject: Subject: 禁止語" in error["message"]
    failed = zsvc.store.outbox.outbox_rows(("failed",))
    assert [r["post_key"] for r in failed] == ["x:1201"] and "禁止語" in failed[0]["last_error"]


def test_401_stops_the_pass_with_zendesks_message(app_factory, zd_env, fake):
    svc = app_factory(**{**zd_env, "ZENDESK_API_TOKEN": "wrong"}).extensions["yorisoi"]
    ingest(svc, post_dict(id="1301"), post_dict(id="1302", text="ソラモバイル遅い"))
    report = svc.pipeline.deliver()
    assert "401" in report.stopped and "Couldn't authenticate you" in report.stopped and "ZENDESK_API_TOKEN" in report.stopped
    assert TOKEN not in report.stopped and "wrong" not in report.stopped
    assert report.created == 0 and svc.store.outbox.outbox_counts().get("pending") == 2
    assert len(fake.calls("POST")) == 1  # the second row was not even tried


def test_403_stops_delivery(zsvc, fake):
    ingest(zsvc, post_dict(id="1401"))
    fake.fail_next("POST", r"create_or_update", 403, {"error": "Forbidden", "description": "You do not have access"})
    report = zsvc.pipeline.deliver()
    assert "403" in report.stopped and "You do not have access" in report.stopped


def test_paces_by_rate_limit_remaining(fake, zd_env):
    fake.rate_limit = 10
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env({**zd_env, "ZENDESK_RATE_LIMIT_RESERVE": "20"}))
    for n in range(8):  # 10 per minute, 20 % kept: 8 calls, then we hold back ourselves
        assert helpdesk.find_ticket(f"yorisoi:x:{n}") is None
    sent = len(fake.log)
    from connector.helpdesks.base import HelpdeskError
    with pytest.raises(HelpdeskError) as caught:
        helpdesk.find_ticket("yorisoi:x:9")
    assert caught.value.retryable and caught.value.retry_after and caught.value.retry_after <= 60
    assert len(fake.log) == sent  # nothing was sent


# --- bulk -------------------------------------------------------------------------------------
def test_backlog_goes_through_create_many_jobs(app_factory, zd_env, fake):
    svc = app_factory(**zd_env, ZENDESK_BULK_THRESHOLD="50").extensions["yorisoi"]
    svc.helpdesk.poll_interval = 0.01
    fake.job_polls_before_done = 2
    ingest(svc, *[post_dict(id=f"2{n:04d}", author={"id": f"a{n % 40}"}) for n in range(230)])
    report = svc.pipeline.deliver()
    assert report.created == 230 and not report.errors
    assert len(fake.tickets) == 230 and not fake.state()["duplicate_external_ids"]
    assert len(fake.calls("POST", r"^/api/v2/tickets$")) == 0  # no ticket was created one by one
    # Batches of ≤100 (smaller while the backlog is small, so they run side by side); one
    # notes job per tickets job; each of the 40 requesters made by exactly one users job.
    assert all(len(j["_items"]) <= 100 for j in fake.jobs.values())
    assert 3 <= len(fake.calls("POST", "create_many")) == len(fake.calls("PUT", "update_many")) <= 23
    made = [u["external_id"] for j in fake.jobs.values() if j["_kind"] == "users" for u in j["_items"]]
    assert len(made) == len(set(made)) == 40 and len(fake.users) == 40
    for ticket in fake.tickets.values():
        assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]
        assert fake.users[ticket["requester_id"]]["external_id"].startswith("yorisoi:x:a")
    assert svc.store.outbox.outbox_counts() == {"done": 230}
    assert svc.store.outbox.search_tickets(text="繋がらない")[0] == 230  # bulk-recorded tickets are searchable


def test_bulk_keeps_at_most_30_jobs_in_flight(fake, zd_env):
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 3
    drafts = [TicketDraft(f"yorisoi:x:j{n}", "s", "text", "note", "normal", ("yorisoi",),
                          Requester("yorisoi:x:same", "n", None), None, {}) for n in range(3300)]
    result = helpdesk.create_tickets_many(drafts)
    assert len(result.refs) == 3300 and not result.errors and not result.unsent
    assert fake.max_jobs_in_flight_seen == 30
    assert all(len(j["_items"]) <= 100 for j in fake.jobs.values())


def _draft(n, requester="yorisoi:x:same"):
    return TicketDraft(f"yorisoi:x:r{n}", "s", "text", "note", "normal", ("yorisoi",),
                       Requester(requester, "n", None), None, {})


def test_bulk_notes_are_confirmed_by_ticket_id_without_index(fake, zd_env):
    """Real update_many results are {id, action, success, status}, no `index` (issue 15 #1).

    Matched by position against an `index` that never comes, every note was reported "not
    confirmed" and each ticket retried one by one. Matched by ticket id, even out of order."""
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    run_job = fake.run_job

    def out_of_order(job_id):
        run_job(job_id)
        job = fake.jobs[job_id]
        if job["_kind"] == "update":
            job["results"] = list(reversed(job["results"][1:]))  # the first ticket's is missing, the rest reversed
    fake.run_job = out_of_order
    fake.job_polls_before_done = 0
    drafts = [_draft(n) for n in range(150)]
    result = helpdesk.create_tickets_many(drafts)
    updates = [j for j in fake.jobs.values() if j["_kind"] == "update"]
    assert updates and all("index" not in r for j in updates for r in j["results"])
    dropped_ids = {j["_items"][0]["id"] for j in updates}  # their results were dropped: not confirmed, retried
    first_of_each_job = {i for i, d in enumerate(drafts) if only_ticket(fake, d.external_id)["id"] in dropped_ids}
    assert len(first_of_each_job) == len(updates) >= 2
    assert set(result.refs) == set(range(150)) - first_of_each_job
    assert set(result.errors) == first_of_each_job and all(e.retryable for e in result.errors.values())
    for i, ref in result.refs.items():
        assert only_ticket(fake, drafts[i].external_id)["id"] == int(ref.ticket_id)


def test_bulk_notes_against_recorded_shapes_need_no_retries(app_factory, zd_env, fake):
    svc = app_factory(**zd_env, ZENDESK_BULK_THRESHOLD="5").extensions["yorisoi"]
    svc.helpdesk.poll_interval = 0.01
    ingest(svc, *[post_dict(id=f"4{n:03d}", author={"id": "same"}) for n in range(20)])
    report = svc.pipeline.deliver()
    assert report.created == 20 and not report.errors and report.retried == 0
    assert not fake.calls("GET", r"^/api/v2/tickets$") and not fake.calls("PUT", r"^/api/v2/tickets/\d+$")
    assert svc.store.outbox.outbox_counts() == {"done": 20}


def test_bulk_requesters_are_matched_by_position_without_index(fake, zd_env):
    """Real users/create_or_update_many results are {id, status, email?} in request order, with
    no `index` or `external_id` (issue 15 #2): bulk fell back to one user call per requester."""
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 0
    drafts = [_draft(n, requester=f"yorisoi:x:u{n % 130}") for n in range(260)]
    result = helpdesk.create_tickets_many(drafts)
    assert len(result.refs) == 260 and not result.errors and not result.unsent
    user_jobs = [j for j in fake.jobs.values() if j["_kind"] == "users"]
    assert sum(len(j["_items"]) for j in user_jobs) == 130  # each requester in one job
    assert all(set(r) == {"id", "status"} for j in user_jobs for r in j["results"])
    assert not fake.calls("POST", r"^/api/v2/users/create_or_update$")  # no one-by-one fallback
    assert len(fake.users) == 130
    for draft in drafts:
        ticket = only_ticket(fake, draft.external_id)
        assert fake.users[ticket["requester_id"]]["external_id"] == draft.requester.external_id


def test_bulk_requester_results_are_not_placed_by_position_when_some_are_missing():
    from connector.helpdesks.zendesk.client import _match_users
    chunk = [Requester(f"yorisoi:x:u{n}", "n", None) for n in range(3)]
    assert _match_users(chunk, [{"id": 1, "status": "Created"}, {"id": 2, "status": "Updated"},
                                {"id": 3, "status": "Created"}]) == {"yorisoi:x:u0": 1, "yorisoi:x:u1": 2, "yorisoi:x:u2": 3}
    # one result short: positions cannot be trusted; a returned identity still can
    assert _match_users(chunk, [{"id": 1, "status": "Created"}, {"id": 3, "status": "Created", "external_id": "YORISOI:X:U2"}]) \
        == {"yorisoi:x:u2": 3}
    # a failed entry is not a user id
    assert _match_users(chunk, [{"id": 1, "status": "Created"}, {"index": 1, "error": "UserCreateFailed", "id": 9, "details": "x"},
                                {"id": 3, "status": "Created"}]) == {"yorisoi:x:u0": 1, "yorisoi:x:u2": 3}


def test_bulk_failures_are_per_ticket_and_unknown_ones_are_looked_up(app_factory, zd_env, fake):
    svc = app_factory(**zd_env, ZENDESK_BULK_THRESHOLD="5").extensions["yorisoi"]
    svc.helpdesk.poll_interval = 0.01
    svc.pipeline.clock = Clock()
    fake.reject_ticket = lambda t: {"subject": [{"description": "bad"}]} if "禁止" in t["subject"] else None
    ingest(svc, *[post_dict(id=f"3{n:03d}", text="ソラモバイル 禁止" if n == 3 else "ソラモバイル遅い") for n in range(8)])
    # The notes job fails: the tickets exist without their notes; the rows are retried one by
    # one, found by external id, and get their note exactly once.
    fake.fail_next("PUT", "update_many", 503, {"error": "ServiceUnavailable"})
    # The refused ticket is retried alone too (a refusal may come from the bulk call itself):
    # refused again there, it is marked failed with Zendesk's field error for the admin.
    report = svc.pipeline.deliver()
    assert report.failed == 0 and report.created == 0 and report.retried == 8
    svc.pipeline.clock.advance(600)
    report = svc.pipeline.deliver()
    assert report.created == 7 and report.failed == 1
    (refused,) = [e for e in report.errors if not e["retryable"]]
    assert refused["post"] == "x:3003" and "422" in refused["message"] and refused["message"].endswith("subject: bad")
    assert svc.store.outbox.outbox_counts() == {"done": 7, "failed": 1}
    assert len(fake.tickets) == 7 and not fake.state()["duplicate_external_ids"]
    for ticket in fake.tickets.values():
        assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]


def test_bulk_rows_survive_a_restart_until_the_job_horizon(app_factory, zd_env):
    """A bulk claim of a dead process is not handed back early: its job may still run."""
    import socket

    from connector.db.outbox import BULK_CLAIM_SUFFIX
    svc = app_factory(**zd_env).extensions["yorisoi"]
    ingest(svc, post_dict(id="4001"), post_dict(id="4002", text="ソラモバイル遅い"))
    dead = f"{socket.gethostname()}:999999"
    svc.store.outbox.claim_due(1, timedelta(hours=1), worker=dead + BULK_CLAIM_SUFFIX)
    svc.store.outbox.claim_due(1, timedelta(hours=1), worker=dead)
    assert svc.store.outbox.release_dead_claims() == 1  # only the one-by-one claim
    assert svc.store.outbox.outbox_counts() == {"sending": 1, "pending": 1}


# --- configuration and secrets ------------------------------------------------------------------
@pytest.mark.parametrize("env, variable", [
    ({}, "ZENDESK_SUBDOMAIN"),
    ({"ZENDESK_SUBDOMAIN": "acme"}, "ZENDESK_API_TOKEN"),
    ({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_API_TOKEN": "t"}, "ZENDESK_EMAIL"),
    ({"ZENDESK_SUBDOMAIN": "acme.zendesk.com", "ZENDESK_OAUTH_TOKEN": "t"}, "ZENDESK_SUBDOMAIN"),
    ({"ZENDESK_URL": "ftp://x.y", "ZENDESK_OAUTH_TOKEN": "t"}, "ZENDESK_URL"),
    ({"ZENDESK_URL": "http://localhost:8080", "ZENDESK_OAUTH_TOKEN": "t"}, "ZENDESK_URL"),
    ({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_OAUTH_TOKEN": "t", "ZENDESK_FIELDS": "mood=1"}, "ZENDESK_FIELDS"),
    ({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_OAUTH_TOKEN": "t", "ZENDESK_FIELDS": "sentiment=abc"}, "ZENDESK_FIELDS"),
    ({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_OAUTH_TOKEN": "t", "ZENDESK_BULK_THRESHOLD": "-1"}, "ZENDESK_BULK_THRESHOLD"),
    ({"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_EMAIL": "a@b.c", "ZENDESK_API_TOKEN": "トークン"}, "ZENDESK_API_TOKEN"),
])
def test_bad_settings_fail_at_start_up_naming_the_variable(env, variable, app_factory):
    with pytest.raises(ConfigError) as caught:
        app_factory(YORISOI_HELPDESK="zendesk", **env)
    assert variable in str(caught.value)


def test_secrets_never_shown(fake, zd_env):
    config = ZendeskConfig.from_env({**zd_env, "ZENDESK_WEBHOOK_SECRET": "whsec-ひみつ-0123456789abcdef"})
    helpdesk = ZendeskHelpdesk(config)
    for text in (repr(config), repr(helpdesk), json.dumps(helpdesk.describe(), ensure_ascii=False),
                 repr(Settings.from_env({**zd_env, "YORISOI_HELPDESK": "zendesk"}))):
        assert TOKEN not in text and "whsec" not in text


def test_oauth_token_is_sent_as_bearer(httpserver, fake, zd_env):
    fake.oauth_token = "oauth-abc"
    env = {k: v for k, v in zd_env.items() if k not in ("ZENDESK_EMAIL", "ZENDESK_API_TOKEN")}
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env({**env, "ZENDESK_OAUTH_TOKEN": "oauth-abc"}))
    assert helpdesk.find_ticket("yorisoi:x:1") is None
    assert fake.log[-1][2]["Authorization"] == "Bearer oauth-abc"


# --- SLA -------------------------------------------------------------------------------------
def test_setup_sla_creates_updates_and_is_idempotent(env, zd_env, fake):
    def run(*args, **extra):
        return CliRunner().invoke(main, ["setup-sla", *args], env={**env, **zd_env, **extra})

    assert "zendesk: created" in run().output
    (policy,) = fake.sla_policies.values()
    assert policy["title"] == SLA_TITLE
    assert policy["filter"]["all"] == [{"field": "current_tags", "operator": "includes", "value": "yorisoi"}]
    targets = {(m["priority"], m["metric"]): m["target"] for m in policy["policy_metrics"]}
    assert targets[("urgent", "first_reply_time")] == 30 and targets[("low", "next_reply_time")] == 1440
    assert "zendesk: unchanged" in run().output

    assert "zendesk: updated" in run(YORISOI_SLA_MINUTES="urgent=15").output
    assert len(fake.sla_policies) == 1
    (policy,) = fake.sla_policies.values()
    targets = {(m["priority"], m["metric"]): m["target"] for m in policy["policy_metrics"]}
    assert targets[("urgent", "next_reply_time")] == 15 and targets[("high", "first_reply_time")] == 60


def test_setup_sla_dry_run_prints_the_policy_and_calls_nothing(env, zd_env, fake):
    result = CliRunner().invoke(main, ["setup-sla", "--dry-run"], env={**env, **zd_env})
    assert result.exit_code == 0 and "zendesk: dry-run" in result.output
    policy = json.loads(result.output.split("\n", 1)[1])
    assert policy["title"] == SLA_TITLE and len(policy["policy_metrics"]) == 8
    assert all(m["business_hours"] is False for m in policy["policy_metrics"])
    assert not fake.log


def test_setup_sla_errors_are_shown(env, zd_env, fake):
    fake.fail_next("GET", "slas", 403, {"error": "Forbidden", "description": "SLA policies need Support Professional"})
    result = CliRunner().invoke(main, ["setup-sla"], env={**env, **zd_env})
    assert result.exit_code != 0 and "SLA policies need Support Professional" in result.output


# --- the "done when" ---------------------------------------------------------------------
def test_replay_twice_creates_exactly_one_ticket_per_post(tmp_path, env, zd_env, fake, monkeypatch):
    posts = [post_dict(id=f"5{n:03d}", text=f"ソラモバイル 繋がらない {n}") for n in range(6)]
    posts.append(post_dict(id="5999", text="今日はいい天気"))  # does not qualify
    path = write_jsonl(tmp_path / "posts.jsonl", posts)
    for name, value in {**env, **zd_env}.items():
        monkeypatch.setenv(name, value)
    first = CliRunner().invoke(main, ["replay", str(path), "--json"])
    second = CliRunner().invoke(main, ["replay", str(path), "--json"])
    one, two = json.loads(first.output), json.loads(second.output)
    assert (one["qualified"], one["tickets_created"], one["dropped"], one["errors"]) == (6, 6, 1, [])
    assert (two["tickets_created"], two["duplicates_skipped"]) == (0, 7)
    assert len(fake.tickets) == 6 and not fake.state()["duplicate_external_ids"]


# --- bulk runs: stages side by side, fed while running, adaptive polling ------------------------
def test_bulk_stages_of_different_batches_are_in_flight_at_once(fake, zd_env):
    """A batch's tickets job goes out as soon as ITS requesters exist, while other batches'
    users jobs still run; notes likewise: the stages overlap, never more than 30 jobs."""
    # Each batch's users job 0.1 s longer than the one before (more than a poll apart) and a
    # tickets job of 0.6 s: later batches' tickets jobs still run when the first notes go out,
    # however the turns of the run fall. (With 0.02 s steps and 0.12-s jobs the overlap was
    # luck: submissions sent side by side can make every batch reach each stage at one poll.)
    fake.job_timing = {"users": (0.0, 0.1), "create": (0.0, 0.02), "update": (0.0, 0.004)}
    seen: list[set[str]] = []
    submit = fake._job

    def watching(request, kind, items):
        with fake._lock:
            for job in fake.jobs.values():
                fake._advance(job)
            seen.append({j["_kind"] for j in fake.jobs.values() if j["status"] in ("queued", "working")} | {kind})
        return submit(request, kind, items)
    fake._job = watching
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.05)
    # Batches of 30; batch b has b + 1 requesters of its own, so its users job takes longer
    # than the one before: the early batches reach their next stages while later ones still
    # make users.
    drafts = [_draft(n, requester=f"yorisoi:x:s{n // 30}-{n % (n // 30 + 1)}") for n in range(300)]
    result = helpdesk.create_tickets_many(drafts)
    assert len(result.refs) == 300 and not result.errors and not result.unsent
    assert any({"users", "create"} <= kinds for kinds in seen)
    assert any({"create", "update"} <= kinds for kinds in seen)
    assert fake.max_jobs_in_flight_seen <= 30
    assert not fake.state()["duplicate_external_ids"]


def test_a_bulk_run_takes_drafts_that_arrive_while_its_jobs_run(fake, zd_env):
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 2
    arriving = [[_draft(100 + n, requester=f"yorisoi:x:late{n}") for n in range(15)], []]
    outcomes: dict[int, object] = {}

    def heard(index, outcome):
        assert index not in outcomes  # each draft's outcome once
        outcomes[index] = outcome

    result = helpdesk.create_tickets_many([_draft(n) for n in range(20)], more=lambda: arriving.pop(0) if arriving else [],
                                          on_result=heard)
    assert not arriving  # asked again while the first jobs ran
    assert set(outcomes) == set(result.refs) == set(range(35))
    assert len(fake.tickets) == 35 and not fake.state()["duplicate_external_ids"]
    for i, ref in result.refs.items():
        external_id = f"yorisoi:x:r{i if i < 20 else 100 + i - 20}"
        assert only_ticket(fake, external_id)["id"] == int(ref.ticket_id)


def test_a_call_in_another_thread_never_empties_a_bulk_job(fake, zd_env, monkeypatch):
    """Issue 17 storm benchmark: tickets refused in create_many with "Description: cannot be
    blank" and lost. zenpy serializes only an object's modified attributes and, when a call's
    answer is processed, clears those marks on the objects of the API's *last* call
    (`_dirty_object`, shared by every thread using the client). The priority lane's ticket,
    sent before the bulk lane began serializing a create_many and answered meanwhile, cleared
    the bulk tickets not yet serialized: they went out as `{}`. Here that interleaving is made
    certain: the urgent ticket's answer is held until the bulk serialization is under way,
    which pauses after its first ticket until the urgent answer has been processed."""
    import threading

    import zenpy.lib.api as zenpy_api
    from zenpy.lib.api_objects import Ticket

    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 0
    drafts = [_draft(n, requester=f"yorisoi:x:b{n}") for n in range(20)]
    bulk_ids = {d.external_id for d in drafts}
    urgent = TicketDraft("yorisoi:x:urgent1", "至急", "ソラモバイル 全く繋がらない", "note", "urgent", ("yorisoi",),
                         Requester("yorisoi:x:u1", "n", None), None, {})
    urgent_in_flight, serializing, urgent_answered = threading.Event(), threading.Event(), threading.Event()
    encoded: list[str] = []
    encode = zenpy_api.json_encode_for_zendesk

    def pausing_encode(obj):
        if isinstance(obj, Ticket) and getattr(obj, "external_id", None) in bulk_ids:
            encoded.append(obj.external_id)
            if len(encoded) == 2:  # the first ticket is serialized, the other 19 are not yet
                serializing.set()
                urgent_answered.wait(10)
        return encode(obj)
    monkeypatch.setattr(zenpy_api, "json_encode_for_zendesk", pausing_encode)
    request = helpdesk.session.request

    def holding_request(method, url, **kwargs):
        response = request(method, url, **kwargs)
        if threading.current_thread().name == "urgent" and method.upper() == "POST" and url.endswith("/tickets.json"):
            urgent_in_flight.set()
            serializing.wait(10)  # the answer reaches zenpy while the bulk tickets are serialized
        return response
    monkeypatch.setattr(helpdesk.session, "request", holding_request)

    refs: dict[str, object] = {}

    def open_urgent():
        refs["urgent"] = helpdesk.open_ticket(urgent)
        urgent_answered.set()
    lane = threading.Thread(target=open_urgent, name="urgent")
    lane.start()
    assert urgent_in_flight.wait(10)
    bulk = threading.Thread(target=lambda: refs.update(result=helpdesk.create_tickets_many(drafts)), name="bulk")
    bulk.start()
    lane.join(30)
    bulk.join(30)
    assert serializing.is_set() and urgent_answered.is_set()
    result = refs["result"]
    assert not result.errors and not result.unsent and set(result.refs) == set(range(20))
    creates = [j for j in fake.jobs.values() if j["_kind"] == "create"]
    assert all(item["comment"]["body"] == "text" for j in creates for item in j["_items"])
    for draft in drafts:
        ticket = only_ticket(fake, draft.external_id)
        assert ticket["description"] == draft.description
        assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]  # post, then its note
    assert only_ticket(fake, urgent.external_id)["id"] == int(refs["urgent"].ticket_id)


def test_a_ticket_refused_in_a_bulk_job_is_retried_alone(fake, zd_env):
    """A per-ticket refusal in create_many never drops the post: it is handed back retryable
    with Zendesk's field errors, for the outbox to send it one by one."""
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 0
    calls = 0

    def refuse_the_third_once(ticket):
        nonlocal calls
        if ticket.get("external_id") == "yorisoi:x:r2" and calls == 0:
            calls += 1
            return {"base": [{"description": "Description: cannot be blank", "error": "BlankValue"}]}
        return None
    fake.reject_ticket = refuse_the_third_once
    drafts = [_draft(n) for n in range(6)]
    result = helpdesk.create_tickets_many(drafts)
    assert set(result.refs) == {0, 1, 3, 4, 5} and set(result.errors) == {2}
    error = result.errors[2]
    assert error.retryable and error.status == 422 and "retrying it alone" in error.message
    assert error.field_errors == {"base": "Description: cannot be blank"}
    assert not fake.ticket_by_external_id("yorisoi:x:r2")
    helpdesk.create_ticket(drafts[2])  # the one-by-one retry
    assert only_ticket(fake, "yorisoi:x:r2")["description"] == "text"


def test_a_refused_note_in_update_many_is_not_reported_updated(fake, zd_env):
    """The fake's update_many reports a refused update as a failed result (the recorded
    shape), so a note that did not land is never confirmed."""
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=0.001)
    fake.job_polls_before_done = 0
    ref = helpdesk.create_ticket(_draft(1))
    fake.set_status(int(ref.ticket_id), "closed")
    job = fake._job(type("R", (), {"host_url": "http://127.0.0.1/"})(), "update",
                    [{"id": int(ref.ticket_id), "comment": {"body": "note", "public": False}}])
    fake.run_job(job[1]["job_status"]["id"])
    (entry,) = fake.jobs[job[1]["job_status"]["id"]]["results"]
    assert entry["error"] == "TicketUpdateFailed" and entry["index"] == 0 and entry["id"] == int(ref.ticket_id)
    assert "closed" in entry["details"] and "success" not in entry


def test_job_status_is_polled_soon_then_less_often_and_retry_after_is_honoured(fake, zd_env):
    slept: list[float] = []
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(zd_env), poll_interval=4.0, sleep=slept.append)
    fake.job_polls_before_done = 4
    fake.fail_next("GET", "job_statuses", 429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "7"})
    result = helpdesk.create_tickets_many([_draft(n) for n in range(5)])
    assert len(result.refs) == 5
    assert slept[0] == 0.5  # the first look is quick
    assert 7.0 in slept  # Retry-After of the refused status call, waited out
    quiet = slept[slept.index(7.0) + 1:]
    assert quiet and all(later >= earlier for earlier, later in zip(quiet, quiet[1:])
                         if later != 0.5)  # backs off while nothing ends (0.5 again after a job ends)
    assert max(slept) <= 7.0 and max(s for s in slept if s != 7.0) <= 4.0


def test_the_realistic_fake_runs_jobs_over_time_and_limits_ticket_updates(httpserver):
    """Timed like the recorded answers: a job is queued, then working with `progress`, then
    completed; PUT /tickets/{id} has its own 100/min limit beside the account's 700."""
    import requests
    fake = FakeZendesk.realistic(email=EMAIL, token=TOKEN, latency=0.0,
                                 job_timing={"create": (0.2, 0.02), "update": (0.0, 0.01), "users": (0.0, 0.01)},
                                 update_rate_limit=3)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    base = httpserver.url_for("/api/v2")
    auth = (f"{EMAIL}/token", TOKEN)
    job = requests.post(f"{base}/tickets/create_many.json", auth=auth, timeout=5, json={"tickets": [
        {"subject": "s", "comment": {"body": "b"}, "external_id": f"e{n}"} for n in range(20)]}).json()["job_status"]
    assert job["status"] == "queued"
    first = requests.get(f"{base}/job_statuses/{job['id']}.json", auth=auth, timeout=5).json()["job_status"]
    assert first["status"] == "queued" and not fake.tickets
    time.sleep(0.35)
    middle = requests.get(f"{base}/job_statuses/{job['id']}.json", auth=auth, timeout=5).json()["job_status"]
    assert middle["status"] == "working" and 0 < middle["progress"] < 20
    time.sleep(0.45)
    done = requests.get(f"{base}/job_statuses/{job['id']}.json", auth=auth, timeout=5).json()["job_status"]
    assert done["status"] == "completed" and len(done["results"]) == 20 and len(fake.tickets) == 20
    ticket_id = min(fake.tickets)
    answers = [requests.put(f"{base}/tickets/{ticket_id}.json", auth=auth, timeout=5,
                            json={"ticket": {"comment": {"body": "x", "public": False}}}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert requests.get(f"{base}/tickets/{ticket_id}.json", auth=auth, timeout=5).status_code == 200  # reads still go


def test_new_tickets_go_to_bulk_jobs_while_the_update_ticket_budget_is_nearly_spent(zsvc, fake):
    """Each ticket made one by one spends an Update Ticket call on its note (100/min per
    account): near that limit, new tickets go through jobs (update_many is not counted),
    whatever the backlog; once the minute's calls age out, one by one again."""
    from connector.helpdesks.zendesk.client import UPDATE_TICKET_LIMIT, UPDATE_TICKET_RESERVE
    session = zsvc.helpdesk.session
    fake.job_polls_before_done = 0
    now = time.monotonic()
    session._updates.extend([now] * (UPDATE_TICKET_LIMIT - UPDATE_TICKET_RESERVE))
    assert zsvc.helpdesk.prefers_bulk()
    ingest(zsvc, *[post_dict(id=f"6{n:03d}", author={"id": f"b{n}"}) for n in range(3)])
    zsvc.pipeline.clock.advance(30)  # the test clock stands still; the rows are due
    report = zsvc.pipeline.deliver()
    assert report.created == 3 and not report.errors
    # So few: the tickets are opened one call each (fast), only their notes go in a job.
    assert len(fake.calls("POST", r"^/api/v2/tickets$")) == 3 and not fake.calls("POST", "create_many")
    assert not fake.calls("PUT", r"^/api/v2/tickets/\d+$") and len(fake.calls("PUT", "update_many")) == 1
    for ticket in fake.tickets.values():
        assert [c["public"] for c in fake.comments[ticket["id"]]] == [True, False]  # the post, then its note
    assert session.updates_last_minute() == UPDATE_TICKET_LIMIT - UPDATE_TICKET_RESERVE  # none spent
    fake_before = len(fake.tickets)
    ingest(zsvc, *[post_dict(id=f"7{n:03d}", author={"id": f"c{n}"}) for n in range(12)])
    zsvc.pipeline.clock.advance(30)
    assert zsvc.pipeline.deliver().created == 12
    assert len(fake.tickets) == fake_before + 12 and len(fake.calls("POST", "create_many")) >= 1  # more: jobs
    session._updates.clear()
    session._updates.extend([now - 61] * 95)  # more than a minute ago: spent budget is back
    assert not zsvc.helpdesk.prefers_bulk() and session.updates_last_minute() == 0
    ingest(zsvc, post_dict(id="6999", author={"id": "b9"}))
    zsvc.pipeline.clock.advance(30)
    opened = len(fake.calls("POST", r"^/api/v2/tickets$"))
    assert zsvc.pipeline.deliver().created == 1
    assert len(fake.calls("POST", r"^/api/v2/tickets$")) == opened + 1
    assert len(fake.calls("PUT", r"^/api/v2/tickets/\d+$")) == 1
    assert session.updates_last_minute() == 1  # the note's call is counted
