"""The poller: one network's 429 backs off that network alone; `yorisoi poll --once` ingests
from all four sources into tickets; intervals and back-off are respected between passes."""
from __future__ import annotations

import json
import re
from datetime import timedelta

from click.testing import CliRunner

from connector.cli import main
from connector.poller import Poller, backoff_seconds
from connector.sources.base import SourceError
from connector.store import utcnow
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env


def _seed(fakes):
    fakes["x"].add_post("ソラモバイル、朝から駅で全然つながりません。いつ直りますか？", mention_brand=True)
    fakes["mastodon"].add_status("<p>ソラ光の工事、3週間待ちは長い #ソラモバイル</p>", tags=["ソラモバイル"])
    fakes["bluesky"].add_post("ハルカ珈琲の新しいブレンド、酸味が強くて前の方が好きだった")


def test_a_429_backs_off_one_network_while_the_others_continue(social_app, fakes):
    _seed(fakes)
    fakes["x"].fail_next(429, headers={"x-rate-limit-reset": str(int(utcnow().timestamp()) + 900)})
    svc = social_app()
    report = Poller(svc).run_once(compliance=False)
    by_platform = {}
    for unit in report.units:
        by_platform.setdefault(unit.platform, []).append(unit)
    x_first = by_platform["x"][0]
    assert x_first.error and "429" in x_first.error
    assert 800 < (x_first.next_poll_at - utcnow()).total_seconds() <= 900
    assert sum(u.queued for u in by_platform["mastodon"]) == 1
    assert sum(u.queued for u in by_platform["bluesky"]) == 1
    assert sum(u.queued for u in by_platform["rss"]) == 1
    # Next pass: the failed X unit is still backing off and is not called; the rest run.
    calls = len(fakes["x"].calls("/2/tweets/search/recent"))
    again = Poller(svc).run_once(compliance=False)
    waiting = next(u for u in again.units if u.unit == x_first.unit)
    assert not waiting.polled and waiting.backing_off
    assert len(fakes["x"].calls("/2/tweets/search/recent")) == calls + 1  # only the other brand's query
    # Once the wait is over, it polls again and picks the post up.
    later = Poller(svc, clock=lambda: utcnow() + timedelta(seconds=901)).run_once(compliance=False)
    # (the mentions unit already made its ticket: the search finds it stored, no second ticket)
    assert next(u for u in later.units if u.unit == x_first.unit).fetched == 1
    assert svc.store.posts.counts()["posts"] == 4


def test_backoff_grows_and_honours_retry_after():
    assert backoff_seconds(1, SourceError("x", retryable=True)) == 30
    assert backoff_seconds(3, SourceError("x", retryable=True)) == 120
    assert backoff_seconds(20, SourceError("x", retryable=True)) == 3600
    assert backoff_seconds(1, SourceError("x", retryable=True, retry_after=42)) == 42
    assert backoff_seconds(1, SourceError("bad token", retryable=False)) == 3600


def test_poll_once_ingests_from_all_four_sources(env, tmp_path, fakes):
    _seed(fakes)
    run_env = social_env(env, tmp_path, fakes)
    result = CliRunner().invoke(main, ["poll", "--once"], env=run_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "tickets created 4" in result.output
    assert "X spend today" in result.output
    # each unit's line: Japanese first, English too; the next poll in JST
    unit_lines = [line for line in result.output.splitlines() if " 取得 " in line]
    assert len(unit_lines) >= 4 and all(" / fetched " in line for line in unit_lines), result.output
    assert any("新規チケット 1" in line and "new tickets 1" in line for line in unit_lines), result.output
    assert not re.search(r"\d\d:\d\d:\d\d UTC", result.output)  # times for people are JST
    tickets = json.loads(CliRunner().invoke(main, ["tickets", "--json"], env=run_env).output)
    assert sorted(t["external_id"].split(":")[1] for t in tickets) == ["bluesky", "mastodon", "rss", "x"]
    again = CliRunner().invoke(main, ["poll", "--once", "--json"], env=run_env, catch_exceptions=False)
    assert json.loads(again.output)["tickets_created"] == 0


def test_poll_without_any_network_says_what_to_set(env):
    result = CliRunner().invoke(main, ["poll", "--once"], env=env)
    assert result.exit_code == 1 and "X_BEARER_TOKEN" in result.output


def test_a_database_failure_stops_its_unit_alone_without_moving_the_cursor(social_app, fakes, monkeypatch):
    """The database failing under one unit's ingest made the exception escape `poll_unit`: the
    other units of the pass were never polled and the compliance step (X's 24-hour deletion
    rule) never ran again. Each unit is isolated; the failed one keeps its cursor (issue 16 #1)."""
    from connector.db import Unavailable
    _seed(fakes)
    svc = social_app()
    poller = Poller(svc)
    original = svc.pipeline.ingest

    def ingest(post, source):
        if source == "x":
            raise Unavailable("database is locked", "OperationalError")
        return original(post, source=source)
    monkeypatch.setattr(svc.pipeline, "ingest", ingest)
    ran = []
    monkeypatch.setattr(poller, "run_compliance", lambda *a, **k: ran.append(True))
    report = poller.run_once(compliance=True)
    x_units = [u for u in report.units if u.platform == "x"]
    assert x_units and any(u.error and "locked" in u.error for u in x_units)
    assert all(u.next_poll_at is not None for u in x_units)
    others = [u for u in report.units if u.platform != "x"]
    assert {u.platform for u in others} == {"mastodon", "bluesky", "rss"}
    assert sum(u.queued for u in others) == 3
    assert ran == [True]
    # The failed unit's cursor did not move: once the database is back, it picks the post up.
    monkeypatch.setattr(svc.pipeline, "ingest", original)
    later = Poller(svc, clock=lambda: utcnow() + timedelta(hours=2)).run_once(compliance=False)
    assert sum(u.queued for u in later.units if u.platform == "x") == 1


def test_one_post_that_cannot_be_ingested_is_skipped_not_the_unit(social_app, fakes, monkeypatch):
    """A post the pipeline cannot take for a reason other than the database (a bug, a
    validation error: the 9999-12-31 overflow) stopped its whole unit, forever: every poll
    fetched it again and failed again, and the posts after it never arrived (issue 16 #1)."""
    fakes["bluesky"].add_post("ハルカ珈琲、壊れた投稿")
    fakes["bluesky"].add_post("ハルカ珈琲の新しいブレンド、酸味が強くて前の方が好きだった")
    svc = social_app(only=("bluesky",))
    original = svc.pipeline.ingest

    def ingest(post, source):
        if "壊れた" in post.text:
            raise OverflowError("date value out of range")
        return original(post, source=source)
    monkeypatch.setattr(svc.pipeline, "ingest", ingest)
    report = Poller(svc).run_once(compliance=False)
    unit = next(u for u in report.units if u.unit == "bluesky:search:ハルカ珈琲")
    assert unit.error is None and unit.queued == 1 and unit.failed == 1
    assert svc.store.posts.counts()["posts"] == 1
    again = Poller(svc, clock=lambda: utcnow() + timedelta(hours=2)).run_once(compliance=False)
    unit = next(u for u in again.units if u.unit == "bluesky:search:ハルカ珈琲")
    assert unit.error is None  # the unit moved on past the bad post


def test_compliance_runs_whatever_the_units_do(social_app, fakes, monkeypatch):
    """Even when a unit cannot even start (its lock or health read fails: the database),
    the compliance step keeps its own schedule (issue 16 #1)."""
    from connector.db import Unavailable
    _seed(fakes)
    svc = social_app()
    poller = Poller(svc)

    def due(*_a, **_k):
        raise Unavailable("database is locked", "OperationalError")
    monkeypatch.setattr(poller, "_due", due)
    ran = []
    monkeypatch.setattr(poller, "run_compliance", lambda *a, **k: ran.append(True))
    report = poller.run_once()
    assert ran == [True]
    assert report.units and all(u.error and "locked" in u.error for u in report.units)
