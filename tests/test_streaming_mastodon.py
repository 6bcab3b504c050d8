"""Mastodon hashtag streaming against the fake instance (REST) and a fake streaming server
(WebSocket, tests/fakes/wsserver.py): the host from /api/v2/instance, live updates, catch-up
through the REST timeline from the last id after a drop, deletes purged, malformed frames,
duplicate and out-of-order updates."""
from __future__ import annotations

import json
from typing import Any

import pytest

from connector.compliance import marker
from connector.streaming import StreamRunner
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.wsserver import FakeStreamServer, wait_for

TAG = "ソラモバイル"


@pytest.fixture
def ws_server():
    fake = FakeStreamServer()
    yield fake
    fake.close()


@pytest.fixture
def mastodon_stream(social_app, fakes, ws_server):
    m: FakeMastodon = fakes["mastodon"]
    m.streaming_url = ws_server.url
    svc = social_app(only=("mastodon",))
    [stream] = svc.sources["mastodon"].streams(svc.pipeline)
    stream.stall_seconds = 5.0
    runner = StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2)
    yield svc, m, stream, runner
    runner.stop()


def update(m: FakeMastodon, status_id: str) -> dict[str, Any]:
    return {"stream": ["hashtag", TAG], "event": "update", "payload": json.dumps(m.statuses[status_id])}


def key(m: FakeMastodon, status_id: str) -> str:
    return f"mastodon:{m.statuses[status_id]['uri']}"


def test_live_updates_catch_up_after_a_drop_and_deletes(mastodon_stream, ws_server):
    svc, m, stream, runner = mastodon_stream
    assert stream.name.startswith("mastodon:127.0.0.1:") and stream.tags == [TAG]
    first = m.add_status(f"<p>ソラモバイル、また圏外 #{TAG}</p>", tags=[TAG])
    ws_server.drop_after(1)  # the first connection ends after one frame
    ws_server.push(update(m, first))
    runner.start()
    wait_for(lambda: svc.store.posts.post_exists(key(m, first)))
    # Posted while the socket was down: only the REST timeline has them.
    missed = [m.add_status(f"<p>ソラモバイル 遅い {i} #{TAG}</p>", tags=[TAG]) for i in range(3)]
    wait_for(lambda: all(svc.store.posts.post_exists(key(m, s)) for s in missed))
    assert len(ws_server.connections) >= 2 and runner.health["reconnects"] >= 1
    timeline = m.calls("/api/v1/timelines/tag/")
    assert timeline and timeline[0]["args"]["min_id"] == [first]  # caught up from the last id seen
    # The cursor is saved after the posts are stored: wait for it rather than race it.
    wait_for(lambda: (svc.store.sources.get_state(f"cursor:{stream.name}") or {}).get("last_id", {}).get(TAG)
             == missed[-1])
    # A delete from the stream purges the post at once.
    ws_server.push({"stream": ["hashtag", TAG], "event": "delete", "payload": first})
    wait_for(lambda: svc.store.posts.load_post(key(m, first))[0].text == marker("mastodon", "deleted"))


def test_malformed_and_foreign_frames_are_skipped(mastodon_stream, ws_server, caplog):
    svc, m, stream, runner = mastodon_stream
    good = m.add_status(f"<p>ソラモバイルのサポート最高 #{TAG}</p>", tags=[TAG])
    ws_server.push("{not json")
    ws_server.push({"stream": ["hashtag", TAG], "event": "update", "payload": "{\"id\": 1}"})  # no account…
    ws_server.push({"stream": ["hashtag", TAG], "event": "status.update", "payload": "{}"})
    ws_server.push({"event": "notification", "payload": 5})
    ws_server.push(update(m, good))
    runner.start()
    wait_for(lambda: svc.store.posts.post_exists(key(m, good)))
    assert runner.is_alive() and runner.health["reconnects"] == 0
    assert "malformed frame skipped" in caplog.text


def test_mastodon_stream_off_keeps_polling_only(social_app, fakes):
    svc = social_app(only=("mastodon",), MASTODON_STREAM="off")
    source = svc.sources["mastodon"]
    assert source.streams(svc.pipeline) == [] and source.stream_for(source.units()[0]) is None


def test_hashtag_units_are_polled_only_while_their_stream_is_down(social_app, fakes):
    from connector.db import utcnow
    from connector.poller import STREAM_RECHECK, Poller
    from connector.streaming import health_key
    m: FakeMastodon = fakes["mastodon"]
    m.add_status(f"<p>ソラモバイル 圏外 #{TAG}</p>", tags=[TAG])
    svc = social_app(only=("mastodon",))
    [stream] = svc.sources["mastodon"].streams(svc.pipeline)
    svc.store.sources.set_state(health_key(stream.name), {"status": "connected", "updated_at": utcnow().isoformat()})
    poller = Poller(svc)
    report = poller.run_once(ignore_interval=False, compliance=False)
    tag_unit = next(u for u in report.units if ":tag:" in u.unit)
    assert not tag_unit.polled and tag_unit.note == f"streamed ({stream.name} connected)"
    assert next(u for u in report.units if ":search:" in u.unit).polled  # search has no stream
    assert poller.seconds_until_next() <= STREAM_RECHECK
    svc.store.sources.set_state(health_key(stream.name), {"status": "reconnecting", "updated_at": utcnow().isoformat()})
    report = poller.run_once(ignore_interval=False, compliance=False)
    tag_unit = next(u for u in report.units if ":tag:" in u.unit)
    assert tag_unit.polled and tag_unit.fetched == 1  # the fallback


def test_duplicate_and_out_of_order_updates_make_one_ticket_each(mastodon_stream, ws_server):
    """The same status comes twice (Mastodon sends a status once per subscribed stream, so a
    post carrying two watched hashtags arrives twice on the one socket) and an older status
    after a newer one (federated statuses arrive late): one ticket each, and the tag's cursor
    never moves back to the older id (the catch-up after a drop starts from the newest seen)."""
    from sqlalchemy import func, select

    from connector.db.schema import outbox
    svc, m, stream, runner = mastodon_stream
    older, newer, newest = (m.add_status(f"<p>ソラモバイル {word} #{TAG}</p>", tags=[TAG])
                            for word in ("つながらない", "請求がおかしい", "解約したい"))
    for status_id in (newer, newer, older, newest, older):
        ws_server.push(update(m, status_id))
    runner.start()
    keys = [key(m, s) for s in (older, newer, newest)]
    wait_for(lambda: all(svc.store.posts.post_exists(k) for k in keys) and runner.health["events"] >= 5)
    assert runner.is_alive() and runner.health["reconnects"] == 0
    runner.stop()  # every frame handled: the cursor below is the last one saved
    assert svc.store.sources.get_state(f"cursor:{stream.name}")["last_id"][TAG] == newest
    with svc.store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.post_key, func.count()).where(outbox.c.post_key.in_(keys))
                            .group_by(outbox.c.post_key)).all()
    assert sorted(rows) == sorted((k, 1) for k in keys)  # exactly one ticket each
