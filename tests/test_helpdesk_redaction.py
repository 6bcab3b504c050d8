"""Deletion compliance inside the helpdesk (issue 15): a purged post's words also leave the
helpdesk's copy — Zendesk comment redaction, Freshdesk description / notes rewritten — with one
internal note, never repeated, and a report of what could not be redacted."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.compliance import run_compliance
from connector.poller import Poller
from connector.store import utcnow
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk
from tests.freshdesk_support import API_KEY, freshdesk_env

EMAIL, TOKEN = "agent@example.com", "zd-token"
TEXT = "ソラモバイルの請求が二重、ひどい"


def later(hours: float):
    return lambda: utcnow() + timedelta(hours=hours)


@pytest.fixture
def zfake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


@pytest.fixture
def zenv(httpserver, zfake):
    return {"YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": httpserver.url_for("/").rstrip("/"),
            "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN}


def deliver_and_delete(svc, x, text: str = TEXT):
    gone = x.add_post(text, author="1850000000000000555")
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    x.delete(gone)
    svc.store.compliance.mark_live([f"x:{gone}"], "x")
    return gone


def compliance_notes(comments):
    return [c for c in comments if not c["public"] and "Yorisoi: 元の投稿" in c["body"]]


def test_zendesk_redacts_the_post_and_its_note_then_notes_once(social_app, fakes, zenv, zfake):
    svc = social_app(only=("x",), **zenv)
    gone = deliver_and_delete(svc, fakes["x"])
    [ticket] = zfake.tickets.values()
    assert any("二重" in c["body"] for c in zfake.comments[ticket["id"]])
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(13))
    assert report.purged == [f"x:{gone}"] and report.redacted == [f"x:{gone}"] and report.not_redacted == []
    redactions = zfake.calls("PUT", r"/api/v2/comment_redactions/\d+")
    assert len(redactions) == 2  # the post (first comment) and the analysis note with its evidence
    assert all("<redact>" in call[3]["html_body"] and call[3]["ticket_id"] == ticket["id"] for call in redactions)
    comments = zfake.comments[ticket["id"]]
    assert not any("二重" in (c["body"] or "") or "二重" in c["html_body"] for c in comments)
    assert "▇" in comments[0]["body"]
    assert len(compliance_notes(comments)) == 1
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(30))
    assert again.notes_added == 0 and again.redacted == []
    assert len(zfake.calls("PUT", r"/api/v2/comment_redactions/\d+")) == 2
    assert len(compliance_notes(zfake.comments[ticket["id"]])) == 1


def test_zendesk_redaction_works_on_closed_tickets_and_reports_the_note(social_app, fakes, zenv, zfake):
    svc = social_app(only=("x",), **zenv)
    gone = deliver_and_delete(svc, fakes["x"])
    [ticket] = zfake.tickets.values()
    zfake.set_status(ticket["id"], "closed")
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(13))
    assert report.redacted == [f"x:{gone}"]
    assert not any("二重" in (c["body"] or "") for c in zfake.comments[ticket["id"]])
    assert any("ticket closed" in e for e in report.errors)
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(30))
    assert again.errors == []  # the closed ticket's note is not attempted again


def test_zendesk_redaction_refused_is_reported_and_not_retried(social_app, fakes, zenv, zfake, env, tmp_path):
    svc = social_app(only=("x",), **zenv)
    gone = deliver_and_delete(svc, fakes["x"])
    # Agent Workspace off / no permission: Zendesk answers 403 (…/ticket_comments/, Allowed For).
    zfake.fail_next("PUT", r"/api/v2/comment_redactions/\d+", 403,
                    {"error": "Forbidden", "description": "You do not have access to this page."})
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(13))
    assert report.redacted == [] and report.notes_added == 1
    [row] = report.not_redacted
    assert row["post_key"] == f"x:{gone}" and row["state"] == "impossible" and "403" in row["detail"]
    calls = len(zfake.calls("PUT", r"/api/v2/comment_redactions/\d+"))
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(30))
    assert len(zfake.calls("PUT", r"/api/v2/comment_redactions/\d+")) == calls
    assert [r["post_key"] for r in again.not_redacted] == [f"x:{gone}"]
    # `yorisoi compliance` lists it.
    result = CliRunner(env=social_env(env, tmp_path, {"x": fakes["x"]}, **zenv)).invoke(main, ["compliance"])
    assert result.exit_code == 0, result.output
    assert "not redacted in the helpdesk (1" in result.output and f"x:{gone}" in result.output


def test_zendesk_temporary_redaction_failure_is_retried(social_app, fakes, zenv, zfake):
    svc = social_app(only=("x",), **zenv)
    gone = deliver_and_delete(svc, fakes["x"])
    zfake.fail_next("PUT", r"/api/v2/comment_redactions/\d+", 503, {"error": "ServiceUnavailable"})
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(13))
    assert report.redacted == [f"x:{gone}"] or report.not_redacted[0]["state"] == "failed"
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(30))
    assert again.not_redacted == []
    [ticket] = zfake.tickets.values()
    assert not any("二重" in (c["body"] or "") for c in zfake.comments[ticket["id"]])
    assert len(compliance_notes(zfake.comments[ticket["id"]])) == 1


# --- Freshdesk -------------------------------------------------------------------------------
def test_freshdesk_rewrites_description_subject_and_notes(social_app, fakes, httpserver, env, tmp_path):
    ffake = FakeFreshdesk(api_key=API_KEY)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(ffake.handle)
    fenv = {k: v for k, v in freshdesk_env(httpserver).items() if k != "FRESHDESK_FIELDS"}
    svc = social_app(only=("x",), **fenv)
    gone = deliver_and_delete(svc, fakes["x"])
    [ticket] = ffake.tickets.values()
    assert "二重" in ticket["description_text"]
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(13))
    assert report.redacted == [f"x:{gone}"] and report.not_redacted == []
    assert "二重" not in ticket["description_text"] and "二重" not in ticket["subject"]
    assert "削除" in ticket["description_text"]
    conversations = ffake.conversations[ticket["id"]]
    assert not any("二重" in c["body_text"] for c in conversations)
    assert len([c for c in conversations if "Yorisoi: 元の投稿" in c["body_text"]]) == 1
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=later(30))
    assert again.notes_added == 0 and again.redacted == []
    assert len([c for c in ffake.conversations[ticket["id"]] if "Yorisoi: 元の投稿" in c["body_text"]]) == 1
    assert json.dumps(again.as_dict())
