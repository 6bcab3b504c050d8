"""Zendesk Channel framework mode: manifest, admin UI, pull paging, channelback, clickthrough,
events. Payloads are checked against Zendesk's published schemas (tests/channel_schemas.py)."""
from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from connector.analysis import analyse
from connector.cli import main
from connector.db.schema import posts as posts_table
from connector.helpdesks.zendesk.channel.manifest import manifest_path
from connector.helpdesks.zendesk.channel.resources import external_id, post_key_from_external_id
from connector.helpdesks.zendesk.channel.tokens import METADATA, STATE, BadToken, TokenSigner
from connector.models import Decision, Post
from connector.sources.base import ReplyResult
from connector.store import utcnow
from tests.channel_schemas import assert_valid
from tests.conftest import post_dict

PUBLIC_URL = "https://yorisoi.example.co.jp"
SECRET = "channel-secret-for-tests-0123456789"
RETURN_URL = "https://acme.zendesk.com/zendesk/channels/integration_service_instances/editor_finalizer"
BRAND = "ソラモバイル"
OTHER_BRAND = "ハルカ珈琲"


@pytest.fixture
def channel_app(app_factory):
    return app_factory(YORISOI_PUBLIC_URL=PUBLIC_URL, YORISOI_CHANNEL_SECRET=SECRET)


@pytest.fixture
def csvc(channel_app):
    return channel_app.extensions["yorisoi"]


@pytest.fixture
def cclient(channel_app):
    return channel_app.test_client()


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in page"
    return html.unescape(match.group(1))


def install(client, *, brand: str = BRAND, subdomain: str = "acme", signature: str = "",
            name: str = "Yorisoi X") -> str:
    """Run the admin UI as Zendesk and an admin would; return the metadata handed to Zendesk."""
    first = client.post("/zendesk/channel/admin_ui", data={
        "return_url": f"https://{subdomain}.zendesk.com/zendesk/channels/integration_service_instances/editor_finalizer",
        "subdomain": subdomain, "locale": "ja", "name": ""})
    assert first.status_code == 200, first.get_data(as_text=True)
    code = TokenSigner(SECRET).install_code(subdomain)
    done = client.post("/zendesk/channel/admin_ui/save", data={
        "form_token": _hidden(first.get_data(as_text=True), "form_token"), "name": name, "brand": brand,
        "signature": signature, "install_code": code})
    assert done.status_code == 200, done.get_data(as_text=True)
    return _hidden(done.get_data(as_text=True), "metadata")


_analysis_cache: dict[str, Any] = {}


def store_post(svc, *, ticket_post_key: str | None = None, brand: str = BRAND, **fields) -> Post:
    """Record a qualifying, analysed post straight in the store (fast: one analysis reused)."""
    post = Post.model_validate(post_dict(**fields))
    if "a" not in _analysis_cache:
        _analysis_cache["a"] = analyse(post, svc.watch.priority)
    assert svc.store.posts.record_post(post, Decision(True, brand, (f"brand {brand}: test",)), _analysis_cache["a"],
                                 source="test", ticket_post_key=ticket_post_key)
    return post


def pull(client, metadata: str, state: str = "") -> tuple[int, dict[str, Any]]:
    response = client.post("/zendesk/channel/pull", data={"metadata": metadata, "state": state})
    return response.status_code, response.get_json()


# --- manifest ------------------------------------------------------------------------------
def test_manifest_is_served_absolute_and_valid(cclient, channel_app):
    response = cclient.get("/zendesk/manifest.json")
    assert response.status_code == 200
    manifest = response.get_json()
    assert_valid("manifest", manifest)
    assert "push_client_id" not in manifest
    adapter = channel_app.url_map.bind("yorisoi.example.co.jp")
    for name, url in manifest["urls"].items():
        assert url.startswith(PUBLIC_URL + "/zendesk/channel/"), name
        method = "GET" if name in ("clickthrough_url", "healthcheck_url") else "POST"
        endpoint, _ = adapter.match(url[len(PUBLIC_URL):], method=method)
        assert endpoint.startswith("channel."), (name, endpoint)
    top_level = json.loads(manifest_path().read_text(encoding="utf-8"))  # the source of truth
    assert {k: PUBLIC_URL + v for k, v in top_level["urls"].items()} == manifest["urls"]


def test_manifest_push_client_id_only_when_configured(app_factory):
    app = app_factory(YORISOI_PUBLIC_URL=PUBLIC_URL + "/", YORISOI_CHANNEL_SECRET=SECRET,
                      YORISOI_CHANNEL_PUSH_CLIENT_ID="yorisoi_push")
    manifest = app.test_client().get("/zendesk/manifest.json").get_json()
    assert manifest["push_client_id"] == "yorisoi_push"
    assert manifest["urls"]["admin_ui"] == PUBLIC_URL + "/zendesk/channel/admin_ui"  # no double slash
    assert_valid("manifest", manifest)


@pytest.mark.parametrize("extra, words", [
    ({}, "YORISOI_PUBLIC_URL"),
    ({"YORISOI_PUBLIC_URL": "http://yorisoi.example.co.jp", "YORISOI_CHANNEL_SECRET": SECRET}, "must be an https URL"),
    ({"YORISOI_PUBLIC_URL": PUBLIC_URL}, "YORISOI_CHANNEL_SECRET"),
    ({"YORISOI_PUBLIC_URL": PUBLIC_URL, "YORISOI_CHANNEL_SECRET": "short"}, "at least 16"),
])
def test_channel_mode_off_answers_503_naming_the_variable(app_factory, extra, words):
    client = app_factory(**extra).test_client()
    for response in (client.get("/zendesk/manifest.json"), client.get("/zendesk/channel/healthcheck"),
                     client.post("/zendesk/channel/pull", data={"metadata": "x"})):
        assert response.status_code == 503
        assert words in response.get_json()["error"]
        assert SECRET not in response.get_data(as_text=True)


def test_healthcheck(cclient):
    response = cclient.get("/zendesk/channel/healthcheck")
    assert response.status_code == 200 and response.get_json() == {"ok": True}


# --- admin UI ------------------------------------------------------------------------------
def test_admin_ui_round_trip(cclient, csvc):
    first = cclient.post("/zendesk/channel/admin_ui", data={
        "return_url": RETURN_URL, "subdomain": "acme", "locale": "ja", "name": "",
        "zendesk_access_token": "zd-token-never-shown"})
    page = first.get_data(as_text=True)
    assert first.status_code == 200
    csp = first.headers["Content-Security-Policy"]
    assert "frame-ancestors https://*.zendesk.com" in csp and "'self'" not in csp.split("frame-ancestors")[1]
    assert "ブランド" in page and "接続コード" in page and BRAND in page and OTHER_BRAND in page
    assert "zd-token-never-shown" not in page
    # The form posts to our save step; the return_url travels only inside the signed token.
    assert 'action="/zendesk/channel/admin_ui/save"' in page and RETURN_URL not in page

    done = cclient.post("/zendesk/channel/admin_ui/save", data={
        "form_token": _hidden(page, "form_token"), "name": "ソラモバイル ソーシャル", "brand": BRAND,
        "signature": "サポート担当", "install_code": TokenSigner(SECRET).install_code("ACME").lower(),
        "return_url": "https://evil.example.com/steal"})  # a submitted return_url is ignored
    final = done.get_data(as_text=True)
    assert done.status_code == 200
    assert f'<form id="finish" method="post" action="{RETURN_URL}">' in final
    assert _hidden(final, "name") == "ソラモバイル ソーシャル"
    metadata = _hidden(final, "metadata")
    assert 0 < len(metadata) <= 5000
    nonce = re.search(r'<script nonce="([^"]+)">document.getElementById\("finish"\).submit\(\);</script>', final).group(1)
    assert f"'nonce-{nonce}'" in done.headers["Content-Security-Policy"]
    assert "form-action 'self' https://*.zendesk.com" in done.headers["Content-Security-Policy"]

    claims = TokenSigner(SECRET).open(METADATA, metadata)
    assert claims["s"] == "acme" and claims["b"] == BRAND
    instance = csvc.store.channel.channel_instance(claims["i"])
    assert instance["status"] == "active" and instance["signature"] == "サポート担当"
    assert instance["name"] == "ソラモバイル ソーシャル" and instance["brand"] == BRAND

    # Re-edit: Zendesk posts the stored metadata; no install code is asked, the id stays.
    again = cclient.post("/zendesk/channel/admin_ui", data={
        "return_url": RETURN_URL, "subdomain": "acme", "locale": "en-US", "name": "ソラモバイル ソーシャル",
        "metadata": metadata})
    page = again.get_data(as_text=True)
    assert "install_code" not in page and "Choose the brand" in page
    assert re.search(r'<option value="ソラモバイル" selected>', page)
    saved = cclient.post("/zendesk/channel/admin_ui/save", data={
        "form_token": _hidden(page, "form_token"), "name": "Haruka", "brand": OTHER_BRAND, "signature": ""})
    new_metadata = _hidden(saved.get_data(as_text=True), "metadata")
    assert TokenSigner(SECRET).open(METADATA, new_metadata)["i"] == claims["i"]
    assert csvc.store.channel.channel_instance(claims["i"])["brand"] == OTHER_BRAND


def test_switching_brand_restarts_the_cursor_for_the_new_brand(cclient, csvc):
    store_post(csvc, brand=OTHER_BRAND, text="ハルカ珈琲 美味しい")
    store_post(csvc, text="ソラモバイル 圏外")
    metadata = install(cclient, brand=BRAND)
    status, body = pull(cclient, metadata)
    assert [r["display_info"][0]["data"]["brand"] for r in body["external_resources"]] == [BRAND]
    page = cclient.post("/zendesk/channel/admin_ui", data={"return_url": RETURN_URL, "subdomain": "acme",
                                                           "metadata": metadata}).get_data(as_text=True)
    cclient.post("/zendesk/channel/admin_ui/save", data={"form_token": _hidden(page, "form_token"),
                                                          "name": "Haruka", "brand": OTHER_BRAND})
    status, body = pull(cclient, metadata, body["state"])  # Zendesk still holds the old state
    assert [r["display_info"][0]["data"]["brand"] for r in body["external_resources"]] == [OTHER_BRAND]


def test_admin_ui_english_and_errors(cclient, csvc):
    page = cclient.post("/zendesk/channel/admin_ui", data={
        "return_url": RETURN_URL, "subdomain": "acme", "locale": "EN-us"}).get_data(as_text=True)
    assert "Install code" in page and '<html lang="en">' in page
    token = _hidden(page, "form_token")
    wrong = cclient.post("/zendesk/channel/admin_ui/save", data={
        "form_token": token, "name": "", "brand": "Unknown brand", "install_code": "AAAA-BBBB-CCCC-DDDD"})
    text = wrong.get_data(as_text=True)
    assert wrong.status_code == 422
    assert "Enter a display name" in text and "Choose a brand" in text and "install code is not correct" in text
    assert "metadata" not in text
    # The code of another subdomain does not open this one.
    other = cclient.post("/zendesk/channel/admin_ui/save", data={
        "form_token": token, "name": "x", "brand": BRAND, "install_code": TokenSigner(SECRET).install_code("other")})
    assert other.status_code == 422
    tampered = cclient.post("/zendesk/channel/admin_ui/save", data={
        "form_token": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"), "name": "x", "brand": BRAND,
        "install_code": TokenSigner(SECRET).install_code("acme")})
    assert tampered.status_code == 400 and "metadata" not in tampered.get_data(as_text=True)


@pytest.mark.parametrize("return_url", [
    None, "", "http://acme.zendesk.com/finish", "https://zendesk.com/finish", "https://evil.example.com/finish",
    "https://acme.zendesk.com.evil.example.com/finish", "https://evil.example.com/?next=.zendesk.com",
    "https://user@acme.zendesk.com/finish", "https://acme.zendesk.com:8443/finish", "javascript:alert(1)//.zendesk.com",
    "//acme.zendesk.com/finish", "https://acme.zendesk.co/finish", "https://acme.zendesk.com\\@evil.example.com/",
])
def test_admin_ui_refuses_return_urls_outside_zendesk(cclient, return_url):
    data = {"subdomain": "acme", "locale": "ja"}
    if return_url is not None:
        data["return_url"] = return_url
    response = cclient.post("/zendesk/channel/admin_ui", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "return_url" in page and "form_token" not in page


def test_only_the_admin_ui_may_be_framed_by_zendesk(cclient):
    assert "frame-ancestors 'self'" in cclient.get("/").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in cclient.get("/zendesk/manifest.json").headers["Content-Security-Policy"]


# --- pull ----------------------------------------------------------------------------------
def test_pull_pages_through_more_than_200_without_gaps_or_repeats(cclient, csvc):
    metadata = install(cclient)
    keys = [store_post(csvc, text=f"ソラモバイル 圏外です {n}").key for n in range(230)]
    other = store_post(csvc, brand=OTHER_BRAND, text="ハルカ珈琲のラテ最高").key
    # Many posts stored in the same instant: the cursor must still neither repeat nor skip.
    same_moment = utcnow() - timedelta(hours=1)
    with csvc.store.engine.begin() as conn:
        conn.execute(update(posts_table).where(posts_table.c.key.in_(keys[:150])).values(ingested_at=same_moment))
        conn.execute(update(posts_table).where(posts_table.c.key.in_(keys[150:])).values(
            ingested_at=same_moment + timedelta(minutes=5)))

    seen: list[str] = []
    state = ""
    sizes = []
    for _ in range(5):
        status, body = pull(cclient, metadata, state)
        assert status == 200, body
        assert_valid("pull_payload", body)
        for resource in body["external_resources"]:
            assert_valid("external_resource", resource)
        sizes.append(len(body["external_resources"]))
        seen += [r["external_id"] for r in body["external_resources"]]
        assert body["state"] and len(body["state"]) <= 5000
        state = body["state"]
    assert sizes == [200, 30, 0, 0, 0]
    assert len(seen) == len(set(seen)) == 230
    assert {post_key_from_external_id(e) for e in seen} == set(keys)
    assert external_id(*other.split(":", 1)) not in seen  # another brand's post

    # A post arriving later comes in the next pull, alone.
    late = store_post(csvc, text="ソラモバイル まだ繋がらない").key
    status, body = pull(cclient, metadata, state)
    assert [post_key_from_external_id(r["external_id"]) for r in body["external_resources"]] == [late]
    # An old state replayed gives the same page again (Zendesk keeps the state it last got).
    assert pull(cclient, metadata, state)[1]["external_resources"] == body["external_resources"]


def test_a_post_committed_late_is_still_pulled(app_factory, db_env, monkeypatch):
    """Issue 16 #2: a post's ingested_at is taken before its transaction, which may wait 10 s
    for a lock (or run on a host whose clock is behind). Committed after a pull moved the
    (ingested_at, key) cursor past that time, it was never sent. The feed number is assigned
    at commit, so it comes in the next pull."""
    from connector.db import posts as posts_module
    app = app_factory(**db_env, YORISOI_PUBLIC_URL=PUBLIC_URL, YORISOI_CHANNEL_SECRET=SECRET)
    csvc, cclient = app.extensions["yorisoi"], app.test_client()
    metadata = install(cclient)
    real_now = posts_module.utcnow
    monkeypatch.setattr(posts_module, "utcnow", lambda: real_now() - timedelta(seconds=20))  # settled
    first = store_post(csvc, text="ソラモバイル 圏外です").key
    status, body = pull(cclient, metadata)
    assert [post_key_from_external_id(r["external_id"]) for r in body["external_resources"]] == [first]
    state = body["state"]
    monkeypatch.setattr(posts_module, "utcnow", lambda: real_now() - timedelta(seconds=40))  # a slow transaction
    late = store_post(csvc, text="ソラモバイル まだ繋がらない").key
    monkeypatch.setattr(posts_module, "utcnow", real_now)
    status, body = pull(cclient, metadata, state)
    assert [post_key_from_external_id(r["external_id"]) for r in body["external_resources"]] == [late]
    assert pull(cclient, metadata, body["state"])[1]["external_resources"] == []


def test_a_state_of_the_old_cursor_form_resumes_without_skipping(cclient, csvc):
    """States Zendesk stored before the feed numbers ((ingested_at, key)) still work: the pull
    resumes a little before that time (repeats are de-duplicated by Zendesk, skips are not)."""
    metadata = install(cclient)
    first = store_post(csvc, text="ソラモバイル 圏外です").key
    second = store_post(csvc, text="ソラモバイル まだ繋がらない").key
    claims = TokenSigner(SECRET).open(STATE, pull(cclient, metadata)[1]["state"])
    old = TokenSigner(SECRET).seal(STATE, {"i": claims["i"], "b": claims["b"],
                                           "t": utcnow().isoformat(), "k": first})
    status, body = pull(cclient, metadata, old)
    assert status == 200
    assert {post_key_from_external_id(r["external_id"]) for r in body["external_resources"]} == {first, second}


def test_resource_shape_threading_and_hostile_text(cclient, csvc):
    metadata = install(cclient)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & "引用" \n2行目'
    author = {"name": "田中<b>", "handle": "tanaka_k", "avatar_url": "https://pbs.example.com/a.jpg"}
    root = store_post(csvc, text="ソラモバイル " + hostile, author=author)
    store_post(csvc, text="まだです", conversation_id=root.id, in_reply_to=root.id, ticket_post_key=root.key,
               author=author)
    store_post(csvc, text="sora mobile is down", lang="en",
               author={"id": "555", "name": None, "handle": None, "avatar_url": "http://insecure.example.com/a.jpg"})
    status, body = pull(cclient, metadata)
    assert_valid("pull_payload", body)
    first, second, third = body["external_resources"]
    assert first["external_id"] == f"yorisoi:x:{root.id}" and first["thread_id"] == first["external_id"]
    assert second["thread_id"] == first["external_id"] and "parent_id" not in second
    assert "<script" not in first["html_message"] and "<img" not in first["html_message"]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in first["html_message"]
    assert "&amp; &quot;引用&quot;" in first["html_message"] and "<br>2行目" in first["html_message"]
    assert first["message"].startswith("ソラモバイル " + hostile.strip())
    assert root.url in first["message"]
    assert first["created_at"] == "2026-11-20T09:00:00Z"
    assert first["author"] == {"external_id": "yorisoi:x:90000001", "name": "田中<b> (@tanaka_k)", "locale": "ja",
                               "image_url": "https://pbs.example.com/a.jpg"}
    assert third["author"] == {"external_id": "yorisoi:x:555", "name": "555", "locale": "en"}  # http image left out
    assert first["allow_channelback"] is True
    fields = {f["id"]: f["value"] for f in first["fields"]}
    assert fields["priority"] in ("urgent", "high", "normal", "low") and "yorisoi" in fields["tags"]
    assert fields["subject"].startswith("[ソラモバイル]")
    assert "fields" not in second  # ticket fields apply on ticket creation only
    analysis = first["display_info"][0]
    assert analysis["type"] == "urn:yorisoi:display:analysis:v1"
    assert set(analysis["data"]["labels"]) >= {"sentiment", "intent", "risk", "priority"}
    assert analysis["data"]["labels"]["sentiment"]["name_ja"] == "感情"
    assert analysis["data"]["qualification"] == ["brand ソラモバイル: test"]


def test_external_ids_are_ascii_for_every_network(cclient, csvc):
    metadata = install(cclient)
    bluesky = store_post(csvc, platform="bluesky", id="at://did:plc:abc123/app.bsky.feed.post/3kxyz",
                         url="https://bsky.app/profile/tanaka.bsky.social/post/3kxyz",
                         author={"id": "did:plc:abc123"})
    rss = store_post(csvc, platform="rss", id="https://blog.example.jp/日記/ソラモバイル 解約?x=1#c",
                     url="https://blog.example.jp/%E6%97%A5%E8%A8%98", author={"id": "ブロガー"})
    long = store_post(csvc, platform="rss", id="https://review.example.jp/" + "あ" * 200,
                      url="https://review.example.jp/r/1", author={"id": "r" * 250})
    body = pull(cclient, metadata)[1]
    assert_valid("pull_payload", body)
    by_key = {}
    for resource in body["external_resources"]:
        for value in (resource["external_id"], resource["author"]["external_id"], resource["thread_id"]):
            assert value.isascii() and len(value) <= 255 and value == value.strip() and " " not in value
        assert resource["allow_channelback"] is (resource["external_id"].startswith("yorisoi:bluesky:"))
        by_key[resource["external_id"]] = resource
    assert f"yorisoi:bluesky:{bluesky.id}" in by_key  # already ASCII: sent as it is
    # Each id leads back to its post: readable ones by decoding, hashed ones by the store.
    for post in (bluesky, rss, long):
        ext = external_id(post.platform, post.id)
        response = cclient.get("/zendesk/channel/clickthrough", query_string={"external_id": ext})
        assert response.status_code == 302 and response.headers["Location"] == post.url
    assert ":sha256-" in external_id(long.platform, long.id)


# --- metadata and state forgery -------------------------------------------------------------
def test_forged_or_tampered_metadata_cannot_read_posts(cclient, csvc):
    metadata = install(cclient, brand=BRAND)
    haruka = install(cclient, brand=OTHER_BRAND, subdomain="haruka")
    store_post(csvc, text="ソラモバイル 秘密ではないが他社には見せない")
    version, body, mac = metadata.split(".")
    other_claims = TokenSigner(SECRET).open(METADATA, haruka)
    forged_body = TokenSigner("x" * 32).seal(METADATA, {**other_claims, "b": BRAND}).split(".")[1]
    attempts = {
        "": 401, "{}": 401, json.dumps({"i": other_claims["i"], "b": BRAND}): 401,
        f"{version}.{forged_body}.{mac}": 401,                                  # payload swapped
        TokenSigner("another-secret-0123456789").seal(METADATA, {"i": "x", "s": "acme", "b": BRAND}): 401,
        TokenSigner(SECRET).seal(STATE, TokenSigner(SECRET).open(METADATA, metadata)): 401,  # wrong purpose
        TokenSigner(SECRET).seal(METADATA, {"i": "ci_nope", "s": "acme", "b": BRAND}): 403,
    }
    for forged, expected in attempts.items():
        status, answer = pull(cclient, forged)
        assert status == expected, (forged, answer)
        assert "metadata" in answer["error"] and "external_resources" not in answer
    # Each instance sees its own brand only, and its state cannot be used by another.
    status, own = pull(cclient, metadata)
    assert status == 200 and len(own["external_resources"]) == 1
    status, theirs = pull(cclient, haruka)
    assert status == 200 and theirs["external_resources"] == []
    status, answer = pull(cclient, haruka, own["state"])
    assert status == 400 and "another integration instance" in answer["error"]
    status, answer = pull(cclient, metadata, own["state"][:-2] + "xx")
    assert status == 400 and "state refused" in answer["error"]


def test_tokens_are_bound_to_their_purpose_and_expire():
    signer = TokenSigner(SECRET)
    token = signer.seal(METADATA, {"i": "ci_1"})
    assert signer.open(METADATA, token) == {"i": "ci_1"}
    with pytest.raises(BadToken, match="signature"):
        signer.open(STATE, token)
    with pytest.raises(BadToken, match="expired"):
        signer.open(METADATA, signer.seal(METADATA, {"i": "ci_1"}, ttl_seconds=-1))
    assert SECRET not in repr(signer)


# --- channelback ---------------------------------------------------------------------------
class RecordingSource:
    def __init__(self, platform: str = "x"):
        self.platform = platform
        self.calls: list[tuple[str, str, str]] = []

    def post_reply(self, post, text, idempotency_key):
        self.calls.append((post.key, text, idempotency_key))
        return ReplyResult("sent", network_id="1870000000000000042", url="https://x.com/sora/status/1870000000000000042")


def test_channelback_posts_once_per_request_unique_identifier(cclient, csvc):
    metadata = install(cclient, signature="サポート担当")
    root = store_post(csvc, text="ソラモバイル 請求が二重です")
    latest = store_post(csvc, text="まだですか", conversation_id=root.id, in_reply_to=root.id,
                        ticket_post_key=root.key, created_at="2026-11-20T10:00:00Z")
    source = RecordingSource()
    csvc.sources["x"] = source
    form = {"metadata": metadata, "message": "ご不便をおかけしております。DMで確認させてください。",
            "parent_id": external_id("x", root.id), "thread_id": "", "recipient_id": "yorisoi:x:90000001",
            "request_unique_identifier": "2d5d2a3e-5f4b-4c55-9f0e-1b7e6b1f0c11"}
    first = cclient.post("/zendesk/channel/channelback", data=form)
    again = cclient.post("/zendesk/channel/channelback", data=form)  # Zendesk retrying
    assert first.status_code == again.status_code == 200, first.get_json()
    assert_valid("channelback_payload_v2", first.get_json())
    assert first.get_json() == again.get_json() == {"external_id": "yorisoi:x:1870000000000000042",
                                                     "allow_channelback": True}
    assert len(source.calls) == 1
    post_key, text, key = source.calls[0]
    assert post_key == latest.key  # answers the newest customer post of the conversation
    assert text.endswith("（ソラモバイル サポート担当）")
    assert key == "zendesk-channel:2d5d2a3e-5f4b-4c55-9f0e-1b7e6b1f0c11"
    [exchange] = csvc.store.exchanges.list_exchanges(root.key)
    assert exchange["helpdesk"] == "zendesk-channel" and exchange["status"] == "sent"

    # A second instance reusing the identifier gets no one else's reply, and nothing is posted.
    haruka_root = store_post(csvc, brand=OTHER_BRAND, text="ハルカ珈琲 閉店?")
    haruka = install(cclient, brand=OTHER_BRAND, subdomain="haruka")
    clash = cclient.post("/zendesk/channel/channelback", data={**form, "metadata": haruka,
                                                               "parent_id": external_id("x", haruka_root.id)})
    assert clash.status_code == 409 and len(source.calls) == 1


def test_channelback_refusals(cclient, csvc):
    metadata = install(cclient)
    haruka_post = store_post(csvc, brand=OTHER_BRAND, text="ハルカ珈琲")
    blog = store_post(csvc, platform="rss", id="https://blog.example.jp/1", url="https://blog.example.jp/1",
                      text="ソラモバイルの解約体験記")
    csvc.sources["x"] = source = RecordingSource()
    base = {"metadata": metadata, "message": "確認します", "request_unique_identifier": "r-1",
            "parent_id": external_id("x", haruka_post.id)}
    cases = [
        ({"metadata": "forged"}, 401), ({"request_unique_identifier": ""}, 400), ({"message": "  "}, 400),
        ({}, 404),  # another brand's conversation
        ({"parent_id": "yorisoi:x:404"}, 404), ({"parent_id": external_id("rss", blog.id)}, 422),
    ]
    for change, expected in cases:
        response = cclient.post("/zendesk/channel/channelback", data={**base, **change})
        assert response.status_code == expected, (change, response.get_json())
        assert response.get_json()["error"]
    assert source.calls == []


def test_channelback_by_thread_id_without_signature_is_sent_as_written(cclient, csvc):
    metadata = install(cclient, signature="")
    root = store_post(csvc, text="ソラモバイル 教えてください")
    csvc.sources["x"] = source = RecordingSource()
    response = cclient.post("/zendesk/channel/channelback", data={
        "metadata": metadata, "message": "佐藤です。設定画面からご確認いただけます。",
        "thread_id": external_id("x", root.id), "request_unique_identifier": "r-2"})
    assert response.status_code == 200
    assert source.calls[0][1] == "佐藤です。設定画面からご確認いただけます。"


# --- clickthrough, events ------------------------------------------------------------------
def test_clickthrough(cclient, csvc):
    post = store_post(csvc, text="ソラモバイル つながらない")
    response = cclient.get("/zendesk/channel/clickthrough", query_string={"external_id": external_id("x", post.id)})
    assert response.status_code == 302 and response.headers["Location"] == post.url
    bad = store_post(csvc, text="ソラモバイル xss", url="javascript:alert(1)")
    for ext in (external_id("x", bad.id), "yorisoi:x:unknown", "", "other:x:1"):
        assert cclient.get("/zendesk/channel/clickthrough", query_string={"external_id": ext}).status_code == 404


def _event(type_id: str, metadata: str) -> dict[str, Any]:
    return {"type_id": type_id, "timestamp": "2026-11-20T09:00:00Z", "subdomain": "acme",
            "integration_name": "Yorisoi", "integration_id": "jp.yorisoi.zendesk.channel",
            "data": {"metadata": metadata}}


def test_destroy_event_stops_the_instance(cclient, csvc, caplog):
    metadata = install(cclient)
    root = store_post(csvc, text="ソラモバイル")
    events = [_event("deactivate_integration_instance", metadata) | {"data": {"metadata": metadata,
                                                                             "deactivated_by": "api"}},
              _event("destroy_integration_instance", "forged-metadata"),
              _event("destroy_integration_instance", metadata)]
    for event in events:
        assert_valid(f"event_callback_{event['type_id']}", event)
    caplog.set_level("INFO", logger="connector.helpdesks.zendesk.channel.web")
    response = cclient.post("/zendesk/channel/events", json={"events": events})
    assert response.status_code == 200 and response.get_json()["events"] == 3
    assert len(response.get_json()["destroyed"]) == 1
    assert metadata not in caplog.text and SECRET not in caplog.text
    assert "destroy_integration_instance" in caplog.text

    status, answer = pull(cclient, metadata)
    assert status == 403 and "destroyed" in answer["error"]
    back = cclient.post("/zendesk/channel/channelback", data={
        "metadata": metadata, "message": "x", "parent_id": external_id("x", root.id),
        "request_unique_identifier": "r-9"})
    assert back.status_code == 403
    # A re-edit with the destroyed instance's metadata starts a new install instead.
    page = cclient.post("/zendesk/channel/admin_ui", data={"return_url": RETURN_URL, "subdomain": "acme",
                                                           "metadata": metadata}).get_data(as_text=True)
    assert "install_code" in page
    assert cclient.post("/zendesk/channel/events", data="nope").status_code == 400


# --- CLI, migration ------------------------------------------------------------------------
def test_channel_code_cli(env):
    result = CliRunner().invoke(main, ["channel-code", "acme"],
                                env={**env, "YORISOI_PUBLIC_URL": PUBLIC_URL, "YORISOI_CHANNEL_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [TokenSigner(SECRET).install_code("acme"),
                                          f"manifest: {PUBLIC_URL}/zendesk/manifest.json"]
    assert SECRET not in result.output
    off = CliRunner().invoke(main, ["channel-code", "acme"], env=env)
    assert off.exit_code == 1 and "YORISOI_PUBLIC_URL" in off.output


def test_version_1_database_gains_the_channel_tables(tmp_path):
    from sqlalchemy import inspect, select

    from connector.db.schema import SCHEMA_VERSION, channel_external_ids, channel_instances, schema_version
    from connector.store import Store
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    store = Store(url)
    with store.engine.begin() as conn:
        channel_external_ids.drop(conn)
        channel_instances.drop(conn)
        conn.execute(update(schema_version).values(version=1))  # as a database made before channel mode
    store.engine.dispose()
    store = Store(url)
    assert {"channel_instances", "channel_external_ids"} <= set(inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        assert max(conn.execute(select(schema_version.c.version)).scalars()) == SCHEMA_VERSION
