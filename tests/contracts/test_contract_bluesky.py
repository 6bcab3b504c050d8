"""Contract: the fake Bluesky PDS answers the way the AT Protocol lexicons say.

Reference: the lexicon tree in ../shared/specs/bluesky/lexicons (skipped with the reason when
absent), checked with the small validator in tests/contracts/lexicon.py, which is itself checked
first against answers captured from the live network (../shared/specs/bluesky/selftest/). The
fake is driven by the real client (connector.sources.bluesky: createSession, refreshSession,
searchPosts with cursor paging, getPosts incl. a deleted post, getProfile, createRecord for a
reply); every answer is captured at the HTTP layer and validated against its method's output
(errors against the XRPC error shape), every procedure's request body against its input, and
every query's parameters against the declared ones.
"""
from __future__ import annotations

import json

import pytest
import requests

from connector.poller import Poller
from tests.contracts.lexicon import LEXICONS, input_errors, lexicon, output_errors, record_errors, xrpc_error_errors
from tests.contracts.openapi import SPECS, Capture
from tests.fakes.base import FIXTURES
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.fixtures import *  # noqa: F401,F403

SELFTEST = SPECS / "bluesky" / "selftest"

pytestmark = pytest.mark.skipif(
    not LEXICONS.is_dir(), reason="../shared/specs/bluesky/lexicons (the AT Protocol lexicons) is absent beside the repository")


def test_the_validator_accepts_live_captured_answers():
    if not SELFTEST.is_dir():
        pytest.skip("../shared/specs/bluesky/selftest is absent")
    thread = json.loads((SELFTEST / "bluesky-post-thread.json").read_text(encoding="utf-8"))
    assert output_errors("app.bsky.feed.getPostThread", thread) == []
    reply = json.loads((SELFTEST / "bluesky-reply-record.json").read_text(encoding="utf-8"))
    assert record_errors("app.bsky.feed.post", reply) == []
    # …and refuses what it should: the made-up CIDs of issue 15 #5, a missing author.
    broken = json.loads(json.dumps(thread))
    broken["thread"]["post"]["cid"] = "bafyreifakecid0000000000000000000000000000000000000000000"
    del broken["thread"]["post"]["author"]["handle"]
    found = output_errors("app.bsky.feed.getPostThread", broken)
    assert any("cid" in f for f in found) and any("'handle'" in f for f in found), found


def test_the_fixtures_are_valid():
    search = json.loads((FIXTURES / "bluesky-search-posts.ja.json").read_text(encoding="utf-8"))
    assert output_errors("app.bsky.feed.searchPosts", search) == []
    reply = json.loads((FIXTURES / "bluesky-reply-record.ja.json").read_text(encoding="utf-8"))
    assert record_errors("app.bsky.feed.post", reply) == []


def drive(b: FakeBluesky, social_app) -> Capture:
    root = b.add_post("ハルカ珈琲の新作、苦すぎませんか")
    b.add_post("ハルカ珈琲 同意です", did="did:plc:satoexample0000000000001", handle="sato.bsky.social", reply_to=root)
    for i in range(30):
        b.add_post(f"ハルカ珈琲 {i} 杯目")
    svc = social_app(only=("bluesky",))
    source = svc.sources["bluesky"]
    capture = Capture().attach(source.session)
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    posts = [svc.store.posts.load_post(t["post_key"])[0] for t in svc.store.outbox.list_tickets()]
    b.deleted.add(posts[-1].id if posts[-1].id.startswith("at://") else root)
    b.expire_access()  # the next call refreshes the session
    source.check_exists(posts)
    source.fetch_profile("did:plc:suzukiexample0000000001")
    svc.reply(ticket_id=svc.store.outbox.list_tickets()[0]["ticket_id"], agent="佐藤", text="ご意見ありがとうございます。",
              dedupe_key="k1")
    return capture


def test_every_fake_answer_and_client_request_validates(fakes, social_app):
    capture = drive(fakes["bluesky"], social_app)
    nsids = {e.path.removeprefix("/xrpc/") for e in capture.exchanges}
    assert {"com.atproto.server.createSession", "com.atproto.server.refreshSession", "app.bsky.feed.searchPosts",
            "app.bsky.feed.getPosts", "app.bsky.actor.getProfile", "com.atproto.repo.createRecord"} <= nsids, nsids
    problems = []
    for e in capture.exchanges:
        nsid = e.path.removeprefix("/xrpc/")
        if e.status == 200:
            problems += [f"{nsid} output: {p}" for p in output_errors(nsid, e.body)]
        else:
            problems += xrpc_error_errors(nsid, e.status, e.body)
        main = lexicon(nsid)["defs"]["main"]
        if main["type"] == "procedure" and "input" in main and isinstance(e.request_body, dict):
            problems += [f"{nsid} input: {p}" for p in input_errors(nsid, e.request_body)]
        declared = set(((main.get("parameters") or {}).get("properties") or {}))
        problems += [f"{nsid}: undeclared parameter {k!r}" for k in e.args if k not in declared]
    assert not problems, "\n".join(problems[:30])
    [created] = [e for e in capture.exchanges if e.path.endswith("createRecord")]
    assert created.request_body["record"]["$type"] == "app.bsky.feed.post"
    assert record_errors("app.bsky.feed.post", created.request_body["record"]) == []


def test_a_deliberately_wrong_fake_field_fails(fakes):
    b: FakeBluesky = fakes["bluesky"]
    b.add_post("ハルカ珈琲")
    session = requests.post(f"{b.url}/xrpc/com.atproto.server.createSession",
                            json={"identifier": "haruka-coffee.bsky.social", "password": "test-app-password"}, timeout=10).json()

    def search() -> dict:
        return requests.get(f"{b.url}/xrpc/app.bsky.feed.searchPosts", params={"q": "ハルカ珈琲"},
                            headers={"Authorization": f"Bearer {session['accessJwt']}"}, timeout=10).json()

    assert output_errors("app.bsky.feed.searchPosts", search()) == []
    [view] = b.posts.values()
    view["cid"] = "bafyreifakecid0000000000000000000000000000000000000000000"  # not a real CID
    view["indexedAt"] = "2026/11/20 09:00"  # not an RFC 3339 datetime
    found = output_errors("app.bsky.feed.searchPosts", search())
    assert any("/posts/0/cid" in f for f in found) and any("/posts/0/indexedAt" in f for f in found), found
