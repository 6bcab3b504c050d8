"""Streams against a fake WebSocket server on loopback (tests/fakes/wsserver.py): Bluesky
Jetstream through the stream supervisor — cursor after the posts are stored, resume after a
restart, reconnect after a drop, duplicates, out-of-order events, malformed frames, a stalled
stream, deletes purged, and the poller's fallback while a stream is down."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from connector.compliance import marker
from connector.db import utcnow
from connector.sources.jetstream import JetstreamStream
from connector.streaming import StreamRunner, health_key, stream_covers, stream_status
from tests.fakes.wsserver import FakeStreamServer, wait_for

T0 = 1_790_000_000_000_000  # a time_us
DID = "did:plc:streamauthor000000000001"


def jet(n: int, text: str = "ソラモバイル、駅で全然繋がらない。最悪", *, time_us: int | None = None,
        operation: str = "create", did: str = DID) -> dict[str, Any]:
    commit: dict[str, Any] = {"rev": f"rev{n}", "operation": operation, "collection": "app.bsky.feed.post",
                              "rkey": f"3kstream{n:06d}"}
    if operation == "create":
        commit["record"] = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-20T09:00:00Z",
                            "langs": ["ja"]}
        commit["cid"] = f"bafystream{n:06d}"
    return {"did": did, "time_us": time_us if time_us is not None else T0 + n * 1_000_000, "kind": "commit",
            "commit": commit}


def key(n: int, did: str = DID) -> str:
    return f"bluesky:at://{did}/app.bsky.feed.post/3kstream{n:06d}"


@pytest.fixture
def server():
    fake = FakeStreamServer()
    yield fake
    fake.close()


@pytest.fixture
def make_runner(svc, server):
    runners: list[StreamRunner] = []

    def make(stall: float = 5.0, overlap_us: int = 2_000_000) -> StreamRunner:
        qualifier = svc.pipeline.qualifier
        stream = JetstreamStream(url=server.url + "/subscribe", stall_seconds=stall, overlap_us=overlap_us,
                                 wants=lambda post: qualifier.mentions_brand(post.text))
        runner = StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2, lock_retry=0.1)
        runners.append(runner)
        runner.start()
        return runner

    yield make
    for runner in runners:
        runner.stop()


def stored(svc, *ns: int) -> set[str]:
    return svc.store.posts.existing_keys([key(n) for n in ns])


def cursor(svc) -> int | None:
    return (svc.store.sources.get_state("cursor:bluesky:jetstream") or {}).get("time_us")


def test_matching_posts_are_stored_and_the_cursor_follows(svc, server, make_runner):
    server.push(jet(1))
    server.push(jet(2, "今日は空がきれい"))  # no brand: not ours
    server.push(jet(3, "ハルカ珈琲の店員さん神対応でした"))
    server.push({"did": DID, "time_us": T0 + 4_000_000, "kind": "identity", "identity": {"did": DID}})
    runner = make_runner()
    wait_for(lambda: cursor(svc) == T0 + 4_000_000)
    assert stored(svc, 1, 2, 3) == {key(1), key(3)}
    assert "wantedCollections=app.bsky.feed.post" in server.connections[0]["path"]
    assert server.connections[0]["cursor"] is None  # first start: live
    assert runner.health["status"] == "connected" and runner.health["events"] == 4 and runner.health["posts"] == 2
    assert svc.store.sources.get_state(health_key("bluesky:jetstream"))["status"] == "connected"
    assert runner.is_alive()


def test_resume_from_the_stored_cursor_after_a_restart(svc, server, make_runner):
    for n in (1, 2, 3):
        server.push(jet(n))
    first = make_runner()
    wait_for(lambda: cursor(svc) == T0 + 3_000_000)
    first.stop()
    for n in (4, 5):
        server.push(jet(n))
    make_runner()
    wait_for(lambda: cursor(svc) == T0 + 5_000_000)
    # Resumed a little before the cursor (the overlap): events 2 and 3 come again, skipped as stored.
    assert server.connections[-1]["cursor"] == T0 + 3_000_000 - 2_000_000
    assert stored(svc, 1, 2, 3, 4, 5) == {key(n) for n in (1, 2, 3, 4, 5)}
    assert svc.store.outbox.count_due() + _delivered(svc) == 5  # one ticket each, no duplicate


def _delivered(svc) -> int:
    from sqlalchemy import func, select

    from connector.db.schema import outbox
    with svc.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.status == "done")).scalar()


def test_reconnects_after_the_server_drops_the_socket(svc, server, make_runner):
    server.drop_after(2)
    for n in range(1, 6):
        server.push(jet(n))
    runner = make_runner()
    wait_for(lambda: cursor(svc) == T0 + 5_000_000)
    assert len(server.connections) >= 2
    assert server.connections[1]["cursor"] == T0 + 2_000_000 - 2_000_000  # resumed from the cursor
    assert stored(svc, 1, 2, 3, 4, 5) == {key(n) for n in range(1, 6)}
    assert runner.health["reconnects"] >= 1
    assert "closed the connection" in (runner.health["last_error"] or "")


def test_duplicate_and_out_of_order_events(svc, server, make_runner):
    server.push(jet(2))
    server.push(jet(2))  # the same event twice
    server.push(jet(1))  # older than the one before
    server.push(jet(3))
    make_runner()
    wait_for(lambda: stored(svc, 1, 2, 3) == {key(1), key(2), key(3)})
    wait_for(lambda: cursor(svc) == T0 + 3_000_000)
    assert svc.store.outbox.count_due() + _delivered(svc) == 3


def test_malformed_frames_are_logged_and_skipped(svc, server, make_runner, caplog):
    server.push("this is not JSON")
    server.push("[1, 2, 3]")
    server.push('{"time_us": "soon", "kind": "commit"}')
    bad = jet(1)
    bad["commit"]["record"] = "not an object"
    server.push(bad)
    no_rkey = jet(2)
    del no_rkey["commit"]["rkey"]
    server.push(no_rkey)
    server.push(jet(3))
    runner = make_runner()
    wait_for(lambda: stored(svc, 3))
    assert runner.is_alive() and runner.health["reconnects"] == 0
    assert "malformed frame skipped" in caplog.text


def test_a_stalled_stream_is_detected_and_reconnected(svc, server, make_runner):
    server.push(jet(1))
    runner = make_runner(stall=0.5)
    wait_for(lambda: stored(svc, 1))
    # Nothing more arrives: the heartbeat timeout notices and reconnects from the cursor.
    wait_for(lambda: runner.health["reconnects"] >= 1, timeout=5)
    assert "stalled" in runner.health["last_error"]
    wait_for(lambda: len(server.connections) >= 2)
    assert server.connections[1]["cursor"] == T0 + 1_000_000 - 2_000_000


def test_refused_connections_back_off_and_recover(svc, server, make_runner):
    server.refuse(2)
    server.push(jet(1))
    runner = make_runner()
    wait_for(lambda: stored(svc, 1))
    assert runner.health["reconnects"] >= 2


def test_deletes_from_the_stream_purge_the_post(svc, server, make_runner):
    server.push(jet(1))
    make_runner()
    wait_for(lambda: stored(svc, 1))
    server.push(jet(1, operation="delete", time_us=T0 + 9_000_000))
    wait_for(lambda: cursor(svc) == T0 + 9_000_000)
    post, _decision, _analysis = svc.store.posts.load_post(key(1))
    assert post.text == marker("bluesky", "deleted")


def test_the_poller_polls_only_while_the_stream_is_down(svc):
    state = svc.store.sources
    assert not stream_covers(state, "bluesky:jetstream")
    state.set_state(health_key("bluesky:jetstream"), {"status": "connected", "updated_at": utcnow().isoformat()})
    assert stream_covers(state, "bluesky:jetstream")
    stale = (utcnow() - timedelta(minutes=5)).isoformat()
    state.set_state(health_key("bluesky:jetstream"), {"status": "connected", "updated_at": stale})
    assert not stream_covers(state, "bluesky:jetstream")
    assert stream_status(state, ["bluesky:jetstream"])[0]["status"].startswith("stale")


def test_configuration_turns_jetstream_on_by_default_and_off_on_request(svc):
    from connector.config import ConfigError, Settings
    from connector.sources import make_sources
    from connector.sources.jetstream import DEFAULT_JETSTREAM_URL
    base = {**svc.settings.env, "BLUESKY_HANDLE": "brand.bsky.social", "BLUESKY_APP_PASSWORD": "pw"}

    def bluesky(**extra: str):
        return make_sources(Settings.from_env({**base, **extra}), svc.store, svc.watch)["bluesky"]

    assert bluesky().jetstream_url == DEFAULT_JETSTREAM_URL and bluesky().stream_name == "bluesky:jetstream"
    assert bluesky(BLUESKY_JETSTREAM_URL="ws://127.0.0.1:9/subscribe").streams(svc.pipeline)[0].url == \
        "ws://127.0.0.1:9/subscribe"
    off = bluesky(BLUESKY_STREAM="off")
    assert off.stream_name is None and off.streams(svc.pipeline) == []
    with pytest.raises(ConfigError):
        bluesky(BLUESKY_STREAM="maybe")


def test_the_client_side_filter_keeps_brand_posts_and_replies_to_stored_posts(svc, server, make_runner):
    from connector.sources.bluesky import BlueskySource
    source = BlueskySource(state=svc.store.sources, watch=svc.watch, handle="brand.bsky.social", app_password="pw",
                           jetstream_url=server.url + "/subscribe")
    wants = source.streams(svc.pipeline)[0].wants
    server.push(jet(1))
    make_runner()
    wait_for(lambda: stored(svc, 1))
    parent = f"at://{DID}/app.bsky.feed.post/3kstream000001"
    reply = JetstreamStream.to_post(DID, "3kreply", {"record": {
        "text": "追記：再起動したら直りました", "createdAt": "2026-11-20T09:05:00Z",
        "reply": {"root": {"uri": parent, "cid": "c"}, "parent": {"uri": parent, "cid": "c"}}}}, T0)
    stranger = JetstreamStream.to_post(DID, "3kother", {"record": {"text": "今日は空がきれい",
                                                                   "createdAt": "2026-11-20T09:05:00Z"}}, T0)
    assert wants(reply.post) and not wants(stranger.post)
