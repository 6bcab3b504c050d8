"""Bluesky: the session is created once and refreshed, searchPosts pages with since/cursor,
replies carry the right root/parent strong refs, and every CID is a real CIDv1."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connector.poller import Poller
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.cid import DAG_CBOR, RAW, SHA2_256, cid_for, parse_cid
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


# --- CIDs (issue 15 #5) --------------------------------------------------------------------
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "social"
SELFTEST = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "bluesky" / "selftest"
#: A CID embedded in a blob URL (avatar, image): `…/<cid>@jpeg`.
_URL_CID = re.compile(r"/(b[a-z2-7]{20,})(?:@\w+)?$")


def _cids(value, key=None):
    """Every CID in a JSON value: `cid` fields (records: dag-cbor) and CIDs in blob URLs (raw)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _cids(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _cids(v, key)
    elif isinstance(value, str):
        if key == "cid":
            yield value, DAG_CBOR
        elif value.startswith("https://") and (m := _URL_CID.search(value)):
            yield m.group(1), RAW


def _assert_valid(cid, codec):
    version, got_codec, hash_code, digest = parse_cid(cid)
    assert (version, got_codec, hash_code, len(digest)) == (1, codec, SHA2_256, 32), cid


def test_cid_helper_round_trips_and_refuses_fakes():
    cid = cid_for(b"hello")
    assert cid.startswith("bafyrei") and parse_cid(cid)[3].hex() == \
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert cid_for(b"hello", RAW).startswith("bafkrei")
    for bad in ("bafyreifakecid00000001", "bafyreireply000001", "bafkreiexampleavatar",
                "bafyreiexamplecid0000000000000000000000000000000000000001", cid.upper(), cid[:-2], "Qm" + cid[2:]):
        with pytest.raises(ValueError):
            parse_cid(bad)


def test_real_cids_parse():
    """The helper agrees with CIDs a real PDS served (skipped without ../shared/specs)."""
    if not SELFTEST.is_dir():
        pytest.skip("../shared/specs/bluesky/selftest/ is absent (the published specs beside the repository)")
    found = [c for f in sorted(SELFTEST.glob("*.json")) for c in _cids(json.loads(f.read_text()))]
    assert found
    for cid, codec in found:
        _assert_valid(cid, codec)


def test_every_fixture_cid_is_a_valid_cidv1():
    found = {f.name: list(_cids(json.loads(f.read_text()))) for f in sorted(FIXTURES.glob("bluesky-*.json"))}
    assert all(found.values()), found
    for cids in found.values():
        for cid, codec in cids:
            _assert_valid(cid, codec)


def _ask(fake, method, path, **kwargs):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request
    headers = {"Authorization": f"Bearer {fake.access}"} if fake.access else {}
    response = fake._dispatch(Request(EnvironBuilder(method=method, path=path, headers=headers, **kwargs).get_environ()))
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data())


def test_every_cid_the_fake_serves_is_a_valid_cidv1():
    from tests.fakes.bluesky import BRAND_DID, HANDLE, PASSWORD
    b = FakeBluesky()
    root = b.add_post("ハルカ珈琲の新ブレンド、酸っぱい")
    child = b.add_post("ハルカ珈琲、前のブレンドに戻してほしい", reply_to=root)
    _ask(b, "POST", "/xrpc/com.atproto.server.createSession", json={"identifier": HANDLE, "password": PASSWORD})
    answers = [
        _ask(b, "GET", "/xrpc/app.bsky.feed.searchPosts", query_string={"q": "ハルカ珈琲"}),
        _ask(b, "GET", "/xrpc/app.bsky.feed.getPosts", query_string=[("uris", root), ("uris", child)]),
        _ask(b, "POST", "/xrpc/com.atproto.repo.createRecord", json={
            "repo": BRAND_DID, "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "ありがとうございます", "createdAt": "2026-11-20T09:00:00Z",
                       "reply": {"root": {"uri": root, "cid": b.posts[root]["cid"]},
                                 "parent": {"uri": child, "cid": b.posts[child]["cid"]}}}}),
    ]
    served = [c for answer in answers for c in _cids(answer)]
    # two posts (each with its own cid; the child's record names the root's as root and parent),
    # the avatar blobs, and the created record's cid
    assert len({c for c, codec in served if codec == DAG_CBOR}) == 3, served
    assert any(codec == RAW for _, codec in served)
    for cid, codec in served:
        _assert_valid(cid, codec)


@pytest.mark.parametrize("claimed", [
    "2026-11-21T05:00:00.000Z",  # 20 h after the network indexed it (inside the schema's future window)
    "2007-01-01T00:00:00.000Z",  # back-dated years before it
])
def test_client_set_created_at_is_clamped_to_indexed_at(social_app, fakes, claimed):
    """Any client sets `createdAt`; the AppView's `indexedAt` is the network's time. A far-off
    createdAt would put the post into another hour's storm or spike (issue 16 #1)."""
    b: FakeBluesky = fakes["bluesky"]
    uri = b.add_post("ハルカ珈琲、注文したのに届かない")
    b.posts[uri]["record"]["createdAt"] = claimed
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    post, _, _ = svc.store.posts.load_post(f"bluesky:{uri}")
    assert post.created_at == datetime.fromisoformat(b.posts[uri]["indexedAt"].replace("Z", "+00:00"))


def test_created_at_close_to_indexed_at_is_kept(social_app, fakes):
    b: FakeBluesky = fakes["bluesky"]
    uri = b.add_post("ハルカ珈琲、注文したのに届かない")
    indexed = datetime.fromisoformat(b.posts[uri]["indexedAt"].replace("Z", "+00:00"))
    b.posts[uri]["record"]["createdAt"] = (indexed - timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    post, _, _ = svc.store.posts.load_post(f"bluesky:{uri}")
    assert post.created_at == indexed - timedelta(seconds=40)
