"""The X filtered stream against the fake X API (tests/fakes/x.py: `GET /2/tweets/search/stream`
as newline-delimited JSON with keep-alives, `…/rules`): rules synced idempotently and only
ours touched, resume after a restart (recent-search catch-up from the last id; Enterprise
backfill), reconnect after the server drops, duplicates, out-of-order posts, malformed lines,
a stall found by the keep-alive timeout, TooManyConnections, a plan without the stream (polling
instead), the adaptive X poll interval, and one instance per stream on PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector.db import utcnow
from connector.poller import Poller
from connector.sources.x import adaptive_interval
from connector.sources.x_stream import PLANS, STREAM_NAME, StreamPlan, backfill_minutes, plan_rules, rule_tag
from connector.streaming import StreamRunner, health_key, stream_covers, stream_status
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.wsserver import wait_for as _wait_for
from tests.fakes.x import FakeX

COMPLAINT = "ソラモバイル、駅で全然つながらない。最悪"


def wait_for(condition, timeout: float = 30.0):
    """The first ingest loads the analysis models: slow on a busy machine."""
    return _wait_for(condition, timeout)


@pytest.fixture
def x_stream(social_app, fakes):
    """(make_runner, svc, fake): runners on the fake X, stopped at the end."""
    fake: FakeX = fakes["x"]
    fake.keepalive_seconds = 0.2
    runners: list[StreamRunner] = []
    apps: list = []

    def make(stall: float = 3.0, **extra: str) -> tuple[StreamRunner, object]:
        svc = apps[0] if apps and not extra else social_app(only=("x",), **extra)
        if not apps:
            apps.append(svc)
        [stream] = svc.sources["x"].streams(svc.pipeline)
        stream.stall_seconds = stall
        runner = StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2, lock_retry=0.2)
        runners.append(runner)
        return runner, svc

    yield make, fake
    fake.close_streams()
    for runner in runners:
        runner.stop()


def cursor(svc) -> str | None:
    return (svc.store.sources.get_state(f"cursor:{STREAM_NAME}") or {}).get("last_id")


def stored(svc, post_id: str) -> bool:
    return svc.store.posts.post_exists(f"x:{post_id}")


def search_since_ids(fake: FakeX) -> list[str]:
    return [c["args"].get("since_id", [None])[0] for c in fake.calls("/2/tweets/search/recent")]


# --- rules ------------------------------------------------------------------------------------
def test_rules_from_the_watch_file_synced_idempotently_and_only_ours(x_stream):
    make, fake = x_stream
    fake.rules["1"] = {"id": "1", "value": "coffee -is:retweet", "tag": "another tool"}
    fake.rules["2"] = {"id": "2", "value": "(古いブランド) -is:retweet", "tag": rule_tag("(古いブランド) -is:retweet")}
    runner, svc = make()
    stream = runner.stream
    plan = stream.sync_rules()
    queries = svc.sources["x"].queries
    assert plan.covered == queries and plan.delete == ["2"]
    values = {r["value"]: r["tag"] for r in fake.rules.values()}
    assert values["coffee -is:retweet"] == "another tool"  # not ours: untouched
    assert "(古いブランド) -is:retweet" not in values  # ours, stale: deleted
    assert all(values[q] == rule_tag(q) for q in queries)
    posts_before = len(fake.calls("/2/tweets/search/stream/rules", "POST"))
    again = stream.sync_rules()
    assert again.add == [] and again.delete == []
    assert len(fake.calls("/2/tweets/search/stream/rules", "POST")) == posts_before  # nothing to change
    # The rules' posts are the ones the stream covers: the poller leaves those units alone.
    assert svc.store.sources.get_state("x:stream:covered") == queries


def test_rule_budget_length_and_other_tools_rules():
    small = StreamPlan("tiny", True, rules=3, rule_chars=30, backfill=False)
    wanted = ["(a OR b) -is:retweet", "(c) -is:retweet", "(" + "x" * 40 + ")", "(d) -is:retweet"]
    existing = [{"id": "9", "value": "coffee", "tag": "other"},
                {"id": "7", "value": "(c) -is:retweet", "tag": rule_tag("(c) -is:retweet")}]
    plan = plan_rules(wanted, existing, small)
    # 3 rules, one another tool's: 2 of ours fit; the 41-character query fits no rule.
    assert plan.covered == ["(a OR b) -is:retweet", "(c) -is:retweet"]
    assert plan.add == [{"value": "(a OR b) -is:retweet", "tag": rule_tag("(a OR b) -is:retweet")}]
    assert plan.delete == []
    assert plan.left_out == ["(" + "x" * 40 + ")", "(d) -is:retweet"]
    # A query another tool already has as a rule is covered without a rule of ours.
    shared = plan_rules(["coffee"], existing, small)
    assert shared.covered == ["coffee"] and shared.add == [] and shared.delete == ["7"]
    assert PLANS["pay-per-use"].rules == 1000 and PLANS["enterprise"].backfill and not PLANS["basic"].offered


def test_backfill_only_on_enterprise_and_within_five_minutes():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    recent = (now - timedelta(seconds=130)).isoformat()
    assert backfill_minutes(recent, now, PLANS["enterprise"]) == 3
    assert backfill_minutes(recent, now, PLANS["pay-per-use"]) == 0
    assert backfill_minutes((now - timedelta(minutes=6)).isoformat(), now, PLANS["enterprise"]) == 0


# --- the stream ---------------------------------------------------------------------------
def test_streamed_posts_are_stored_the_cursor_follows_and_reads_are_charged(x_stream):
    make, fake = x_stream
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    first = fake.add_post(COMPLAINT)
    other = fake.add_post("今日は空がきれい")  # matches no rule: never sent
    second = fake.add_post("ハルカ珈琲の店員さん神対応でした")
    wait_for(lambda: cursor(svc) == second)
    assert stored(svc, first) and stored(svc, second) and not stored(svc, other)
    usage = svc.store.sources.usage_today("x", utcnow().strftime("%Y-%m-%d"))
    assert usage["post_read"] >= 2 and usage["user_read"] >= 2  # billed like search results
    [conn] = fake.stream_connections
    assert conn["args"]["tweet.fields"].startswith("created_at") and "backfill_minutes" not in conn["args"]
    assert stream_covers(svc.store.sources, STREAM_NAME)


def test_resume_after_a_restart_catches_up_by_search_from_the_last_id(x_stream):
    make, fake = x_stream
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    first = fake.add_post(COMPLAINT)
    wait_for(lambda: cursor(svc) == first)
    runner.stop()  # the process is gone (tests/test_streaming_x.py::…kill_9 does it for real)
    # Published while nobody was connected: the stream never sends these again.
    missed = [fake.add_post(f"ソラモバイル 請求がおかしい {i}", stream=False) for i in range(3)]
    again, _ = make()
    again.start()
    wait_for(lambda: all(stored(svc, m) for m in missed))
    assert first in search_since_ids(fake)  # caught up from the last id seen
    wait_for(lambda: cursor(svc) == missed[-1])
    assert again.health["posts"] == 3  # the first post was not ingested twice


def test_enterprise_reconnect_uses_backfill_minutes(x_stream):
    make, fake = x_stream
    fake.plan = "enterprise"
    runner, svc = make(X_PLAN="enterprise")
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    first = fake.add_post(COMPLAINT)
    wait_for(lambda: cursor(svc) == first)
    runner.stop()
    missed = fake.add_post("ソラモバイル 圏外のまま")  # published while disconnected
    again, _ = make()
    again.start()
    wait_for(lambda: stored(svc, missed))
    assert fake.stream_connections[-1]["args"]["backfill_minutes"] == "1"
    assert first not in search_since_ids(fake)  # backfill, not a search catch-up
    # The runner counts a post just after its commit (a health write comes between), so wait
    # for the count; the backfilled first post came before `missed`, so had it counted it would be 2.
    wait_for(lambda: again.health["posts"] >= 1)
    assert again.health["posts"] == 1  # the backfilled first post was a duplicate


def test_reconnects_after_the_server_drops_the_connection(x_stream):
    make, fake = x_stream
    runner, svc = make()
    fake.drop_stream_after(1)
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    first = fake.add_post(COMPLAINT)
    wait_for(lambda: len(fake.stream_connections) >= 2 and runner.health["status"] == "connected")
    assert runner.health["reconnects"] >= 1 and "closed the connection" in runner.health["last_error"]
    second = fake.add_post("ソラモバイル 遅い")
    wait_for(lambda: stored(svc, first) and stored(svc, second))
    assert first in search_since_ids(fake)  # the reconnect caught up from the last id


def test_duplicate_and_out_of_order_posts(x_stream):
    make, fake = x_stream
    runner, svc = make()
    ids = [fake.add_post(f"ソラモバイル 障害 {i}", stream=False) for i in range(3)]
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    for post_id in reversed(ids):
        fake.stream_post(post_id)
    fake.stream_post(ids[1])  # again
    wait_for(lambda: runner.health["events"] == 4)
    assert all(stored(svc, i) for i in ids)
    assert runner.health["posts"] == 3  # the repeat was skipped
    assert cursor(svc) == ids[-1]  # the newest, although it came first


def test_malformed_lines_are_logged_and_skipped(x_stream, caplog):
    make, fake = x_stream
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    fake.stream_raw("{not json")
    fake.stream_raw("[1, 2]")
    fake.stream_raw('{"errors": [{"title": "Field Hydration Failure", "type": "about:blank"}]}')
    fake.stream_raw('{"data": {"id": "123", "text": "ソラモバイル"}}')  # no author_id: not a post
    good = fake.add_post(COMPLAINT)
    wait_for(lambda: stored(svc, good))
    assert runner.health["reconnects"] == 0 and runner.health["status"] == "connected"
    assert "malformed line skipped" in caplog.text


def test_operational_disconnect_line_reconnects(x_stream):
    make, fake = x_stream
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    fake.stream_raw('{"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",'
                    ' "detail": "This stream has been disconnected upstream for operational reasons.",'
                    ' "type": "https://api.twitter.com/2/problems/operational-disconnect"}]}')
    wait_for(lambda: runner.health["reconnects"] >= 1)
    assert "UpstreamOperationalDisconnect" in runner.health["last_error"]


def test_a_stall_is_found_by_the_keep_alive_timeout(x_stream):
    make, fake = x_stream
    runner, svc = make(stall=1.0)
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    first = fake.add_post(COMPLAINT)
    wait_for(lambda: cursor(svc) == first)
    fake.stream_stalled = True  # the socket stays open, not even keep-alives
    wait_for(lambda: runner.health["reconnects"] >= 1, timeout=10)
    assert "stalled" in runner.health["last_error"]
    fake.stream_stalled = False
    # Published around the reconnect: live on the new connection, or found by its catch-up.
    later = fake.add_post("ソラモバイル まだ圏外")
    wait_for(lambda: stored(svc, later))


def test_keep_alives_keep_a_quiet_stream_connected(x_stream):
    make, fake = x_stream
    runner, _svc = make(stall=1.0)
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected")
    import time
    time.sleep(2.5)  # no posts, keep-alives every 0.2 s
    assert runner.health["reconnects"] == 0 and len(fake.stream_connections) == 1


def test_too_many_connections_waits_and_the_network_is_polled(x_stream):
    make, fake = x_stream
    fake.too_many_connections(1)
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "reconnecting")
    assert "TooManyConnections" in runner.health["last_error"]
    retry_at = datetime.fromisoformat(runner.health["retry_at"])
    assert retry_at - utcnow() > timedelta(seconds=55)  # not a tight loop against X
    assert not stream_covers(svc.store.sources, STREAM_NAME)


def test_a_plan_without_the_stream_falls_back_to_polling_and_says_so(x_stream):
    make, fake = x_stream
    fake.plan = "basic"
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "reconnecting")
    assert "does not offer the filtered stream" in runner.health["last_error"]
    assert datetime.fromisoformat(runner.health["retry_at"]) - utcnow() > timedelta(minutes=59)
    [row] = stream_status(svc.store.sources, [STREAM_NAME])
    assert row["fallback"] == "polling"
    assert svc.store.sources.get_state("x:stream:refused") is True
    runner.stop()
    # The poller polls X's search while the stream is not there.
    post = fake.add_post(COMPLAINT)
    report = Poller(svc).run_once(ignore_interval=False, compliance=False)
    assert any(u.unit.startswith("x:search:") and u.polled for u in report.units)
    assert stored(svc, post)


def test_x_plan_basic_or_x_stream_off_means_polling_only(social_app):
    assert social_app(only=("x",), X_PLAN="basic").sources["x"].streams() == []
    assert social_app(only=("x",), X_STREAM="off").sources["x"].streams() == []
    [stream] = social_app(only=("x",)).sources["x"].streams()
    assert stream.name == STREAM_NAME


def test_the_poller_skips_streamed_search_units_but_polls_mentions(x_stream):
    make, fake = x_stream
    runner, svc = make()
    runner.start()
    wait_for(lambda: runner.health["status"] == "connected" and stream_covers(svc.store.sources, STREAM_NAME))
    report = Poller(svc).run_once(ignore_interval=False, compliance=False)
    streamed = [u for u in report.units if u.unit.startswith("x:search:")]
    assert streamed and all(not u.polled and "streamed" in (u.note or "") for u in streamed)
    assert any(u.unit == "x:mentions" and u.polled for u in report.units)


# --- adaptive polling --------------------------------------------------------------------
def test_adaptive_interval_tightens_when_active_and_relaxes_when_quiet():
    common = {"low": 60.0, "high": 900.0, "cost_per_poll": 0.0, "budget_left": 10.0, "seconds_left": 3600.0}
    assert adaptive_interval(300, qualifying=0, storm=True, **common) == 60
    assert adaptive_interval(300, qualifying=2, storm=False, **common) == 150
    assert adaptive_interval(100, qualifying=2, storm=False, **common) == 60  # the floor
    assert adaptive_interval(300, qualifying=0, storm=False, **common) == 450
    assert adaptive_interval(800, qualifying=0, storm=False, **common) == 900  # the ceiling
    # The budget: $0.15 a pass, $1 left for 10 hours → at most one pass every 5,400 s → the ceiling;
    # $30 left → one every 180 s at the fastest, though a storm asks for 60.
    budget = dict(common, cost_per_poll=0.15, seconds_left=36000.0)
    assert adaptive_interval(300, qualifying=0, storm=True, **dict(budget, budget_left=1.0)) == 900
    assert adaptive_interval(300, qualifying=0, storm=True, **dict(budget, budget_left=30.0)) == 180


def test_the_poller_uses_the_adaptive_x_interval(social_app, fakes):
    # A budget so large that it does not bound the interval (that is the pure test's part).
    svc = social_app(only=("x",), X_STREAM="off", X_POLL_BOUNDS="60,900", X_DAILY_READ_BUDGET="10000")
    fake: FakeX = fakes["x"]
    poller = Poller(svc)
    unit = svc.sources["x"].units()[0]
    fake.add_post(COMPLAINT)
    busy = poller.run_once(ignore_interval=True, compliance=False)
    [first] = [u for u in busy.units if u.unit == unit]
    assert first.queued == 1
    assert svc.store.sources.get_state(f"x:interval:{unit}") == 150.0  # 300 → halved
    quiet = poller.run_once(ignore_interval=True, compliance=False)
    [second] = [u for u in quiet.units if u.unit == unit]
    assert second.queued == 0 and svc.store.sources.get_state(f"x:interval:{unit}") == 225.0


# --- multi-instance ------------------------------------------------------------------------
def test_one_instance_holds_the_x_stream(db_env, backend, app_factory, fakes, tmp_path):
    if backend == "sqlite":
        pytest.skip("a SQLite database is served by one instance (no advisory locks)")
    from tests.fakes.fixtures import social_env
    fake: FakeX = fakes["x"]
    fake.keepalive_seconds = 0.2
    fake.one_connection = True  # as X: one connection per app
    run_env = social_env(db_env, tmp_path, {"x": fake})
    runners = []
    try:
        for _ in range(2):
            svc = app_factory(**run_env).extensions["yorisoi"]
            [stream] = svc.sources["x"].streams()
            stream.too_many_wait = 0.2  # the old connection may linger a moment at the fake
            runner = StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2, lock_retry=0.2)
            runners.append((runner, svc))
            runner.start()
        first, second = runners
        wait_for(lambda: first[0].health["status"] == "connected")
        wait_for(lambda: second[0].health["status"] == "held by another instance")
        assert len(fake.stream_connections) == 1
        first[0].stop()
        wait_for(lambda: second[0].health["status"] == "connected", timeout=10)
        post = fake.add_post(COMPLAINT)
        wait_for(lambda: stored(second[1], post))
    finally:
        fake.close_streams()
        for runner, _svc in runners:
            runner.stop()
    assert health_key(STREAM_NAME) == "stream:x:filtered-stream"


# --- what an admin sees ------------------------------------------------------------------
def test_dashboard_shows_stream_health_and_a_banner_while_a_stream_is_down(env, tmp_path, fakes):
    from connector import create_app
    from connector.config import Settings
    from tests.conftest import login
    from tests.fakes.fixtures import social_env
    app = create_app(Settings.from_env(social_env(env, tmp_path, {"x": fakes["x"]})))
    app.config["TESTING"] = True
    state = app.extensions["yorisoi"].store.sources
    state.set_state(health_key(STREAM_NAME), {
        "name": STREAM_NAME, "platform": "x", "status": "reconnecting", "connected_since": None,
        "last_event_at": "2026-12-07T09:00:00+00:00", "events_per_min": 0, "reconnects": 4,
        "last_error": "x: this X plan does not offer the filtered stream (403 client-forbidden) <b>",
        "last_error_at": "2026-12-07T09:01:00+00:00", "retry_at": "2026-12-07T10:01:00+00:00",
        "updated_at": "2026-12-07T09:01:00+00:00"})
    client = login(app.test_client(), app)
    page = client.get("/outbox").get_data(as_text=True)
    assert 'id="streams"' in page and "再接続待ち" in page and "ポーリング中" in page
    assert "18:01" in page and "19:01" in page  # JST: the error and the next try
    assert "does not offer the filtered stream" in page and "&lt;b&gt;" in page and "<b>" not in page
    home = client.get("/overview?lang=en").get_data(as_text=True)
    assert 'id="stream-banner-1"' in home and "X stream x:filtered-stream is down (reconnecting)" in home
    # Connected again: the banner goes, the table says for how long.
    state.set_state(health_key(STREAM_NAME), {
        "name": STREAM_NAME, "platform": "x", "status": "connected",
        "connected_since": (utcnow() - timedelta(hours=2, minutes=15)).isoformat(), "events_per_min": 12,
        "reconnects": 4, "updated_at": utcnow().isoformat()})
    assert "stream-banner" not in client.get("/overview").get_data(as_text=True)
    assert "2時間15分" in client.get("/outbox?lang=ja").get_data(as_text=True)
    app.extensions["yorisoi"].close()


def test_doctor_says_whether_the_plan_offers_the_stream(env, tmp_path, fakes):
    from connector import doctor
    from tests.fakes.fixtures import social_env
    fake: FakeX = fakes["x"]
    fake.rules["5"] = {"id": "5", "value": "(ソラモバイル) -is:retweet", "tag": rule_tag("(ソラモバイル) -is:retweet")}
    run_env = social_env(env, tmp_path, {"x": fake})
    [check] = [c for c in doctor.run(run_env) if c.name == "x.stream"]
    assert check.status == "ok" and "1 of them Yorisoi's" in check.en
    fake.plan = "basic"
    [check] = [c for c in doctor.run(run_env) if c.name == "x.stream"]
    assert check.status == "warn" and "does not offer the filtered stream" in check.en and "filtered stream" in check.ja
    [check] = [c for c in doctor.run({**run_env, "X_PLAN": "basic"}) if c.name == "x.stream"]
    assert check.status == "ok" and "X_PLAN=basic" in check.en


@pytest.mark.slow
def test_kill_9_of_yorisoi_poll_resumes_the_x_stream_from_the_last_id(env, tmp_path, fakes):
    """`yorisoi poll` on the X stream is killed with SIGKILL; posts published meanwhile never
    come on the stream again. The restart catches up by search from the stored last id; every
    post becomes exactly one ticket."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy import select

    from connector.db import Store
    from connector.db.schema import local_tickets
    from tests.conftest import database_url
    from tests.fakes.fixtures import social_env
    fake: FakeX = fakes["x"]
    fake.keepalive_seconds = 0.5
    run_env = {**os.environ, **social_env(env, tmp_path, {"x": fake}),
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    store = Store(database_url(env))

    def run() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "poll"], env=run_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def last_id() -> str | None:
        return (store.sources.get_state(f"cursor:{STREAM_NAME}") or {}).get("last_id")

    def tickets() -> list[str]:
        with store.engine.connect() as conn:
            return list(conn.execute(select(local_tickets.c.external_id)).scalars().all())

    try:
        child = run()
        try:
            wait_for(lambda: fake.open_streams(), timeout=60)
            live = [fake.add_post(f"ソラモバイル 繋がらない {i}") for i in range(3)]
            wait_for(lambda: last_id() == live[-1], timeout=60)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        missed = [fake.add_post(f"ソラモバイル 請求が変 {i}", stream=False) for i in range(3)]
        child = run()
        try:
            wait_for(lambda: last_id() == missed[-1], timeout=60)
            assert live[-1] in search_since_ids(fake)  # caught up from the id stored before the kill
            wait_for(lambda: len(tickets()) >= 6, timeout=60)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(15)
        found = tickets()
        assert len(found) == len(set(found)) == 6
    finally:
        fake.close_streams()
        store.engine.dispose()
