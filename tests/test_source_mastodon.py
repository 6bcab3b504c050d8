"""Mastodon: HTML → text (including hostile HTML), Link-header paging with min_id, boosts and
non-public posts left out, replies threaded with an Idempotency-Key."""
from __future__ import annotations

import pytest

from connector.poller import Poller
from connector.sources.html_text import html_to_text
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.mastodon import FakeMastodon


@pytest.mark.parametrize("html, text", [
    ("<p>ソラ光、遅い</p><p>二段落目<br>改行</p>", "ソラ光、遅い\n\n二段落目\n改行"),
    ('<p><a href="https://example.jp/x"><span class="invisible">https://www.</span><span class="ellipsis">example.jp/very</span>'
     '<span class="invisible">/long</span></a></p>', "https://www.example.jp/very/long"),
    ("&lt;script&gt;は文字 &amp; 記号", "<script>は文字 & 記号"),
    ("<script>alert('x')</script><style>p{}</style>本文<img src=x onerror=alert(1)>", "本文"),
    ('<p>閉じない<b>タグ<i>だらけ', "閉じない タグだらけ".replace(" ", "")),
    ("<svg><script>evil()</script></svg><iframe src=javascript:alert(1)>中身</iframe>後", "後"),
    ("", ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text


def test_tag_timeline_pages_forward_with_the_link_header(social_app, fakes):
    m: FakeMastodon = fakes["mastodon"]
    m.add_status("<p>最初の投稿 #ソラモバイル</p>", tags=["ソラモバイル"])
    svc = social_app(only=("mastodon",))
    first = Poller(svc).run_once(compliance=False)
    tag_unit = next(u for u in first.units if ":tag:" in u.unit)
    assert tag_unit.fetched == 1
    ids = [m.add_status(f"<p>ソラモバイル 回線 {i} #ソラモバイル</p>", tags=["ソラモバイル"]) for i in range(50)]
    m.add_status("<p>ブーストされた #ソラモバイル</p>", tags=["ソラモバイル"], reblog=True)
    m.add_status("<p>フォロワー限定 #ソラモバイル</p>", tags=["ソラモバイル"], visibility="private")
    second = Poller(svc).run_once(compliance=False)
    tag_unit = next(u for u in second.units if ":tag:" in u.unit)
    assert tag_unit.fetched == 50 and tag_unit.skipped == 2
    calls = m.calls("/api/v1/timelines/tag/")
    # The second poll starts at the stored min_id and follows rel="prev" (min_id = newest seen).
    assert calls[1]["args"]["min_id"] == [calls[0]["args"].get("min_id", [None])[0] or sorted(m.statuses)[0]]
    assert calls[2]["args"]["min_id"] == [ids[39]]
    keys = {r["key"] for r in svc.store.posts.decisions(limit=100)}
    assert f"mastodon:https://mstdn.example/users/yamada/statuses/{ids[0]}" in keys
    third = Poller(svc).run_once(compliance=False)
    assert next(u for u in third.units if ":tag:" in u.unit).fetched == 0  # caught up, nothing repeated


def test_reply_is_threaded_mentions_the_author_and_is_idempotent(social_app, fakes):
    m: FakeMastodon = fakes["mastodon"]
    status_id = m.add_status("<p>ソラ光の工事、いつ来ますか？ #ソラモバイル</p>", tags=["ソラモバイル"])
    svc = social_app(only=("mastodon",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    [ticket] = svc.store.outbox.list_tickets()
    first = svc.reply(ticket_id=ticket["ticket_id"], agent="佐藤", text="確認してご連絡します。", dedupe_key="zd:1")
    assert first.exchange["status"] == "sent"
    [posted] = m.posted
    assert posted["in_reply_to_id"] == status_id and posted["status"].startswith("@yamada@")
    assert posted["idempotency_key"] == "zd:1" and posted["visibility"] == "public" and posted["language"] == "ja"
    # A retry of the same reply (e.g. the exchange looked stale) reuses the key: one status only.
    svc.sources["mastodon"].post_reply(svc.store.posts.load_post(ticket["post_key"])[0], posted["status"], "zd:1")
    assert len(m.posted) == 1
