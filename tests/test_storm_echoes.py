"""Storms count every echo (issue 17): a bare reply or quote (「私も！」「うちも」「同じく」) to a
storm's post joins the storm and its problem ticket's count, without a ticket of its own unless
its author is a voice; one that arrives before its parent is a member waits and is counted in
when the parent joins."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.analysis import analyse
from connector.config import Settings
from connector.db.schema import local_tickets, outbox, posts, report_daily, storm_echo_waits, storm_members
from connector.models import Post
from connector.qualify import NO_MATCH, echo_refs
from connector.services import Services
from connector.storms import voice_reason
from tests.conftest import post_dict
from tests.test_storms import BASE, ORIGINAL, STORM_KEYS, replay

BARE = ["私も！", "うちも", "同じく", "うちもです…", "私も。最悪"]


@pytest.fixture
def storm_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "YORISOI_STORM_MIN_POSTS": "5", "YORISOI_SPIKE_MIN_COUNT": "10"}


def build(env: dict[str, str], **extra: str) -> Services:
    return Services.build(Settings.from_env({**env, **extra}))


def bare(parent: str, text: str, n: int, *, quote: bool = False, at: str = "2026-11-20T10:20:00Z",
         **author: Any) -> dict[str, Any]:
    """A bare echo by a new author: a reply to (or a quote of) `parent` ("x:<id>")."""
    ref = parent.split(":", 1)[1]
    return post_dict(text=text, created_at=at, author={"id": f"echo{n}", "handle": f"echo_{n}", "followers": 40, **author},
                     **({"quote_of": ref} if quote else {"in_reply_to": ref, "conversation_id": ref}))


def member_rows(svc: Services) -> dict[str, dict[str, Any]]:
    with svc.store.engine.connect() as conn:
        return {r["post_key"]: dict(r) for r in conn.execute(select(storm_members)).mappings()}


def stored(svc: Services, key: str) -> dict[str, Any]:
    with svc.store.engine.connect() as conn:
        row = conn.execute(select(posts.c.qualified, posts.c.brand, posts.c.reasons).where(posts.c.key == key)).mappings().one()
        has_outbox = conn.execute(select(outbox.c.id).where(outbox.c.post_key == key)).first() is not None
    return {**row, "outbox": has_outbox}


def test_bare_replies_and_quotes_join_the_storm_and_its_count_not_tickets(storm_env: dict[str, str]) -> None:
    svc = build(storm_env, YORISOI_STORM_UPDATE_SECONDS="20")
    clock = {"now": datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)}
    svc.pipeline.clock = lambda: clock["now"]
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        assert storm["size"] == len(STORM_KEYS) and storm["reported_size"] == len(STORM_KEYS)
        parents = sorted(STORM_KEYS)
        echoes = [bare(parents[i % len(parents)], BARE[i % len(BARE)], i, quote=i % 3 == 0) for i in range(10)]
        outcomes = svc.pipeline.ingest_many(echoes, "webhook")
        assert [o.status for o in outcomes] == ["dropped"] * 10  # no ticket of their own
        found = member_rows(svc)
        for echo, outcome in zip(echoes, outcomes):
            key = f"x:{echo['id']}"
            assert found[key]["storm_id"] == storm["id"] and found[key]["role"] == "echo"
            parent = f"x:{echo.get('in_reply_to') or echo.get('quote_of')}"
            how = "quote of" if echo.get("quote_of") else "reply to"
            assert outcome.reasons[0].startswith(f"echo of storm #{storm['id']} ({how} {parent}) / 炎上 #{storm['id']} への同調")
            row = stored(svc, key)
            assert row["reasons"] == list(outcome.reasons) and row["brand"] == "ソラモバイル"
            assert not row["qualified"] and not row["outbox"]
        assert svc.store.storms.storm(storm["id"]).size == len(STORM_KEYS) + 10
        # The problem ticket's running count says so at its next (throttled) update.
        clock["now"] += timedelta(seconds=30)
        report = svc.pipeline.drain(max_wait=0)
        assert report.created == 0
        updated = svc.store.storms.storm(storm["id"])
        assert updated.reported_size == len(STORM_KEYS) + 10
        assert f"{len(STORM_KEYS) + 10}件" in svc.helpdesk.ticket(int(updated.problem_ticket_id))["subject"]
    finally:
        svc.close()


@pytest.mark.parametrize("text,author,why", [
    ("私も！", {"followers": 50_000}, "voice: 50,000 followers"),
    ("私も！いつ直りますか？", {}, "voice: asks a question"),
])
def test_an_echo_by_a_voice_gets_its_own_ticket_linked_to_the_problem(storm_env, text, author, why) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        echo = bare(ORIGINAL, text, 1, **author)
        [outcome] = svc.pipeline.ingest_many([echo], "webhook")
        assert outcome.status == "queued"
        assert outcome.reasons[0].startswith(f"echo of storm #{storm['id']} (reply to {ORIGINAL})")
        assert any(r.startswith(why) for r in outcome.reasons), outcome.reasons
        assert member_rows(svc)[f"x:{echo['id']}"]["role"] == "voice"
        svc.pipeline.drain(max_wait=5)
        with svc.store.engine.connect() as conn:
            ticket = conn.execute(select(local_tickets).where(local_tickets.c.external_id == f"yorisoi:x:{echo['id']}")
                                  ).mappings().one()
        assert ticket["fields"]["problem_id"] == svc.store.storms.storm(storm["id"]).problem_ticket_id
        assert "yorisoi_storm_voice" in ticket["tags"] and "yorisoi_storm_echo" not in ticket["tags"]
    finally:
        svc.close()


def test_voice_reason_needs_reach_or_a_confident_own_label() -> None:
    def reason(text: str, followers: int = 30) -> str | None:
        post = Post.model_validate(post_dict(text=text, author={"followers": followers}))
        return voice_reason(post, analyse(post), 10_000)

    for text in BARE + ["同じく", "me too", "same here!!"]:
        assert reason(text) is None, text
    assert reason("私も", followers=10_000) is not None
    assert reason("うちも。子供の塾の連絡が取れなくて困る、今日中に直して") is not None  # situational


@pytest.mark.parametrize("batched", [True, False])
def test_an_echo_before_its_parent_is_counted_when_the_parent_joins(storm_env, batched) -> None:
    """Streams deliver out of order: 「私も」 arrives before the post it answers, and 「うちも」 to
    「私も」 before that. Both wait, and are counted in (with their reasons) when it joins."""
    svc = build(storm_env)
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        late_parent = post_dict(text="これ私も！ → " + BASE, created_at="2026-11-20T10:15:00Z", author={"id": "p1"})
        parent_key = f"x:{late_parent['id']}"
        first = bare(parent_key, "私も！", 1)
        second = bare(f"x:{first['id']}", "うちも", 2)
        ingest = (lambda ps: svc.pipeline.ingest_many(ps, "webhook")) if batched else \
            (lambda ps: [svc.pipeline.ingest_raw(p, "webhook") for p in ps])
        waiting = ingest([second, first])
        assert [o.status for o in waiting] == ["dropped", "dropped"]
        assert NO_MATCH in waiting[0].reasons and "echo candidate" in waiting[0].reasons[-1]
        assert f"x:{first['id']}" not in member_rows(svc)
        with svc.store.engine.connect() as conn:
            assert len(conn.execute(select(storm_echo_waits)).all()) == 2
        [joined] = ingest([late_parent])
        assert joined.status == "queued"
        found = member_rows(svc)
        for echo, parent in ((first, parent_key), (second, f"x:{first['id']}")):
            key = f"x:{echo['id']}"
            assert found[key]["storm_id"] == storm["id"], key
            assert stored(svc, key)["reasons"][0].startswith(f"echo of storm #{storm['id']} (reply to {parent})")
        assert svc.store.storms.storm(storm["id"]).size == len(STORM_KEYS) + 3
        with svc.store.engine.connect() as conn:
            assert conn.execute(select(storm_echo_waits)).all() == []  # counted: no longer waiting
    finally:
        svc.close()


def qualified_counts(svc: Services) -> dict[int, int]:
    """report_daily's posts by qualified (0/1), as the dashboard counts them."""
    with svc.store.engine.connect() as conn:
        return {int(q): int(n) for q, n in conn.execute(
            select(report_daily.c.qualified, func.sum(report_daily.c.n)).group_by(report_daily.c.qualified)).all()}


def stored_counts(svc: Services) -> dict[int, int]:
    with svc.store.engine.connect() as conn:
        return {int(q): int(n) for q, n in conn.execute(
            select(posts.c.qualified, func.count()).group_by(posts.c.qualified)).all()}


@pytest.mark.parametrize("batched", [True, False])
def test_a_voice_that_came_before_its_parent_gets_its_ticket_when_the_parent_joins(storm_env, batched) -> None:
    """Out of order, a voice's 「私も！いつ直りますか？」 waits like any echo (no brand is named, no
    parent known yet); when its parent joins the storm it is counted in AND gets the ticket of
    its own it would have had in order: one, linked to the problem, counted as qualified."""
    svc = build(storm_env)
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        late_parent = post_dict(text="これ私も！ → " + BASE, created_at="2026-11-20T10:15:00Z", author={"id": "p1"})
        voice = bare(f"x:{late_parent['id']}", "私も！いつ直りますか？", 1)
        by_reach = bare(f"x:{late_parent['id']}", "うちも", 2, followers=50_000)
        plain = bare(f"x:{late_parent['id']}", "同じく", 3)
        keys = [f"x:{p['id']}" for p in (voice, by_reach, plain)]
        ingest = (lambda ps: svc.pipeline.ingest_many(ps, "webhook")) if batched else \
            (lambda ps: [svc.pipeline.ingest_raw(p, "webhook") for p in ps])
        waiting = ingest([voice, by_reach, plain])
        assert [o.status for o in waiting] == ["dropped"] * 3
        assert not any(stored(svc, key)["outbox"] for key in keys)
        [joined] = ingest([late_parent])
        assert joined.status == "queued"
        for key, why in zip(keys[:2], ("voice: asks a question", "voice: 50,000 followers")):
            row = stored(svc, key)
            assert row["qualified"] and row["outbox"] and row["brand"] == "ソラモバイル", key
            assert row["reasons"][0].startswith(f"echo of storm #{storm['id']} (reply to x:{late_parent['id']})")
            assert any(r.startswith(why) for r in row["reasons"]), row["reasons"]
            assert member_rows(svc)[key]["role"] == "voice"
        assert not stored(svc, keys[2])["qualified"] and not stored(svc, keys[2])["outbox"]  # an echo stays one
        assert qualified_counts(svc) == stored_counts(svc)  # the dashboard counts them where they are now
        svc.pipeline.drain(max_wait=5)
        with svc.store.engine.connect() as conn:
            tickets = conn.execute(select(local_tickets).where(local_tickets.c.external_id.in_(
                [f"yorisoi:{key}" for key in keys]))).mappings().all()
        assert sorted(t["external_id"] for t in tickets) == sorted(f"yorisoi:{key}" for key in keys[:2])
        for ticket in tickets:
            assert ticket["fields"]["problem_id"] == svc.store.storms.storm(storm["id"]).problem_ticket_id
            assert "yorisoi_storm_voice" in ticket["tags"]
        assert svc.pipeline.drain(max_wait=0).created == 0  # never a second ticket
    finally:
        svc.close()


def test_a_voice_before_its_parent_in_one_batch_is_queued(storm_env) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        parent = post_dict(text="これ私も！ → " + BASE, created_at="2026-11-20T10:15:00Z", author={"id": "p1"})
        voice = bare(f"x:{parent['id']}", "私も！いつ直りますか？", 1)
        outcomes = svc.pipeline.ingest_many([voice, parent], "webhook")
        assert [o.status for o in outcomes] == ["queued", "queued"]
        assert any(r.startswith("voice: asks a question") for r in outcomes[0].reasons)
        assert stored(svc, f"x:{voice['id']}")["outbox"]
        assert qualified_counts(svc) == stored_counts(svc)
    finally:
        svc.close()


def test_echoes_whose_parent_never_comes_are_forgotten_after_the_longest_backfill(storm_env) -> None:
    """An echo waits for its parent as long as a source may still bring that parent (8 days,
    plus the window); after that its row goes, so the table does not grow forever. Pruning
    runs from the delivery pass's tick, at most hourly."""
    svc = build(storm_env)
    try:
        old = bare("x:999", "私も！", 1, at="2026-11-01T10:00:00Z")
        recent = bare("x:998", "うちも", 2, at="2026-11-09T10:00:00Z")
        svc.pipeline.ingest_many([old, recent], "webhook")
        storms = svc.pipeline.storms
        assert storms is not None

        def waiting() -> set[str]:
            with svc.store.engine.connect() as conn:
                return set(conn.execute(select(storm_echo_waits.c.post_key)).scalars())
        assert waiting() == {f"x:{old['id']}", f"x:{recent['id']}"}
        storms.tick(datetime(2026, 11, 9, 12, 0, tzinfo=timezone.utc))  # 8 days + 2 h after `old`: kept
        assert waiting() == {f"x:{old['id']}", f"x:{recent['id']}"}
        storms.tick(datetime(2026, 11, 9, 12, 30, tzinfo=timezone.utc))  # within the hour: no second prune
        storms.tick(datetime(2026, 11, 9, 13, 1, tzinfo=timezone.utc))
        assert waiting() == {f"x:{recent['id']}"}
        assert stored(svc, f"x:{old['id']}")["reasons"]  # the post itself and its decision stay
    finally:
        svc.close()


def test_parent_and_echo_out_of_order_in_one_batch(storm_env) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        storm = svc.store.storms.list_storms()[0]
        parent = post_dict(text="これ私も！ → " + BASE, created_at="2026-11-20T10:15:00Z", author={"id": "p1"})
        echo = bare(f"x:{parent['id']}", "同じく", 1)
        outcomes = svc.pipeline.ingest_many([echo, parent], "webhook")
        assert [o.status for o in outcomes] == ["dropped", "queued"]
        assert outcomes[0].reasons[0].startswith(f"echo of storm #{storm['id']}")  # the outcome has the final word
        assert member_rows(svc)[f"x:{echo['id']}"]["storm_id"] == storm["id"]
    finally:
        svc.close()


def test_what_is_not_an_echo(storm_env) -> None:
    svc = build(storm_env)
    try:
        replay(svc)
        unrelated_parent = post_dict(text="今日はいい天気", author={"id": "w1"})  # names no brand: no member
        svc.pipeline.ingest_many([unrelated_parent], "webhook")
        to_unrelated = bare(f"x:{unrelated_parent['id']}", "私も！", 1)
        spam = bare(ORIGINAL, "私も https://a.example https://b.example https://c.example", 2)
        too_late = bare("x:1879999999999999", "うちも", 3, at="2026-11-21T10:00:00Z")  # parent arrives a day earlier
        outcomes = svc.pipeline.ingest_many([to_unrelated, spam, too_late], "webhook")
        assert [o.status for o in outcomes] == ["dropped"] * 3
        assert "excluded: looks like spam (3 links)" in outcomes[1].reasons
        svc.pipeline.ingest_many([post_dict(id="1879999999999999", text="これ私も！ → " + BASE,
                                            created_at="2026-11-20T10:15:00Z", author={"id": "p2"})], "webhook")
        found = member_rows(svc)
        for post in (to_unrelated, spam, too_late):
            assert f"x:{post['id']}" not in found
    finally:
        svc.close()


def test_the_brands_own_reply_is_no_echo(storm_env) -> None:
    """The support account answering a storm's post names no brand either; it is not counted."""
    svc = build(storm_env)
    try:
        replay(svc)
        size = svc.store.storms.list_storms()[0]["size"]
        own = bare(ORIGINAL, "ご不便をおかけしております。詳しくはDMでお知らせください", 1, handle="SoraMobile_Help")
        early = bare("x:1879999999999998", "ご迷惑をおかけしております", 2, handle="soramobile_jp")  # parent unknown yet
        outcomes = svc.pipeline.ingest_many([own, early], "webhook")
        assert [o.status for o in outcomes] == ["dropped", "dropped"]
        assert any("exclude_accounts" in r for r in outcomes[0].reasons)
        assert any("exclude_accounts" in r for r in outcomes[1].reasons)
        svc.pipeline.ingest_many([post_dict(id="1879999999999998", text="これ私も！ → " + BASE,
                                            created_at="2026-11-20T10:15:00Z", author={"id": "p3"})], "webhook")
        found = member_rows(svc)
        assert f"x:{own['id']}" not in found and f"x:{early['id']}" not in found
        assert svc.store.storms.list_storms()[0]["size"] == size + 1  # the parent only
    finally:
        svc.close()


def test_an_echo_of_a_lone_post_opens_a_storm_with_it(storm_env) -> None:
    svc = build(storm_env)
    try:
        lone = post_dict(text="ソラモバイルのeSIM再発行、店舗でしかできないの不便すぎる", author={"id": "l1"})
        svc.pipeline.ingest_many([lone], "webhook")
        assert member_rows(svc)[f"x:{lone['id']}"]["storm_id"] is None
        [outcome] = svc.pipeline.ingest_many([bare(f"x:{lone['id']}", "うちも", 1)], "webhook")
        found = member_rows(svc)
        storm_id = found[f"x:{lone['id']}"]["storm_id"]
        assert storm_id is not None and outcome.reasons[0].startswith(f"echo of storm #{storm_id}")
    finally:
        svc.close()


def test_the_same_authors_reply_stays_a_follow_up_comment(storm_env) -> None:
    """A later post by a ticketed post's author in its conversation is a comment, not an echo."""
    svc = build(storm_env)
    try:
        replay(svc)
        follow = post_dict(text="まだ直らない", created_at="2026-11-20T10:40:00Z", in_reply_to=ORIGINAL.split(":")[1],
                           conversation_id=ORIGINAL.split(":")[1], author={"id": "77000001", "handle": "yamada_t"})
        [outcome] = svc.pipeline.ingest_many([follow], "webhook")
        assert outcome.status == "follow_up"
        assert f"x:{follow['id']}" not in member_rows(svc)
    finally:
        svc.close()


def test_echo_refs_name_reply_then_quote() -> None:
    post = Post.model_validate(post_dict(in_reply_to="1", quote_of="2"))
    assert echo_refs(post) == [("reply", "x:1"), ("quote", "x:2")]


def test_echoes_and_their_parents_ingested_at_once_by_two_instances(db_env) -> None:
    """An echo and the post it answers, stored at the same moment by two instances: neither
    misses the other (per-post locks), whichever commits first."""
    import threading

    env = {**db_env, "YORISOI_STORM_MIN_POSTS": "5", "YORISOI_SPIKE_MIN_COUNT": "10"}
    a, b = build(env), build(env)
    try:
        a.pipeline.ingest_many([post_dict(text=BASE, created_at="2026-11-20T10:00:00Z", author={"id": "o1"})], "webhook")
        pairs = []
        for i in range(6):
            parent = post_dict(text="これ私も！ → " + BASE + "！" * i, created_at="2026-11-20T10:05:00Z",
                               author={"id": f"p{i}"})
            pairs.append((parent, [bare(f"x:{parent['id']}", BARE[j % len(BARE)], 10 * i + j) for j in range(3)]))
        errors: list[BaseException] = []

        def send(svc: Services, batch: list[dict[str, Any]]) -> None:
            try:
                svc.pipeline.ingest_many(batch, "webhook")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        for i, (parent, echoes) in enumerate(pairs):
            first, second = (a, b) if i % 2 else (b, a)
            threads = [threading.Thread(target=send, args=(first, [parent])),
                       threading.Thread(target=send, args=(second, echoes))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors, errors
        found = member_rows(a)
        storm_ids = {found[f"x:{p['id']}"]["storm_id"] for p, _ in pairs}
        assert len(storm_ids) == 1 and None not in storm_ids
        for _, echoes in pairs:
            for echo in echoes:
                assert found[f"x:{echo['id']}"]["storm_id"] in storm_ids, echo["text"]
    finally:
        a.close()
        b.close()
