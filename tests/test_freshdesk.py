"""Freshdesk through its REST API v2 against a stateful fake (tests/fakes/freshdesk.py) served by
pytest-httpserver: ticket fields, contacts, notes, follow-ups, rate limits, errors, exactly one
ticket (and one analysis note) per post across crashes, and the SLA policy."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import ConfigError, Settings
from connector.db.outbox import OutboxRepository
from connector.helpdesks.base import HelpdeskError
from connector.helpdesks.freshdesk.client import (
    MAX_TAG_CHARS,
    FreshdeskHelpdesk,
    FreshdeskSettings,
    post_tag,
    text_to_html,
)
from connector.pipeline import Pipeline
from connector.store import utcnow
from tests.conftest import Crash, post_dict, raise_once, write_jsonl
from tests.fakes.freshdesk import FakeFreshdesk
from tests.freshdesk_support import API_KEY, GROUP_ID, fake, fd_app, fd_svc, freshdesk_env, serve  # noqa: F401


def restarted(svc, minutes=5):
    """A new process: fresh helpdesk object (no memory of the old one), clock moved on."""
    helpdesk = FreshdeskHelpdesk.from_settings(svc.settings, svc.store)
    return Pipeline(svc.store, svc.watch, helpdesk, clock=lambda: utcnow() + timedelta(minutes=minutes))


def tickets_by_post(fake: FakeFreshdesk) -> Counter:
    return Counter(tag for ticket in fake.tickets.values() for tag in ticket["tags"] if tag.startswith("ypost_"))


def notes(fake: FakeFreshdesk, ticket_id: int, private: bool | None = None) -> list[dict]:
    return [n for n in fake.conversations[ticket_id] if private is None or n["private"] is private]


# --- ticket contents ------------------------------------------------------------------------
def test_ticket_fields_contact_and_analysis_note(fd_svc, fake):
    hostile = "ソラモバイル最悪 <script>alert('x')</script> & 圏外"
    fd_svc.pipeline.ingest_raw(post_dict(id="9001", text=hostile, author={"id": "555", "handle": "ken_s", "name": "鈴木 健"}),
                               "test")
    report = fd_svc.pipeline.deliver()
    assert report.created == 1 and not report.errors
    [ticket] = fake.tickets.values()
    analysis = fd_svc.store.posts.load_post("x:9001")[2]
    assert ticket["subject"].startswith("[ソラモバイル] ソラモバイル最悪")
    assert "<script>" not in ticket["description"] and "&lt;script&gt;" in ticket["description"]
    assert "&amp; 圏外" in ticket["description"]
    assert '<a href="https://x.com/tanaka_k/status/' in ticket["description"]
    assert "鈴木 健 (@ken_s) · X" in ticket["description_text"]
    assert ticket["priority"] == {"urgent": 4, "high": 3, "normal": 2, "low": 1}[analysis.priority.value]
    assert ticket["status"] == 2 and ticket["source"] == 2 and ticket["group_id"] == GROUP_ID
    assert {"yorisoi", "src_x", f"sentiment_{analysis.sentiment.value}", f"intent_{analysis.intent.value}",
            f"risk_{analysis.risk.value}", "ypost_x_9001"} <= set(ticket["tags"])
    assert ticket["custom_fields"] == {"cf_sentiment": analysis.sentiment.value, "cf_intent": analysis.intent.value,
                                       "cf_risk": analysis.risk.value}
    contact = fake.contacts[ticket["requester_id"]]
    assert contact["unique_external_id"] == "yorisoi:x:555" and contact["name"] == "鈴木 健"
    [note] = notes(fake, ticket["id"])
    assert note["private"] is True and "Yorisoi 分析 / analysis" in note["body_text"]
    assert "yorisoi-ref: yorisoi:x:9001#note" in note["body_text"]
    ref = fd_svc.store.outbox.ticket_for("x:9001")
    assert ref.helpdesk == "freshdesk" and ref.ticket_id == str(ticket["id"])
    assert ref.url.endswith(f"/a/tickets/{ticket['id']}")


def test_contact_is_created_once_and_reused(fd_svc, fake):
    for i in range(3):
        fd_svc.pipeline.ingest_raw(post_dict(id=f"91{i}", text=f"ソラモバイル繋がらない {i}"), "test")
    fd_svc.pipeline.deliver()
    assert len(fake.tickets) == 3 and len(fake.contacts) == 1
    assert {t["requester_id"] for t in fake.tickets.values()} == set(fake.contacts)


def test_post_tag_is_safe_for_freshdesk():
    assert post_tag("yorisoi:x:1860000000000000001") == "ypost_x_1860000000000000001"
    long_url = post_tag("yorisoi:rss:https://blog.example.jp/entry/2026/11/20/ソラモバイル")
    assert long_url.startswith("ypost_rss_h") and len(long_url) <= MAX_TAG_CHARS
    assert post_tag("yorisoi:bluesky:3KXYZ") != post_tag("yorisoi:bluesky:3kxyz")  # case kept apart
    for tag in (long_url, post_tag("yorisoi:webhook:" + "9" * 40)):
        assert len(tag) <= MAX_TAG_CHARS and tag == tag.lower() and "," not in tag and " " not in tag


def test_text_to_html_escapes_and_links_only_http():
    html = text_to_html("a <b>\n  indented\nPost: javascript:alert(1)", link="javascript:alert(1)")
    assert "&lt;b&gt;" in html and "&nbsp;&nbsp;indented" in html and "<a " not in html


# --- exactly one ticket per post ---------------------------------------------------------------
@pytest.mark.parametrize("cls, method, before", [
    (FreshdeskHelpdesk, "create_ticket", False),      # created, answer lost, process dies
    (OutboxRepository, "mark_created", True),         # created and noted, dies before recording
    (FreshdeskHelpdesk, "_add_analysis_note", True),  # dies between the ticket and its note
])
def test_crash_after_the_call_before_recording_makes_no_duplicate(fd_svc, fake, monkeypatch, cls, method, before):
    for i in range(3):
        fd_svc.pipeline.ingest_raw(post_dict(id=f"92{i}", text=f"ソラモバイル繋がらない {i}"), "test")
    raise_once(monkeypatch, cls, method, Crash, before)
    with pytest.raises(Crash):
        fd_svc.pipeline.deliver()
    creates_before = len(fake.calls("POST", "/api/v2/tickets"))
    restarted(fd_svc).deliver()
    assert tickets_by_post(fake) == Counter({f"ypost_x_92{i}": 1 for i in range(3)})
    assert len(fake.calls("POST", "/api/v2/tickets")) == creates_before + 2  # only the two never tried
    for ticket in fake.tickets.values():
        assert len(notes(fake, ticket["id"], private=True)) == 1  # the analysis note exactly once
    assert len(fd_svc.store.outbox.list_tickets()) == 3


def test_lost_answer_is_found_by_listing_not_search(fd_svc, fake):
    """The answer to POST /tickets is lost (504 after the ticket was made); search would still
    lag behind, the requester listing does not: the retry finds the ticket."""
    fake.search_lag_seconds = 600
    fd_svc.pipeline.ingest_raw(post_dict(id="9301"), "test")
    fake.fail_next("POST", "/api/v2/tickets", 504, {"message": "Gateway Timeout"}, after=True)
    report = fd_svc.pipeline.deliver()
    assert report.retried == 1 and len(fake.tickets) == 1
    restarted(fd_svc).deliver()
    assert len(fake.tickets) == 1 and fd_svc.store.outbox.ticket_for("x:9301") is not None
    assert not fake.calls("GET", "/api/v2/search/tickets")
    [ticket] = fake.tickets.values()
    assert len(notes(fake, ticket["id"], private=True)) == 1


# --- rate limits and errors ---------------------------------------------------------------------
def test_429_pauses_delivery_then_succeeds(fd_svc, fake):
    for i in range(3):
        fd_svc.pipeline.ingest_raw(post_dict(id=f"94{i}", text=f"ソラモバイル遅い {i}"), "test")
    fake.fail_next("POST", "/api/v2/tickets", 429, None, headers={"Retry-After": "34"})
    started = time.monotonic()
    report = fd_svc.pipeline.deliver()
    assert time.monotonic() - started < 2  # nothing sleeps through the wait
    assert report.created == 0 and "429" in report.stopped
    pause = (fd_svc.pipeline.paused_until - utcnow()).total_seconds()
    assert 30 < pause <= 34
    assert fd_svc.pipeline.deliver().stopped  # still paused: no call reaches Freshdesk
    assert len(fake.calls("POST", "/api/v2/tickets")) == 1
    restarted(fd_svc, minutes=1).deliver()
    assert tickets_by_post(fake) == Counter({f"ypost_x_94{i}": 1 for i in range(3)})


def test_paces_on_ratelimit_remaining_without_sleeping(httpserver):
    now = [1000.0]
    fake = serve(httpserver, FakeFreshdesk(api_key=API_KEY, rate_total=10, clock=lambda: now[0]))
    helpdesk = FreshdeskHelpdesk(FreshdeskSettings(httpserver.url_for("/").rstrip("/"), API_KEY), clock=lambda: now[0])
    from connector.helpdesks.base import Requester, TicketDraft
    draft = lambda n: TicketDraft(f"yorisoi:x:{n}", "s", "d", "n", "normal", ("yorisoi",),  # noqa: E731
                                  Requester("yorisoi:x:1", "田中", "tanaka_k"), None)
    for n in range(4):  # 2 calls each: 8 of 10 used, 2 left = the reserve
        helpdesk.create_ticket(draft(n))
    now[0] += 20
    with pytest.raises(HelpdeskError) as info:
        helpdesk.create_ticket(draft(9))
    assert info.value.retryable and info.value.retry_after == pytest.approx(40, abs=0.5)
    assert len(fake.tickets) == 4  # refused before calling
    now[0] += 41
    helpdesk.create_ticket(draft(9))
    assert len(fake.tickets) == 5


def test_validation_error_is_shown_field_by_field_and_does_not_stop_others(httpserver, app_factory):
    # cf_intent only allows "question": a complaint's ticket is refused (400), the question's is not.
    fake = serve(httpserver, FakeFreshdesk(api_key=API_KEY, custom_fields={
        "cf_sentiment": ["negative", "neutral", "positive"], "cf_intent": ["question"], "cf_risk": None}))
    svc = app_factory(**freshdesk_env(httpserver)).extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="9501", text="ソラモバイル最悪、二度と使わない"), "test")
    svc.pipeline.ingest_raw(post_dict(id="9502", text="ソラモバイルのeSIMはどうやって設定しますか？",
                                      author={"id": "77"}), "test")
    report = svc.pipeline.deliver()
    assert report.created == 1 and report.failed == 1 and report.stopped is None
    [error] = report.errors
    assert error["post"] == "x:9501" and error["retryable"] is False
    assert "cf_intent: It should be one of these values: 'question' (invalid_value)" in error["message"]
    assert tickets_by_post(fake) == Counter({"ypost_x_9502": 1})
    failed = [row for row in svc.store.outbox.outbox_rows() if row["status"] == "failed"]
    assert failed and "cf_intent" in failed[0]["last_error"]


@pytest.mark.parametrize("status, words", [(401, "FRESHDESK_API_KEY"), (403, "permission")])
def test_auth_errors_stop_delivery_and_lose_nothing(fd_svc, fake, status, words):
    for i in range(3):
        fd_svc.pipeline.ingest_raw(post_dict(id=f"96{i}", text=f"ソラモバイル {i} 繋がらない"), "test")
    fake.fail_next("POST", "/api/v2/tickets", status,
                   {"code": "invalid_credentials" if status == 401 else "access_denied",
                    "message": "You are not authorized to perform this action."})
    report = fd_svc.pipeline.deliver()
    assert words in report.stopped and report.created == 0
    assert len(fake.calls("POST", "/api/v2/tickets")) == 1  # stopped after the first refusal
    assert API_KEY not in report.stopped
    assert fd_svc.store.outbox.outbox_counts().get("failed", 0) == 0  # nothing lost: all still waiting
    restarted(fd_svc).deliver()
    assert len(fake.tickets) == 3


def test_server_errors_and_timeouts_are_retried(fd_svc, fake, monkeypatch):
    import requests
    fd_svc.pipeline.ingest_raw(post_dict(id="9701"), "test")
    fake.fail_next("POST", "/api/v2/tickets", 503, {"message": "Service Unavailable"})
    assert fd_svc.pipeline.deliver().retried == 1
    original = requests.Session.request
    calls = {"n": 0}

    def slow(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise requests.ReadTimeout("read timed out")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", slow)
    assert restarted(fd_svc, minutes=1).deliver().retried == 1
    restarted(fd_svc, minutes=10).deliver()
    assert len(fake.tickets) == 1


# --- follow-ups -------------------------------------------------------------------------
def test_follow_up_is_a_public_incoming_note_by_the_customer_once(fd_svc, fake, monkeypatch):
    fd_svc.pipeline.ingest_raw(post_dict(id="9801", text="ソラモバイル、請求が二重です"), "test")
    fd_svc.pipeline.deliver()
    fd_svc.pipeline.ingest_raw(post_dict(id="9802", text="まだ直りません <b>早く</b>", in_reply_to="9801",
                                         conversation_id="9801", created_at="2026-11-20T10:00:00Z"), "test")
    raise_once(monkeypatch, OutboxRepository, "mark_commented", Crash)
    with pytest.raises(Crash):
        fd_svc.pipeline.deliver()
    restarted(fd_svc).deliver()
    [ticket] = fake.tickets.values()
    follow_ups = notes(fake, ticket["id"], private=False)
    assert len(follow_ups) == 1  # the crash did not make a second one
    note = follow_ups[0]
    assert note["incoming"] is True and note["user_id"] == ticket["requester_id"]
    assert "&lt;b&gt;早く&lt;/b&gt;" in note["body"] and "yorisoi-ref: yorisoi:x:9802" in note["body_text"]
    ref = fd_svc.store.outbox.ticket_for("x:9801")
    assert fd_svc.helpdesk.has_comment(ref, "yorisoi:x:9802")
    assert not fd_svc.helpdesk.has_comment(ref, "yorisoi:x:9999")


def test_follow_up_without_user_id_when_freshdesk_refuses_a_contact(httpserver, app_factory):
    fake = serve(httpserver, FakeFreshdesk(api_key=API_KEY, contact_notes_allowed=False))
    svc = app_factory(**freshdesk_env(httpserver)).extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="9811", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.ingest_raw(post_dict(id="9812", text="まだです", in_reply_to="9811", conversation_id="9811",
                                      created_at="2026-11-20T10:00:00Z"), "test")
    svc.pipeline.drain(max_wait=1)
    [ticket] = fake.tickets.values()
    [note] = notes(fake, ticket["id"], private=False)
    assert note["user_id"] == 1 and note["incoming"] is True


# --- SLA --------------------------------------------------------------------------------
def run_cli(env, *args):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def test_setup_sla_dry_run_then_create_update_unchanged(env, httpserver, fake):
    fd_env = {**env, **freshdesk_env(httpserver)}
    dry = run_cli(fd_env, "setup-sla", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("freshdesk: dry-run")
    policy = json.loads(dry.output[dry.output.index("{"): dry.output.rindex("}") + 1])
    assert policy["applicable_to"] == {"group_ids": [GROUP_ID]}
    assert list(policy["sla_target"]) == ["priority_4", "priority_3", "priority_2", "priority_1"]
    assert policy["sla_target"]["priority_4"]["respond_within"] == 30 * 60
    assert policy["sla_target"]["priority_1"]["respond_within"] == 1440 * 60
    assert not fake.calls("POST", "/api/v2/sla_policies")  # a dry run changes nothing
    assert "freshdesk: created" in run_cli(fd_env, "setup-sla").output
    assert "freshdesk: unchanged" in run_cli(fd_env, "setup-sla").output
    changed = run_cli({**fd_env, "YORISOI_SLA_MINUTES": "urgent=10,high=45"}, "setup-sla")
    assert "freshdesk: updated" in changed.output and "urgent raised to 15" in changed.output
    [ours] = [p for p in fake.sla_policies.values() if p["name"].startswith("Yorisoi")]
    assert ours["sla_target"]["priority_4"]["respond_within"] == 900
    assert ours["sla_target"]["priority_3"]["respond_within"] == 45 * 60
    assert len(fake.sla_policies) == 2  # the default and ours: updated by name, never duplicated


def test_setup_sla_without_a_group_prints_manual_steps(env, httpserver, fake):
    fd_env = {**env, **freshdesk_env(httpserver, FRESHDESK_GROUP_ID="")}
    result = run_cli(fd_env, "setup-sla")
    assert result.exit_code == 0 and result.output.startswith("freshdesk: manual")
    assert "FRESHDESK_GROUP_ID" in result.output and "cannot match tags" in result.output
    assert not fake.calls("POST", "/api/v2/sla_policies")


# --- configuration --------------------------------------------------------------------------
@pytest.mark.parametrize("env, words", [
    ({"FRESHDESK_DOMAIN": "acme"}, "FRESHDESK_API_KEY is not set"),
    ({"FRESHDESK_API_KEY": "k"}, "FRESHDESK_DOMAIN is not set"),
    ({"FRESHDESK_API_KEY": "k", "FRESHDESK_DOMAIN": "acme co"}, "FRESHDESK_DOMAIN='acme co'"),
    ({"FRESHDESK_API_KEY": "k", "FRESHDESK_DOMAIN": "acme", "FRESHDESK_FIELDS": "mood=cf_mood"}, "FRESHDESK_FIELDS"),
    ({"FRESHDESK_API_KEY": "k", "FRESHDESK_DOMAIN": "acme", "FRESHDESK_GROUP_ID": "sns"}, "FRESHDESK_GROUP_ID"),
    ({"FRESHDESK_API_KEY": "k", "FRESHDESK_DOMAIN": "acme", "FRESHDESK_WEBHOOK_TOKEN": "short"},
     "FRESHDESK_WEBHOOK_TOKEN is too short"),
])
def test_bad_freshdesk_settings_name_the_variable(env, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        FreshdeskSettings.from_env(env)


def test_domain_builds_the_url_and_secrets_stay_hidden():
    settings = FreshdeskSettings.from_env({"FRESHDESK_DOMAIN": "acme.freshdesk.com", "FRESHDESK_API_KEY": "sekret-key",
                                           "FRESHDESK_WEBHOOK_TOKEN": "x" * 20})
    assert settings.base_url == "https://acme.freshdesk.com"
    helpdesk = FreshdeskHelpdesk(settings)
    assert "sekret" not in repr(settings) and "sekret" not in json.dumps(helpdesk.describe())
    assert "x" * 20 not in repr(settings)


def test_start_up_fails_naming_the_missing_variable(env):
    result = CliRunner().invoke(main, ["check-config"], env={**env, "YORISOI_HELPDESK": "freshdesk",
                                                             "FRESHDESK_DOMAIN": "acme"})
    assert result.exit_code != 0 and "FRESHDESK_API_KEY is not set" in result.output


# --- end to end -----------------------------------------------------------------------------
def test_replay_twice_creates_one_ticket_per_qualifying_post(env, httpserver, fake, tmp_path):
    posts = [post_dict(id="9901", text="ソラモバイル、駅で全然繋がらない"),
             post_dict(id="9902", text="ソラモバイルの料金プランを教えてください", author={"id": "8"}),
             post_dict(id="9903", text="今日は空がきれい", author={"id": "9"}),
             post_dict(id="9904", text="追記：まだ繋がらない", in_reply_to="9901", conversation_id="9901",
                       created_at="2026-11-20T10:00:00Z")]
    file = write_jsonl(tmp_path / "posts.jsonl", posts)
    fd_env = {**env, **freshdesk_env(httpserver)}
    first = json.loads(run_cli(fd_env, "replay", str(file), "--json", "--wait", "5").stdout)
    assert first["tickets_created"] == 2 and first["comments_added"] == 1 and first["errors"] == []
    second = json.loads(run_cli(fd_env, "replay", str(file), "--json", "--wait", "5").stdout)
    assert second["tickets_created"] == 0 and second["duplicates_skipped"] == 4
    assert tickets_by_post(fake) == Counter({"ypost_x_9901": 1, "ypost_x_9902": 1})
    assert Settings  # imported for the type only


# --- a create Freshdesk finishes after our read timeout (issue 16 #7) ------------------------------
def client_settle() -> float:
    import connector.helpdesks.freshdesk.client as client
    return getattr(client, "SETTLE_SECONDS", 120.0)


@pytest.fixture
def late_setup(httpserver, app_factory, monkeypatch):
    """A fake and a helpdesk on one controllable clock, a short read timeout to beat."""
    import connector.helpdesks.freshdesk.client as client
    monkeypatch.setattr(client, "TIMEOUT", (5.0, 0.3))
    now = [1000.0]
    fake = serve(httpserver, FakeFreshdesk(api_key=API_KEY, clock=lambda: now[0]))
    svc = app_factory(**freshdesk_env(httpserver)).extensions["yorisoi"]
    helpdesk = FreshdeskHelpdesk(FreshdeskSettings.from_env(svc.settings.env), svc.store, clock=lambda: now[0])

    def at(seconds: float) -> Pipeline:  # this process, `seconds` after the first attempt
        now[0] = 1000.0 + seconds
        return Pipeline(svc.store, svc.watch, helpdesk, clock=lambda: utcnow() + timedelta(seconds=seconds))
    return svc, fake, at


def test_create_finished_after_the_read_timeout_is_found_not_created_again(late_setup):
    """Freshdesk finishes the create 35 s after we gave up: the retry 2 s later used to look,
    miss it and create a second ticket. The retry now waits for in-flight work to settle."""
    svc, fake, at = late_setup
    svc.pipeline.ingest_raw(post_dict(id="9801"), "test")
    fake.process_late(hold=0.6, delay=35)
    assert at(0).deliver().retried == 1 and not fake.tickets
    time.sleep(0.5)  # the fake serves one request at a time: let it finish the held answer
    at(3).deliver()  # the backoff alone would make the row due now
    at(40).deliver()
    at(client_settle() + 5).deliver()
    with fake.lock:
        fake.land_late()  # whatever Freshdesk had in flight has landed by now
    assert tickets_by_post(fake) == Counter({"ypost_x_9801": 1})
    [ticket] = fake.tickets.values()
    assert svc.store.outbox.ticket_for("x:9801").ticket_id == str(ticket["id"])
    assert len(notes(fake, ticket["id"], private=True)) == 1  # the analysis note, added to the late ticket


def test_duplicate_that_slips_through_is_closed_and_the_oldest_kept(late_setup):
    """The late create lands only after our resend (no lookup could have seen it): the later
    ticket is closed as a duplicate with a private note, the older one is recorded."""
    svc, fake, at = late_setup
    svc.pipeline.ingest_raw(post_dict(id="9802"), "test")
    fake.process_late(hold=0.6, delay=None)
    assert at(0).deliver().retried == 1
    time.sleep(0.5)  # the fake serves one request at a time: let it finish the held answer
    assert at(client_settle() + 5).deliver().created == 1
    assert len(fake.tickets) == 2
    kept, late = sorted(fake.tickets.values(), key=lambda t: t["id"])
    assert svc.store.outbox.ticket_for("x:9802").ticket_id == str(kept["id"])
    assert kept["status"] == 2 and late["status"] == 5
    [note] = notes(fake, late["id"], private=True)
    assert f"#{kept['id']}" in note["body_text"] and "Duplicate" in note["body_text"]
    at(client_settle() + 60).deliver()  # nothing more to do: closed once, no third ticket
    assert len(fake.tickets) == 2 and len(notes(fake, late["id"])) == 1
