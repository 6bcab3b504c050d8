"""The stream supervisor: the configured streams, one instance per stream (advisory lock on
PostgreSQL) with take-over when the holder stops, and `yorisoi poll --status`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.jetstream import JetstreamStream
from connector.streaming import StreamRunner, StreamSupervisor, configured_streams, health_key
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.wsserver import FakeStreamServer
from tests.test_streaming import jet, key, wait_for

BLUESKY = {"BLUESKY_HANDLE": "brand.bsky.social", "BLUESKY_APP_PASSWORD": "pw",
           "BLUESKY_SERVICE": "http://127.0.0.1:9"}


@pytest.fixture
def server():
    fake = FakeStreamServer()
    yield fake
    fake.close()


def test_the_supervisor_runs_every_configured_stream(app_factory, server):
    svc = app_factory(**BLUESKY, BLUESKY_JETSTREAM_URL=server.url + "/subscribe").extensions["yorisoi"]
    assert [s.name for s in configured_streams(svc)] == ["bluesky:jetstream"]
    server.push(jet(1))
    woken = []
    supervisor = StreamSupervisor(svc, wake_delivery=lambda: woken.append(1))
    supervisor.start()
    try:
        wait_for(lambda: svc.store.posts.post_exists(key(1)))
        wait_for(lambda: woken)  # the delivery worker is woken for the new post
    finally:
        supervisor.stop()
    assert svc.store.sources.get_state(health_key("bluesky:jetstream"))["status"] == "stopped"
    none = app_factory(**BLUESKY, BLUESKY_STREAM="off").extensions["yorisoi"]
    assert configured_streams(none) == []


def runner_for(svc, server) -> StreamRunner:
    qualifier = svc.pipeline.qualifier
    stream = JetstreamStream(url=server.url + "/subscribe", wants=lambda p: qualifier.mentions_brand(p.text))
    return StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2, lock_retry=0.2)


def test_one_instance_holds_each_stream_and_another_takes_over(db_env, backend, app_factory, server):
    if backend == "sqlite":
        pytest.skip("a SQLite database is served by one instance (no advisory locks)")
    first_svc = app_factory(**db_env).extensions["yorisoi"]
    second_svc = app_factory(**db_env).extensions["yorisoi"]  # another instance, same database
    server.push(jet(1))
    first = runner_for(first_svc, server)
    first.start()
    try:
        wait_for(lambda: first_svc.store.posts.post_exists(key(1)))
        second = runner_for(second_svc, server)
        second.start()
        wait_for(lambda: second.health["status"] == "held by another instance")
        assert len(server.connections) == 1  # only the holder is connected
    finally:
        first.stop()
    try:
        server.push(jet(2))
        wait_for(lambda: second.health["status"] == "connected", timeout=5)  # took over
        wait_for(lambda: second_svc.store.posts.post_exists(key(2)))
        assert len(server.connections) == 2
    finally:
        second.stop()


def test_poll_status_shows_stream_and_unit_health(app_factory, env):
    svc = app_factory(**BLUESKY).extensions["yorisoi"]
    svc.store.sources.set_state(health_key("bluesky:jetstream"), {
        "name": "bluesky:jetstream", "status": "reconnecting", "connected_since": None,
        "last_event_at": "2026-12-07T09:00:00+00:00", "events_per_min": 0, "reconnects": 3,
        "last_error": "bluesky: the stream refused the connection (HTTP 503)",
        "last_error_at": "2026-12-07T09:01:00+00:00", "updated_at": "2026-12-07T09:01:00+00:00"})
    run_env = {**env, **BLUESKY}
    result = CliRunner().invoke(main, ["poll", "--status"], env=run_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Japanese first, English too, times in JST (as the dashboard's table says them)
    assert "! bluesky:jetstream: 再接続待ち / reconnecting — ポーリング中" in result.output
    assert "Reconnects 3" in result.output and "HTTP 503" in result.output
    assert "2026-12-07 18:00 JST" in result.output and "2026-12-07 18:01 JST" in result.output
    assert "09:00" not in result.output  # no UTC time shown to people
    as_json = CliRunner().invoke(main, ["poll", "--status", "--json"], env=run_env, catch_exceptions=False)
    [stream] = json.loads(as_json.output)["streams"]
    assert stream["status"] == "reconnecting" and stream["reconnects"] == 3


@pytest.mark.slow
def test_kill_9_of_yorisoi_poll_resumes_from_the_cursor(env, tmp_path, fakes, server):
    """`yorisoi poll` streaming Jetstream is killed with SIGKILL mid-stream and started again:
    it resumes from the stored cursor; every post becomes exactly one ticket."""
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
    run_env = {**os.environ, **social_env(env, tmp_path, {"bluesky": fakes["bluesky"]},
                                          BLUESKY_JETSTREAM_URL=server.url + "/subscribe"),
               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    store = Store(database_url(env))

    def cursor() -> int:
        return (store.sources.get_state("cursor:bluesky:jetstream") or {}).get("time_us") or 0

    def run() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "poll"], env=run_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        for n in range(1, 6):
            server.push(jet(n))
        child = run()
        try:
            wait_for(lambda: cursor() == jet(5)["time_us"], timeout=60)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        for n in range(6, 11):
            server.push(jet(n))
        child = run()
        try:
            wait_for(lambda: cursor() == jet(10)["time_us"], timeout=60)
            assert server.connections[-1]["cursor"] == jet(5)["time_us"] - 2_000_000

            def tickets() -> list[str]:
                with store.engine.connect() as conn:
                    return list(conn.execute(select(local_tickets.c.external_id)).scalars().all())
            wait_for(lambda: len(tickets()) >= 10, timeout=30)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(15)
        found = tickets()
        assert len(found) == len(set(found)) == 10
        assert all(any(key(n) in t for t in found) for n in range(1, 11))
    finally:
        store.engine.dispose()

