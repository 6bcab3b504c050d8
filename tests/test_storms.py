"""Public storms (炎上): grouping of team-written Japanese echoes, one problem ticket with
linked incidents (local helpdesk and fake Zendesk), spike alerts and their webhook."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.config import Settings
from connector.db.schema import local_tickets, storm_members
from connector.services import Services
from connector.storms import (
    StormSettings,
    clean_text,
    poisson_tail,
    shingles,
    similarity,
    slack_payload,
    spike_fires,
)
from tests.conftest import post_dict
from tests.fakes.zendesk import FakeZendesk

FIXTURES = Path(__file__).parent / "fixtures"
STORM_FILE = FIXTURES / "storm.jsonl"
EMAIL, TOKEN = "agent@example.com", "zd-secret-token-4f2b9c"
ORIGINAL = "x:1870000000000001"
STORM_KEYS = {f"x:18700000000000{i:02d}" for i in range(1, 14)}
UNRELATED = {f"x:18700000000000{i}" for i in (20, 21, 22, 23)}


@pytest.fixture
def storm_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "YORISOI_STORM_MIN_POSTS": "5", "YORISOI_SPIKE_MIN_COUNT": "10"}


def build(env: dict[str, str], **extra: str) -> Services:
    return Services.build(Settings.from_env({**env, **extra}))


def replay(svc: Services, path: Path = STORM_FILE) -> Any:
    read, outcomes = svc.pipeline.ingest_lines(path.read_text(encoding="utf-8").splitlines(), "replay")
    return outcomes, svc.pipeline.drain(max_wait=5)


def members(svc: Services) -> dict[str, dict[str, Any]]:
    with svc.store.engine.connect() as conn:
        return {r["post_key"]: dict(r) for r in conn.execute(select(storm_members)).mappings()}


# --- similarity on Japanese echoes --------------------------------------------------------
def sim(a: str, b: str) -> float:
    drop = (clean_text("ソラモバイル"),)
    return similarity(shingles(clean_text(a, drop)), shingles(clean_text(b, drop)))[0]


BASE = "ソラモバイル、朝からずっと圏外で電話もネットも全く繋がらない。仕事の連絡が取れなくて本当に困ってる。最悪"


@pytest.mark.parametrize("echo", [
    "これ私も！ → " + BASE,  # a quote with a comment
    "ソラモバイル、朝からずっと圏外で電話もネットも全く繋がらない…仕事の連絡取れなくて本当に困る。最悪すぎ",  # small edits
    BASE + " #拡散希望 https://x.com/yamada_t/status/1",  # copy-paste + hashtag + link
    "私もです。ソラモバイル朝からずっと圏外、電話もネットも全く繋がらない。最悪",  # 私も + a shortened copy
    "ＳＯＲＡ ＭＯＢＩＬＥ、朝からずっと圏外で電話もネットも全く繋がらない。仕事の連絡が取れなくて本当に困ってる。最悪",
])
def test_echoes_are_similar(echo: str) -> None:
    assert sim(BASE, echo) >= StormSettings().similarity


@pytest.mark.parametrize("other", [
    "ソラモバイルの料金プラン、来月から値上げって本当？高すぎて最悪",  # same brand, shares 最悪
    "ソラモバイルのアプリ、ログインできない。パスワード再設定のメールが届かない",
    "ソラモバイル繋がらない",  # too short to say it is the same incident
    "私も！",
])
def test_unrelated_posts_sharing_a_keyword_stay_apart(other: str) -> None:
    assert sim(BASE, other) < StormSettings().similarity


def test_replayed_storm_is_grouped_with_explanations(storm_env: dict[str, str]) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        found = members(svc)
        storm_ids = {found[k]["storm_id"] for k in STORM_KEYS}
        assert len(storm_ids) == 1 and None not in storm_ids
        assert all(found[k]["storm_id"] is None for k in UNRELATED if k in found)
        for key in STORM_KEYS - {ORIGINAL}:
            assert found[key]["resembles"] in STORM_KEYS and found[key]["reason"], found[key]
            assert 0 < found[key]["similarity"] <= 1
        assert found["x:1870000000000007"]["reason"] == f"reply to {ORIGINAL}"  # 「私も」 as a reply
        assert found["x:1870000000000009"]["role"] == "voice"  # 250,000 followers
    finally:
        svc.close()


# --- tickets ---------------------------------------------------------------------------------
def test_storm_becomes_one_problem_with_linked_incidents_locally(storm_env: dict[str, str]) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        with svc.store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(local_tickets)).mappings()]
        problems = [r for r in rows if (r["fields"] or {}).get("ticket_type") == "problem"]
        assert len(problems) == 1
        problem = problems[0]
        # 13 similar posts are below YORISOI_STORM_LABEL_MIN (20): a cluster, not yet a 「炎上」.
        assert problem["subject"].startswith("[ソラモバイル] 類似投稿のまとまり: ") and "13件" in problem["subject"]
        assert "炎上" not in problem["subject"] and "炎上の可能性" not in problem["description"]
        assert "最初の投稿 / First post" in problem["description"] and "@yamada_t" in problem["description"]
        by_ext = {r["external_id"]: r for r in rows}
        for key in STORM_KEYS:
            ticket = by_ext["yorisoi:" + key]
            assert ticket["fields"]["problem_id"] == str(problem["id"]), key
            assert "yorisoi_storm" in ticket["tags"]
        assert by_ext["yorisoi:x:1870000000000009"]["priority"] != "low"  # a voice keeps its priority
        assert by_ext["yorisoi:x:1870000000000002"]["priority"] == "low"  # an echo waits for the problem
        for key in UNRELATED:
            assert "problem_id" not in (by_ext["yorisoi:" + key]["fields"] or {})
        alerts = [r for r in rows if "yorisoi_spike_alert" in r["tags"]]
        assert len(alerts) == 1 and alerts[0]["priority"] == "urgent"
        # Every qualifying post has exactly one ticket, plus the problem and the alert.
        assert len(rows) == len(STORM_KEYS) + len(UNRELATED) + 2
        # Replaying again creates nothing.
        replay(svc)
        with svc.store.engine.connect() as conn:
            assert conn.execute(select(local_tickets.c.id)).all().__len__() == len(rows)
    finally:
        svc.close()


def test_problem_count_updates_as_the_storm_grows_throttled(storm_env: dict[str, str]) -> None:
    svc = build(storm_env, YORISOI_STORM_UPDATE_SECONDS="60", YORISOI_STORM_LABEL_MIN="15")
    clock = {"now": datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)}
    svc.pipeline.clock = lambda: clock["now"]
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        assert storm["reported_size"] == 13
        for n in range(3):
            svc.pipeline.ingest_raw(post_dict(text=BASE + f" {'！' * (n + 1)}", created_at="2026-11-20T10:12:00Z",
                                              author={"id": f"55{n}", "handle": f"late_{n}"}), "replay")
        clock["now"] += timedelta(seconds=10)
        svc.pipeline.drain(max_wait=0)
        assert svc.store.storms.storm(storm["id"]).reported_size == 13  # not yet: throttled
        clock["now"] += timedelta(seconds=60)
        svc.pipeline.drain(max_wait=0)
        updated = svc.store.storms.storm(storm["id"])
        assert updated.reported_size == 16 and updated.size == 16
        ticket = svc.helpdesk.ticket(int(updated.problem_ticket_id))
        assert "16件" in ticket["subject"]
        assert sum("件数の更新" in c["body"] for c in ticket["comments"]) == 1
        # 13 → 16 crossed YORISOI_STORM_LABEL_MIN=15: the note says it is now called a storm.
        assert sum("「炎上」として扱います" in c["body"] for c in ticket["comments"]) == 1
    finally:
        svc.close()


@pytest.fixture
def fake(httpserver):
    return FakeZendesk(email=EMAIL, token=TOKEN).serve_on(httpserver)


def test_storm_in_fake_zendesk_links_incidents_with_problem_id(httpserver, fake, storm_env) -> None:
    svc = build(storm_env, YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN, ZENDESK_TIMEOUT="2", YORISOI_STORM_LABEL_MIN="10")
    try:
        replay(svc)
        tickets = list(fake.tickets.values())
        problems = [t for t in tickets if t["type"] == "problem"]
        assert len(problems) == 1
        assert problems[0]["subject"].startswith("[ソラモバイル] 炎上: ") and "炎上の可能性" in problems[0]["description"]
        assert "炎上" in problems[0]["subject"] and problems[0]["external_id"] == f"yorisoi:storm:{ORIGINAL}"
        by_ext = {t["external_id"]: t for t in tickets}
        for key in STORM_KEYS:
            t = by_ext["yorisoi:" + key]
            assert t["type"] == "incident" and t["problem_id"] == problems[0]["id"], key
        for key in UNRELATED:
            assert by_ext["yorisoi:" + key].get("problem_id") is None
        assert sum("yorisoi_spike_alert" in t["tags"] for t in tickets) == 1
    finally:
        svc.close()


def test_members_ticketed_before_the_problem_are_linked_after(httpserver, fake, storm_env) -> None:
    """Posts delivered one by one: the first four get plain tickets, the fifth opens the
    storm; the problem job then links the earlier four as incidents (one update each)."""
    svc = build(storm_env, YORISOI_HELPDESK="zendesk", ZENDESK_URL=httpserver.url_for("/").rstrip("/"),
                ZENDESK_EMAIL=EMAIL, ZENDESK_API_TOKEN=TOKEN, ZENDESK_TIMEOUT="2")
    try:
        for line in STORM_FILE.read_text(encoding="utf-8").splitlines()[:6]:
            svc.pipeline.ingest_raw(line, "replay")
            svc.pipeline.drain(max_wait=0)
        svc.pipeline.drain(max_wait=0)
        problem = next(t for t in fake.tickets.values() if t["type"] == "problem")
        linked = [t for t in fake.tickets.values() if t.get("problem_id") == problem["id"]]
        assert len(linked) == 6
    finally:
        svc.close()


# --- spikes -----------------------------------------------------------------------------------
def test_poisson_tail() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert abs(poisson_tail(1, 2.0) - (1 - 2.718281828 ** -2)) < 1e-6
    assert poisson_tail(40, 2.0) < 1e-25
    settings = StormSettings()
    assert spike_fires(12, 8.0, settings)[0] is False  # a busy but normal quarter hour
    assert spike_fires(9, 0.0, settings)[0] is False  # below the minimum count
    assert spike_fires(25, 2.0, settings)[0] is True


def _negative(i: int, at: datetime) -> dict[str, Any]:
    texts = ["ソラモバイル高すぎ、最悪", "ソラモバイルのサポート対応がひどい", "ソラモバイルのアプリまた落ちた、最悪",
             "ソラモバイル遅い、ほんと最悪", "ソラモバイルの請求おかしい、ひどい"]
    return post_dict(text=texts[i % len(texts)] + f" ({i})", created_at=at.isoformat().replace("+00:00", "Z"),
                     author={"id": f"66{i:05d}", "handle": f"user{i}"})


def test_spike_fires_once_stays_quiet_on_normal_days_and_recovers(env, httpserver) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    svc = build(env, YORISOI_STORM_MIN_POSTS="100000", YORISOI_SPIKE_MIN_COUNT="10",
                YORISOI_ALERT_WEBHOOK=httpserver.url_for("/hook"), YORISOI_ALLOW_PRIVATE_FEEDS="1")
    spike_at = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)  # a Friday, 19:00 JST
    clock = {"now": spike_at}
    svc.pipeline.clock = lambda: clock["now"]
    n = 0
    try:
        # Baseline: 24 negative posts in that hour on each of the past 4 Fridays (6 per 15 min).
        for week in range(1, 5):
            for j in range(24):
                n += 1
                svc.pipeline.ingest_raw(_negative(n, spike_at - timedelta(weeks=week) + timedelta(seconds=150 * j)), "r")
        # A normal quarter hour today: 8 posts. No alert.
        for j in range(8):
            n += 1
            svc.pipeline.ingest_raw(_negative(n, spike_at - timedelta(minutes=30) + timedelta(seconds=100 * j)), "r")
        assert svc.store.storms.list_alerts() == []
        # The spike: 40 negative posts in 10 minutes. One alert, not forty.
        for j in range(40):
            n += 1
            svc.pipeline.ingest_raw(_negative(n, spike_at + timedelta(seconds=15 * j)), "r")
        alerts = svc.store.storms.list_alerts()
        assert len(alerts) == 1 and alerts[0]["ended_at"] is None
        assert alerts[0]["baseline"] == pytest.approx(6.0) and alerts[0]["p_value"] < 1e-4
        clock["now"] = spike_at + timedelta(minutes=10)
        svc.pipeline.drain(max_wait=0)
        # It recovers: 40 minutes later a normal trickle ends it, with one follow-up.
        for j in range(3):
            n += 1
            svc.pipeline.ingest_raw(_negative(n, spike_at + timedelta(minutes=50 + j)), "r")
        clock["now"] = spike_at + timedelta(minutes=55)
        svc.pipeline.drain(max_wait=0)
        alerts = svc.store.storms.list_alerts()
        assert len(alerts) == 1 and alerts[0]["ended_at"] is not None and alerts[0]["end_status"] == "done"
        assert alerts[0]["peak"] >= 40
        bodies = [json.loads(req.get_data()) for req, _ in httpserver.log]
        assert len(bodies) == 2
        assert bodies[0]["text"].startswith("【急増アラート / Spike alert】ソラモバイル")
        assert bodies[0]["blocks"][0]["type"] == "section"
        assert bodies[1]["text"].startswith("【アラート終了 / Spike ended】")
        ticket = svc.helpdesk.ticket(int(alerts[0]["ticket_id"]))
        assert ticket["priority"] == "urgent" and any("終了" in c["body"] for c in ticket["comments"])
    finally:
        svc.close()


def test_back_dated_posts_of_one_spike_make_one_alert(env) -> None:
    """Issue 16 #6: posts of one spike arriving out of order (back-dated by their network, a
    late poll) ended the alert on a later post, then reopened it on the next earlier one: one
    spike became several alerts, urgent tickets and chat messages."""
    svc = build(env, YORISOI_STORM_MIN_POSTS="100000", YORISOI_SPIKE_MIN_COUNT="10")
    spike_at = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    svc.pipeline.clock = lambda: spike_at + timedelta(hours=2)
    n = 0
    try:
        for week in range(1, 5):
            for j in range(24):
                n += 1
                svc.pipeline.ingest_raw(_negative(n, spike_at - timedelta(weeks=week) + timedelta(seconds=150 * j)), "r")
        spike = [spike_at + timedelta(seconds=15 * j) for j in range(60)]  # 60 posts in 15 minutes
        late = [spike_at + timedelta(minutes=40 + 10 * k) for k in range(5)]  # a trickle afterwards
        # Arrival order: a third of the spike, then each later post followed by back-dated ones.
        arrival = spike[:20]
        for k, at in enumerate(late):
            arrival += [at] + spike[20 + 8 * k:28 + 8 * k]
        for at in arrival:
            n += 1
            svc.pipeline.ingest_raw(_negative(n, at), "r")
        alerts = svc.store.storms.list_alerts()
        assert len(alerts) == 1, [(a["started_at"], a["ended_at"]) for a in alerts]
        assert alerts[0]["peak"] >= 20
    finally:
        svc.close()


def test_problem_ticket_called_a_storm_only_from_the_label_threshold() -> None:
    from connector.storms import problem_subject

    assert problem_subject("ソラ", "圏外", 19, 20) == "[ソラ] 類似投稿のまとまり: 圏外 — 19件 / Cluster of similar posts: 圏外 — 19 posts"
    assert problem_subject("ソラ", "圏外", 20, 20).startswith("[ソラ] 炎上: 圏外 — 20件 / Storm: ")


def test_slack_payload_shape() -> None:
    alert = {"id": 1, "brand": "ソラモバイル", "started_at": datetime(2026, 11, 20, 10, tzinfo=timezone.utc),
             "count": 30, "baseline": 2.0, "p_value": 1e-9, "peak": 30, "ended_at": None}
    payload = slack_payload(alert, "start", "https://acme.zendesk.com/agent/tickets/9")
    assert set(payload) == {"text", "blocks"}
    assert payload["blocks"][1]["elements"][0]["text"] == "<https://acme.zendesk.com/agent/tickets/9|チケット / ticket>"


def test_dashboard_lists_storms_behind_login_with_banner(app_factory, storm_env) -> None:
    from tests.conftest import login

    app = app_factory(YORISOI_STORM_MIN_POSTS="5", YORISOI_SPIKE_MIN_COUNT="10")
    svc = app.extensions["yorisoi"]
    clock = {"now": datetime(2026, 11, 20, 10, 12, tzinfo=timezone.utc)}
    svc.pipeline.clock = lambda: clock["now"]
    replay(svc)
    client = app.test_client()
    assert client.get("/storms").status_code in (302, 401)
    login(client, app)
    page = client.get("/storms").get_data(as_text=True)
    assert 'id="storms"' in page and "ソラモバイル" in page and 'class="storm"' in page
    assert 'id="spike-banner"' in page  # the alert is still running at 10:12


def test_storm_shown_to_agents_in_context_and_post_page(app_factory, tmp_path):
    """A post in a storm shows its cluster: size, first post, why it belongs, how others were answered."""
    from pathlib import Path

    from connector.agents import create_token
    from tests.conftest import login
    app = app_factory(YORISOI_STORM_MIN_POSTS="3")
    svc = app.extensions["yorisoi"]
    lines = (Path(__file__).parent / "fixtures" / "storm.jsonl").read_text(encoding="utf-8").splitlines()
    outcomes = [svc.pipeline.ingest_raw(line, "test") for line in lines if line.strip()]
    svc.pipeline.drain(max_wait=2)
    members = [o.key for o in outcomes if svc.store.storms.storm_of(o.key) and svc.store.storms.storm_of(o.key)["storm_id"]]
    assert len(members) >= 3
    first_ticket = svc.store.outbox.ticket_for(members[0])
    svc.reply(ticket_id=first_ticket.ticket_id, agent="佐藤", text="ご不便をおかけしております。障害を確認中です。",
              dedupe_key="storm-answer-1")
    later = members[-1]
    later_ticket = svc.store.outbox.ticket_for(later)
    _token_id, token = create_token(svc.store, "佐藤")
    response = app.test_client().get(f"/api/v1/context?helpdesk=local&ticket={later_ticket.ticket_id}",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    storm = response.get_json()["storm"]
    assert storm["size"] >= 3 and storm["first_post"]["key"] == svc.store.storms.storm(storm["id"]).first_post_key
    assert storm["reason"] and storm["answers"][0]["agent"] == "佐藤"
    assert "障害を確認中です" in storm["answers"][0]["text"]
    page = login(app.test_client(), app).get(f"/posts/{later}").get_data(as_text=True)
    assert "この投稿が属する類似投稿のまとまり" in page and "障害を確認中です" in page
    assert "炎上" not in page.split('id="storm"')[1].split("</h2>")[0]  # a few posts: not called 「炎上」
    unrelated = [o.key for o in outcomes if o.key not in members][0]
    assert (svc.store.storms.storm_of(unrelated) or {}).get("storm_id") is None


# --- grouping in the ingest transaction, found in the database (issue 16, #4 and #5) ---------
ECHO = "これ私も！ → " + BASE


def test_a_grouping_failure_stores_nothing_and_the_resend_is_grouped(storm_env: dict[str, str]) -> None:
    """A lock or a full disk while grouping used to come after the commit: the caller answered
    503 for a stored post, and the resend was a `duplicate` that was never grouped."""
    from connector.db.errors import Unavailable

    svc = build(storm_env)
    try:
        original, echo = post_dict(text=BASE), post_dict(text=ECHO, author={"id": "777"})
        assert svc.pipeline.ingest_many([original], "webhook")[0].status == "queued"
        real, calls = svc.store.storms.storm_add_member, []

        def locked_once(**kwargs: Any) -> Any:
            calls.append(kwargs["post_key"])
            if len(calls) == 1:
                raise Unavailable("database is locked", "OperationalError")
            return real(**kwargs)

        svc.store.storms.storm_add_member = locked_once  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            svc.pipeline.ingest_many([echo], "webhook")
        assert not svc.store.posts.post_exists(f"x:{echo['id']}")  # nothing stored: "not done" is true
        assert svc.pipeline.ingest_many([echo], "webhook")[0].status == "queued"  # the resend
        found = members(svc)
        assert found[f"x:{echo['id']}"]["storm_id"] is not None
        assert found[f"x:{echo['id']}"]["storm_id"] == found[f"x:{original['id']}"]["storm_id"]
    finally:
        svc.close()


def test_two_instances_group_one_storm_together(db_env: dict[str, str]) -> None:
    """Each instance kept its own in-memory index: an echo arriving at the other instance than
    the original started a second storm. Candidates now come from the database."""
    env = {**db_env, "YORISOI_STORM_MIN_POSTS": "5", "YORISOI_SPIKE_MIN_COUNT": "10"}
    a, b = build(env), build(env)
    try:
        b.pipeline.ingest_many([post_dict(text="ソラモバイルの料金プラン、来月から値上げって本当？高すぎる")], "webhook")
        original = post_dict(text=BASE)
        a.pipeline.ingest_many([original], "webhook")
        echoes = [post_dict(text=ECHO, author={"id": f"e{i}"}) for i in range(3)]
        for i, echo in enumerate(echoes):
            (b if i % 2 == 0 else a).pipeline.ingest_many([echo], "webhook")
        found = members(a)
        ids = {found[f"x:{p['id']}"]["storm_id"] for p in [original, *echoes]}
        assert len(ids) == 1 and None not in ids, ids
    finally:
        a.close()
        b.close()


def test_concurrent_echo_batches_make_one_storm(db_env: dict[str, str]) -> None:
    """Batches of echoes ingested at once (threads, two instances) never race on a storm."""
    import threading

    env = {**db_env, "YORISOI_STORM_MIN_POSTS": "5", "YORISOI_SPIKE_MIN_COUNT": "10"}
    instances = [build(env), build(env)]
    try:
        original = post_dict(text=BASE)
        instances[0].pipeline.ingest_many([original], "webhook")
        batches = [[post_dict(text=ECHO + "!" * j, author={"id": f"t{i}-{j}"}) for j in range(4)] for i in range(6)]
        errors: list[BaseException] = []

        def send(i: int) -> None:
            try:
                instances[i % 2].pipeline.ingest_many(batches[i], "webhook")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        found = members(instances[0])
        ids = {found[f"x:{p['id']}"]["storm_id"] for batch in batches for p in batch} | \
            {found[f"x:{original['id']}"]["storm_id"]}
        assert len(ids) == 1 and None not in ids, ids
    finally:
        for svc in instances:
            svc.close()
