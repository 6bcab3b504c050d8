"""The helpdesk's status of our tickets and in-helpdesk redactions (issue 15)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Protocol

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.engine import Engine

from connector.db.counts import record_public_reply
from connector.db.engine import dialect_insert, utcnow
from connector.db.schema import authors, helpdesk_redactions, outbox, posts, ticket_facts, ticket_status, tickets

#: Statuses after which a ticket is no longer open in the helpdesk.
CLOSED_STATUSES = ("solved", "closed")
#: Statuses of a ticket still open in the helpdesk (Zendesk's vocabulary, helpdesks/base.py).
OPEN_STATUSES = ("new", "open", "pending", "hold")


@dataclass(frozen=True)
class BacklogRow:
    """A Yorisoi ticket still open: open in the helpdesk by its synced status, or, with no
    status known (the local helpdesk, or not synced yet), without a public reply recorded."""

    post_key: str
    priority: str
    risk: str
    risk_score: float
    posted_at: datetime
    brand: str
    platform: str
    text: str
    post_url: str | None
    handle: str | None
    followers: int | None
    helpdesk: str
    ticket_id: str
    ticket_url: str | None
    status: str | None  # the helpdesk's status (OPEN_STATUSES); None: not known
    status_changed_at: datetime | None
    answered: bool  # a first public reply is recorded (the first-response SLA is met)


@dataclass(frozen=True)
class SyncState:
    """What the page can say about the status sync of one helpdesk."""

    by_status: dict[str, int]  # tickets per known status
    last_webhook_at: datetime | None
    last_change_at: datetime | None  # the newest status change any way in


class StatusChange(Protocol):
    """One ticket's status as a helpdesk reported it (helpdesks.base.StatusUpdate)."""

    @property
    def ticket_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def changed_at(self) -> datetime: ...

    @property
    def first_public_reply_at(self) -> datetime | None: ...


class TicketStatusRepository:
    """Status as the helpdesk has it, and in-helpdesk redaction outcomes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, helpdesk: str, changes: Iterable[StatusChange], via: str) -> int:
        """Store each change of a ticket Yorisoi created (others are ignored); an older change
        than the one stored (a late webhook after a sweep) does not overwrite it. The first
        public agent reply is kept at its earliest and counts as the ticket's first reply in
        the response times. Returns how many changes were about our tickets."""
        matched = 0
        now = utcnow()
        with self.engine.begin() as conn:
            for change in changes:
                post_key = conn.execute(select(tickets.c.post_key).where(tickets.c.helpdesk == helpdesk)
                                        .where(tickets.c.ticket_id == str(change.ticket_id))).scalar()
                if post_key is None:
                    continue
                matched += 1
                current = conn.execute(select(ticket_status).where(ticket_status.c.post_key == post_key)).mappings().first()
                reply = change.first_public_reply_at
                if current is None:
                    conn.execute(dialect_insert(conn, ticket_status).values(
                        post_key=post_key, helpdesk=helpdesk, ticket_id=str(change.ticket_id), status=change.status,
                        status_changed_at=change.changed_at, first_public_reply_at=reply, via=via, updated_at=now)
                        .on_conflict_do_nothing(index_elements=["post_key"]))
                else:
                    values: dict[str, Any] = {"updated_at": now}
                    if change.changed_at >= current["status_changed_at"]:
                        values.update(status=change.status, status_changed_at=change.changed_at, via=via)
                    if reply is not None and (current["first_public_reply_at"] is None
                                              or reply < current["first_public_reply_at"]):
                        values["first_public_reply_at"] = reply
                    conn.execute(update(ticket_status).where(ticket_status.c.post_key == post_key).values(**values))
                if reply is not None:
                    record_public_reply(conn, post_key, reply)
        return matched

    def status_of(self, post_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ticket_status).where(ticket_status.c.post_key == post_key)).mappings().first()
        return dict(row) if row else None

    def status_of_ticket(self, helpdesk: str, ticket_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(ticket_status.c.status).where(ticket_status.c.helpdesk == helpdesk)
                                .where(ticket_status.c.ticket_id == str(ticket_id))).scalar()

    def first_ticket_at(self, helpdesk: str) -> datetime | None:
        """When the oldest ticket of this helpdesk was created: where a first sweep starts."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(tickets.c.created_at)).where(tickets.c.helpdesk == helpdesk)).scalar()

    # the open backlog (the home page)
    def _backlog_select(self) -> Select[Any]:
        return (select(ticket_facts.c.post_key, ticket_facts.c.priority, ticket_facts.c.risk,
                       ticket_facts.c.risk_score, ticket_facts.c.posted_at, ticket_facts.c.brand,
                       ticket_facts.c.platform, posts.c.text, posts.c.url.label("post_url"), authors.c.handle,
                       authors.c.followers, tickets.c.helpdesk, tickets.c.ticket_id,
                       tickets.c.url.label("ticket_url"), ticket_status.c.status, ticket_status.c.status_changed_at,
                       ticket_facts.c.answered)
                .join(posts, posts.c.key == ticket_facts.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(tickets, tickets.c.post_key == ticket_facts.c.post_key))

    def open_backlog(self, limit: int) -> list[BacklogRow]:
        """Open tickets: (a) no public reply yet and not solved/closed in the helpdesk — the
        `limit` oldest and the `limit` riskiest, each order walking ticket_facts' index; (b)
        replied to but still open in the helpdesk (new/open/pending/hold), from ticket_status.
        The caller sorts them by SLA state and risk."""
        unreplied = (self._backlog_select()
                     .outerjoin(ticket_status, ticket_status.c.post_key == ticket_facts.c.post_key)
                     .where(ticket_facts.c.answered == 0)
                     .where(or_(ticket_status.c.status.is_(None), ticket_status.c.status.notin_(CLOSED_STATUSES))))
        replied = (self._backlog_select()
                   .join(ticket_status, ticket_status.c.post_key == ticket_facts.c.post_key)
                   .where(ticket_facts.c.answered != 0).where(ticket_status.c.status.in_(OPEN_STATUSES)))
        rows: dict[str, BacklogRow] = {}
        with self.engine.connect() as conn:
            for stmt in (unreplied.order_by(ticket_facts.c.posted_at),
                         unreplied.order_by(ticket_facts.c.risk_score.desc(), ticket_facts.c.posted_at),
                         replied.order_by(ticket_facts.c.risk_score.desc(), ticket_facts.c.posted_at)):
                for r in conn.execute(stmt.limit(limit)).mappings().all():
                    if r["post_key"] not in rows:
                        rows[r["post_key"]] = BacklogRow(**{**dict(r), "answered": bool(r["answered"])})
        return list(rows.values())

    def open_backlog_counts(self, cutoffs: dict[str, datetime]) -> dict[str, tuple[int, int]]:
        """Per priority: (open tickets as `open_backlog` counts them, of them without a public
        reply and posted before the priority's SLA cutoff)."""
        not_closed = or_(ticket_status.c.status.is_(None), ticket_status.c.status.notin_(CLOSED_STATUSES))
        unreplied = (select(ticket_facts.c.priority, func.count())
                     .select_from(ticket_facts.outerjoin(ticket_status, ticket_status.c.post_key == ticket_facts.c.post_key))
                     .where(ticket_facts.c.answered == 0).where(not_closed))
        replied = (select(ticket_facts.c.priority, func.count())
                   .select_from(ticket_status.join(ticket_facts, ticket_facts.c.post_key == ticket_status.c.post_key))
                   .where(ticket_facts.c.answered != 0).where(ticket_status.c.status.in_(OPEN_STATUSES))
                   .group_by(ticket_facts.c.priority))
        totals: dict[str, int] = {}
        out: dict[str, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            for stmt in (unreplied.group_by(ticket_facts.c.priority), replied):
                for priority, n in conn.execute(stmt).all():
                    totals[str(priority)] = totals.get(str(priority), 0) + int(n)
            for priority, cutoff in cutoffs.items():
                breached = conn.execute(unreplied.where(ticket_facts.c.priority == priority)
                                        .where(ticket_facts.c.posted_at < cutoff).group_by(ticket_facts.c.priority)).all()
                out[priority] = (totals.pop(priority, 0), int(breached[0][1]) if breached else 0)
        for priority, n in totals.items():  # a priority without an SLA target: none breached
            out[priority] = (n, 0)
        return out

    def sync_state(self, helpdesk: str) -> SyncState:
        """Tickets per known status and when a status last came in by webhook / at all."""
        mine = ticket_status.c.helpdesk == helpdesk
        with self.engine.connect() as conn:
            by_status = {str(s): int(n) for s, n in conn.execute(
                select(ticket_status.c.status, func.count()).where(mine).group_by(ticket_status.c.status)).all()}
            webhook = conn.execute(select(func.max(ticket_status.c.updated_at))
                                   .where(and_(mine, ticket_status.c.via == "webhook"))).scalar()
            latest = conn.execute(select(func.max(ticket_status.c.status_changed_at)).where(mine)).scalar()
        return SyncState(by_status, webhook, latest)

    # redaction in the helpdesk
    def redaction_state(self, post_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(helpdesk_redactions)
                               .where(helpdesk_redactions.c.post_key == post_key)).mappings().first()
        return dict(row) if row else None

    def record_redaction(self, post_key: str, state: str, detail: str | None) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, helpdesk_redactions).values(post_key=post_key, state=state, detail=detail,
                                                                    attempts=1, updated_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=["post_key"], set_={
                "state": state, "detail": detail, "updated_at": now,
                "attempts": helpdesk_redactions.c.attempts + 1}))

    def unredacted(self) -> list[dict[str, Any]]:
        """Purged posts whose text could not be removed from the helpdesk (for the report and
        the retry of temporary failures), with the post their conversation's ticket is for."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(helpdesk_redactions, outbox.c.ticket_post_key)
                                .outerjoin(outbox, outbox.c.post_key == helpdesk_redactions.c.post_key)
                                .where(helpdesk_redactions.c.state != "redacted")
                                .order_by(helpdesk_redactions.c.updated_at)).mappings().all()
        return [dict(r) for r in rows]
