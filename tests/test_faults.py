"""Faults with real processes, on SQLite and on PostgreSQL: `kill -9` of a connector delivering
to Zendesk (the stateful fake, over HTTP) at random points; Zendesk down (connection refused,
500s, timeouts) and back; two connectors delivering one backlog; the database locked or full.
Every qualifying post ends up as exactly one ticket (checked in the fake's own records)."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from sqlalchemy import event, select, text

import connector.db.engine as engine_module
from connector.config import Settings
from connector.db.schema import outbox, posts
from connector.services import Services
from connector.store import Store
from tests.conftest import database_url, post_dict, sign
from tests.fakes.base import LoopbackServer
from tests.fakes.zendesk import FakeZendesk

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def zendesk():
    fake = FakeZendesk()
    server = LoopbackServer(fake.wsgi)
    server.reserve_port()
    yield fake, server
    server.stop()


def zendesk_env(db_env: dict[str, str], server: LoopbackServer, **extra: str) -> dict[str, str]:
    return {**os.environ, **db_env, "PYTHONPATH": str(ROOT), "YORISOI_HELPDESK": "zendesk",
            "ZENDESK_URL": server.url, "ZENDESK_EMAIL": "agent@example.com", "ZENDESK_API_TOKEN": "test-token",
            "ZENDESK_BULK_THRESHOLD": "0", "ZENDESK_TIMEOUT": "1", **extra}


def storm_posts(count: int, prefix: str) -> list[dict[str, Any]]:
    """`count` qualifying posts by different authors, every fifth with a follow-up by its author,
    and two posts that do not qualify."""
    result = []
    for i in range(count):
        result.append(post_dict(id=f"{prefix}{i:04d}", text=f"ソラモバイル繋がらない #{i}", author={"id": f"{prefix}a{i}"}))
        if i % 5 == 0:
            result.append(post_dict(id=f"{prefix}{i:04d}f", text="ソラモバイルまだ直らない", author={"id": f"{prefix}a{i}"},
                                    in_reply_to=f"{prefix}{i:04d}", conversation_id=f"{prefix}{i:04d}"))
    result += [post_dict(id=f"{prefix}q1", text="今日は空がきれい"), post_dict(id=f"{prefix}q2", text="ランチ美味しい")]
    return result


def ingest(run_env: dict[str, str], items: list[dict[str, Any]]) -> tuple[set[str], int]:
    """Store posts (no helpdesk call is made); returns the ticket external ids and follow-ups."""
    svc = Services.build(Settings.from_env(run_env))
    outcomes = [svc.pipeline.ingest_raw(item, "test") for item in items]
    svc.close()
    tickets = {f"yorisoi:x:{o.key.split(':', 1)[1]}" for o in outcomes if o.status == "queued"}
    return tickets, sum(o.status == "follow_up" for o in outcomes)


def assert_exactly_once(fake: FakeZendesk, expected: set[str], follow_ups: int, url: str) -> None:
    per_external_id = Counter(t["external_id"] for t in fake.tickets.values())
    assert set(per_external_id) == expected, "missing or unexpected tickets"
    assert set(per_external_id.values()) == {1}, f"duplicates: {[k for k, v in per_external_id.items() if v > 1]}"
    marks = Counter(audit["metadata"]["custom"].get("yorisoi_dedupe_key")
                    for audits in fake.audits.values() for audit in audits
                    if audit["metadata"]["custom"].get("yorisoi_dedupe_key"))
    assert set(marks.values()) == {1}, "a note or follow-up comment was added twice"
    assert len(marks) == len(expected) + follow_ups  # one note per ticket, one comment per follow-up
    store = Store(url)
    assert store.outbox.outbox_counts() == {"done": len(expected) + follow_ups}
    store.engine.dispose()


def run_cli(run_env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], env=run_env, capture_output=True,
                          text=True, timeout=timeout)


# --- kill -9 -----------------------------------------------------------------------------------
def test_kill_9_at_random_points_while_delivering_then_restart(db_env, zendesk):
    fake, server = zendesk
    fake.latency = 0.02  # a little network time, so that kills land in the middle of calls too
    server.start()
    run_env = zendesk_env(db_env, server)
    expected, follow_ups = ingest(run_env, storm_posts(25, "k"))
    seed = int(os.environ.get("YORISOI_FAULT_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    for round_ in range(3):
        calls_before = len(fake.log)
        child = subprocess.Popen([sys.executable, "-m", "connector.cli", "deliver", "--wait", "30"], env=run_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(fake.log) > calls_before or child.poll() is not None, 30, "the first Zendesk call")
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL, f"round {round_} (seed {seed}) ended by itself: {child.stderr.read()}"
    finished = run_cli(run_env, "deliver", "--wait", "30")
    assert finished.returncode == 0, finished.stderr
    assert_exactly_once(fake, expected, follow_ups, database_url(db_env))


# --- two connectors, one backlog --------------------------------------------------------------
def test_two_connector_processes_deliver_one_backlog_without_duplicates(db_env, zendesk):
    fake, server = zendesk
    fake.latency = 0.02
    server.start()
    run_env = zendesk_env(db_env, server)
    expected, follow_ups = ingest(run_env, storm_posts(40, "t"))
    children = [subprocess.Popen([sys.executable, "-m", "connector.cli", "deliver", "--wait", "30"], env=run_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    created = [int(out.split("tickets created ")[1].split()[0]) for out, _err in outputs]
    assert sum(created) == len(expected) and all(created), created  # both took a share
    assert_exactly_once(fake, expected, follow_ups, database_url(db_env))


# --- Zendesk down, then back ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_zendesk_down_then_back_drains_the_backlog(db_env, zendesk):
    fake, server = zendesk  # not started: connection refused
    port = _free_port()
    run_env = zendesk_env(db_env, server, YORISOI_DELIVERY_INTERVAL="0.2", YORISOI_PORT=str(port))
    serve = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve"], env=run_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = Store(database_url(db_env))

    def errors() -> list[str]:
        return [row["last_error"] or "" for row in store.outbox.outbox_rows(("pending", "sending"))]

    try:
        wait_for(lambda: _answers(port), 30, "yorisoi serve to listen")
        items = storm_posts(8, "d")
        body = json.dumps(items, ensure_ascii=False).encode()
        answer = requests.post(f"http://127.0.0.1:{port}/sources/webhook", data=body, timeout=30,
                               headers={"X-Yorisoi-Signature": sign(body), "Content-Type": "application/json"})
        assert answer.status_code == 202, answer.text
        expected = {f"yorisoi:x:{r['post'].split(':', 1)[1]}" for r in answer.json()["results"] if r["status"] == "queued"}
        follow_ups = sum(r["status"] == "follow_up" for r in answer.json()["results"])

        # The outbox shows each outage while it lasts; nothing is lost meanwhile.
        wait_for(lambda: any("cannot reach Zendesk" in e for e in errors()), 20, "connection refused in the outbox")
        server.start()
        fake.set_mode("error")
        wait_for(lambda: any("500" in e for e in errors()), 20, "the 500s in the outbox")
        fake.set_mode("slow", seconds=2)  # longer than ZENDESK_TIMEOUT=1: outcome unknown
        wait_for(lambda: any("did not answer in time" in e for e in errors()), 20, "the timeouts in the outbox")
        assert store.outbox.outbox_counts().get("failed") is None  # retryable: never given up
        fake.set_mode("ok")
        wait_for(lambda: store.outbox.outbox_counts() == {"done": len(expected) + follow_ups}, 60, "the backlog to drain",
                 every=0.3)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(15)
        except subprocess.TimeoutExpired:
            serve.kill()
    assert_exactly_once(fake, expected, follow_ups, database_url(db_env))
    store.engine.dispose()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code < 500
    except requests.RequestException:
        return False


# --- database locked / full -------------------------------------------------------------------
def _webhook(client, items: list[dict[str, Any]]):
    body = json.dumps(items, ensure_ascii=False).encode()
    return client.post("/sources/webhook", data=body, headers={"X-Yorisoi-Signature": sign(body)},
                       content_type="application/json")


def _stored(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (conn.execute(select(text("count(*)")).select_from(posts)).scalar(),
                conn.execute(select(text("count(*)")).select_from(outbox)).scalar())


def test_database_locked_answers_503_stores_nothing_and_recovers(db_env, backend, app_factory, monkeypatch, caplog):
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_SECONDS", 0.5)
    app = app_factory(**db_env)
    svc = app.extensions["yorisoi"]
    client = app.test_client()
    assert _webhook(client, [post_dict(id="l-0")]).status_code == 202
    before = _stored(svc.store)
    items = [post_dict(id="l-1"), post_dict(id="l-2", text="ソラモバイル遅い", author={"id": "l2"})]
    url = database_url(db_env)
    if backend == "sqlite":
        holder = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process writing, and not letting go
        release = lambda: (holder.execute("COMMIT"), holder.close())  # noqa: E731
    else:
        import psycopg
        holder = psycopg.connect(url)
        holder.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
        release = lambda: (holder.rollback(), holder.close())  # noqa: E731
    try:
        answer = _webhook(client, items)
    finally:
        release()
    assert answer.status_code == 503 and answer.headers["Retry-After"], answer.json
    assert "locked" in answer.json["reason"] or "lock timeout" in answer.json["reason"]
    assert "database unavailable" in caplog.text
    assert _stored(svc.store) == before  # nothing half-stored
    _check_integrity(svc.store)
    again = _webhook(client, items)  # the sender retries once the lock is gone
    assert again.status_code == 202 and [r["status"] for r in again.json["results"]] == ["queued", "queued"]
    assert _stored(svc.store) == (before[0] + 2, before[1] + 2)


def test_disk_full_answers_503_stores_nothing_and_recovers(env, app_factory):
    """SQLite's max_page_count caps the file where it is now: the next write that needs a new
    page fails with SQLITE_FULL, as on a full disk. (PostgreSQL: see the lock test; a full
    disk there is the server's to report, and reaches us as the same OperationalError.)"""
    app = app_factory(YORISOI_DATABASE=f"sqlite:///{env['YORISOI_DATA_DIR']}/full.sqlite3")
    svc = app.extensions["yorisoi"]
    client = app.test_client()
    assert _webhook(client, [post_dict(id="f-0")]).status_code == 202
    before = _stored(svc.store)

    def cap(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(svc.store.engine, "connect", cap)
    svc.store.engine.dispose()
    big = [post_dict(id=f"f-{i}", text="ソラモバイル繋がらない" + "。" * 6000, author={"id": f"f{i}"}) for i in range(1, 6)]
    answer = _webhook(client, big)
    assert answer.status_code == 503 and "full" in answer.json["reason"], answer.json
    event.remove(svc.store.engine, "connect", cap)
    svc.store.engine.dispose()
    assert _stored(svc.store) == before
    _check_integrity(svc.store)
    again = _webhook(client, big)
    assert again.status_code == 202 and again.json["accepted"] == 5
    assert _stored(svc.store) == (before[0] + 5, before[1] + 5)


def _check_integrity(store: Store) -> None:
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
