"""/api/v1/: tokens, rate limit, logging without tokens, context, draft check, corrections, OpenAPI."""
from __future__ import annotations

import logging
import re

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from connector.agents import RateLimiter, create_token, parse_rate
from connector.cli import main
from connector.config import ConfigError
from connector.web.openapi import document
from tests.sidebar_seed import BAD_REPLY, seed


@pytest.fixture
def seeded(app, svc):
    info = seed(svc)
    token_id, token = create_token(svc.store, "佐藤")
    info["token"], info["token_id"] = token, token_id
    info["headers"] = {"Authorization": f"Bearer {token}"}
    return info


def schema_of(name: str) -> Draft202012Validator:
    doc = document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


# --- auth ---------------------------------------------------------------------------------

def test_every_route_needs_a_bearer_token(client, seeded):
    for method, path in [("get", "/api/v1/context?helpdesk=zendesk&ticket=101"), ("post", "/api/v1/draft-check"),
                         ("post", "/api/v1/corrections")]:
        response = getattr(client, method)(path)
        assert response.status_code == 401 and response.json["code"] == "missing_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        response = getattr(client, method)(path, headers={"Authorization": "Bearer ysi_not-a-real-token"})
        assert response.status_code == 401 and response.json["code"] == "invalid_token"
        assert "トークン" in response.json["message_ja"]
    response = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert response.status_code == 401


def test_a_revoked_token_is_refused_at_once(client, svc, seeded):
    ok = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"])
    assert ok.status_code == 200
    [row] = svc.store.accounts.list_agent_tokens()
    assert row["last_used_at"] is not None and row["agent"] == "佐藤"
    assert svc.store.accounts.revoke_agent_token(row["id"])
    refused = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"])
    assert refused.status_code == 401 and refused.json["code"] == "invalid_token"


def test_tokens_are_stored_hashed(svc):
    _, token = create_token(svc.store, "佐藤")
    import sqlalchemy
    with svc.store.engine.connect() as conn:
        dump = "\n".join(str(tuple(r)) for r in conn.execute(sqlalchemy.text("select * from agent_tokens")))
    assert token not in dump and token[4:] not in dump


def test_requests_are_logged_without_the_token(client, seeded, caplog):
    caplog.set_level(logging.DEBUG)
    client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"])
    client.post("/api/v1/draft-check", headers=seeded["headers"], json={"ticket": "101", "helpdesk": "zendesk", "text": "x"})
    client.get("/api/v1/context?helpdesk=zendesk&ticket=999", headers=seeded["headers"])
    client.get("/api/v1/context", headers={"Authorization": "Bearer ysi_wrong-token-value"})
    assert "api GET /api/v1/context -> 200 agent=佐藤" in caplog.text
    assert "-> 404" in caplog.text and "-> 401" in caplog.text
    assert seeded["token"] not in caplog.text and seeded["token"][4:] not in caplog.text
    assert "ysi_wrong-token-value" not in caplog.text


def test_rate_limit_per_token(app_factory):
    app = app_factory(YORISOI_API_RATE_LIMIT="3/minute")
    svc = app.extensions["yorisoi"]
    client = app.test_client()
    _, first = create_token(svc.store, "佐藤")
    _, second = create_token(svc.store, "鈴木")
    statuses = [client.get("/api/v1/context?helpdesk=zendesk&ticket=1", headers={"Authorization": f"Bearer {first}"}).status_code
                for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    limited = client.get("/api/v1/context?helpdesk=zendesk&ticket=1", headers={"Authorization": f"Bearer {first}"})
    assert limited.json["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    # Another agent's token has its own bucket.
    assert client.get("/api/v1/context?helpdesk=zendesk&ticket=1",
                      headers={"Authorization": f"Bearer {second}"}).status_code == 404


def test_token_bucket_refills():
    now = [0.0]
    limiter = RateLimiter(2, 1.0, clock=lambda: now[0])
    assert [limiter.allow(1)[0] for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert limiter.allow(1)[0] and not limiter.allow(1)[0]
    assert parse_rate("60/second") == (60, 60.0) and parse_rate("0") == (0, 0.0)
    assert parse_rate(None) == (120, 2.0)
    with pytest.raises(ConfigError, match="YORISOI_API_RATE_LIMIT"):
        parse_rate("lots")


def test_bad_api_settings_stop_start_up(app_factory):
    with pytest.raises(ConfigError, match="YORISOI_DRAFT_SIMILARITY"):
        app_factory(YORISOI_DRAFT_SIMILARITY="2")
    with pytest.raises(ConfigError, match="YORISOI_DRAFT_SIGNATURE_PATTERN"):
        app_factory(YORISOI_DRAFT_SIGNATURE_PATTERN="([")


def test_token_cli(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "--agent", "佐藤"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("ysi_") and len(token) > 40
    listed = runner.invoke(main, ["token", "list"])
    assert "佐藤" in listed.output and "active" in listed.output and token not in listed.output
    assert runner.invoke(main, ["token", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["token", "list"]).output
    again = runner.invoke(main, ["token", "revoke", "1"])
    assert again.exit_code != 0 and "no active token #1" in again.output
    assert runner.invoke(main, ["token", "create", "--agent", "  "]).exit_code != 0


# --- context ------------------------------------------------------------------------------

def test_context_of_a_seeded_ticket(client, seeded):
    response = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"])
    assert response.status_code == 200
    ctx = response.json
    assert not list(schema_of("Context").iter_errors(ctx))
    assert ctx["ticket"]["id"] == "101" and ctx["post"]["platform"] == "x"
    assert "全然繋がらない" in ctx["post"]["text"]
    labels = ctx["analysis"]["labels"]
    assert labels["sentiment"]["value"] == "negative" and labels["sentiment"]["evidence"]
    assert labels["intent"]["value"] == "complaint" and labels["priority"]["value_ja"]
    # Every evidence line also in Japanese (the dashboard's templates), line for line.
    for label in labels.values():
        assert len(label["evidence_ja"]) == len(label["evidence"])
    rendered = [ja for label in labels.values() for en, ja in zip(label["evidence"], label["evidence_ja"]) if ja != en]
    assert rendered and all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja) for ja in rendered)
    author = ctx["author"]
    assert author["name"] == "田中 健" and author["handle"] == "tanaka_k" and author["followers"] == 1520
    assert author["profile_url"] == "https://x.com/tanaka_k" and author["avatar_url"].startswith("https://")
    assert author["account_age_days"] > 3000 and author["location"] == "東京"
    # Earlier posts about the brand, newest first, without this one; the question has a ticket.
    assert [h["key"] for h in ctx["history"]] == ["x:1860000000000000102", "x:1860000000000000101"]
    assert ctx["history"][0]["ticket"] == {"helpdesk": "zendesk", "id": "100"}
    assert ctx["history"][1]["sentiment"] == "positive" and ctx["history"][1]["intent"] == "praise"
    assert [t["id"] for t in ctx["other_tickets"]] == ["100"]
    [exchange] = ctx["exchanges"]
    assert exchange["agent"] == "鈴木" and exchange["status"] == "prepared" and exchange["ticket_id"] == "100"
    series = ctx["sentiment_history"]
    assert [s["at"] for s in series] == sorted(s["at"] for s in series) and len(series) == 3
    assert series[-1]["current"] and series[-1]["score"] < 0 < series[0]["score"]
    # X refuses API replies to posts that did not mention us: the sidebar offers the intent link.
    assert ctx["post"]["reply"] == {"mode": "prepared",
                                    "url": "https://x.com/intent/tweet?in_reply_to=1860000000000000103"}
    assert set(ctx["label_sets"]) == {"sentiment", "intent", "expectation_type", "expectation_content", "quality_axis"}


def test_context_drops_unsafe_links_and_keeps_hostile_text_as_data(client, seeded):
    ctx = client.get("/api/v1/context?helpdesk=zendesk&ticket=102", headers=seeded["headers"]).json
    assert ctx["post"]["url"] is None  # javascript: link dropped
    assert ctx["author"]["avatar_url"] is None
    assert "<script>" in ctx["post"]["text"]  # plain data; the extension renders it as text


def test_context_for_freshdesk_and_mastodon_profile(client, seeded):
    ctx = client.get("/api/v1/context?helpdesk=freshdesk&ticket=7", headers=seeded["headers"]).json
    assert ctx["author"]["profile_url"] == "https://mstdn.example/@yamada"
    assert ctx["author"]["avatar_url"] is None  # http avatars are not shown (mixed content, tracking)
    assert ctx["post"]["reply"]["mode"] == "recorded"


def test_context_by_external_id(client, seeded):
    response = client.get("/api/v1/context?helpdesk=zendesk&external_id=yorisoi:x:1860000000000000103",
                          headers=seeded["headers"])
    assert response.status_code == 200 and response.json["ticket"]["id"] == "101"


@pytest.mark.parametrize("query, status, field", [
    ("helpdesk=zendesk&ticket=999", 404, None),
    ("helpdesk=freshdesk&ticket=101", 404, None),  # the id exists, but in Zendesk
    ("helpdesk=zendesk&external_id=yorisoi:x:nope", 404, None),
    ("helpdesk=jira&ticket=101", 400, "helpdesk"),
    ("helpdesk=zendesk", 400, "ticket"),
    ("helpdesk=zendesk&ticket=" + "9" * 65, 400, "ticket"),
    ("helpdesk=zendesk&ticket=1%20OR%201=1", 400, "ticket"),
])
def test_context_errors(client, seeded, query, status, field):
    response = client.get(f"/api/v1/context?{query}", headers=seeded["headers"])
    assert response.status_code == status
    assert not list(schema_of("Error").iter_errors(response.json))
    if status == 404:
        assert response.json["code"] == "unknown_ticket" and "Yorisoi" in response.json["message_ja"]
    else:
        assert response.json["field"] == field


def test_unknown_api_route_answers_json(client, seeded):
    response = client.get("/api/v1/nothing-here", headers=seeded["headers"])
    assert response.status_code == 404 and response.json["code"] == "not_found"
    response = client.delete("/api/v1/context", headers=seeded["headers"])
    assert response.status_code == 405 and "error" in response.json


# --- draft check --------------------------------------------------------------------------

def test_draft_check_finds_every_rule(client, seeded):
    response = client.post("/api/v1/draft-check", headers=seeded["headers"],
                           json={"ticket": "101", "helpdesk": "zendesk", "text": BAD_REPLY, "agent": "佐藤"})
    assert response.status_code == 200
    body = response.json
    assert not list(schema_of("DraftCheckResult").iter_errors(body))
    assert {f["rule"] for f in body["findings"]} == {"length", "signature", "similar_reply", "stock_phrase",
                                                     "personal_data", "tone"}
    assert body["counts"]["error"] >= 2 and body["length"]["limit"] == 280 and body["length"]["count"] > 280
    assert body["signed_text"].endswith("（ソラモバイル 佐藤）")


def test_draft_check_defaults_to_the_tokens_agent_and_passes_a_good_reply(client, seeded):
    text = "ソラモバイルの佐藤です。新宿駅の地下ホームで繋がりにくい件、本日18時の工事完了で改善する見込みです。"
    body = client.post("/api/v1/draft-check", headers=seeded["headers"],
                       json={"ticket": 101, "helpdesk": "zendesk", "text": text}).json
    assert body["findings"] == [] and body["agent"] == "佐藤" and body["signed_text"] == text


@pytest.mark.parametrize("payload, field", [
    ({"ticket": "101", "helpdesk": "zendesk"}, "text"),
    ({"ticket": "101", "helpdesk": "zendesk", "text": "   "}, "text"),
    ({"ticket": "101", "helpdesk": "zendesk", "text": "x" * 10_001}, "text"),
    ({"ticket": "101", "helpdesk": "zendesk", "text": "ok", "agent": 5}, "agent"),
    ({"ticket": ["101"], "helpdesk": "zendesk", "text": "ok"}, "ticket"),
    ({"ticket": "101", "helpdesk": 3, "text": "ok"}, "helpdesk"),
])
def test_draft_check_validation(client, seeded, payload, field):
    response = client.post("/api/v1/draft-check", headers=seeded["headers"], json=payload)
    assert response.status_code == 400 and response.json["field"] == field


def test_draft_check_needs_a_json_object(client, seeded):
    response = client.post("/api/v1/draft-check", headers=seeded["headers"], data="text=hi",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "JSON" in response.json["error"]
    response = client.post("/api/v1/draft-check", headers=seeded["headers"],
                           json={"ticket": "999", "helpdesk": "zendesk", "text": "hi"})
    assert response.status_code == 404


# --- OpenAPI ------------------------------------------------------------------------------

def test_openapi_describes_exactly_the_routes(app, client):
    response = client.get("/api/v1/openapi.json")  # no token needed: it holds no data
    assert response.status_code == 200
    doc = response.json
    described = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((rule.rule.removeprefix("/api/v1"), method))
    assert described == routed
    Draft202012Validator.check_schema({"components": doc["components"]})
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_me_names_the_tokens_agent(client, seeded):
    body = client.get("/api/v1/me", headers=seeded["headers"]).json
    assert body["agent"] == "佐藤" and not list(schema_of("Me").iter_errors(body))


# --- corrections --------------------------------------------------------------------------

def test_corrections_are_stored_for_training(client, svc, seeded):
    response = client.post("/api/v1/corrections", headers=seeded["headers"],
                           json={"ticket": "101", "helpdesk": "zendesk", "label": "intent", "value": "report"})
    assert response.status_code == 201
    body = response.json
    assert not list(schema_of("Correction").iter_errors(body))
    assert body["previous"] == "complaint" and body["value"] == "report" and body["agent"] == "佐藤"
    client.post("/api/v1/corrections", headers=seeded["headers"],
                json={"ticket": "101", "helpdesk": "zendesk", "label": "sentiment", "value": "neutral"})
    [row] = svc.store.corrections.list_corrections(label="sentiment")
    assert (row["post_key"], row["new_value"], row["agent"]) == ("x:1860000000000000103", "neutral", "佐藤")
    assert row["token_id"] == seeded["token_id"]
    # What `yorisoi train --from-corrections` reads:
    assert svc.store.corrections.corrected_examples("sentiment")[0][2] == "neutral"
    ctx = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"]).json
    assert ctx["corrections"]["intent"]["value"] == "report" and ctx["corrections"]["sentiment"]["agent"] == "佐藤"
    assert not list(schema_of("Context").iter_errors(ctx))


def test_an_agent_named_in_the_body_cannot_impersonate_a_colleague(client, svc, seeded):
    """Issue 16 #14: the body's `agent` used to win over the token's: a token of 佐藤 could
    record corrections and sign draft replies as 鈴木."""
    response = client.post("/api/v1/corrections", headers=seeded["headers"],
                           json={"ticket": "101", "helpdesk": "zendesk", "label": "sentiment", "value": "neutral",
                                 "agent": "鈴木"})
    assert response.status_code == 403 and response.json["field"] == "agent"
    assert svc.store.corrections.list_corrections() == []
    response = client.post("/api/v1/draft-check", headers=seeded["headers"],
                           json={"ticket": "101", "helpdesk": "zendesk", "text": "確認します", "agent": "鈴木"})
    assert response.status_code == 403 and response.json["field"] == "agent"
    # Naming oneself is allowed and recorded with the token's id.
    response = client.post("/api/v1/corrections", headers=seeded["headers"],
                           json={"ticket": "101", "helpdesk": "zendesk", "label": "sentiment", "value": "neutral",
                                 "agent": "佐藤"})
    assert response.status_code == 201 and response.json["agent"] == "佐藤"
    [row] = svc.store.corrections.list_corrections()
    assert (row["agent"], row["token_id"]) == ("佐藤", seeded["token_id"])


@pytest.mark.parametrize("payload, status, field", [
    ({"label": "risk", "value": "low"}, 400, "label"),  # computed, not corrected
    ({"label": "sentiment", "value": "angry"}, 400, "value"),
    ({"label": "intent", "value": "negative"}, 400, "value"),  # another label's value
    ({"label": None, "value": "neutral"}, 400, "label"),
    ({"label": "sentiment", "value": "neutral", "agent": ["x"]}, 400, "agent"),
    ({"label": "sentiment", "value": "neutral", "ticket": "999"}, 404, None),
])
def test_corrections_validation(client, svc, seeded, payload, status, field):
    body = {"ticket": "101", "helpdesk": "zendesk", **payload}
    response = client.post("/api/v1/corrections", headers=seeded["headers"], json=body)
    assert response.status_code == status
    if field:
        assert response.json["field"] == field
    assert svc.store.corrections.list_corrections() == []


def test_a_read_request_succeeds_while_the_database_is_write_locked(client, svc, seeded):
    """Issue 16 #15: every sidebar request wrote last_used_at, so while another writer held
    SQLite's write lock the read-only API waited 10 s and failed. It writes only when the
    stamp is stale, and then without waiting for the lock."""
    if svc.store.engine.dialect.name != "sqlite":
        # The lock held here is SQLite's database-wide write lock; on PostgreSQL (the whole
        # suite run there) `url.database` is a database name, which sqlite3 would create as an
        # empty file in the working directory.
        pytest.skip("SQLite's write lock: the database is not SQLite")
    import sqlite3
    import time as _time
    assert client.get("/api/v1/me", headers=seeded["headers"]).status_code == 200
    [row] = svc.store.accounts.list_agent_tokens()
    stamped = row["last_used_at"]
    assert stamped is not None
    # Fresh: no write at all. Then make it stale and hold the write lock from elsewhere.
    from datetime import timedelta

    import sqlalchemy
    with svc.store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE agent_tokens SET last_used_at = :t"),
                     {"t": (stamped - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")})
    path = svc.store.engine.url.database
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = _time.monotonic()
        response = client.get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=seeded["headers"])
        assert response.status_code == 200
        assert _time.monotonic() - started < 3
    finally:
        blocker.rollback()
        blocker.close()
    # With the lock gone, the next request records the use.
    assert client.get("/api/v1/me", headers=seeded["headers"]).status_code == 200
    [row] = svc.store.accounts.list_agent_tokens()
    assert row["last_used_at"] > stamped - timedelta(hours=1)
