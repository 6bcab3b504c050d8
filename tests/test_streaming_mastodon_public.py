"""Mastodon's public stream where the admin allows it (MASTODON_PUBLIC_STREAM): subscribed beside
the hashtag streams on the same socket, filtered here with the watch file's brand rules, a
refused subscription logged without stopping the hashtags, and the catch-up through
`/api/v1/timelines/public?local=true` from the last id after a drop."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from connector.config import ConfigError
from connector.streaming import StreamRunner
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.wsserver import FakeStreamServer, wait_for


@pytest.fixture
def ws_server():
    fake = FakeStreamServer()
    yield fake
    fake.close()


def public_update(m: FakeMastodon, status_id: str) -> dict:
    return {"stream": ["public:local"], "event": "update", "payload": json.dumps(m.statuses[status_id])}


def key(m: FakeMastodon, status_id: str) -> str:
    return f"mastodon:{m.statuses[status_id]['uri']}"


def test_public_local_stream_filtered_by_the_watch_file_and_caught_up(social_app, fakes, ws_server, caplog):
    m: FakeMastodon = fakes["mastodon"]
    m.streaming_url = ws_server.url
    host = urlsplit(m.url).netloc
    svc = social_app(only=("mastodon",), MASTODON_PUBLIC_STREAM=f"{host}:local")
    [stream] = svc.sources["mastodon"].streams(svc.pipeline)
    assert stream.public == "public:local"
    stream.stall_seconds = 5.0
    runner = StreamRunner(stream, svc, backoff_start=0.05, backoff_max=0.2)
    brand = m.add_status("<p>ソラモバイルの請求が二重になってる</p>")  # no hashtag: only the public stream has it
    other = m.add_status("<p>今日のランチはカレー</p>")
    ws_server.push({"error": "This method requires an authenticated user", "status": 401})  # refused elsewhere
    ws_server.push(public_update(m, other))
    ws_server.push(public_update(m, brand))
    ws_server.drop_after(3)
    try:
        runner.start()
        wait_for(lambda: svc.store.posts.post_exists(key(m, brand)))
        assert not svc.store.posts.post_exists(key(m, other))  # not about a watched brand
        wait_for(lambda: {"type": "subscribe", "stream": "public:local"} in [json.loads(r) for r in ws_server.received])
        assert "refused a subscription" in caplog.text
        # Posted while the socket was down: the public timeline from the last id seen has them.
        missed = m.add_status("<p>ソラモバイル 圏外がずっと続く</p>")
        wait_for(lambda: svc.store.posts.post_exists(key(m, missed)), timeout=20)
        calls = m.calls("/api/v1/timelines/public")
        assert calls and calls[0]["args"]["local"] == ["true"] and calls[0]["args"]["min_id"] == [other]  # the newest seen
    finally:
        runner.stop()


def test_public_stream_is_off_by_default_and_names_a_configured_instance(social_app, fakes):
    svc = social_app(only=("mastodon",))
    assert all(s.public is None for s in svc.sources["mastodon"].streams(svc.pipeline))
    with pytest.raises(ConfigError, match="MASTODON_PUBLIC_STREAM"):
        social_app(only=("mastodon",), MASTODON_PUBLIC_STREAM="mastodon.example")
