"""POST /sources/webhook: HMAC signature, clear 4xx errors, nothing half-written."""
from __future__ import annotations

import json

import pytest

from tests.conftest import post_dict, sign


def send(client, payload, *, signature=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    sig = sign(body) if signature is None else signature
    if sig:
        headers["X-Yorisoi-Signature"] = sig
    return client.post("/sources/webhook", data=body, headers=headers)


def stored(svc) -> dict[str, int]:
    return svc.store.posts.counts()


def test_signed_post_is_accepted_and_becomes_a_ticket(client, svc):
    response = send(client, post_dict(id="9001", platform="webhook", text="ソラモバイルの店員さん、神対応でした"))
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] == 1 and body["results"][0]["status"] == "queued"
    assert body["results"][0]["post"] == "webhook:9001"
    svc.pipeline.drain(max_wait=1)
    assert [t["external_id"] for t in svc.store.outbox.list_tickets()] == ["yorisoi:webhook:9001"]


def test_same_post_twice_is_a_duplicate(client, svc):
    payload = post_dict(id="9002", text="ソラモバイル遅い")
    assert send(client, payload).status_code == 202
    again = send(client, payload).get_json()
    assert again["results"][0]["status"] == "duplicate"
    svc.pipeline.drain(max_wait=1)
    assert len(svc.store.outbox.list_tickets()) == 1


@pytest.mark.parametrize("signature", [
    "", "sha256=" + "0" * 64, "sha1=abc", "sha256=zz", "sha256=" + sign(b"other body")[7:],
    "ｓｈａ２５６＝ａｂ",  # non-ASCII must not crash the comparison
])
def test_bad_or_missing_signature_is_401_and_stores_nothing(client, svc, signature):
    response = send(client, post_dict(id="9003"), signature=signature or "")
    assert response.status_code == 401
    assert "X-Yorisoi-Signature" in response.get_json()["error"]
    assert stored(svc)["posts"] == 0


def test_signature_with_another_secret_is_401(client, svc):
    body = json.dumps(post_dict(id="9004")).encode()
    assert send(client, None, raw=body, signature=sign(body, "wrong-secret")).status_code == 401


def test_disabled_without_secret(app_factory):
    client = app_factory(YORISOI_WEBHOOK_SECRET="").test_client()
    response = send(client, post_dict())
    assert response.status_code == 503 and "YORISOI_WEBHOOK_SECRET" in response.get_json()["error"]


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[]", "empty batch"),
    (b"42", "JSON object"),
])
def test_malformed_body_is_400(client, svc, raw, words):
    response = send(client, None, raw=raw)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert stored(svc)["posts"] == 0


@pytest.mark.parametrize("mutate, field", [
    (lambda p: p.update(platform="myspace"), "platform"),
    (lambda p: p.pop("text"), "text"),
    (lambda p: p["author"].update(followers="many"), "author.followers"),
    (lambda p: p.update(text="x" * 20_001), "text"),
])
def test_invalid_post_is_400_naming_the_field(client, svc, mutate, field):
    payload = post_dict()
    mutate(payload)
    response = send(client, payload)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{field}: ")
    assert stored(svc)["posts"] == 0


def test_batch_keeps_valid_posts_and_names_bad_ones(client, svc):
    good = post_dict(id="9101", text="ソラモバイルの料金プランについて質問です")
    bad = post_dict(id="9102")
    del bad["created_at"]
    response = send(client, [good, bad])
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert body["results"][1]["error"] == {"field": "created_at", "message": "Field required", "index": 1}
    assert stored(svc)["posts"] == 1


def test_batch_all_bad_is_400_with_index(client, svc):
    bad = post_dict()
    bad["id"] = 5
    response = send(client, [bad])
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("posts[0].id: ")


def test_oversized_body_is_413(app_factory):
    client = app_factory(YORISOI_MAX_BODY_BYTES="2048").test_client()
    response = send(client, post_dict(text="ソラモバイル" + "あ" * 3000))
    assert response.status_code == 413


def test_hostile_text_is_stored_verbatim_and_shown_inert(client, supervisor, svc):
    text = 'ソラモバイル最悪 <script>alert(1)</script><img src=x onerror=alert(2)>'
    send(client, post_dict(id="9201", text=text, url="javascript:alert(3)"))
    svc.pipeline.drain(max_wait=1)
    client = supervisor  # the pages need a signed-in supervisor (the ticket list is /tickets)
    page = client.get("/tickets").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
    detail = client.get("/posts/x:9201").get_data(as_text=True)
    assert "<script>alert(1)" not in detail and 'href="javascript:' not in detail
    assert "default-src 'self'" in client.get("/").headers["Content-Security-Policy"]


@pytest.mark.parametrize("created_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_a_post_dated_outside_a_sane_window_is_a_400_naming_created_at(client, svc, created_at):
    """9999-12-31 overflowed the conversion to Japanese time inside ingest: a 500 on every
    resend. 0001-01-01 stored, then overflowed the storm index. Both are refused before
    ingest, naming the field; the rest of a batch is still taken (issue 16 #1)."""
    response = send(client, post_dict(id="9100", text="ソラモバイル最悪", created_at=created_at))
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("created_at:")
    batch = send(client, [post_dict(id="9101", text="ソラモバイル最悪", created_at=created_at),
                          post_dict(id="9102", text="ソラモバイル遅い", author={"id": "u9102"})])
    assert batch.status_code == 202
    body = batch.get_json()
    assert body["accepted"] == 1 and body["results"][0]["status"] == "rejected"
    assert body["results"][0]["error"]["field"] == "created_at"
    assert svc.store.posts.counts()["posts"] == 1
