"""Contract: the fake Mastodon answers the way Mastodon documents its API.

Reference: the OpenAPI 3.1 document generated from mastodon/documentation
(../shared/specs/mastodon/schema.json, info.version 4.7.0; skipped with the reason when absent).
The fake is driven by the real client (connector.sources.mastodon: tag timelines with Link
paging, search, status lookup incl. a deleted one, account lookup, a threaded reply, doctor's
verify_credentials); every answer is captured at the HTTP layer and validated against the
operation's response schema, and every request's query parameters against the declared ones.
The status fixture the fake is built from is checked against `Status` on its own.
"""
from __future__ import annotations

import json

import pytest
import requests

from connector.poller import Poller
from connector.sources import mastodon as mastodon_mod
from tests.contracts.openapi import SPECS, Capture, component_validator, errors, query_problems, response_validator
from tests.fakes.base import FIXTURES
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env
from tests.fakes.mastodon import TOKEN, FakeMastodon

SPEC = SPECS / "mastodon" / "schema.json"

pytestmark = pytest.mark.skipif(
    not SPEC.is_file(), reason="../shared/specs/mastodon/schema.json (Mastodon's OpenAPI) is absent beside the repository")


def drive(m: FakeMastodon, social_app, env, tmp_path) -> Capture:
    for i in range(45):
        m.add_status(f"<p>ソラモバイル 回線 {i} #ソラモバイル</p>", tags=["ソラモバイル"])
    m.add_status("<p>ブーストされた #ソラモバイル</p>", tags=["ソラモバイル"], reblog=True)
    m.add_status("<p>ソラ光の工事、いつ来ますか？</p>", username="sato", acct="sato@example.social",
                 uri="https://example.social/users/sato/statuses/1")
    svc = social_app(only=("mastodon",))
    source = svc.sources["mastodon"]
    capture = Capture().attach(source.session)
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    posts = [svc.store.posts.load_post(t["post_key"])[0] for t in svc.store.outbox.list_tickets()]
    m.deleted.add(svc.store.sources.post_extras(posts[-1].key)["local_id"])
    assert len(source.check_exists(posts)) == 1  # the deleted one, from a 404
    source.fetch_profile("yamada")
    [ticket, *_] = svc.store.outbox.list_tickets()
    svc.reply(ticket_id=ticket["ticket_id"], agent="佐藤", text="確認してご連絡します。", dedupe_key="zd:1")
    session = requests.Session()
    capture.attach(session)
    mastodon_mod.doctor(social_env(env, tmp_path, {"mastodon": m}), session)
    return capture


def test_the_status_fixture_is_a_documented_status():
    status = json.loads((FIXTURES / "mastodon-status.ja.json").read_text(encoding="utf-8"))
    assert not errors(component_validator(SPEC, "Status"), status)


def test_every_fake_answer_validates_against_the_spec(fakes, social_app, env, tmp_path):
    capture = drive(fakes["mastodon"], social_app, env, tmp_path)
    kinds = {(e.method, e.path.rsplit("/", 1)[0] if "/statuses/" in e.path or "/tag/" in e.path else e.path)
             for e in capture.exchanges}
    for must in [("GET", "/api/v1/timelines/tag"), ("GET", "/api/v1/statuses"), ("POST", "/api/v1/statuses"),
                 ("GET", "/api/v1/accounts/lookup"), ("GET", "/api/v1/accounts/verify_credentials")]:
        assert must in kinds, sorted(kinds)
    assert any(e.status == 404 for e in capture.exchanges)  # the deleted status
    problems = []
    for e in capture.exchanges:
        validator = response_validator(SPEC, e.method, e.path, e.status)
        problems += [f"{e.method} {e.path} {e.status}: {msg}" for msg in errors(validator, e.body)]
    assert not problems, "\n".join(problems[:30])


def test_every_request_uses_declared_parameters(fakes, social_app, env, tmp_path):
    capture = drive(fakes["mastodon"], social_app, env, tmp_path)
    problems = [p for e in capture.exchanges for p in query_problems(SPEC, e.method, e.path, e.args)]
    assert not problems, "\n".join(problems)


def test_a_deliberately_wrong_fake_field_fails(fakes):
    m: FakeMastodon = fakes["mastodon"]
    status_id = m.add_status("<p>ソラモバイル</p>")
    answer = requests.get(f"{m.url}/api/v1/statuses/{status_id}", timeout=10).json()
    validator = response_validator(SPEC, "GET", f"/api/v1/statuses/{status_id}", 200)
    assert not errors(validator, answer)
    m.statuses[status_id]["account"].pop("indexable")  # required on Account since Mastodon 4.2
    m.statuses[status_id]["visibility"] = "everyone"  # not one of the documented visibilities
    found = errors(validator, requests.get(f"{m.url}/api/v1/statuses/{status_id}", timeout=10).json())
    assert any("indexable" in f for f in found) and any("everyone" in f for f in found), found
    assert TOKEN  # the fake's token stays the documented bearer form
