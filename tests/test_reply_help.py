"""Help writing the reply in the sidebar's context (issue 18): the brand's guidelines, the
team's answers to similar earlier posts with the customer's reaction, a suggested first draft,
the draft check with [brand.reply], and the outage banner with the team's statement."""
from __future__ import annotations

from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator

from connector.agents import create_token
from connector.config import DEMO_WATCH
from connector.models import TicketRef
from connector.sidebar import build_context
from connector.store import utcnow
from connector.web.openapi import document
from tests.conftest import post_dict
from tests.sidebar_seed import seed


def schema_of(name: str) -> Draft202012Validator:
    doc = document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket(svc, key: str, ticket_id: str) -> None:
    for item in svc.store.outbox.claim_due(100, timedelta(minutes=5)):
        if item.post_key == key:
            svc.store.outbox.mark_created(item, TicketRef("zendesk", ticket_id, f"https://sora.zendesk.com/agent/tickets/{ticket_id}"),
                                          external_id=f"yorisoi:{key}", subject="s", priority="normal", tags=["yorisoi"])
        else:
            svc.store.outbox.mark_commented(item)


def _answered(svc, *, author: dict, text: str, ticket_id: str, reply: str, agent: str, days_ago: float,
              then: str | None = None) -> str:
    outcome = svc.pipeline.ingest_raw(post_dict(author=author, text=text, created_at=_iso(utcnow() - timedelta(days=days_ago))),
                                      source="test")
    assert outcome.status == "queued", outcome
    _ticket(svc, outcome.key, ticket_id)
    row, _ = svc.store.exchanges.begin_exchange(dedupe_key=f"t:{ticket_id}", ticket_post_key=outcome.key,
                                                reply_to_key=outcome.key, helpdesk="zendesk", ticket_id=ticket_id,
                                                agent=agent, text=reply)
    svc.store.exchanges.finish_exchange(row["id"], status="sent", url=None)
    if then:  # the customer's next post, after our reply (a minute from now)
        later = svc.pipeline.ingest_raw(post_dict(author=author, text=then, created_at=_iso(utcnow() + timedelta(minutes=1))),
                                        source="test")
        assert later.status in ("queued", "dropped", "stored"), later
    return outcome.key


@pytest.fixture
def guided(app_factory):
    """The demo watch file: ソラモバイル has [brand.reply] guidelines."""
    app = app_factory(YORISOI_WATCH=str(DEMO_WATCH))
    svc = app.extensions["yorisoi"]
    info = seed(svc)
    info["shibuya"] = _answered(
        svc, author={"id": "700001", "handle": "sasaki_m", "name": "佐々木"}, text="ソラモバイル、渋谷駅の改札で圏外になる。全然繋がらない",
        ticket_id="110", agent="鈴木", days_ago=3,
        reply="佐々木様、渋谷駅の改札付近で圏外になる件、ご迷惑をおかけしております。設備を点検しています。ソラモバイルの鈴木です。",
        then="ソラモバイルさん返信ありがとうございます、今日は繋がりました！")
    info["billing"] = _answered(
        svc, author={"id": "700002", "handle": "ito_y", "name": "伊藤"}, text="ソラモバイルの今月の請求が高すぎる。明細が分からない",
        ticket_id="111", agent="佐藤", days_ago=2,
        reply="伊藤様、ご請求の件でご心配をおかけしております。明細の見方をDMでご案内します。ソラモバイルの佐藤です。")
    _, token = create_token(svc.store, "佐藤")
    info.update(app=app, svc=svc, client=app.test_client(), headers={"Authorization": f"Bearer {token}"})
    return info


def test_context_has_guidelines_similar_cases_and_a_suggested_draft(guided):
    response = guided["client"].get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=guided["headers"])
    assert response.status_code == 200
    ctx = response.json
    assert not list(schema_of("Context").iter_errors(ctx))
    guide = ctx["reply_guidelines"]
    assert guide["signature"] == "{brand}の{agent}です" and "仕様です" in guide["avoid_words"]
    assert guide["faq_matched"] == ["通信障害"]
    cases = ctx["similar_cases"]
    keys = [c["post"]["key"] for c in cases]
    assert keys[0] in (guided["shibuya"], guided["keys"]["question"]), keys  # the station cases first
    assert guided["shibuya"] in keys[:2] and guided["keys"]["complaint"] not in keys
    shibuya = next(c for c in cases if c["post"]["key"] == guided["shibuya"])
    assert shibuya["reply"]["agent"] == "鈴木" and "渋谷駅" in shibuya["reply"]["text"]
    assert shibuya["reaction"]["verdict"] == "good" and "繋がりました" in shibuya["reaction"]["text"]
    if guided["billing"] in keys:
        assert keys.index(guided["billing"]) > keys.index(guided["shibuya"])
    draft = ctx["suggested_draft"]
    assert draft["lang"] == "ja" and draft["agent"] == "佐藤"
    assert draft["text"].startswith("田中 健様、") and "全然繋がらない" in draft["text"]
    assert "https://support.sora-mobile.example/outage" in draft["text"]
    assert draft["text"].endswith("ソラモバイルの佐藤です。")
    assert [p["kind"] for p in draft["parts"]] == ["greeting", "situation", "faq", "signature"]


def test_the_suggested_draft_passes_the_draft_check(guided):
    ctx = guided["client"].get("/api/v1/context?helpdesk=zendesk&ticket=101", headers=guided["headers"]).json
    response = guided["client"].post("/api/v1/draft-check", headers=guided["headers"],
                                     json={"ticket": "101", "helpdesk": "zendesk", "text": ctx["suggested_draft"]["text"]})
    body = response.json
    assert not list(schema_of("DraftCheckResult").iter_errors(body))
    assert [f["rule"] for f in body["findings"]] == [], body["findings"]
    assert body["length"]["unit"] == "x-weighted" and body["length"]["count"] <= 280
    assert body["graphemes"] == len(body["signed_text"])  # no combining marks or emoji here


def test_draft_check_applies_the_brand_guidelines(guided):
    text = "田中様、それは仕様です。ご理解ください。（ソラモバイル 佐藤）"
    body = guided["client"].post("/api/v1/draft-check", headers=guided["headers"],
                                 json={"ticket": "101", "helpdesk": "zendesk", "text": text}).json
    rules = [f["rule"] for f in body["findings"]]
    assert rules.count("avoid_word") == 2 and "faq_link" in rules and "signature" in rules
    span = next(f for f in body["findings"] if f["rule"] == "avoid_word")["span"]
    assert text[span[0]:span[1]] == "仕様です"


def test_grapheme_count_beside_the_network_count(guided):
    text = "ソラモバイルの佐藤です。👨‍👩‍👧 が\u3099"
    body = guided["client"].post("/api/v1/draft-check", headers=guided["headers"],
                                 json={"ticket": "101", "helpdesk": "zendesk", "text": text}).json
    assert body["graphemes"] == len("ソラモバイルの佐藤です。") + 3  # family, space, が+゛: one each
    assert body["length"]["count"] == len("ソラモバイルの佐藤です。") * 2 + 2 + 1 + 2 + 2


def test_english_post_gets_an_english_draft(guided):
    svc = guided["svc"]
    outcome = svc.pipeline.ingest_raw(post_dict(lang="en", author={"id": "700003", "handle": "maria_k", "name": "Maria"},
                                                text="Sora Mobile has no signal at Osaka station, calls keep dropping"),
                                      source="test")
    ctx = build_context(svc.store, outcome.key, watch=svc.watch, agent="Aiko")
    draft = ctx["suggested_draft"]
    assert draft["lang"] == "en" and draft["text"].startswith("Hi Maria, we're sorry about")
    assert draft["text"].endswith("— Aiko, Sora Mobile Support") and "outage" in draft["text"]


def test_no_guidelines_no_section_but_still_a_draft(client, svc):
    info = seed(svc)
    ctx = build_context(svc.store, info["keys"]["complaint"], agent="佐藤")
    assert ctx["reply_guidelines"] is None
    assert ctx["suggested_draft"]["text"].endswith("ソラモバイルの佐藤です。")
    assert [c["post"]["key"] for c in ctx["similar_cases"]] == [info["keys"]["question"]]


def test_hostile_text_stays_plain_in_the_draft(guided):
    svc = guided["svc"]
    ctx = build_context(svc.store, guided["keys"]["hostile"], watch=svc.watch, agent="佐藤")
    draft = ctx["suggested_draft"]["text"]
    assert "<img" not in draft.split("様、")[0]  # the greeting's name is cleaned
    # Post text quoted in the draft stays a string; the sidebar renders it as text (render.js).
    assert isinstance(draft, str)


def test_outage_banner_while_the_storm_is_active_with_the_latest_statement(guided):
    svc = guided["svc"]
    now = utcnow()
    keys = []
    for n in range(3):
        outcome = svc.pipeline.ingest_raw(post_dict(
            author={"id": f"71000{n}", "handle": f"u{n}", "name": f"U{n}"}, created_at=_iso(now - timedelta(minutes=10 - n)),
            text="ソラモバイル 大阪で通信障害？全く繋がらない、電話もできない"), source="test")
        keys.append(outcome.key)
    storm = build_context(svc.store, keys[-1], watch=svc.watch, now=now)["storm"]
    assert storm is not None and storm["size"] >= 2 and storm["active"] is True and storm["statement"] is None
    svc.store.storms.add_statement(storm["id"], "大阪府の一部で通信障害が発生しています。復旧作業中です。", "https://status.sora.example/1",
                                   "supervisor", now - timedelta(minutes=5))
    svc.store.storms.add_statement(storm["id"], "14:30 に復旧しました。", None, "supervisor", now - timedelta(minutes=1))
    storm = build_context(svc.store, keys[-1], watch=svc.watch, now=now)["storm"]
    assert storm["statement"]["text"] == "14:30 に復旧しました。" and storm["statement"]["author"] == "supervisor"
    later = build_context(svc.store, keys[-1], watch=svc.watch, now=now + timedelta(hours=3))["storm"]
    assert later["active"] is False  # no post for longer than the window: shown as past, not as an outage


def test_supervisor_sets_the_statement_on_the_storm_page_and_agents_see_it(app_factory):
    """The statement comes from the dashboard's 炎上 page (logged-in supervisors, CSRF-checked,
    escaped), and the next context of a ticket in that storm carries it."""
    from pathlib import Path

    from tests.conftest import csrf_from, login
    app = app_factory(YORISOI_STORM_MIN_POSTS="3")
    svc = app.extensions["yorisoi"]
    lines = (Path(__file__).parent / "fixtures" / "storm.jsonl").read_text(encoding="utf-8").splitlines()
    outcomes = [svc.pipeline.ingest_raw(line, "test") for line in lines if line.strip()]
    member = next(o.key for o in outcomes if (svc.store.storms.storm_of(o.key) or {}).get("storm_id"))
    storm_id = svc.store.storms.storm_of(member)["storm_id"]
    client = app.test_client()
    assert client.post(f"/storms/{storm_id}/statement", data={"text": "x"}).status_code in (302, 400, 401, 403)
    assert svc.store.storms.latest_statement(storm_id) is None  # not logged in: nothing stored
    login(client, app)
    page = client.get("/storms").get_data(as_text=True)
    token = csrf_from(page)
    hostile = "<script>alert(1)</script> 大阪で障害、復旧作業中です"
    assert client.post(f"/storms/{storm_id}/statement", data={"text": hostile, "url": "javascript:alert(1)",
                                                              "csrf_token": token}).status_code == 400
    assert client.post(f"/storms/{storm_id}/statement", data={"text": "  ", "csrf_token": token}).status_code == 400
    response = client.post(f"/storms/{storm_id}/statement", data={"text": hostile, "url": "https://status.sora.example/1",
                                                                  "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#storm-{storm_id}")
    assert client.post("/storms/999999/statement", data={"text": "x", "csrf_token": token}).status_code == 404
    page = client.get("/storms").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 大阪で障害" in page and "<script>alert(1)" not in page
    statement = build_context(svc.store, member, now=utcnow())["storm"]["statement"]
    assert statement["text"] == hostile and statement["url"] == "https://status.sora.example/1"
    assert statement["author"] == "supervisor"


def test_a_brand_without_reply_table_has_no_guidelines(client, svc):
    """tests/fixtures/watch.toml has no [brand.reply]: the sidebar shows no empty section."""
    info = seed(svc)
    assert build_context(svc.store, info["keys"]["complaint"], watch=svc.watch, agent="佐藤")["reply_guidelines"] is None


def test_a_post_its_author_deleted_is_no_similar_case(guided):
    svc = guided["svc"]
    assert svc.store.compliance.purge_post(guided["shibuya"], reason="deleted", marker="（削除された投稿）")
    ctx = build_context(svc.store, guided["keys"]["complaint"], watch=svc.watch, agent="佐藤")
    assert guided["shibuya"] not in [c["post"]["key"] for c in ctx["similar_cases"]]
    assert guided["keys"]["question"] in [c["post"]["key"] for c in ctx["similar_cases"]]
