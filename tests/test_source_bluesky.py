"""Bluesky: the session is created once and refreshed, searchPosts pages with since/cursor,
replies carry the right root/parent strong refs."""
from __future__ import annotations

from connector.poller import Poller
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.fixtures import *  # noqa: F401,F403


def test_session_is_cached_across_restarts_and_refreshed(social_app, fakes):
    b: FakeBluesky = fakes["bluesky"]
    b.add_post("ハルカ珈琲、今日のラテおいしかった")
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    svc2 = social_app(only=("bluesky",))  # a restart: the stored session is reused
    Poller(svc2).run_once(compliance=False)
    assert b.sessions_created == 1
    b.expire_access()
    Poller(svc2).run_once(compliance=False)
    assert b.sessions_created == 1 and b.refreshes == 1
    assert "test-app-password" not in repr(svc2.sources["bluesky"])


def test_search_pages_with_cursor_and_since_without_repeats(social_app, fakes):
    b: FakeBluesky = fakes["bluesky"]
    for i in range(130):
        b.add_post(f"ハルカ珈琲 {i} 杯目")
    svc = social_app(only=("bluesky",))
    report = Poller(svc).run_once(compliance=False)
    unit = next(u for u in report.units if u.unit == "bluesky:search:ハルカ珈琲")
    assert unit.fetched == 130 and unit.queued == 130
    pages = [c for c in b.calls("searchPosts") if c["args"]["q"] == ["ハルカ珈琲"]]
    assert pages[1]["args"]["cursor"] == ["100"]
    b.add_post("ハルカ珈琲 新作")
    again = Poller(social_app(only=("bluesky",))).run_once(compliance=False)
    unit = next(u for u in again.units if u.unit == "bluesky:search:ハルカ珈琲")
    assert unit.queued == 1  # the inclusive `since` brings the boundary post back: skipped as stored
    assert unit.duplicates <= 1
    assert [c for c in b.calls("searchPosts") if c["args"]["q"] == ["ハルカ珈琲"]][-1]["args"]["since"]


def test_reply_to_a_reply_uses_the_thread_root(social_app, fakes):
    b: FakeBluesky = fakes["bluesky"]
    root = b.add_post("ハルカ珈琲の新ブレンド、酸っぱい")
    child = b.add_post("ハルカ珈琲、前のブレンドに戻してほしい", reply_to=root)
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    # The same author's reply is a follow-up on the root's ticket; the reply answers the newest post.
    ticket = svc.store.outbox.ticket_for(f"bluesky:{root}")
    outcome = svc.reply(ticket_id=ticket.ticket_id, agent="佐藤", text="ご意見ありがとうございます。", dedupe_key="r1")
    assert outcome.exchange["status"] == "sent" and outcome.exchange["url"].startswith("https://bsky.app/profile/")
    [record] = b.records
    assert record["reply"]["parent"] == {"uri": child, "cid": b.posts[child]["cid"]}
    assert record["reply"]["root"] == {"uri": root, "cid": b.posts[root]["cid"]}
    assert record["$type"] == "app.bsky.feed.post" and record["langs"] == ["ja"]
