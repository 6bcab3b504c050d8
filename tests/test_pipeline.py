"""The pipeline end to end on the local helpdesk: idempotent replay, follow-ups, and no loss
and no duplicate when a step raises or the process dies between steps."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import main
from connector.db.outbox import OutboxRepository
from connector.db.posts import PostRepository
from connector.db.schema import local_tickets, outbox
from connector.helpdesks.local import LocalHelpdesk
from connector.pipeline import Pipeline
from connector.store import Store, utcnow
from tests.conftest import Crash, database_url, post_dict, raise_once, write_jsonl


def local_ticket_counts(store: Store) -> Counter:
    with store.engine.connect() as conn:
        return Counter(conn.execute(select(local_tickets.c.external_id)).scalars().all())


def outbox_statuses(store: Store) -> Counter:
    with store.engine.connect() as conn:
        return Counter(conn.execute(select(outbox.c.status)).scalars().all())


def mixed_posts() -> list[dict]:
    first = post_dict(id="1001", text="ソラモバイル、駅で全然繋がらない😡 拡散希望")
    return [
        first,
        post_dict(id="1002", text="ソラSIMのeSIM設定はどうすればいいですか？", author={"id": "2", "handle": "q_user"}),
        post_dict(id="1003", text="今日は空がきれい", author={"id": "3", "handle": "sky"}),            # no brand
        post_dict(id="1004", text="RT @tanaka_k: ソラモバイル最悪", repost_of="1001", author={"id": "4"}),
        post_dict(id="1005", text="ソラモバイルのキャンペーン実施中！", author={"id": "5", "handle": "soramobile_jp"}),
        post_dict(id="1006", text="追記：再起動したら直りました", in_reply_to="1001", conversation_id="1001"),
        post_dict(id="1007", text="ハルカ珈琲の店員さん神対応でした", author={"id": "6", "handle": "coffee_fan"}),
        {"platform": "x", "id": "1008", "text": "no created_at", "author": {"id": "7"}},
    ]


def replay(file: Path, env: dict[str, str]) -> dict:
    result = CliRunner().invoke(main, ["replay", str(file), "--json", "--wait", "5"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_counts_and_is_idempotent(tmp_path, env):
    file = write_jsonl(tmp_path / "posts.jsonl", mixed_posts())
    first = replay(file, env)
    assert first["read"] == 8
    assert first["qualified"] == 4  # 1001, 1002, 1006 (follow-up), 1007
    assert first["tickets_created"] == 3
    assert first["comments_added"] == 1
    assert first["dropped"] == 3 and first["rejected"] == 1 and first["duplicates_skipped"] == 0
    assert first["pending"] == 0
    assert first["errors"] == [{"line": 8, "field": "created_at", "message": "Field required"}]

    second = replay(file, env)
    assert second["tickets_created"] == 0 and second["comments_added"] == 0
    assert second["duplicates_skipped"] == 7 and second["rejected"] == 1

    store = Store(database_url(env))
    assert set(local_ticket_counts(store).values()) == {1}
    assert len(local_ticket_counts(store)) == 3


def test_ticket_contents(svc):
    outcome = svc.pipeline.ingest_raw(mixed_posts()[0], source="test")
    assert outcome.status == "queued"
    svc.pipeline.drain(max_wait=1)
    [row] = svc.store.outbox.list_tickets()
    assert row["external_id"] == "yorisoi:x:1001"
    assert row["subject"].startswith("[ソラモバイル] ソラモバイル、駅で全然繋がらない")
    tags = row["tags"]
    assert tags[:2] == ["yorisoi", "src_x"]
    for prefix in ("sentiment_", "intent_", "expect_", "content_", "axis_", "risk_"):
        assert sum(t.startswith(prefix) for t in tags) == 1, (prefix, tags)
    assert "sentiment_negative" in tags
    assert row["priority"] in {"urgent", "high", "normal", "low"}
    ticket = svc.helpdesk.ticket(int(row["ticket_id"]))
    assert "https://x.com/tanaka_k/status/1001" in ticket["description"] or ticket["post_url"]
    assert "田中 (@tanaka_k)" in ticket["description"]
    assert ticket["requester_external_id"] == "yorisoi:x:90000001"
    [note] = ticket["comments"]
    assert not note["public"]
    assert "感情 / Sentiment: ネガティブ / negative" in note["body"]
    assert "拡散希望" in note["body"]  # risk evidence names the escalation word
    assert "matched keyword ソラモバイル" in note["body"]


def test_follow_up_becomes_comment_only_for_same_author(svc):
    pipeline = svc.pipeline
    pipeline.ingest_raw(post_dict(id="2001", text="ソラモバイルの請求が二重になってる"), "test")
    assert pipeline.ingest_raw(post_dict(id="2002", text="サポートに電話したけど繋がらない",
                                         in_reply_to="2001", conversation_id="2001"), "test").status == "follow_up"
    # Someone else in the same thread, not naming the brand: not a follow-up, not qualifying.
    other = pipeline.ingest_raw(post_dict(id="2003", text="うちもです", in_reply_to="2001",
                                          conversation_id="2001", author={"id": "99", "handle": "other"}), "test")
    assert other.status == "dropped"
    # Someone else who names the brand: their own ticket.
    assert pipeline.ingest_raw(post_dict(id="2004", text="ソラモバイル、私も二重請求です", in_reply_to="2001",
                                         author={"id": "98", "handle": "other2"}), "test").status == "queued"
    report = pipeline.drain(max_wait=1)
    assert (report.created, report.commented) == (2, 1)
    first = next(r for r in svc.store.outbox.list_tickets() if r["external_id"] == "yorisoi:x:2001")
    assert first["follow_ups"] == 1
    ticket = svc.helpdesk.ticket(int(first["ticket_id"]))
    public = [c for c in ticket["comments"] if c["public"]]
    assert len(public) == 1 and "サポートに電話したけど繋がらない" in public[0]["body"]


def test_follow_up_waits_for_its_ticket(svc, monkeypatch):
    pipeline = svc.pipeline
    pipeline.ingest_raw(post_dict(id="3001", text="ソラモバイル遅い"), "test")
    pipeline.ingest_raw(post_dict(id="3002", text="まだ遅い", conversation_id="3001"), "test")
    calls = []
    original = LocalHelpdesk.create_ticket

    def flaky(self, draft):
        calls.append(draft.external_id)
        if len(calls) == 1:
            raise ConnectionError("helpdesk unreachable")
        return original(self, draft)

    monkeypatch.setattr(LocalHelpdesk, "create_ticket", flaky)
    report = pipeline.deliver()
    assert report.created == 0 and report.commented == 0 and report.retried == 2
    later = Pipeline(svc.store, svc.watch, svc.helpdesk, clock=lambda: utcnow() + timedelta(minutes=5))
    later.deliver()
    later.deliver()
    assert outbox_statuses(svc.store) == Counter({"done": 2})
    assert local_ticket_counts(svc.store) == Counter({"yorisoi:x:3001": 1})


STEPS = [
    # (class, method, raise before or after the real call)
    (LocalHelpdesk, "create_ticket", True),    # the helpdesk call fails: nothing created
    (LocalHelpdesk, "create_ticket", False),   # created, but the answer is lost (timeout)
    (OutboxRepository, "mark_created", True),  # created, then we fail before recording it
]


@pytest.mark.parametrize("cls, method, before", STEPS)
def test_error_between_steps_loses_nothing_and_duplicates_nothing(svc, monkeypatch, cls, method, before):
    for i in range(3):
        svc.pipeline.ingest_raw(post_dict(id=f"40{i}", text=f"ソラモバイル繋がらない {i}"), "test")
    raise_once(monkeypatch, cls, method, lambda: TimeoutError("read timed out"), before)
    svc.pipeline.deliver()
    later = Pipeline(svc.store, svc.watch, svc.helpdesk, clock=lambda: utcnow() + timedelta(minutes=5))
    later.deliver()
    assert local_ticket_counts(svc.store) == Counter({f"yorisoi:x:40{i}": 1 for i in range(3)})
    assert outbox_statuses(svc.store) == Counter({"done": 3})
    assert len(svc.store.outbox.list_tickets()) == 3


@pytest.mark.parametrize("cls, method, before", STEPS)
def test_crash_between_steps_loses_nothing_and_duplicates_nothing(svc, monkeypatch, cls, method, before):
    for i in range(3):
        svc.pipeline.ingest_raw(post_dict(id=f"50{i}", text=f"ソラモバイル繋がらない {i}"), "test")
    raise_once(monkeypatch, cls, method, Crash, before)
    with pytest.raises(Crash):
        svc.pipeline.deliver()
    assert outbox_statuses(svc.store)["sending"] >= 1  # the claim survived the "crash"
    # A restarted worker (after the lease ran out) finishes the job.
    restarted = Pipeline(svc.store, svc.watch, svc.helpdesk, clock=lambda: utcnow() + timedelta(minutes=5))
    restarted.deliver()
    assert local_ticket_counts(svc.store) == Counter({f"yorisoi:x:50{i}": 1 for i in range(3)})
    assert outbox_statuses(svc.store) == Counter({"done": 3})


def test_crash_inside_ingest_stores_nothing_half_written(svc, monkeypatch):
    original = PostRepository._insert_post

    def insert_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(PostRepository, "_insert_post", staticmethod(insert_then_die))
    with pytest.raises(Crash):
        svc.pipeline.ingest_raw(post_dict(id="6001"), "test")
    monkeypatch.setattr(PostRepository, "_insert_post", staticmethod(original))
    assert not svc.store.posts.post_exists("x:6001")
    assert svc.pipeline.ingest_raw(post_dict(id="6001"), "test").status == "queued"
    svc.pipeline.drain(max_wait=1)
    assert local_ticket_counts(svc.store) == Counter({"yorisoi:x:6001": 1})


def test_permanent_error_fails_one_post_not_the_others(svc, monkeypatch):
    from connector.helpdesks.base import HelpdeskError
    original = LocalHelpdesk.create_ticket

    def reject_one(self, draft):
        if draft.external_id.endswith(":7001"):
            raise HelpdeskError("Record invalid", retryable=False, status=422,
                                field_errors={"subject": "is too long"})
        return original(self, draft)

    monkeypatch.setattr(LocalHelpdesk, "create_ticket", reject_one)
    for i in range(3):
        svc.pipeline.ingest_raw(post_dict(id=f"700{i}", text=f"ソラモバイル {i} 遅い"), "test")
    report = svc.pipeline.drain(max_wait=1)
    assert (report.created, report.failed) == (2, 1)
    assert report.errors[0]["message"] == "Record invalid — subject: is too long"
    [failed] = svc.store.outbox.outbox_rows(("failed",))
    assert failed["post_key"] == "x:7001" and "subject: is too long" in failed["last_error"]
    monkeypatch.setattr(LocalHelpdesk, "create_ticket", original)
    assert svc.store.outbox.retry_failed() == 1
    assert svc.pipeline.drain(max_wait=1).created == 1


def test_rate_limit_stops_the_pass_and_refunds_untried_rows(svc, monkeypatch):
    from connector.helpdesks.base import HelpdeskError

    def limited(self, draft):
        raise HelpdeskError("429 Too Many Requests", retryable=True, retry_after=30, status=429)

    monkeypatch.setattr(LocalHelpdesk, "create_ticket", limited)
    for i in range(4):
        svc.pipeline.ingest_raw(post_dict(id=f"800{i}", text=f"ソラモバイル {i} 遅い"), "test")
    report = svc.pipeline.deliver()
    assert report.retried == 1 and report.stopped == "429 Too Many Requests"
    rows = {r["post_key"]: r for r in svc.store.outbox.outbox_rows(("pending",))}
    assert rows["x:8000"]["attempts"] == 1
    assert rows["x:8000"]["next_attempt_at"] >= utcnow() + timedelta(seconds=25)
    assert all(rows[f"x:800{i}"]["attempts"] == 0 for i in range(1, 4))


# --- issue 16 #8: a total deadline below the lease, and results only from the claim's owner ---

def _trickling_server(total_seconds: float):
    """A helpdesk that answers at once but trickles its body, one byte every 0.1 s: no read
    timeout ever fires, only a total deadline ends the call."""
    import socket
    import threading
    import time as _time
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                body = b'{"results": [], "total": 0}' + b" " * int(total_seconds * 10)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
                try:
                    for i in range(len(body)):
                        conn.sendall(body[i:i + 1])
                        _time.sleep(0.1)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_trickled_helpdesk_answer_ends_at_the_total_deadline(monkeypatch):
    """A read timeout restarts with every byte: before the fix a trickled answer kept the call
    (and the outbox row's lease) going for as long as the helpdesk liked."""
    import time as _time

    from connector.helpdesks.base import HelpdeskError
    from connector.helpdesks.deadline import within
    from connector.helpdesks.freshdesk import client as fd_client
    from connector.helpdesks.freshdesk.client import FreshdeskHelpdesk, FreshdeskSettings
    monkeypatch.setattr(fd_client, "TIMEOUT", (2.0, 1.0))
    listener = _trickling_server(total_seconds=8)
    try:
        helpdesk = FreshdeskHelpdesk(FreshdeskSettings(f"http://127.0.0.1:{listener.getsockname()[1]}", "k"))
        started = _time.monotonic()
        with within(1.5), pytest.raises(HelpdeskError) as info:
            helpdesk.find_ticket("yorisoi:x:1")
        assert _time.monotonic() - started < 3.0
        assert info.value.retryable
    finally:
        listener.close()


@pytest.mark.parametrize("mark", ["mark_commented", "mark_retry", "mark_failed", "mark_created"])
def test_a_late_worker_records_nothing_once_its_claim_was_taken_over(app_factory, db_env, mark):
    """Worker A's lease ran out during a slow call and worker B claimed the row; A's late
    result must not finish (or reschedule) B's row."""
    from connector.models import TicketRef
    svc = app_factory(**db_env).extensions["yorisoi"]
    store = svc.store
    svc.pipeline.ingest_raw(post_dict(id="801", text="ソラモバイル、請求が二重です"), "test")
    [mine] = store.outbox.claim_due(1, timedelta(seconds=120), worker="host-a:1")
    later = utcnow() + timedelta(seconds=200)
    [theirs] = store.outbox.claim_due(1, timedelta(seconds=120), worker="host-b:2", now=later)
    assert theirs.id == mine.id
    args = {"mark_commented": (), "mark_retry": ("slow", later), "mark_failed": ("slow",),
            "mark_created": (TicketRef("local", "1", None),)}[mark]
    kwargs = {"external_id": "yorisoi:x:801", "subject": "s", "priority": "normal", "tags": []} \
        if mark == "mark_created" else {}
    assert getattr(store.outbox, mark)(mine, *args, **kwargs) is False
    with store.engine.connect() as conn:
        row = conn.execute(select(outbox.c.status, outbox.c.claimed_by).where(outbox.c.id == mine.id)).one()
    assert (row.status, row.claimed_by) == ("sending", "host-b:2")
    assert getattr(store.outbox, mark)(theirs, *args, **kwargs) is True
