"""The one small interface every helpdesk module implements.

The outbox worker only knows this: create a ticket, find one by external id, add a comment,
tell whether a comment is already there. Each module turns these into its own API's calls and
its own errors into `HelpdeskError`, so nothing outside `helpdesks/` knows a helpdesk's JSON.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from connector.models import TicketRef

#: Lease of rows handed to a helpdesk bulk job. A job may still run in the helpdesk after we
#: crash or stop polling, so its rows are not looked up (and maybe re-sent) before this
#: horizon: Zendesk runs queued jobs within minutes and keeps their status for an hour.
#: Helpdesks read it here (a helpdesk never imports the pipeline); the pipeline keeps an
#: equal `pipeline.BULK_LEASE` until store/pipeline work lands (tests/test_layout.py checks).
BULK_LEASE = timedelta(hours=1)


@dataclass(frozen=True)
class Requester:
    """The social author as the helpdesk's end user."""

    external_id: str  # yorisoi:<platform>:<author id>
    name: str
    handle: str | None
    profile_url: str | None = None


@dataclass(frozen=True)
class TicketDraft:
    """Everything a helpdesk needs to open the ticket for one post."""

    external_id: str  # yorisoi:<platform>:<post id>
    subject: str
    description: str  # plain text: post text, link, author
    note: str  # internal note: the analysis with its evidence
    priority: str  # urgent | high | normal | low
    tags: tuple[str, ...]
    requester: Requester
    post_url: str | None
    labels: dict[str, str] = field(default_factory=dict)  # for custom field mapping
    #: `problem` for a storm's problem ticket, `incident` for a member linked to one (None:
    #: the helpdesk module decides from the intent, as before).
    ticket_type: str | None = None
    #: The storm's problem ticket this incident is linked to (connector/storms.py).
    problem_id: str | None = None

    @property
    def note_key(self) -> str:
        """Dedupe key of the internal note: a ticket carries its analysis note exactly once."""
        return f"{self.external_id}#note"

    def note_comment(self) -> CommentDraft:
        return CommentDraft(dedupe_key=self.note_key, body=self.note, public=False)


@dataclass(frozen=True)
class CommentDraft:
    """A follow-up post (or a note) added to an existing ticket."""

    dedupe_key: str  # the follow-up post's key: a comment is added at most once
    body: str
    public: bool
    author_external_id: str | None = None


@dataclass
class BulkCreateResult:
    """What a helpdesk's bulk create did with each draft (by its index in the input).

    - refs: the ticket exists (created now, with its note).
    - errors: the draft failed; `retryable` says whether its outcome is unknown or temporary
      (the outbox looks it up by external id before sending again) or final (422).
    - unsent: never left Yorisoi (the helpdesk refused the submission before it ran, e.g.
      429): the outbox hands these rows back untouched.
    - stopped: why the bulk run stopped early (rate limit, credentials), if it did.
    """

    refs: dict[int, TicketRef] = field(default_factory=dict)
    errors: dict[int, "HelpdeskError"] = field(default_factory=dict)
    unsent: list[int] = field(default_factory=list)
    stopped: "HelpdeskError | None" = None


class HelpdeskError(Exception):
    """A helpdesk call failed; says whether and when to try again.

    - retryable: the helpdesk may accept the same call later (5xx, 429, network).
    - retry_after: seconds the helpdesk asked us to wait (429 Retry-After).
    - stop_delivery: every call will fail until an admin acts (401/403): stop this pass.
    - field_errors: per-field validation messages to show the admin.
    - settle: the outcome is unknown and the helpdesk may still be processing the call: try
      again (after a lookup) no sooner than this many seconds, for this row only.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 stop_delivery: bool = False, field_errors: dict[str, str] | None = None,
                 status: int | None = None, settle: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.stop_delivery = stop_delivery
        self.field_errors = field_errors or {}
        self.status = status
        self.settle = settle


#: Helpdesk ticket statuses as Yorisoi stores them (Zendesk's vocabulary; Freshdesk's map onto it).
TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")


@dataclass(frozen=True)
class StatusUpdate:
    """A ticket's status as the helpdesk reports it (status webhook or catch-up sweep)."""

    ticket_id: str
    status: str  # one of TICKET_STATUSES
    changed_at: datetime
    #: The first public agent reply on the ticket, wherever it was written (None: none known).
    first_public_reply_at: datetime | None = None


@dataclass
class StatusPage:
    """One page of a helpdesk's catch-up sweep: the changes, where to go on, whether more wait."""

    updates: list[StatusUpdate]
    cursor: Any  # JSON-able; stored and handed back on the next call
    more: bool


class TicketClosed(HelpdeskError):
    """The ticket is closed for good (Zendesk: 422 on update); a follow-up ticket is needed."""


@dataclass
class RedactionOutcome:
    """What removing a purged post's words from the helpdesk's copy did."""

    state: str  # redacted | failed | impossible
    detail: str = ""
    retryable: bool = False


#: Default SLA targets in minutes (first reply and next reply), per priority: social posts are
#: public, so they are answered in minutes, not days.
DEFAULT_SLA_MINUTES = {"urgent": 30, "high": 60, "normal": 240, "low": 1440}


@dataclass(frozen=True)
class SlaPlan:
    """What `yorisoi setup-sla` did or would do in one helpdesk."""

    action: str  # created | updated | unchanged | dry-run | manual
    policy: dict[str, Any]  # the helpdesk's own JSON for the policy
    steps: tuple[str, ...] = ()  # manual steps, where the API cannot do it


def parse_sla_minutes(raw: str | None) -> dict[str, int]:
    """`urgent=30,high=60,normal=240,low=1440` (any subset) → minutes per priority."""
    targets = dict(DEFAULT_SLA_MINUTES)
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        name, _, minutes = part.partition("=")
        name = name.strip().lower()
        if name not in targets or not minutes.strip().isdigit() or int(minutes) <= 0:
            raise ValueError(f"YORISOI_SLA_MINUTES: {part.strip()!r} should look like urgent=30 "
                             f"(priorities: {', '.join(targets)}; minutes > 0)")
        targets[name] = int(minutes)
    return targets


class Helpdesk(Protocol):
    name: str

    def create_ticket(self, draft: TicketDraft) -> TicketRef:
        """Open the ticket. Must be safe to call again for the same `external_id` after a
        lookup found nothing (the outbox guarantees it is not called twice otherwise)."""

    def find_ticket(self, external_id: str) -> TicketRef | None:
        """The ticket carrying `external_id`, used after an unknown outcome."""

    def add_comment(self, ticket: TicketRef, comment: CommentDraft) -> None:
        """Append a comment (follow-up post or note) to an existing ticket."""

    def has_comment(self, ticket: TicketRef, dedupe_key: str) -> bool:
        """Whether a comment with this dedupe key already reached the ticket."""

    def describe(self) -> dict[str, Any]:
        """What the admin sees about this helpdesk (never secrets)."""

    def setup_sla(self, minutes: dict[str, int], dry_run: bool) -> SlaPlan:
        """Create or update (idempotently, by name) the SLA policy for Yorisoi tickets with
        first/next reply targets per priority; with dry_run, only return the policy."""


class BulkHelpdesk(Helpdesk, Protocol):
    """Optional capability: open many tickets in few calls when the backlog is large.

    The pipeline uses it (detected with `supports_bulk`) only for rows never attempted before;
    rows with an unknown earlier outcome always go the one-by-one way, lookup first.
    """

    #: Due `create` rows at or above which the pipeline switches to bulk (0: never).
    bulk_threshold: int
    #: Most drafts handed to one `create_tickets_many` call.
    bulk_max_drafts: int

    def create_tickets_many(self, drafts: "list[TicketDraft]") -> BulkCreateResult:
        """Open one ticket per draft, each with its note; never raises HelpdeskError.

        It may also take keyword arguments `more` and `on_result` (see `streams_bulk` and
        the Zendesk client): then the pipeline feeds it rows that fall due while it runs."""


def supports_bulk(helpdesk: Any) -> bool:
    return callable(getattr(helpdesk, "create_tickets_many", None)) and getattr(helpdesk, "bulk_threshold", 0) > 0


def streams_bulk(helpdesk: Any) -> bool:
    """The bulk capability takes `more=` (further drafts while its jobs run) and `on_result=`
    (each draft's outcome as soon as known): Zendesk's does; a plain one is called once."""
    try:
        parameters = inspect.signature(helpdesk.create_tickets_many).parameters
    except (TypeError, ValueError):
        return False
    return "more" in parameters and "on_result" in parameters
