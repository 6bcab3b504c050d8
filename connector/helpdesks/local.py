"""The built-in `local` helpdesk: tickets kept in Yorisoi's own database.

It is the embedded default and the demo's, and it behaves like a remote helpdesk on purpose:
its writes are separate transactions from the outbox, the external id is unique (as Zendesk's
idempotency and lookup make it), and a comment carries a dedupe key.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from connector.helpdesks.base import CommentDraft, HelpdeskError, SlaPlan, TicketDraft
from connector.models import TicketRef
from connector.store import Store, local_comments, local_tickets, utcnow


class LocalHelpdesk:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    def _ref(self, ticket_id: int) -> TicketRef:
        return TicketRef(self.name, str(ticket_id), f"/local/tickets/{ticket_id}")

    def create_ticket(self, draft: TicketDraft) -> TicketRef:
        now = utcnow()
        try:
            with self.store.engine.begin() as conn:
                result = conn.execute(insert(local_tickets).values(
                    external_id=draft.external_id, subject=draft.subject, description=draft.description,
                    priority=draft.priority, status="new", tags=list(draft.tags),
                    requester_external_id=draft.requester.external_id, requester_name=draft.requester.name,
                    post_url=draft.post_url, fields=_fields(draft), created_at=now, updated_at=now,
                ))
                ticket_id = result.inserted_primary_key[0]
                conn.execute(insert(local_comments).values(
                    ticket_id=ticket_id, body=draft.note, public=False, author="Yorisoi",
                    dedupe_key=draft.note_key, created_at=now))
        except IntegrityError:
            # Same answer a real helpdesk gives for a reused idempotency key: the existing one.
            existing = self.find_ticket(draft.external_id)
            if existing is None:
                raise HelpdeskError(f"ticket {draft.external_id} could not be stored", retryable=True) from None
            return existing
        return self._ref(ticket_id)

    def find_ticket(self, external_id: str) -> TicketRef | None:
        with self.store.engine.connect() as conn:
            ticket_id = conn.execute(select(local_tickets.c.id)
                                     .where(local_tickets.c.external_id == external_id)).scalar()
        return self._ref(ticket_id) if ticket_id is not None else None

    def add_comment(self, ticket: TicketRef, comment: CommentDraft) -> None:
        now = utcnow()
        try:
            with self.store.engine.begin() as conn:
                found = conn.execute(update(local_tickets).where(local_tickets.c.id == int(ticket.ticket_id))
                                     .values(updated_at=now, status="open")).rowcount
                if not found:
                    raise HelpdeskError(f"ticket {ticket.ticket_id} does not exist", retryable=False, status=404)
                conn.execute(insert(local_comments).values(
                    ticket_id=int(ticket.ticket_id), body=comment.body, public=comment.public,
                    author=comment.author_external_id or "Yorisoi", dedupe_key=comment.dedupe_key,
                    created_at=now))
        except IntegrityError:
            pass  # the comment is already there: adding it again is a no-op, as intended

    def has_comment(self, ticket: TicketRef, dedupe_key: str) -> bool:
        with self.store.engine.connect() as conn:
            return conn.execute(select(local_comments.c.id)
                                .where(local_comments.c.dedupe_key == dedupe_key)).first() is not None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "where": "tickets stored in Yorisoi's own database"}

    def setup_sla(self, minutes: dict[str, int], dry_run: bool) -> SlaPlan:
        # The local helpdesk has no SLA engine; say so with the targets it would use.
        return SlaPlan(action="manual", policy={"first_reply_minutes": minutes, "next_reply_minutes": minutes},
                       steps=("The local helpdesk keeps no SLA clock; set YORISOI_HELPDESK=zendesk or "
                              "freshdesk and run yorisoi setup-sla there.",))

    # Storms (connector/storms.py): the local helpdesk links an incident to its problem
    # ticket with the `problem_id` field, as Zendesk does with the ticket property.
    def link_incident(self, problem: TicketRef, incident: TicketRef) -> None:
        with self.store.engine.begin() as conn:
            row = conn.execute(select(local_tickets.c.fields).where(local_tickets.c.id == int(incident.ticket_id))).first()
            if row is None:
                raise HelpdeskError(f"ticket {incident.ticket_id} does not exist", retryable=False, status=404)
            fields = {**(row.fields or {}), "ticket_type": "incident", "problem_id": problem.ticket_id}
            conn.execute(update(local_tickets).where(local_tickets.c.id == int(incident.ticket_id))
                         .values(fields=fields, updated_at=utcnow()))

    def update_problem(self, problem: TicketRef, subject: str, note: CommentDraft) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(update(local_tickets).where(local_tickets.c.id == int(problem.ticket_id))
                         .values(subject=subject, updated_at=utcnow()))
        self.add_comment(problem, note)

    # Reads for the dashboard's ticket page: the local helpdesk is also its own UI.
    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(local_tickets).where(local_tickets.c.id == ticket_id)).mappings().first()
            if row is None:
                return None
            comments = conn.execute(select(local_comments).where(local_comments.c.ticket_id == ticket_id)
                                    .order_by(local_comments.c.id)).mappings().all()
        return {**dict(row), "comments": [dict(c) for c in comments]}


def _fields(draft: TicketDraft) -> dict[str, Any]:
    fields: dict[str, Any] = dict(draft.labels)
    if draft.ticket_type:
        fields["ticket_type"] = draft.ticket_type
    if draft.problem_id:
        fields["problem_id"] = draft.problem_id
    return fields
