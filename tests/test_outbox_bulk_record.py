"""Recording a bulk job's tickets in one go (`mark_created_many`) writes what recording them one
by one (`mark_created`) writes: the ticket, its facts and histogram bins, its search entry, the
finished outbox row — on SQLite and PostgreSQL (issue 17: the batched statements)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from connector.db import schema as s
from connector.db.counts import backfill_response_hist
from connector.db.outbox import OutboxRepository
from connector.models import TicketRef
from connector.store import Store
from tests.conftest import post_dict

TEXTS = ["ソラモバイル、駅で全然繋がらない。最悪", "ソラモバイルの請求が二重になってる。どうなってるの？",
         "ソラモバイル遅すぎる、昼休みは動画も見られない", "ソラモバイルのサポートに電話しても繋がらない"]


def _entry(item, n: int):
    return (item, TicketRef("zendesk", str(5000 + n), f"https://acme.zendesk.com/agent/tickets/{5000 + n}"),
            f"yorisoi:{item.post_key}", f"subject {n}", "high", ["yorisoi", f"t{n}"])


def _hist(conn) -> list[tuple]:
    return [(table.name, *row) for table in (s.report_response_hist, s.report_response_weekly)
            for row in sorted(tuple(r) for r in conn.execute(select(table).where(table.c.n != 0)))]


def _recount(store) -> list[tuple]:
    """The histograms counted afresh from ticket_facts (rolled back)."""
    with store.engine.connect() as conn:
        tx = conn.begin()
        backfill_response_hist(conn)
        rows = _hist(conn)
        tx.rollback()
    return rows


def test_many_records_the_same_as_one_by_one(app_factory, db_env):
    svc = app_factory(**db_env).extensions["yorisoi"]
    store = svc.store
    outcomes = svc.pipeline.ingest_many([post_dict(text=TEXTS[n % 4] + f" #{n}", author={"id": f"b{n}"})
                                         for n in range(8)], "test")
    assert [o.status for o in outcomes] == ["queued"] * 8
    items = store.outbox.claim_due(100, timedelta(hours=1), worker="w1#bulk", kind="create", fresh_only=True)
    assert len(items) == 8
    one_by_one, batched = items[:3], items[3:7]
    taken_over = items[7]
    for n, item in enumerate(one_by_one):
        _, ref, external_id, subject, priority, tags = _entry(item, n)
        assert store.outbox.mark_created(item, ref, external_id=external_id, subject=subject, priority=priority,
                                         tags=tags)
    # Another worker took the last row over (its lease ran out): its ticket is recorded, the row
    # stays that worker's.
    with store.engine.begin() as conn:
        conn.execute(s.outbox.update().where(s.outbox.c.id == taken_over.id).values(claimed_by="w2"))
    entries = [_entry(item, 3 + n) for n, item in enumerate([*batched, taken_over])]
    assert store.outbox.mark_created_many(entries) == 4

    with store.engine.connect() as conn:
        tickets = {r.post_key: r for r in conn.execute(select(s.tickets))}
        facts = {r.post_key: r for r in conn.execute(select(s.ticket_facts))}
        rows = {r.post_key: r for r in conn.execute(select(s.outbox))}
        search = ({r.rowid: r for r in conn.execute(text("SELECT rowid, subject, text FROM ticket_search"))}
                  if conn.dialect.name == "sqlite" else None)
        hist = _hist(conn)
    for n, item in enumerate(items):
        assert tickets[item.post_key].ticket_id == str(5000 + n)
        assert tickets[item.post_key].subject == f"subject {n}" and tickets[item.post_key].tags == ["yorisoi", f"t{n}"]
        assert facts[item.post_key].priority and facts[item.post_key].ticket_seconds is not None
        if search is not None:
            assert search[item.id].subject == f"subject {n}"
            assert search[item.id].text.startswith(TEXTS[n % 4])
    assert [rows[i.post_key].status for i in items] == ["done"] * 7 + ["sending"]
    assert rows[taken_over.post_key].claimed_by == "w2"
    # Every ticket counted once in the bins, whichever way it was recorded.
    assert hist == _recount(store) and sum(r[-1] for r in hist if r[0] == "report_response_hist") == 8

    # Recorded again (a retry after a lost answer): nothing changes, nothing is counted twice.
    assert store.outbox.mark_created_many(entries[:2]) == 0
    with store.engine.connect() as conn:
        assert _hist(conn) == hist
        assert len(conn.execute(select(s.ticket_facts)).all()) == 8


@pytest.mark.parametrize("which", ["priorities", "skip_priorities"])
def test_the_priority_filter_reads_only_the_due_rows_analyses(tmp_path: Path, which: str) -> None:
    """The priority lane and bulk runs ask for due rows by their post's priority on every
    delivery pass: that must look up each due row's analysis by its key, never scan every
    analysis ever stored (`post_key IN (SELECT … FROM analyses …)` did: 43 ms a pass at
    200,000 posts on SQLite, growing with the table)."""
    store = Store(f"sqlite:///{tmp_path}/plan.sqlite3")
    try:
        due = OutboxRepository._due(datetime.now(timezone.utc), **{which: ["urgent"]})
        query = select(func.count()).select_from(s.outbox).where(due)
        with store.engine.connect() as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
        assert not [step for step in plan if step.startswith("SCAN analyses")], plan
        assert [step for step in plan if step.startswith("SEARCH analyses")], plan
    finally:
        store.engine.dispose()
