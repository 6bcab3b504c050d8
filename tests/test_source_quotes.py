"""Quotes from every network set `Post.quote_of`, so a bare 「私も！」 quoting a storm's post is
counted as its echo: X `referenced_tweets` type `quoted`, a Bluesky record's `embed`
(app.bsky.embed.record / recordWithMedia), Mastodon 4.4+ `Status.quote`, and the webhook's
normalized post. Payloads are the fixtures' shapes (tests/fixtures/social/), checked against
/work/shared/specs/ (X OpenAPI, AT Protocol lexicons, Mastodon OpenAPI)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.models import Post
from connector.poller import Poller
from connector.sources.bluesky import quoted_post_uri
from connector.sources.jetstream import JetstreamStream
from tests.conftest import post_dict
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.x import FakeX
from tests.test_webhook import send

SOCIAL = Path(__file__).parent / "fixtures" / "social"
QUOTED = "at://did:plc:suzukiexample0000000001/app.bsky.feed.post/3lbquoted0001"
STRONG_REF = {"uri": QUOTED, "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}


def _poll(svc) -> dict[str, Post]:
    """One poll; the posts the source handed to ingest, by key (quote_of is read at ingest, by
    the qualifier and storm grouping, not stored in a column of its own)."""
    seen: dict[str, Post] = {}
    ingest = svc.pipeline.ingest

    def recording(post, **kw):
        seen[post.key] = post
        return ingest(post, **kw)

    svc.pipeline.ingest = recording
    Poller(svc).run_once(compliance=False)
    return seen


def _record() -> dict:
    return json.loads((SOCIAL / "bluesky-search-posts.ja.json").read_text(encoding="utf-8"))["posts"][0]["record"]


@pytest.mark.parametrize("naming", ["2.159", "2.167"])
def test_x_quote_sets_quote_of_in_either_naming(social_app, fakes, naming):
    x: FakeX = fakes["x"]
    x.naming = naming
    original = x.add_post("ソラモバイル 圏外のまま", author="1850000000000000201")
    quoting = x.add_post("ソラモバイル 私も", author="1850000000000000202", quote_of=original)
    replying = x.add_post("ソラモバイル うちも", author="1850000000000000203", reply_to=original)
    posts = _poll(social_app(only=("x",)))
    quote = posts[f"x:{quoting}"]
    assert quote.quote_of == original and quote.in_reply_to is None
    reply = posts[f"x:{replying}"]
    assert reply.quote_of is None and reply.in_reply_to == original
    assert posts[f"x:{original}"].quote_of is None


@pytest.mark.parametrize("with_media", [False, True])
def test_bluesky_quote_embed_sets_quote_of(social_app, fakes, with_media):
    b: FakeBluesky = fakes["bluesky"]
    original = b.add_post("ハルカ珈琲 アプリが落ちる")
    quoting = b.add_post("ハルカ珈琲 私も", did="did:plc:tanakaexample00000000002", handle="tanaka.bsky.social",
                         quote_of=original, with_media=with_media)
    posts = _poll(social_app(only=("bluesky",)))
    assert posts[f"bluesky:{quoting}"].quote_of == original
    assert posts[f"bluesky:{original}"].quote_of is None


@pytest.mark.parametrize("embed, expected", [
    ({"$type": "app.bsky.embed.record", "record": STRONG_REF}, QUOTED),
    ({"$type": "app.bsky.embed.recordWithMedia", "record": {"$type": "app.bsky.embed.record", "record": STRONG_REF},
      "media": {"$type": "app.bsky.embed.images", "images": []}}, QUOTED),
    # A record embed of a feed generator, a list or a starter pack is not a quoted post.
    ({"$type": "app.bsky.embed.record",
      "record": {"uri": "at://did:plc:suzukiexample0000000001/app.bsky.feed.generator/whats-hot", "cid": STRONG_REF["cid"]}}, None),
    ({"$type": "app.bsky.embed.record",
      "record": {"uri": "at://did:plc:suzukiexample0000000001/app.bsky.graph.list/3lblist", "cid": STRONG_REF["cid"]}}, None),
    ({"$type": "app.bsky.embed.external", "external": {"uri": "https://example.com/", "title": "", "description": ""}}, None),
    ({"$type": "app.bsky.embed.images", "images": []}, None),
    # Malformed embeds are ignored, not fatal: the post still counts on its own.
    ({"$type": "app.bsky.embed.record", "record": "at://nope"}, None),
    ({"$type": "app.bsky.embed.recordWithMedia", "record": None}, None),
    ({"$type": "app.bsky.embed.record", "record": {"uri": "https://bsky.app/profile/x/post/1"}}, None),
    ("not an object", None),
])
def test_quoted_post_uri_follows_the_lexicon(embed, expected):
    record = _record() | {"embed": embed}
    assert quoted_post_uri(record) == expected
    assert quoted_post_uri(_record()) is None  # the fixture itself quotes nothing


def test_jetstream_create_event_with_a_quote_sets_quote_of():
    record = _record() | {"embed": {"$type": "app.bsky.embed.record", "record": STRONG_REF}}
    commit = {"rev": "3lbrev", "operation": "create", "collection": "app.bsky.feed.post", "rkey": "3lbquote0002",
              "record": record, "cid": STRONG_REF["cid"]}
    polled = JetstreamStream.to_post("did:plc:tanakaexample00000000002", "3lbquote0002", commit, 1_763_600_000_000_000)
    assert polled is not None and polled.post.quote_of == QUOTED


def test_jetstream_keeps_a_quote_of_a_stored_post_without_the_brand(social_app, fakes):
    """Client-side filtering: a quote of a post we store is kept like a reply to one."""
    b: FakeBluesky = fakes["bluesky"]
    original = b.add_post("ハルカ珈琲 アプリが落ちる")
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    source = svc.sources["bluesky"]
    source.jetstream_url = "ws://127.0.0.1:9/subscribe"  # never dialled: only the filter is used
    [stream] = source.streams(svc.pipeline)
    record = _record() | {"text": "私も！", "embed": {"$type": "app.bsky.embed.record",
                                                    "record": {"uri": original, "cid": STRONG_REF["cid"]}}}
    polled = JetstreamStream.to_post("did:plc:tanakaexample00000000002", "3lbquote0003",
                                     {"operation": "create", "record": record}, 1_763_600_000_000_000)
    assert polled is not None and stream.wants(polled.post)
    unrelated = JetstreamStream.to_post("did:plc:tanakaexample00000000002", "3lbquote0004",
                                        {"operation": "create", "record": _record() | {"text": "私も！"}},
                                        1_763_600_000_000_000)
    assert unrelated is not None and not stream.wants(unrelated.post)


def test_mastodon_quote_sets_quote_of_from_the_quoted_status_uri(social_app, fakes):
    m: FakeMastodon = fakes["mastodon"]
    original = m.add_status("<p>ソラモバイル 圏外 #ソラモバイル</p>", tags=["ソラモバイル"])
    quoting = m.add_status("<p>私も #ソラモバイル</p>", tags=["ソラモバイル"], username="sato", quote_of=original)
    pending = m.add_status("<p>うちも #ソラモバイル</p>", tags=["ソラモバイル"], username="kato",
                           quote_of=original, quote_state="pending")
    posts = _poll(social_app(only=("mastodon",)))
    uri_of = {sid: m.statuses[sid]["uri"] for sid in (original, quoting, pending)}
    assert posts[f"mastodon:{uri_of[quoting]}"].quote_of == uri_of[original]
    assert posts[f"mastodon:{uri_of[pending]}"].quote_of is None  # a pending quote does not show the quoted post (QuoteStateEnum)


def test_mastodon_shallow_quote_resolves_a_stored_status_by_local_id(social_app, fakes):
    m: FakeMastodon = fakes["mastodon"]
    original = m.add_status("<p>ソラモバイル 圏外 #ソラモバイル</p>", tags=["ソラモバイル"])
    svc = social_app(only=("mastodon",))
    _poll(svc)
    shallow = m.add_status("<p>私も #ソラモバイル</p>", tags=["ソラモバイル"], username="sato",
                           quote_of=original, shallow_quote=True)
    unknown = m.add_status("<p>うちも #ソラモバイル</p>", tags=["ソラモバイル"], username="kato",
                           quote_of=original, shallow_quote=True)
    m.statuses[unknown]["quote"]["quoted_status_id"] = "999999"  # a status we never stored
    posts = _poll(svc)
    assert posts[f"mastodon:{m.statuses[shallow]['uri']}"].quote_of == m.statuses[original]["uri"]
    assert posts[f"mastodon:{m.statuses[unknown]['uri']}"].quote_of is None


def test_webhook_normalized_post_carries_quote_of():
    post = Post.model_validate({"platform": "webhook", "id": "rv-2", "created_at": "2026-11-20T09:00:00Z",
                                "text": "私も！", "author": {"id": "u2"}, "quote_of": "rv-1"})
    assert post.quote_of == "rv-1"
    assert Post.model_validate({"platform": "webhook", "id": "rv-3", "created_at": "2026-11-20T09:00:00Z",
                                "text": "私も！", "author": {"id": "u2"}, "quote_of": None}).quote_of is None


def test_webhook_quote_of_reaches_the_qualifier(client, svc):
    """The webhook's normalized post takes `quote_of` (docs/networks.md): a bare 「私も！」 that
    quotes a stored post is judged as that post's echo, not dropped as not naming the brand."""
    first = send(client, post_dict(id="q-1", platform="webhook", text="ソラモバイル 朝から圏外のまま"))
    assert first.status_code == 202
    quoting = send(client, post_dict(id="q-2", platform="webhook", text="私も！", quote_of="q-1",
                                     author={"id": "u-q2", "handle": "q2"}))
    plain = send(client, post_dict(id="q-3", platform="webhook", text="私も！", author={"id": "u-q3", "handle": "q3"}))
    assert quoting.status_code == plain.status_code == 202
    assert plain.get_json()["results"][0]["reasons"] == ["no brand keyword, hashtag or mention matched"]
    [echo] = quoting.get_json()["results"]
    assert any("quote of webhook:q-1" in reason and "webhook:q-1 の引用" in reason for reason in echo["reasons"])
