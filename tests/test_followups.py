"""Follow-ups on closed tickets (issue 15): Zendesk opens a follow-up ticket
(`via_followup_source_id`) instead of failing with 422; Freshdesk reopens the ticket."""
from __future__ import annotations

import pytest

from tests.conftest import post_dict
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk
from tests.freshdesk_support import API_KEY, freshdesk_env, serve

EMAIL, TOKEN = "agent@example.com", "zd-token"


def first_and_follow_up(svc, first: str, second: str, third: str | None = None) -> None:
    assert svc.pipeline.ingest_raw(post_dict(id=first, text="ソラモバイル、請求が二重です"), "test").status == "queued"
    svc.pipeline.deliver()


def follow_up(svc, post_id: str, parent: str, minute: int) -> None:
    outcome = svc.pipeline.ingest_raw(post_dict(id=post_id, text=f"まだ直りません {post_id}", conversation_id=parent,
                                                in_reply_to=parent, created_at=f"2026-11-20T10:{minute:02d}:00Z"),
                                      "test")
    assert outcome.status == "follow_up", outcome


@pytest.fixture
def zfake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


@pytest.fixture
def zsvc(app_factory, httpserver, zfake):
    return app_factory(YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                       ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN).extensions["yorisoi"]


def test_fake_zendesk_refuses_updates_of_closed_tickets_like_zendesk(zsvc, zfake):
    first_and_follow_up(zsvc, "701", "")
    [ticket] = zfake.tickets.values()
    zfake.set_status(ticket["id"], "closed")
    status, body, _ = zfake._update_ticket(ticket, {"comment": {"body": "x"}})
    assert status == 422 and body["details"]["status"][0]["description"] == "Status: closed prevents ticket update"


def test_zendesk_comment_on_a_closed_ticket_opens_a_follow_up_ticket(zsvc, zfake):
    first_and_follow_up(zsvc, "711", "")
    [closed] = zfake.tickets.values()
    zfake.set_status(closed["id"], "closed")
    follow_up(zsvc, "712", "711", 5)
    report = zsvc.pipeline.deliver()
    assert report.created == 1 and report.failed == 0 and report.commented == 0
    [followup] = zfake.ticket_by_external_id("yorisoi:x:712")
    assert followup["via"]["source"]["rel"] == "follow_up"
    assert followup["via"]["source"]["from"]["ticket_id"] == closed["id"]
    create = [c for c in zfake.calls("POST", r"^/api/v2/tickets$") if c[3]["ticket"].get("external_id") == "yorisoi:x:712"]
    assert create[0][3]["ticket"]["via_followup_source_id"] == closed["id"]
    # The post's text first, then its analysis note; recorded as the post's ticket.
    comments = zfake.comments[followup["id"]]
    assert "まだ直りません" in comments[0]["body"] and not comments[1]["public"]
    assert zsvc.store.outbox.ticket_for("x:712").ticket_id == str(followup["id"])
    # The conversation goes on in the follow-up ticket: no second follow-up ticket.
    follow_up(zsvc, "713", "711", 10)
    report = zsvc.pipeline.deliver()
    assert report.commented == 1 and report.created == 0
    assert "713" in zfake.comments[followup["id"]][-1]["body"]
    assert len(zfake.tickets) == 2


def test_zendesk_solved_ticket_still_takes_the_comment(zsvc, zfake):
    first_and_follow_up(zsvc, "721", "")
    [ticket] = zfake.tickets.values()
    zfake.set_status(ticket["id"], "solved")
    follow_up(zsvc, "722", "721", 5)
    assert zsvc.pipeline.deliver().commented == 1
    assert len(zfake.tickets) == 1


# --- Freshdesk -------------------------------------------------------------------------------
@pytest.fixture
def ffake(httpserver):
    return serve(httpserver, FakeFreshdesk(api_key=API_KEY))


@pytest.fixture
def fsvc(app_factory, httpserver, ffake):
    return app_factory(**freshdesk_env(httpserver)).extensions["yorisoi"]


@pytest.mark.parametrize("status", [4, 5])
def test_freshdesk_follow_up_reopens_a_resolved_or_closed_ticket(fsvc, ffake, status):
    first_and_follow_up(fsvc, "731", "")
    [ticket] = ffake.tickets.values()
    ffake.set_status(ticket["id"], status)
    fsvc.store.ticket_status.record("freshdesk", [_update(ticket["id"], status)], via="webhook")
    follow_up(fsvc, "732", "731", 5)
    assert fsvc.pipeline.deliver().commented == 1
    assert ffake.tickets[ticket["id"]]["status"] == 2
    assert ffake.calls("PUT", rf"/api/v2/tickets/{ticket['id']}") == [{"status": 2}]
    assert "まだ直りません" in ffake.conversations[ticket["id"]][-1]["body_text"]
    assert len(ffake.tickets) == 1


def test_freshdesk_follow_up_on_an_open_ticket_does_not_touch_its_status(fsvc, ffake):
    first_and_follow_up(fsvc, "741", "")
    follow_up(fsvc, "742", "741", 5)
    assert fsvc.pipeline.deliver().commented == 1
    assert ffake.calls("PUT", r"/api/v2/tickets/\d+") == []


def _update(ticket_id, status):
    from datetime import datetime, timezone

    from connector.helpdesks.base import StatusUpdate
    from connector.helpdesks.freshdesk.client import STATUS_NAMES
    return StatusUpdate(str(ticket_id), STATUS_NAMES[status], datetime.now(timezone.utc))
