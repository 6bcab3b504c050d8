"""The built-in `local` helpdesk: tickets kept in Yorisoi's own database.

It is the embedded default and the demo's, and it behaves like a remote helpdesk on purpose:
its writes are separate transactions from the outbox, the external id is unique (as Zendesk's
idempotency and lookup make it), and a comment carries a dedupe key.
"""
from __future__ import annotations

from typing import Any

from connector.db.tickets import LocalTicketRepository
from connector.helpdesks.base import CommentDraft, HelpdeskError, SlaPlan, TicketDraft
from connector.models import TicketRef


class LocalHelpdesk:
    name = "local"

    def __init__(self, tickets: LocalTicketRepository) -> None:
        self.tickets = tickets

    def _ref(self, ticket_id: int) -> TicketRef:
        return TicketRef(self.name, str(ticket_id), f"/local/tickets/{ticket_id}")

    def create_ticket(self, draft: TicketDraft) -> TicketRef:
        ticket_id = self.tickets.create(
            external_id=draft.external_id, subject=draft.subject, description=draft.description,
            priority=draft.priority, tags=draft.tags, requester_external_id=draft.requester.external_id,
            requester_name=draft.requester.name, post_url=draft.post_url, fields=_fields(draft),
            note=draft.note, note_key=draft.note_key)
        if ticket_id is None:
            # Same answer a real helpdesk gives for a reused idempotency key: the existing one.
            existing = self.find_ticket(draft.external_id)
            if existing is None:
                raise HelpdeskError(f"ticket {draft.external_id} could not be stored", retryable=True) from None
            return existing
        return self._ref(ticket_id)

    def find_ticket(self, external_id: str) -> TicketRef | None:
        ticket_id = self.tickets.find(external_id)
        return self._ref(ticket_id) if ticket_id is not None else None

    def add_comment(self, ticket: TicketRef, comment: CommentDraft) -> None:
        if not self.tickets.add_comment(int(ticket.ticket_id), body=comment.body, public=comment.public,
                                        author=comment.author_external_id or "Yorisoi",
                                        dedupe_key=comment.dedupe_key):
            raise HelpdeskError(f"ticket {ticket.ticket_id} does not exist", retryable=False, status=404)

    def has_comment(self, ticket: TicketRef, dedupe_key: str) -> bool:
        return self.tickets.has_comment(dedupe_key)

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
        if not self.tickets.set_fields(int(incident.ticket_id),
                                       {"ticket_type": "incident", "problem_id": problem.ticket_id}):
            raise HelpdeskError(f"ticket {incident.ticket_id} does not exist", retryable=False, status=404)

    def update_problem(self, problem: TicketRef, subject: str, note: CommentDraft) -> None:
        self.tickets.set_subject(int(problem.ticket_id), subject)
        self.add_comment(problem, note)

    # Reads for the dashboard's ticket page: the local helpdesk is also its own UI.
    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        return self.tickets.ticket(ticket_id)


def _fields(draft: TicketDraft) -> dict[str, Any]:
    fields: dict[str, Any] = dict(draft.labels)
    if draft.ticket_type:
        fields["ticket_type"] = draft.ticket_type
    if draft.problem_id:
        fields["problem_id"] = draft.problem_id
    return fields
