"""Contract: the fake X answers the way X's API v2 is specified, and the client asks what the
spec declares.

Reference: X's OpenAPI in ../shared/specs/x/ (skipped with the reason when absent): spec 2.159
(`latest-openapi.json`, the naming the client pins: `tweet.fields`, `referenced_tweets`,
`retweet_count`) for the fake in its default naming, and spec 2.167 (`openapi.json`:
`post.fields`, `referenced_posts`, `repost_count`) for the fake answering in the newer naming.
The fake is driven by the real client code (connector.sources.x) and every answer is captured at
the HTTP layer (the source's requests.Session) and validated against the operation's response
schema; every request's query parameters against the operation's declared parameters.
"""
from __future__ import annotations

import pytest
import requests

from connector.poller import Poller
from connector.sources import x as xmod
from tests.contracts.openapi import SPECS, Capture, errors, query_problems, response_validator
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env
from tests.fakes.x import BRAND_ID, FakeX

SPEC_2159 = SPECS / "x" / "latest-openapi.json"
SPEC_2167 = SPECS / "x" / "openapi.json"

pytestmark = pytest.mark.skipif(
    not (SPEC_2159.is_file() and SPEC_2167.is_file()),
    reason="../shared/specs/x/ (X's published OpenAPI 2.159 and 2.167) is absent beside the repository")

SPEC_FOR = {"2.159": SPEC_2159, "2.167": SPEC_2167}


def drive(x: FakeX, social_app, env, tmp_path) -> Capture:
    """Every endpoint the client uses: search and mentions (paged), lookup with a deleted and a
    protected post, a profile, a refused and an accepted reply, and doctor's /2/users/me."""
    brand_post = x.add_post("ソラモバイル公式: 障害のお知らせ", author=BRAND_ID)
    asked = x.add_post("ソラモバイル & <速度> いつ直る？", mention_brand=True)
    x.add_post("ソラモバイル これ本当？", author="1850000000000000103", quote_of=brand_post)
    x.add_post("ソラモバイル 同じく", author="1850000000000000104", reply_to=asked)
    plain = x.add_post("ソラモバイル、駅で全然つながらない", author="1850000000000000105")
    for i in range(12):
        x.add_post(f"ソラモバイル 遅い {i}", author="1850000000000000106")
    svc = social_app(only=("x",))
    source = svc.sources["x"]
    capture = Capture().attach(source.session)
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    gone = x.add_post("ソラモバイル 消す予定", author="1850000000000000107")
    x.delete(gone)
    x.protected_users.add("1850000000000000105")
    posts = [svc.store.posts.load_post(f"x:{i}")[0] for i in (asked, plain)]
    source.check_exists(posts + [posts[0].model_copy(update={"id": gone})])
    source.fetch_profile("1850000000000000103")
    source.fetch_profile("1850000000000000999")  # unknown: errors[] only
    for post_id, key in ((asked, "k1"), (plain, "k2")):
        svc.reply(ticket_id=svc.store.outbox.ticket_for(f"x:{post_id}").ticket_id, agent="佐藤",
                  text="ご不便をおかけしております。", dedupe_key=key)
    session = requests.Session()
    Capture.attach(capture, session)
    xmod.doctor(social_env(env, tmp_path, {"x": x}), session)
    return capture


@pytest.mark.parametrize("naming", ["2.159", "2.167"])
def test_every_fake_answer_validates_against_the_spec_of_its_naming(naming, fakes, social_app, env, tmp_path):
    x: FakeX = fakes["x"]
    x.naming = naming
    capture = drive(x, social_app, env, tmp_path)
    seen = {(e.method, e.path.split("/")[2] if e.path.startswith("/2/users/") else e.path) for e in capture.exchanges}
    for must in [("GET", "/2/tweets/search/recent"), ("GET", "/2/tweets"), ("POST", "/2/tweets")]:
        assert must in seen, sorted(seen)
    assert any("/mentions" in e.path for e in capture.exchanges)
    assert any(e.path == "/2/users/me" for e in capture.exchanges)
    problems = []
    checked = 0
    for e in capture.exchanges:
        if e.path == "/2/oauth2/token":
            continue  # OAuth 2.0 token endpoint: not in X's API v2 spec
        validator = response_validator(SPEC_FOR[naming], e.method, e.path, e.status)
        problems += [f"{e.method} {e.path} {e.status}: {msg}" for msg in errors(validator, e.body)]
        checked += 1
    assert checked >= 8
    assert not problems, "\n".join(problems[:30])
    # Answers that carried posts are really in the naming under test.
    served = [e.body for e in capture.exchanges if isinstance(e.body, dict) and e.body.get("data")
              and e.path in ("/2/tweets/search/recent", "/2/tweets") and e.method == "GET"]
    assert served and {xmod.answer_naming(b) for b in served} == {naming}


def test_every_request_uses_parameters_the_pinned_spec_declares(fakes, social_app, env, tmp_path):
    capture = drive(fakes["x"], social_app, env, tmp_path)
    problems = []
    for e in capture.exchanges:
        if e.path == "/2/oauth2/token":
            continue
        problems += query_problems(SPEC_2159, e.method, e.path, e.args)
    assert not problems, "\n".join(problems)
    # …and the newer spec would refuse them: the pin is real (tweet.fields is not declared in 2.167).
    search = capture.on("/2/tweets/search/recent")[0]
    assert any("tweet.fields" in p for p in query_problems(SPEC_2167, "GET", search.path, search.args))


def test_reply_request_body_validates_against_the_create_request_schema(fakes, social_app, env, tmp_path):
    from tests.contracts.openapi import load, schema_validator
    capture = drive(fakes["x"], social_app, env, tmp_path)
    [op] = [load(SPEC_2159)["paths"]["/2/tweets"]["post"]]
    validator = schema_validator(SPEC_2159, op["requestBody"]["content"]["application/json"]["schema"])
    sent = [e.request_body for e in capture.exchanges if e.method == "POST" and e.path == "/2/tweets"]
    assert sent and all(not errors(validator, body) for body in sent), [errors(validator, b) for b in sent]


def search_answer(x: FakeX) -> dict:
    return requests.get(x.url + "/2/tweets/search/recent", params={"query": "ソラモバイル", "max_results": 10},
                        headers={"Authorization": "Bearer test-x-bearer"}, timeout=10).json()


def test_a_deliberately_wrong_fake_field_fails(fakes):
    x: FakeX = fakes["x"]
    post_id = x.add_post("ソラモバイル 圏外", author="1850000000000000103")
    assert not errors(response_validator(SPEC_2159, "GET", "/2/tweets/search/recent", 200), search_answer(x))
    x.tweets[post_id]["public_metrics"]["retweet_count"] = "2"  # a string where X sends an integer
    x.users["1850000000000000103"].pop("username")  # a user without its required username
    found = errors(response_validator(SPEC_2159, "GET", "/2/tweets/search/recent", 200), search_answer(x))
    assert any("retweet_count" in f and "integer" in f for f in found), found
    assert any("'username' is a required property" in f for f in found), found


def test_the_newer_naming_fails_the_older_spec_and_vice_versa(fakes, social_app, env, tmp_path):
    # The two specs really disagree: each naming is wrong under the other spec's schema, so a
    # fake serving the wrong naming for its spec is caught.
    x: FakeX = fakes["x"]
    capture = drive(x, social_app, env, tmp_path)
    older = capture.on("/2/tweets/search/recent")[0]
    assert any("repost_count" in f for f in errors(response_validator(SPEC_2167, "GET", older.path, 200), older.body))
    x.naming = "2.167"
    newer = search_answer(x)
    assert xmod.answer_naming(newer) == "2.167"
    assert any("retweet_count" in f for f in errors(response_validator(SPEC_2159, "GET", older.path, 200), newer))
