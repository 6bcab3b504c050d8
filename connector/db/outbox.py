"""The delivery queue, the shared delivery pause, and our record of the tickets it created."""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.engine import Connection, Engine

from connector.db.counts import record_ticket_facts_many
from connector.db.engine import dialect_insert, utcnow, worker_id
from connector.db.schema import (
    analyses,
    authors,
    delivery_pauses,
    outbox,
    posts,
    ticket_facts,
    ticket_followups,
    tickets,
)
from connector.db.ticket_search import index_tickets, text_condition
from connector.models import TicketRef

log = logging.getLogger(__name__)

#: Suffix of `claimed_by` for rows handed to a helpdesk bulk job (see release_dead_claims).
BULK_CLAIM_SUFFIX = "#bulk"
#: PostgreSQL channel on which an instance that committed deliverable rows wakes every
#: instance's delivery worker (https://www.postgresql.org/docs/current/sql-notify.html).
OUTBOX_CHANNEL = "yorisoi_outbox"
#: Longest wait between attempts to (re)open the listening connection.
LISTEN_RETRY_MAX_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    post_key: str
    kind: str
    ticket_post_key: str
    attempts: int  # including the current one
    claimed_by: str | None = None  # the worker whose claim this is (mark_* check it still is)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



#: Every status of an outbox row but 'done' (schema.outbox: pending | sending | done | failed).
WAITING_STATUSES = ("pending", "sending", "failed")


def _has_priority(priorities: Sequence[str]) -> Any:
    """An outbox row whose post's analysis has one of these priorities (correlated: one look-up
    by the analysis row's primary key per due row)."""
    return exists().where(analyses.c.post_key == outbox.c.post_key).where(analyses.c.priority.in_(list(priorities)))


class OutboxRepository:
    """The delivery queue, the shared delivery pause, and our record of the tickets it created."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(self, limit: int, lease: timedelta, worker: str | None = None,
                  now: datetime | None = None, *, kind: str | None = None,
                  fresh_only: bool = False, priorities: Sequence[str] | None = None,
                  skip_priorities: Sequence[str] | None = None,
                  skip_fresh_creates: bool = False) -> list[OutboxItem]:
        """Claim up to `limit` due rows for this worker, oldest first.

        A row is due when pending and its retry time has come, or when it is still `sending`
        but its lease ran out (its worker died mid-call). Each claim is a guarded UPDATE that
        only one worker can win, so two workers never deliver the same row at once.
        `kind` and `fresh_only` (never attempted) narrow the rows, for bulk delivery;
        `priorities` keeps only rows whose post has one of these priorities (the priority
        lane), `skip_priorities` leaves those out (bulk jobs never take an urgent post);
        `skip_fresh_creates` leaves never-attempted creates to the next bulk run.
        """
        now = now or utcnow()
        worker = worker or worker_id()
        due = self._due(now, kind, fresh_only, priorities, skip_priorities)
        if skip_fresh_creates:
            due = due & ~((outbox.c.kind == "create") & (outbox.c.attempts == 0))
        candidates = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
        values = dict(status="sending", attempts=outbox.c.attempts + 1, claimed_by=worker,
                      lease_until=now + lease, updated_at=now)
        returning = (outbox.c.id, outbox.c.post_key, outbox.c.kind, outbox.c.ticket_post_key, outbox.c.attempts)
        if self.engine.dialect.name != "postgresql":
            # SQLite: the UPDATE below takes the database's one write lock even when no row
            # matches, and the delivery threads claim on every wake-up (each ingest wakes them
            # all). In a storm those empty claims queued behind the webhook's ingest and the
            # bulk lane's writes — and they behind the claims (issue 17). A read first (WAL:
            # never blocked by the writer) skips the lock when nothing is due; a row that
            # becomes due just after is claimed at the next wake-up.
            with self.engine.connect() as conn:
                if conn.execute(candidates.limit(1)).first() is None:
                    return []
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Several instances claim at once: SKIP LOCKED makes each lock rows no other
                # transaction is claiming right now instead of queueing behind them. Two
                # statements, not `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`: PostgreSQL
                # may run such a subquery more than once and claim more than `limit` rows.
                ids = conn.execute(candidates.with_for_update(skip_locked=True)).scalars().all()
                rows = conn.execute(update(outbox).where(outbox.c.id.in_(ids)).where(due)
                                    .values(**values).returning(*returning)).all() if ids else []
            else:
                # SQLite: one guarded UPDATE takes the write lock at once (a read first and a
                # write later could fail on the lock upgrade); one writer at a time wins a row.
                rows = conn.execute(update(outbox).where(outbox.c.id.in_(candidates.scalar_subquery()))
                                    .where(due).values(**values).returning(*returning)).all()
        return [OutboxItem(r.id, r.post_key, r.kind, r.ticket_post_key, r.attempts, worker)
                for r in sorted(rows, key=lambda r: r.id)]

    @staticmethod
    def _due(now: datetime, kind: str | None = None, fresh_only: bool = False,
             priorities: Sequence[str] | None = None, skip_priorities: Sequence[str] | None = None) -> Any:
        due = (((outbox.c.status == "pending") & (outbox.c.next_attempt_at <= now)) |
               ((outbox.c.status == "sending") & (outbox.c.lease_until < now)))
        # EXISTS on the analysis row of each due row (its primary key), not `post_key IN (SELECT
        # … FROM analyses WHERE priority …)`: SQLite builds that IN list from every analysis ever
        # stored, on each delivery pass (43 ms at 200,000 posts, growing with the table; 2.4 ms
        # this way) — and the priority lane asks on every pass, bulk runs too.
        if priorities is not None:
            due = due & _has_priority(priorities)
        if skip_priorities is not None:
            due = due & ~_has_priority(skip_priorities)
        if kind is not None:
            due = due & (outbox.c.kind == kind)
        if fresh_only:
            due = due & (outbox.c.attempts == 0)
        return due

    def count_due(self, kind: str | None = None, fresh_only: bool = False, now: datetime | None = None,
                  priorities: Sequence[str] | None = None) -> int:
        """How many rows are due now (the backlog that decides bulk delivery); `priorities`:
        only rows whose post has one of these."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)
                                .where(self._due(now or utcnow(), kind, fresh_only, priorities))).scalar() or 0

    def release_claims(self, ids: Sequence[int]) -> None:
        """Give back rows this worker claimed but did not try (a pass stopped early); the
        attempt they were charged is refunded, since nothing was sent."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(ids))).where(outbox.c.status == "sending")
                         .values(status="pending", attempts=outbox.c.attempts - 1, claimed_by=None,
                                 lease_until=None, updated_at=utcnow()))

    def release_dead_claims(self) -> int:
        """Hand back rows claimed by processes of this host that no longer run.

        Lets a restarted connector resume at once after a crash instead of waiting for the
        lease to expire; rows of live processes and of other hosts are left to their lease.
        """
        host = socket.gethostname()
        released = 0
        with self.engine.begin() as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.claimed_by)
                                .where(outbox.c.status == "sending")).all()
            for row in rows:
                if (row.claimed_by or "").endswith(BULK_CLAIM_SUFFIX):
                    # Part of a helpdesk bulk job that may still run there after our crash:
                    # only its lease (the job horizon) may hand it back, or a lookup could
                    # miss a ticket the job is about to create and we would send it twice.
                    continue
                owner_host, _, pid = (row.claimed_by or "").rpartition(":")
                if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(update(outbox).where(outbox.c.id == row.id)
                                 .where(outbox.c.status == "sending")
                                 .values(status="pending", lease_until=None, updated_at=utcnow()))
                    released += 1
        return released

    # --- cross-instance wake-up (PostgreSQL LISTEN/NOTIFY) ---------------------------------
    @property
    def can_notify(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def notify_new_work(self) -> None:
        """Tell every instance listening on this database that rows were committed to the
        outbox. PostgreSQL delivers a NOTIFY at commit, to every session that LISTENs, and
        folds identical ones of a transaction into one; SQLite (one instance) needs none —
        the worker of the same process is woken in memory."""
        if not self.can_notify:
            return
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})

    def listen_for_work(self, wake: Callable[[], None], stop: threading.Event,
                        timeout: float = 1.0) -> None:
        """Call `wake()` for every outbox notification until `stop` is set (run it in a
        thread). A dedicated autocommit connection LISTENs (a pooled one would lose the LISTEN
        when handed back); when it breaks, it is reopened with back-off, and `wake()` is
        called once after each (re)connect, since notifications sent meanwhile are lost.
        The idle poll (YORISOI_DELIVERY_INTERVAL) stays the safety net."""
        if not self.can_notify:
            return
        import psycopg  # PostgreSQL only; the driver the engine uses (connector/db/engine.py)

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 1.0
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    delay = 1.0
                    wake()
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=timeout):
                            wake()
            except Exception as exc:  # noqa: BLE001 - a listener outlives a database restart
                if stop.is_set():
                    return
                # The message may carry the host name, never the password (not in str(exc)).
                log.warning("delivery wake-up listener lost its connection (%s); reconnecting in %.0f s",
                            type(exc).__name__, delay)
                stop.wait(delay)
                delay = min(LISTEN_RETRY_MAX_SECONDS, delay * 2)

    def pause_delivery(self, helpdesk: str, until: datetime, reason: str | None = None) -> None:
        """Hold every instance's deliveries to `helpdesk` back until `until` (never shortens
        a longer pause another instance recorded)."""
        now = utcnow()
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, delivery_pauses).values(helpdesk=helpdesk, paused_until=until,
                                                         reason=(reason or "")[:2000], updated_at=now)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["helpdesk"],
                set_={"paused_until": until, "reason": (reason or "")[:2000], "updated_at": now},
                where=delivery_pauses.c.paused_until < until))

    def delivery_paused_until(self, helpdesk: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(delivery_pauses.c.paused_until)
                                .where(delivery_pauses.c.helpdesk == helpdesk)).scalar()

    def ticket_for(self, post_key: str) -> TicketRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets.c.helpdesk, tickets.c.ticket_id, tickets.c.url)
                               .where(tickets.c.post_key == post_key)).first()
        return TicketRef(row.helpdesk, row.ticket_id, row.url) if row else None

    def conversation_ticket(self, ticket_post_key: str) -> tuple[str, TicketRef | None]:
        """The post whose ticket a conversation continues in — its first post, or the latest
        follow-up ticket opened after that one was closed — and that ticket."""
        key, seen = ticket_post_key, {ticket_post_key}
        with self.engine.connect() as conn:
            while True:
                nxt = conn.execute(select(ticket_followups.c.followup_post_key)
                                   .where(ticket_followups.c.post_key == key)).scalar()
                if nxt is None or nxt in seen:
                    break
                seen.add(nxt)
                key = nxt
        return key, self.ticket_for(key)

    def record_followup(self, closed_post_key: str, followup_post_key: str) -> None:
        """The conversation of `closed_post_key`'s ticket goes on in `followup_post_key`'s."""
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, ticket_followups).values(
                post_key=closed_post_key, followup_post_key=followup_post_key, created_at=utcnow())
            conn.execute(stmt.on_conflict_do_update(index_elements=["post_key"],
                                                    set_={"followup_post_key": followup_post_key}))

    @staticmethod
    def _still_mine(item: OutboxItem) -> Any:
        """The row is still this worker's claim: `sending`, claimed by it. A worker whose
        lease ran out (a slow helpdesk) and whose row another worker took over records
        nothing: the other worker's result counts, never both (issue 16 #8)."""
        mine = outbox.c.status == "sending"
        if item.claimed_by is not None:
            mine = mine & (outbox.c.claimed_by == item.claimed_by)
        return mine

    def mark_created(self, item: OutboxItem, ref: TicketRef, *, external_id: str, subject: str,
                     priority: str, tags: Sequence[str]) -> bool:
        """Record the ticket and finish the row. The ticket is recorded even when the claim
        was lost (it exists in the helpdesk; the first record wins, so the other worker's
        lookup finds it); returns False when the row was no longer this worker's."""
        return self.mark_created_many([(item, ref, external_id, subject, priority, tags)]) == 1

    def mark_created_many(self, created: Sequence[tuple[OutboxItem, TicketRef, str, str, str, Sequence[str]]]) -> int:
        """`mark_created` for many rows in ONE transaction (a bulk job's tickets): each entry is
        (item, ref, external_id, subject, priority, tags). Returns how many rows were still
        this worker's."""
        if not created:
            return 0
        now = utcnow()
        finished = 0
        # A statement per step for all of them, not per ticket: in a storm the bulk lane records
        # ~20 tickets a second, and per-ticket statements were half of its CPU, on the thread
        # that also polls the jobs (issue 17).
        with self.engine.begin() as conn:
            conn.execute(dialect_insert(conn, tickets).on_conflict_do_nothing(index_elements=["post_key"]), [
                dict(post_key=item.post_key, helpdesk=ref.helpdesk, ticket_id=ref.ticket_id, url=ref.url,
                     external_id=external_id, subject=subject, priority=priority, tags=list(tags), created_at=now)
                for item, ref, external_id, subject, priority, tags in created])
            keys = [entry[0].post_key for entry in created]
            record_ticket_facts_many(conn, keys, now)
            index_tickets(conn, keys)
            by_worker: dict[str | None, list[OutboxItem]] = {}
            for entry in created:
                by_worker.setdefault(entry[0].claimed_by, []).append(entry[0])
            for items in by_worker.values():
                finished += conn.execute(update(outbox).where(outbox.c.id.in_([i.id for i in items]))
                                         .where(self._still_mine(items[0])).values(
                    status="done", done_at=now, updated_at=now, claimed_by=None, lease_until=None,
                    last_error=None)).rowcount
        return finished

    def mark_commented(self, item: OutboxItem) -> bool:
        with self.engine.begin() as conn:
            return self._finish(conn, item, utcnow())

    def _finish(self, conn: Connection, item: OutboxItem, now: datetime) -> bool:
        return conn.execute(update(outbox).where(outbox.c.id == item.id).where(self._still_mine(item)).values(
            status="done", done_at=now, updated_at=now, claimed_by=None, lease_until=None,
            last_error=None)).rowcount == 1

    def mark_retry(self, item: OutboxItem, error: str, next_attempt_at: datetime) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(outbox).where(outbox.c.id == item.id).where(self._still_mine(item)).values(
                status="pending", next_attempt_at=next_attempt_at, last_error=error[:2000],
                claimed_by=None, lease_until=None, updated_at=utcnow())).rowcount == 1

    def mark_failed(self, item: OutboxItem, error: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(outbox).where(outbox.c.id == item.id).where(self._still_mine(item)).values(
                status="failed", last_error=error[:2000], claimed_by=None, lease_until=None,
                updated_at=utcnow())).rowcount == 1

    def retry_failed(self, outbox_id: int | None = None) -> int:
        """Put failed rows (all, or one) back in the queue, e.g. after an admin fixed a field."""
        stmt = update(outbox).where(outbox.c.status == "failed")
        if outbox_id is not None:
            stmt = stmt.where(outbox.c.id == outbox_id)
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(status="pending", next_attempt_at=utcnow(),
                                            updated_at=utcnow())).rowcount

    def next_due_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(outbox.c.next_attempt_at))
                                .where(outbox.c.status == "pending")).scalar()

    def outbox_counts(self, statuses: Sequence[str] | None = None) -> dict[str, int]:
        """Rows per status. Every status: the waiting ones (pending, sending, failed: a few)
        through ix_outbox_due, and 'done' as all rows minus those — grouping 549k rows by
        status cost /healthz and /tickets 35–110 ms at 1M posts (issue 19), counting them ~9 ms.
        (Two reads: a row finishing in between may shift one count by one, for a moment.)"""
        waiting = list(statuses) if statuses is not None else [*WAITING_STATUSES]
        # Only the named statuses: read from ix_outbox_due, not every row.
        stmt = (select(outbox.c.status, func.count()).where(outbox.c.status.in_(waiting))
                .group_by(outbox.c.status))
        with self.engine.connect() as conn:
            counts = {status: int(count) for status, count in conn.execute(stmt).all()}
            if statuses is None:
                done = int(conn.execute(select(func.count()).select_from(outbox)).scalar() or 0) - sum(counts.values())
                if done > 0:
                    counts["done"] = done
        return counts

    def outbox_rows(self, statuses: Sequence[str] = ("pending", "sending", "failed"),
                    limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.status.in_(list(statuses)))
                                .order_by(outbox.c.id).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def ticket_post_key_of(self, post_key: str) -> str | None:
        """The post whose ticket `post_key` belongs to (itself for a ticket post)."""
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.ticket_post_key).where(outbox.c.post_key == post_key)).scalar()

    def ticket_row(self, post_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.post_key == post_key)).mappings().first()
        return dict(row) if row else None

    def list_tickets(self, helpdesk: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Tickets we created, newest first, with their post, author and analysis."""
        follow_ups = (select(func.count()).select_from(outbox)
                      .where(outbox.c.ticket_post_key == tickets.c.post_key)
                      .where(outbox.c.kind == "comment").where(outbox.c.status == "done")
                      .scalar_subquery())
        stmt = (select(tickets, posts.c.url.label("post_url"), posts.c.platform, posts.c.text,
                       posts.c.brand, posts.c.created_at.label("posted_at"),
                       authors.c.handle, authors.c.name.label("author_name"), authors.c.followers,
                       analyses.c.detail, follow_ups.label("follow_ups"))
                .join(posts, posts.c.key == tickets.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .order_by(tickets.c.created_at.desc(), tickets.c.post_key.desc()))
        if helpdesk:
            stmt = stmt.where(tickets.c.helpdesk == helpdesk)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def search_tickets(self, *, text: str = "", priority: str = "", state: str = "", platform: str = "",
                       offset: int = 0, limit: int = 50,
                       count_cap: int | None = 10_000) -> tuple[int, list[dict[str, Any]]]:
        """One page of tickets, newest first, and how many match: `text` in the post, subject
        or author handle; `state` 'open' (no public reply recorded) or 'answered'.

        Two steps, so a page costs the same at 500k tickets as at 50: the keys of the page
        (walking ix_tickets_created newest first), then the 50 rows' details and follow-up
        counts. Counting every ticket's follow-ups before sorting made /tickets take seconds.
        The count stops at `count_cap` + 1 (a total above the cap means "more than the cap");
        None counts them all (cheap without conditions: the smallest index of tickets)."""
        # Every condition is a lookup by primary key from the ticket being looked at, so the
        # database walks ix_tickets_created (newest first; a page stops early) instead of
        # starting from posts of a network (hundreds of thousands) and sorting them.
        where: list[Any] = []
        post_of_ticket = posts.c.key == tickets.c.post_key
        if priority:
            where.append(tickets.c.priority == priority)
        if platform:
            where.append(select(posts.c.platform).where(post_of_ticket).scalar_subquery() == platform)
        if state:
            answered = (select(ticket_facts.c.answered).where(ticket_facts.c.post_key == tickets.c.post_key)
                        .scalar_subquery())
            where.append(func.coalesce(answered, 0) == (0 if state == "open" else 1))
        keys = (select(tickets.c.post_key).where(*where)
                .order_by(tickets.c.created_at.desc(), tickets.c.post_key.desc()).offset(offset).limit(limit))
        with self.engine.connect() as conn:
            if text:
                where.append(text_condition(conn, text, window=(count_cap or 10**9) + offset + limit))
                keys = keys.where(where[-1])
            # Counted up to a cap: past it the page says "10,000+" — an exact count of a common
            # word (or of 467k tickets) would read every match on every view.
            page = list(conn.execute(keys).scalars())
            if len(page) < limit and (page or not offset):
                total = offset + len(page)  # the last page: no need to search a second time to count
            else:
                matching = select(tickets.c.post_key).where(*where)
                if count_cap is not None:
                    matching = matching.limit(count_cap + 1)
                total = conn.execute(select(func.count()).select_from(matching.subquery())).scalar() or 0
            if not page:
                return int(total), []
            follow_ups = {str(key): int(n) for key, n in conn.execute(
                select(outbox.c.ticket_post_key, func.count()).where(outbox.c.ticket_post_key.in_(page))
                # `status || ''`: not a column any more, so SQLite (no statistics) cannot take
                # ix_outbox_due for it and read every 'done' row (549k, 160 ms) instead of the
                # page's 50 tickets' rows through ix_outbox_ticket_post.
                .where(outbox.c.kind == "comment").where(outbox.c.status + "" == "done")
                .group_by(outbox.c.ticket_post_key)).all()}
            stmt = (select(tickets, posts.c.url.label("post_url"), posts.c.platform, posts.c.text,
                           posts.c.brand, posts.c.created_at.label("posted_at"),
                           authors.c.handle, authors.c.name.label("author_name"), authors.c.followers,
                           analyses.c.detail, ticket_facts.c.answered)
                    .join(posts, posts.c.key == tickets.c.post_key)
                    .join(authors, authors.c.key == posts.c.author_key)
                    .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                    .outerjoin(ticket_facts, ticket_facts.c.post_key == tickets.c.post_key)
                    .where(tickets.c.post_key.in_(page)))
            found = {r["post_key"]: dict(r) for r in conn.execute(stmt).mappings().all()}
        rows = [{**found[key], "follow_ups": int(follow_ups.get(key, 0))} for key in page if key in found]
        return int(total), rows

    def ticket_counts_by_helpdesk(self) -> dict[str, int]:
        """How many tickets each helpdesk holds (to tell a newcomer why a replay sent nothing)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tickets.c.helpdesk, func.count()).group_by(tickets.c.helpdesk)).all()
        return {str(helpdesk): int(n) for helpdesk, n in rows}

    def author_tickets(self, author_key: str, *, exclude_post_key: str | None = None,
                       limit: int = 50) -> list[dict[str, Any]]:
        """Tickets whose post is by this author, newest first."""
        stmt = (select(tickets, posts.c.url.label("post_url"), posts.c.created_at.label("posted_at"),
                       analyses.c.sentiment, analyses.c.intent)
                .join(posts, posts.c.key == tickets.c.post_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .where(posts.c.author_key == author_key)
                .order_by(tickets.c.created_at.desc(), tickets.c.post_key.desc()).limit(limit))
        if exclude_post_key is not None:
            stmt = stmt.where(tickets.c.post_key != exclude_post_key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]
