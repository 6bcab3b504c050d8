"""RSS/Atom: conditional GET (304), only brand entries become posts, HTML stripped, size cap,
replies refused with a clear message."""
from __future__ import annotations

import pytest

from connector.poller import Poller
from connector.replies import ReplyFailed
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.rss import FakeFeeds


def test_feed_entries_about_the_brand_become_posts_and_304_costs_nothing(social_app, fakes):
    feeds: FakeFeeds = fakes["rss"]
    svc = social_app(only=("rss",))
    first = Poller(svc).run_once(compliance=False)
    [unit] = first.units
    assert unit.fetched == 1 and unit.queued == 1  # the dinner diary is not about a brand: not stored
    [row] = svc.store.posts.decisions()
    assert row["key"] == "rss:diary.example:20261120090000" and "alert(1)" not in row["text"]
    assert row["text"].startswith("ソラモバイルに乗り換えて半年\n\n料金は安いけど、夜の速度が遅すぎる。")
    second = Poller(svc).run_once(compliance=False)
    assert second.units[0].note == "not modified (304)"
    request = feeds.calls("/anond.rss")[-1]
    assert request["headers"].get("If-None-Match") and request["headers"].get("If-Modified-Since")


def test_oversized_feed_is_refused(social_app, fakes):
    fakes["rss"].set_feed("/anond.rss", b"<rss>" + b" " * (6 * 1024 * 1024) + b"</rss>")
    svc = social_app(only=("rss",))
    [unit] = Poller(svc).run_once(compliance=False).units
    assert unit.error and "larger than" in unit.error or "bytes" in (unit.error or "")


def test_rss_has_no_reply(social_app, fakes):
    svc = social_app(only=("rss",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    [ticket] = svc.store.outbox.list_tickets()
    assert "RSS/Atom には返信の経路がありません" in svc.helpdesk.ticket(int(ticket["ticket_id"]))["description"]
    with pytest.raises(ReplyFailed, match="no reply channel") as info:
        svc.reply(ticket_id=ticket["ticket_id"], agent="佐藤", text="ご不便をおかけしております", dedupe_key="k")
    assert not info.value.retryable


def test_feed_tables_are_validated_strictly():
    from connector.watch import WatchConfigError, parse_watch
    brand = {"name": "ソラモバイル", "keywords": ["ソラモバイル"]}
    assert parse_watch({"brand": [brand], "feed": [{"url": "https://diary.example/rss"}]}).feeds[0].name == "https://diary.example/rss"
    for feed, problem in [({"url": "ftp://x"}, "feed[0].url"), ({"url": "https://a.example", "intervall": 5}, "feed[0].intervall"),
                          ({"name": "no url"}, "feed[0].url")]:
        with pytest.raises(WatchConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
            parse_watch({"brand": [brand], "feed": [feed]})


def test_feed_entry_dated_after_the_fetch_is_clamped_to_the_fetch_time(social_app, fakes):
    """A feed's author sets its dates: one in the future (inside the schema's window) would
    place the post in a later storm or spike; it is held to when we fetched it (issue 16 #1)."""
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime
    future = datetime.now(timezone.utc) + timedelta(hours=20)
    fakes["rss"].set_feed("/anond.rss", f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>日記</title><link>https://diary.example/</link>
<item><title>ソラモバイルが遅い</title><link>https://diary.example/future</link>
<guid>https://diary.example/future</guid><pubDate>{format_datetime(future)}</pubDate>
<description>ソラモバイル、夜になると全然繋がらない。</description></item>
</channel></rss>""".encode())
    svc = social_app(only=("rss",))
    before = datetime.now(timezone.utc)
    [unit] = Poller(svc).run_once(compliance=False).units
    after = datetime.now(timezone.utc)
    assert unit.fetched == 1
    post, _, _ = svc.store.posts.load_post("rss:https://diary.example/future")
    assert before - timedelta(seconds=1) <= post.created_at <= after
