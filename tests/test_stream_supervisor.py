"""The stream supervisor: the configured streams, one instance per stream (advisory lock on
PostgreSQL) with take-over when the holder stops, and `yorisoi poll --status`."""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.jetstream import JetstreamStream
from connector.streaming import StreamRunner, StreamSupervisor, configured_streams, health_key
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
    assert "! bluesky:jetstream: reconnecting (its network is polled meanwhile)" in result.output
    assert "reconnects 3" in result.output and "HTTP 503" in result.output
    as_json = CliRunner().invoke(main, ["poll", "--status", "--json"], env=run_env, catch_exceptions=False)
    [stream] = json.loads(as_json.output)["streams"]
    assert stream["status"] == "reconnecting" and stream["reconnects"] == 3
