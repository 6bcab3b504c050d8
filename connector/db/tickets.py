"""The built-in `local` helpdesk's tickets and comments (connector/helpdesks/local.py).

Written through their own transactions, apart from the outbox, so that the local helpdesk
fails and recovers like a remote one would: the external id is unique (as Zendesk's
idempotency and lookup make it), and a comment's dedupe key makes a replay a no-op.
"""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from connector.db.engine import new_id, utcnow
from connector.db.errors import Conflict
from connector.db.schema import local_comments, local_tickets


class LocalTicketRepository:
    """Tickets of the `local` helpdesk, by their integer id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, external_id: str, subject: str, description: str, priority: str,
               tags: Sequence[str], requester_external_id: str, requester_name: str, post_url: str | None,
               fields: dict[str, Any], note: str, note_key: str | None) -> int | None:
        """A new ticket with its internal note; None (nothing written) when a ticket with this
        external id exists already."""
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(local_tickets).values(
                    external_id=external_id, subject=subject, description=description,
                    priority=priority, status="new", tags=list(tags),
                    requester_external_id=requester_external_id, requester_name=requester_name,
                    post_url=post_url, fields=fields, created_at=now, updated_at=now,
                ))
                ticket_id = new_id(result)
                conn.execute(insert(local_comments).values(
                    ticket_id=ticket_id, body=note, public=False, author="Yorisoi",
                    dedupe_key=note_key, created_at=now))
        except Conflict:
            return None
        return ticket_id

    def find(self, external_id: str) -> int | None:
        with self.engine.connect() as conn:
            ticket_id = conn.execute(select(local_tickets.c.id)
                                     .where(local_tickets.c.external_id == external_id)).scalar()
        return int(ticket_id) if ticket_id is not None else None

    def add_comment(self, ticket_id: int, *, body: str, public: bool, author: str, dedupe_key: str | None) -> bool:
        """Add a comment (reopening the ticket); False when there is no such ticket. A comment
        whose dedupe key is stored already is not added again (and counts as added)."""
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                found = conn.execute(update(local_tickets).where(local_tickets.c.id == ticket_id)
                                     .values(updated_at=now, status="open")).rowcount
                if not found:
                    return False
                conn.execute(insert(local_comments).values(
                    ticket_id=ticket_id, body=body, public=public, author=author, dedupe_key=dedupe_key,
                    created_at=now))
        except Conflict:
            pass  # the comment is already there: adding it again is a no-op, as intended
        return True

    def has_comment(self, dedupe_key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(local_comments.c.id)
                                .where(local_comments.c.dedupe_key == dedupe_key)).first() is not None

    def set_fields(self, ticket_id: int, values: dict[str, Any]) -> bool:
        """Merge `values` into a ticket's fields; False when there is no such ticket."""
        with self.engine.begin() as conn:
            row = conn.execute(select(local_tickets.c.fields).where(local_tickets.c.id == ticket_id)).first()
            if row is None:
                return False
            conn.execute(update(local_tickets).where(local_tickets.c.id == ticket_id)
                         .values(fields={**(row.fields or {}), **values}, updated_at=utcnow()))
        return True

    def set_subject(self, ticket_id: int, subject: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(local_tickets).where(local_tickets.c.id == ticket_id)
                         .values(subject=subject, updated_at=utcnow()))

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        """A ticket with its comments (oldest first), for the dashboard's ticket page."""
        with self.engine.connect() as conn:
            row = conn.execute(select(local_tickets).where(local_tickets.c.id == ticket_id)).mappings().first()
            if row is None:
                return None
            comments = conn.execute(select(local_comments).where(local_comments.c.ticket_id == ticket_id)
                                    .order_by(local_comments.c.id)).mappings().all()
        return {**dict(row), "comments": [dict(c) for c in comments]}
