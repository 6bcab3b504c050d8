"""The helpdesk's status of our tickets and in-helpdesk redactions (issue 15)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from connector.db.counts import record_public_reply
from connector.db.engine import dialect_insert, utcnow
from connector.db.schema import helpdesk_redactions, outbox, ticket_status, tickets

#: Statuses after which a ticket is no longer open in the helpdesk.
CLOSED_STATUSES = ("solved", "closed")


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
