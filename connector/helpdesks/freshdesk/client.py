"""Freshdesk (REST API v2) through `requests`: tickets, contacts, notes and the SLA policy.

Everything Freshdesk-specific lives here; the rest of Yorisoi only sees `base.Helpdesk`.
API reference: https://developers.freshdesk.com/api/ (quoted below as FD#<section>).

Quirks this module is built around:
- No idempotency key and no dedup field on POST /tickets (FD#create_ticket). The outbox claims a
  row before the call and, after an unknown outcome, calls `find_ticket` before re-sending.
  `find_ticket` LISTS the requester's tickets (`GET /tickets?unique_external_id=`, read from
  the database) instead of using the search API, whose index lags "a few minutes"
  (FD#filter_tickets note 11): a lagging search would miss a ticket created seconds ago and
  we would create a second one. The ticket is recognised by a per-post tag.
- The analysis note is a second call (`POST /tickets/{id}/notes`, private by default,
  FD#create_note). A crash between the two calls leaves a ticket without its note; the note
  carries a marker, `find_ticket` reports such a ticket as "not found yet" and the following
  `create_ticket` adds only the missing note to it — never a second ticket, never two notes.
- Rate limits are account-wide per minute; every answer carries `X-RateLimit-Total` /
  `X-RateLimit-Remaining`, a 429 carries `Retry-After` (FD#ratelimit). Even invalid requests
  count. We never sleep: a 429, or a budget nearly used up, becomes
  `HelpdeskError(retryable, retry_after)` and the pipeline pauses delivery for that long.
- Errors are `{"description": "Validation failed", "errors": [{"field", "message", "code"}]}`
  (FD#error); 401/403 bodies are `{"code", "message"}`.
"""
from __future__ import annotations

import hashlib
import html
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import requests

from connector.config import ConfigError, shared_secret
from connector.helpdesks.base import (
    CommentDraft,
    HelpdeskError,
    RedactionOutcome,
    SlaPlan,
    StatusPage,
    StatusUpdate,
    TicketDraft,
)
from connector.helpdesks.deadline import DeadlineSession
from connector.models import TicketRef

log = logging.getLogger(__name__)

#: (connect, read) seconds. Connect fails fast; a ticket POST may take a while on a busy
#: account, and a read timeout is an unknown outcome the outbox resolves by lookup.
TIMEOUT = (5.0, 30.0)

#: After a write whose answer never came (read timeout, 504), Freshdesk may still be processing
#: it: POST /tickets has no idempotency key and no way to ask about an in-flight request
#: (FD#create_ticket), and our giving up does not cancel the server's work. The lookup and any
#: resend wait this long, so a create finished late is found instead of made twice; one that
#: lands later still is closed as a duplicate (`reconcile_duplicates`).
SETTLE_SECONDS = 120.0
#: FD#ticket properties, Status Closed.
STATUS_CLOSED = 5

#: FD#ticket properties: Priority Low 1, Medium 2, High 3, Urgent 4; Status Open 2.
PRIORITY = {"urgent": 4, "high": 3, "normal": 2, "low": 1}
STATUS_OPEN = 2
#: FD#ticket properties, Status: Open 2, Pending 3, Resolved 4, Closed 5; 6 and 7 are the
#: default custom statuses "Waiting on Customer" and "Waiting on Third Party". Mapped onto the
#: statuses Yorisoi stores (Zendesk's vocabulary); other custom statuses count as open.
STATUS_NAMES = {2: "open", 3: "pending", 4: "solved", 5: "closed", 6: "pending", 7: "hold"}
#: The same by the name {{ticket.status}} renders in an automation rule's webhook body.
STATUS_LABELS = {"open": "open", "pending": "pending", "resolved": "solved", "closed": "closed",
                 "waiting on customer": "pending", "waiting on third party": "hold",
                 "オープン": "open", "保留中": "pending", "解決済み": "solved", "終了": "closed", "クローズ": "closed"}
RESOLVED_OR_CLOSED = (4, 5)
#: Tickets per page of the `updated_since` sweep (FD#list_all_tickets: per_page ≤ 100) and
#: pages per sweep call (the list stops at 300 pages).
SWEEP_PER_PAGE = 100
#: FD#ticket properties, documented sources: Email 1, Portal 2, Phone 3, Chat 7, Feedback
#: Widget 9, Outbound Email 10. Twitter 5 / Facebook 6 appear in the ticket-field choices
#: but whether they may be set on create is undocumented, and they tie the ticket to
#: Freshdesk's own social channel. Portal (the API default) is the documented safe choice;
#: FRESHDESK_SOURCE picks another (e.g. a custom source an admin created for social posts).
DEFAULT_SOURCE = 2

#: Freshdesk rejects tags longer than this (invalid_value). The limit is not in the API
#: reference; 32 is the smallest we have seen enforced, so every tag we send stays within it.
MAX_TAG_CHARS = 32
POST_TAG_PREFIX = "ypost_"

#: Visible marker in note bodies: how we recognise our own notes later (has_comment, the
#: analysis note after a crash, echo protection in the reply webhook). Visible text, because
#: Freshdesk sanitises note HTML and may drop comments or data attributes.
MARKER = "yorisoi-ref:"

#: Keep this many calls of the per-minute budget for agents' apps and other integrations.
RESERVE_CALLS_MIN = 2
RESERVE_FRACTION = 0.05
RATE_WINDOW_SECONDS = 60.0

#: Analysis labels an admin may map to Freshdesk custom fields (FRESHDESK_FIELDS).
MAPPABLE_LABELS = ("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis",
                   "risk", "priority")

SLA_POLICY_NAME = "Yorisoi ソーシャル投稿 / social posts"
#: FD#sla_policies: respond_within / resolve_within are seconds, multiples of 60, "greater 900".
SLA_MIN_SECONDS = 900
#: Freshdesk needs a resolution target too; Yorisoi only has reply targets, so it proposes
#: this multiple of the first-reply target (urgent 30 min → 4 h). An admin's own resolution
#: targets and business-hours choice are kept when the policy is updated.
SLA_RESOLVE_FACTOR = 8


@dataclass(frozen=True)
class FreshdeskSettings:
    base_url: str  # https://acme.freshdesk.com (no /api/v2)
    api_key: str = field(repr=False)
    group_id: int | None = None
    source: int = DEFAULT_SOURCE
    fields: Mapping[str, str] = field(default_factory=dict)  # label → custom field name
    webhook_token: str | None = field(default=None, repr=False)  # for POST /freshdesk/webhook

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "FreshdeskSettings":
        """Read FRESHDESK_*; a missing or bad one stops start-up naming the variable."""
        api_key = (env.get("FRESHDESK_API_KEY") or "").strip()
        if not api_key:
            raise ConfigError("FRESHDESK_API_KEY is not set: copy the API key from your Freshdesk profile "
                              "settings (プロフィール設定 → API キー)")
        url = (env.get("FRESHDESK_URL") or "").strip().rstrip("/")
        domain = (env.get("FRESHDESK_DOMAIN") or "").strip().lower()
        if url:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ConfigError(f"FRESHDESK_URL={url!r} should look like https://acme.freshdesk.com")
            url = re.sub(r"/api/v2$", "", url)
        elif domain:
            domain = domain.removesuffix(".freshdesk.com")
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", domain):
                raise ConfigError(f"FRESHDESK_DOMAIN={domain!r} should be the subdomain only: acme for "
                                  f"acme.freshdesk.com")
            url = f"https://{domain}.freshdesk.com"
        else:
            raise ConfigError("FRESHDESK_DOMAIN is not set: give your Freshdesk subdomain (acme for "
                              "acme.freshdesk.com), or FRESHDESK_URL")
        token = shared_secret(env, "FRESHDESK_WEBHOOK_TOKEN", strip=True)
        return cls(base_url=url, api_key=api_key, group_id=_optional_int(env, "FRESHDESK_GROUP_ID"),
                   source=_optional_int(env, "FRESHDESK_SOURCE") or DEFAULT_SOURCE,
                   fields=_field_map(env.get("FRESHDESK_FIELDS")), webhook_token=token)


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name}={raw!r} should be a positive number (the id shown in Freshdesk's admin pages)")
    return int(raw)


def _field_map(raw: str | None) -> dict[str, str]:
    """`sentiment=cf_sentiment,intent=cf_intent` → {label: custom field name}."""
    mapping: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        label, _, name = (piece.strip() for piece in part.partition("="))
        if label not in MAPPABLE_LABELS or not re.fullmatch(r"[A-Za-z0-9_]+", name or ""):
            raise ConfigError(f"FRESHDESK_FIELDS: {part.strip()!r} should look like sentiment=cf_sentiment "
                              f"(labels: {', '.join(MAPPABLE_LABELS)}; the field's API name from "
                              f"Admin → Ticket fields)")
        mapping[label] = name
    return mapping


def post_tag(external_id: str) -> str:
    """The per-post tag `find_ticket` recognises: `ypost_<platform>_<id>`, ≤32 chars, [a-z0-9_-].

    Ids that are too long or have other characters (URLs from RSS, mixed case) are hashed,
    so two posts never share a tag and Freshdesk never rejects or rewrites it.
    """
    _, platform, post_id = external_id.split(":", 2)
    readable = f"{POST_TAG_PREFIX}{platform}_{post_id}"
    if len(readable) <= MAX_TAG_CHARS and re.fullmatch(r"[a-z0-9_-]+", readable):
        return readable
    digest = hashlib.blake2b(external_id.encode("utf-8"), digest_size=8).hexdigest()
    return f"{POST_TAG_PREFIX}{platform}_h{digest}"[:MAX_TAG_CHARS]


def note_marker(key: str) -> str:
    return f"{MARKER} {key}"


def text_to_html(text: str, link: str | None = None, marker: str | None = None) -> str:
    """Plain text (hostile post text included) → Freshdesk's HTML: every character escaped,
    line breaks kept, the post link clickable when it is http(s)."""
    def line_html(line: str) -> str:  # HTML collapses spaces: keep the note's indentation
        stripped = line.lstrip(" ")
        return "&nbsp;" * (len(line) - len(stripped)) + html.escape(stripped)

    body = "<br>".join(line_html(line) for line in text.rstrip("\n").split("\n"))
    if link and re.match(r"^https?://", link):
        escaped = html.escape(link)
        body = body.replace(escaped, f'<a href="{escaped}" rel="noopener noreferrer" target="_blank">{escaped}</a>', 1)
    if marker:
        body += f'<br><br><span style="color:#888">{html.escape(marker)}</span>'
    return f"<div>{body}</div>"


class FreshdeskHelpdesk:
    name = "freshdesk"

    def __init__(self, settings: FreshdeskSettings, store: Any = None, *,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store  # to learn a post's author in find_ticket (read only)
        self.api = settings.base_url + "/api/v2"
        self.session = session or DeadlineSession()
        self.session.auth = (settings.api_key, "X")  # FD#authentication: key as user, any password
        self.session.headers.update({"Content-Type": "application/json", "Accept": "application/json",
                                     "User-Agent": "yorisoi-connector"})
        self.clock = clock
        self._lock = threading.Lock()
        self._budget: tuple[int, int, float] | None = None  # (remaining, total, seen at)
        self._requesters: dict[str, int] = {}  # ticket id → requester contact id
        self._ticket_status: dict[str, int] = {}  # ticket id → Freshdesk status number, as last seen
        # Tickets find_ticket found without their analysis note: create_ticket completes them.
        self._missing_note: dict[str, int] = {}
        # external id → when (self.clock) a create for it ended with an unknown outcome.
        self._unknown_creates: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Any, store: Any = None) -> "FreshdeskHelpdesk":
        return cls(FreshdeskSettings.from_env(settings.env), store)

    # --- HTTP -------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json: Any = None,
                 params: Mapping[str, Any] | None = None, pace: bool = True) -> requests.Response:
        if pace:
            self._check_budget()
        url = self.api + path
        try:
            response = self.session.request(method, url, json=json, params=params, timeout=TIMEOUT)
        except requests.Timeout:
            raise HelpdeskError(f"Freshdesk did not answer {method} {path} in time (outcome unknown: Yorisoi "
                                f"looks the ticket up before sending again)", retryable=True,
                                settle=None if method == "GET" else SETTLE_SECONDS) from None
        except requests.RequestException as exc:
            raise HelpdeskError(f"could not reach Freshdesk at {self.settings.base_url} ({type(exc).__name__}); "
                                f"will retry", retryable=True) from None
        self._note_budget(response)
        if response.status_code < 300:
            return response
        raise self._error(response, method, path)

    def _note_budget(self, response: requests.Response) -> None:
        try:
            remaining = int(response.headers["X-RateLimit-Remaining"])
            total = int(response.headers.get("X-RateLimit-Total") or 0)
        except (KeyError, ValueError):
            return
        with self._lock:
            self._budget = (remaining, total, self.clock())

    def _check_budget(self) -> None:
        """Pace by X-RateLimit-Remaining without blocking: when the minute's budget is nearly
        spent, refuse the call with a retry_after; the pipeline pauses and other work goes on."""
        with self._lock:
            budget = self._budget
        if budget is None:
            return
        remaining, total, seen_at = budget
        reserve = max(RESERVE_CALLS_MIN, int(total * RESERVE_FRACTION))
        elapsed = self.clock() - seen_at
        if remaining <= reserve and elapsed < RATE_WINDOW_SECONDS:
            wait = round(RATE_WINDOW_SECONDS - elapsed, 1)
            raise HelpdeskError(f"Freshdesk API budget nearly used up ({remaining} of {total} calls left this "
                                f"minute); pausing {wait:.0f}s so agents' apps keep working",
                                retryable=True, retry_after=wait, status=429)

    def _error(self, response: requests.Response, method: str, path: str) -> HelpdeskError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        field_errors: dict[str, str] = {}
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                name = str(item.get("field") or item.get("code") or "request")
                message = str(item.get("message") or "invalid")
                code = f" ({item['code']})" if item.get("code") else ""
                field_errors[name] = (field_errors[name] + "; " if name in field_errors else "") + message + code
        detail = str(body.get("description") or body.get("message") or response.reason or "error")
        where = f"{method} {path}"
        if status == 429:
            retry_after = _seconds(response.headers.get("Retry-After"), default=60.0)
            return HelpdeskError(f"Freshdesk rate limit reached (429); retrying after {retry_after:.0f}s",
                                 retryable=True, retry_after=retry_after, status=status)
        if status == 401:
            return HelpdeskError("Freshdesk rejected the API key (401 invalid_credentials): check FRESHDESK_API_KEY "
                                 "and FRESHDESK_DOMAIN/FRESHDESK_URL; delivery is stopped and nothing is lost",
                                 retryable=False, stop_delivery=True, status=status)
        if status == 403:
            first = (body.get("errors") or [{}])[0]
            code = body.get("code") or (first.get("code") if isinstance(first, dict) else None)
            return HelpdeskError(f"Freshdesk refused {where} (403 {code or 'access_denied'}: {detail}): the API "
                                 f"key's agent lacks the permission or the plan lacks the feature; delivery is "
                                 f"stopped and nothing is lost", retryable=False, stop_delivery=True, status=status)
        if status == 504 and method != "GET":  # the gateway gave up; Freshdesk may still finish the call
            return HelpdeskError(f"Freshdesk error {status} on {where} (outcome unknown); will look up and retry",
                                 retryable=True, status=status, settle=SETTLE_SECONDS)
        if status >= 500:
            return HelpdeskError(f"Freshdesk error {status} on {where}; will retry", retryable=True, status=status)
        if status == 400 and field_errors:
            listed = "; ".join(f"{k}: {v}" for k, v in field_errors.items())
            return HelpdeskError(f"Freshdesk rejected {where}: {detail} — {listed}", retryable=False,
                                 field_errors=field_errors, status=status)
        return HelpdeskError(f"Freshdesk answered {status} to {where}: {detail}", retryable=False,
                             field_errors=field_errors, status=status)

    # --- tickets ----------------------------------------------------------------------
    def _ref(self, ticket_id: int | str) -> TicketRef:
        return TicketRef(self.name, str(ticket_id), f"{self.settings.base_url}/a/tickets/{ticket_id}")

    def ticket_payload(self, draft: TicketDraft) -> dict[str, Any]:
        tags = [t for t in dict.fromkeys([*draft.tags, post_tag(draft.external_id)]) if len(t) <= MAX_TAG_CHARS]
        payload: dict[str, Any] = {
            "subject": draft.subject[:255],
            "description": text_to_html(draft.description, draft.post_url),
            # The social author as a Freshdesk contact: created on first use, reused after
            # (FD#create_ticket: "If no contact exists with this external ID … added as a new
            # contact"). One call, no Contacts-List budget, no search lag. Their handle is on
            # the description's first line with the network name.
            "unique_external_id": draft.requester.external_id,
            "name": draft.requester.name[:255],
            "priority": PRIORITY.get(draft.priority, PRIORITY["normal"]),
            "status": STATUS_OPEN,
            "source": self.settings.source,
            "tags": tags,
        }
        if self.settings.group_id:
            payload["group_id"] = self.settings.group_id
        custom = {name: draft.labels[label] for label, name in self.settings.fields.items() if label in draft.labels}
        if custom:
            payload["custom_fields"] = custom
        return payload

    def create_ticket(self, draft: TicketDraft) -> TicketRef:
        unknown_since = self._unknown_creates.get(draft.external_id)
        if unknown_since is not None:
            wait = SETTLE_SECONDS - (self.clock() - unknown_since)
            if wait > 0:  # the earlier create may still be in flight: neither look nor send yet
                raise HelpdeskError(f"an earlier create for {draft.external_id} may still be processed by Freshdesk; "
                                    f"looking it up in {wait:.0f}s", retryable=True, settle=wait)
            # Look again right before resending: the earlier create may have landed since.
            found = self.find_ticket(draft.external_id)
            if found is not None:
                self._unknown_creates.pop(draft.external_id, None)
                return found
        incomplete = self._missing_note.pop(draft.external_id, None)
        if incomplete is not None:
            # An earlier attempt created the ticket and died before its note (see find_ticket).
            self._add_analysis_note(incomplete, draft)
            return self._ref(incomplete)
        try:
            ticket = self._request("POST", "/tickets", json=self.ticket_payload(draft)).json()
        except HelpdeskError as exc:
            if exc.settle is not None:
                self._unknown_creates[draft.external_id] = self.clock()
            raise
        self._unknown_creates.pop(draft.external_id, None)
        ticket_id = int(ticket["id"])
        if ticket.get("requester_id"):
            self._requesters[str(ticket_id)] = int(ticket["requester_id"])
        if isinstance(ticket.get("status"), int):
            self._ticket_status[str(ticket_id)] = ticket["status"]
        self._add_analysis_note(ticket_id, draft)
        return self._ref(ticket_id)

    def _add_analysis_note(self, ticket_id: int, draft: TicketDraft) -> None:
        # Not paced: the note completes a ticket just created; refusing it here would only
        # leave agents a ticket without its analysis until the retry. A 429 still stops it.
        self._request("POST", f"/tickets/{ticket_id}/notes", pace=False, json={
            "body": text_to_html(draft.note, marker=note_marker(f"{draft.external_id}#note")),
            "private": True,  # the analysis is for agents only
        })

    def find_ticket(self, external_id: str) -> TicketRef | None:
        ticket_id = self._tagged_ticket(external_id)
        if ticket_id is None:
            return None
        if not self._has_marker(ticket_id, note_marker(f"{external_id}#note")):
            log.warning("Freshdesk ticket %s for %s has no analysis note yet; it will be added", ticket_id, external_id)
            self._missing_note[external_id] = ticket_id
            return None
        return self._ref(ticket_id)

    def _tagged_ticket(self, external_id: str) -> int | None:
        """The post's ticket: the oldest one carrying its tag; later ones (a create that
        Freshdesk finished after we had resent it) are closed as duplicates of it."""
        tag = post_tag(external_id)
        requester = self._requester_external_id(external_id)
        if requester is None:
            ticket_id = self._search_by_tag(tag)
            return ticket_id
        found = self._list_by_requester(requester, tag)
        if not found:
            return None
        kept, *later = found
        for ticket in later:
            self._close_duplicate(ticket, kept, external_id)
        return int(kept["id"])

    def reconcile_duplicates(self, external_id: str) -> TicketRef | None:
        """Keep the post's oldest ticket, close any later one as its duplicate; the kept one."""
        ticket_id = self._tagged_ticket(external_id)
        return None if ticket_id is None else self._ref(ticket_id)

    def _close_duplicate(self, ticket: Mapping[str, Any], kept: Mapping[str, Any], external_id: str) -> None:
        if ticket.get("status") == STATUS_CLOSED:
            return  # closed already (by an earlier reconcile or an agent)
        ticket_id = int(ticket["id"])
        log.warning("Freshdesk ticket %s duplicates %s for %s (a create finished late); closing it",
                    ticket_id, kept["id"], external_id)
        self._request("POST", f"/tickets/{ticket_id}/notes", pace=False, json={
            "body": text_to_html(f"チケット #{kept['id']} と重複しています（同じ投稿）。Yorisoi が閉じました。\n"
                                 f"Duplicate of ticket #{kept['id']} (same post); closed by Yorisoi.",
                                 marker=note_marker(f"{external_id}#duplicate")),
            "private": True})
        self._request("PUT", f"/tickets/{ticket_id}", pace=False, json={"status": STATUS_CLOSED})
        self._ticket_status[str(ticket_id)] = STATUS_CLOSED

    def _requester_external_id(self, external_id: str) -> str | None:
        if self.store is None:
            return None
        loaded = self.store.posts.load_post(external_id.removeprefix("yorisoi:"))
        return loaded[0].author_external_id if loaded else None

    def _list_by_requester(self, requester: str, tag: str) -> list[dict[str, Any]]:
        """The requester's tickets of the last 30 days (the list default, FD#list_all_tickets),
        newest first; a retry after an unknown outcome happens within minutes."""
        try:
            tickets = self._request("GET", "/tickets", params={
                "unique_external_id": requester, "order_by": "created_at", "order_type": "desc", "per_page": 100,
            }).json()
        except HelpdeskError as exc:
            if exc.status in (400, 404):
                return []  # no such contact yet: the ticket call creates it, so no ticket either
            raise
        # The newest 30 are plenty (a retry comes minutes after the attempt) and bound the
        # per-ticket reads below on a prolific requester.
        found = []
        for ticket in (tickets if isinstance(tickets, list) else [])[:30]:
            tags = ticket.get("tags")
            if tags is None:  # the documented list answer omits tags: read the ticket itself
                tags = self._request("GET", f"/tickets/{ticket['id']}").json().get("tags") or []
            if tag in tags:
                found.append(ticket)
        # Oldest first (ids grow with creation; created_at has whole seconds only).
        return sorted(found, key=lambda t: (str(t.get("created_at") or ""), int(t["id"])))

    def _search_by_tag(self, tag: str) -> int | None:
        # Only without a store (the post's author unknown). The search index can lag minutes,
        # so this is a fallback, never the path the outbox relies on.
        found = self._request("GET", "/search/tickets", params={"query": f"\"tag:'{tag}'\""}).json()
        results = found.get("results") if isinstance(found, dict) else None
        return int(results[0]["id"]) if results else None

    # --- comments ---------------------------------------------------------------------
    def add_comment(self, ticket: TicketRef, comment: CommentDraft) -> None:
        """A follow-up post as a public, incoming note "by" the customer.

        Freshdesk notes may be created by "the agent/user who is adding the note" (`user_id`)
        and marked `incoming` ("created from outside"), FD#create_note: the agent sees the
        customer's own words in the conversation, as if they had replied, and no e-mail goes
        out (a reply would try to mail a contact that has no address). Should an account
        refuse a contact as `user_id`, the note is added without it.
        """
        body = {"body": text_to_html(comment.body, marker=note_marker(comment.dedupe_key)),
                "private": not comment.public, "incoming": True}
        requester = self._requester_id(ticket.ticket_id)
        if requester is not None:
            body["user_id"] = requester
        if comment.public and self._resolved_or_closed(ticket.ticket_id):
            # A customer's follow-up on a resolved or closed ticket: reopen it (PUT status 2,
            # FD#update_ticket; Freshdesk allows updating closed tickets) so the follow-up
            # lands in the agents' open views, instead of a note on a ticket nobody looks at.
            self._request("PUT", f"/tickets/{ticket.ticket_id}", json={"status": STATUS_OPEN})
            self._ticket_status[ticket.ticket_id] = STATUS_OPEN
        try:
            self._request("POST", f"/tickets/{ticket.ticket_id}/notes", json=body)
        except HelpdeskError as exc:
            if "user_id" not in exc.field_errors:
                raise
            body.pop("user_id")
            self._request("POST", f"/tickets/{ticket.ticket_id}/notes", json=body)

    def _requester_id(self, ticket_id: str) -> int | None:
        if ticket_id not in self._requesters:
            ticket = self._request("GET", f"/tickets/{ticket_id}").json()
            if ticket.get("requester_id"):
                self._requesters[ticket_id] = int(ticket["requester_id"])
            if isinstance(ticket.get("status"), int):
                self._ticket_status[ticket_id] = ticket["status"]
        return self._requesters.get(ticket_id)

    def _resolved_or_closed(self, ticket_id: str) -> bool:
        """From the status that came back (webhook, sweep) when known, else as last seen here."""
        if self.store is not None and hasattr(self.store, "ticket_status"):
            known = self.store.ticket_status.status_of_ticket(self.name, ticket_id)
            if known is not None:
                return known in ("solved", "closed")
        return self._ticket_status.get(ticket_id) in RESOLVED_OR_CLOSED

    # --- status comes back (connector/ticket_status.py) ---------------------------------
    def status_page(self, cursor: Any, since: datetime) -> StatusPage:
        """Tickets updated since the cursor, oldest change first (FD#list_all_tickets:
        `updated_since`, `order_by=updated_at`, `order_type=asc`, `include=stats` — the
        ticket's `stats.first_responded_at`, `status_updated_at`, `resolved_at`, `closed_at`;
        include costs extra API credits). The cursor is {"since": ISO time, "page": n}: the
        pages of one `updated_since` window, then a new window from the newest change seen."""
        state = cursor if isinstance(cursor, dict) else {}
        window = state.get("since") or since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        page = int(state.get("page") or 1)
        newest = state.get("newest") or window
        tickets = self._request("GET", "/tickets", params={
            "updated_since": window, "order_by": "updated_at", "order_type": "asc", "per_page": SWEEP_PER_PAGE,
            "page": page, "include": "stats"}).json()
        tickets = tickets if isinstance(tickets, list) else []
        updates = []
        for ticket in tickets:
            stats = ticket.get("stats") or {}
            status = STATUS_NAMES.get(ticket.get("status"), "open")
            changed = _iso(stats.get("status_updated_at")) or _iso(ticket.get("updated_at")) or datetime.now(timezone.utc)
            updates.append(StatusUpdate(str(ticket["id"]), status, changed, _iso(stats.get("first_responded_at"))))
            if ticket.get("updated_at") and str(ticket["updated_at"]) > newest:
                newest = str(ticket["updated_at"])
        more = len(tickets) >= SWEEP_PER_PAGE and page < 300
        if more:
            return StatusPage(updates, {"since": window, "page": page + 1, "newest": newest}, True)
        # Window done: the next sweep starts at the newest change seen (re-reading that
        # second's tickets is harmless: recording a status is idempotent).
        return StatusPage(updates, {"since": newest, "page": 1}, False)

    # --- deletion compliance inside the helpdesk (connector/compliance.py) ----------------
    def redact_post(self, ticket: TicketRef, dedupe_keys: Any, whole_ticket: bool, marker: str = "") -> RedactionOutcome:
        """Remove a purged post's words from Freshdesk's copy. Freshdesk has no redaction API,
        so the text is overwritten: the ticket's description (the post itself, when it is the
        post's own ticket) and subject through `PUT /tickets/{id}` (FD#update_ticket), and every
        note Yorisoi wrote for the post (its follow-up note, its analysis note; recognised by
        their marker) through `PUT /conversations/{id}` (FD#update_conversation: only notes
        can be updated). Agents' replies quoting the post cannot be changed by the API."""
        ticket_id = int(ticket.ticket_id)
        replacement = marker or "［本文は削除されました / text removed］"
        try:
            if whole_ticket:
                self._request("PUT", f"/tickets/{ticket_id}", json={
                    "description": text_to_html(replacement), "subject": replacement[:255]})
            updated = 0
            page = 1
            while page <= 50:
                conversations = self._request("GET", f"/tickets/{ticket_id}/conversations",
                                              params={"per_page": 100, "page": page}).json()
                for conversation in conversations:
                    text = (conversation.get("body_text") or "") + (conversation.get("body") or "")
                    key = next((k for k in dedupe_keys if note_marker(k) in text or html.escape(note_marker(k)) in text),
                               None)
                    if key is None:
                        continue
                    self._request("PUT", f"/conversations/{conversation['id']}", json={
                        "body": text_to_html(replacement, marker=note_marker(key))})
                    updated += 1
                if len(conversations) < 100:
                    break
                page += 1
        except HelpdeskError as exc:
            return RedactionOutcome("failed", f"ticket {ticket_id}: {exc.message}", retryable=exc.retryable)
        if not whole_ticket and not updated:
            return RedactionOutcome("impossible", f"ticket {ticket_id}: no note of this post found")
        return RedactionOutcome("redacted", f"ticket {ticket_id}: description {'and subject ' if whole_ticket else ''}"
                                            f"rewritten, {updated} note(s) rewritten")

    def has_comment(self, ticket: TicketRef, dedupe_key: str) -> bool:
        return self._has_marker(int(ticket.ticket_id), note_marker(dedupe_key))

    def _has_marker(self, ticket_id: int, marker: str) -> bool:
        page = 1
        while page <= 50:  # 5000 conversations: far beyond any social ticket
            conversations = self._request("GET", f"/tickets/{ticket_id}/conversations",
                                          params={"per_page": 100, "page": page}).json()
            for conversation in conversations:
                if marker in (conversation.get("body_text") or "") or html.escape(marker) in (conversation.get("body") or ""):
                    return True
            if len(conversations) < 100:
                return False
            page += 1
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "where": self.settings.base_url, "group_id": self.settings.group_id,
                "source": self.settings.source, "custom_fields": dict(self.settings.fields)}

    # --- SLA --------------------------------------------------------------------------
    def sla_policy(self, minutes: Mapping[str, int], existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The policy JSON (FD#create_sla_policy). Freshdesk SLA policies apply by company,
        group, source, ticket type or product — not by tag — so Yorisoi tickets are matched by
        the group Yorisoi sets on them (FRESHDESK_GROUP_ID)."""
        old_targets = (existing or {}).get("sla_target") or {}
        target: dict[str, Any] = {}
        for priority in ("urgent", "high", "normal", "low"):  # priority_4 … priority_1, in this order
            key = f"priority_{PRIORITY[priority]}"
            respond = max(SLA_MIN_SECONDS, minutes[priority] * 60)
            old = old_targets.get(key) or {}
            resolve = old.get("resolve_within")
            if not isinstance(resolve, int) or resolve < respond:
                resolve = respond * SLA_RESOLVE_FACTOR
            target[key] = {"respond_within": respond, "resolve_within": resolve,
                           "business_hours": bool(old.get("business_hours", False)),
                           "escalation_enabled": bool(old.get("escalation_enabled", False))}
        return {
            "name": SLA_POLICY_NAME,
            "description": "Yorisoi が作成した SNS 投稿チケット向け（公開の投稿なので分単位で応答）/ "
                           "Tickets Yorisoi creates from public posts, answered in minutes.",
            "active": True,
            "sla_target": target,
            "applicable_to": {"group_ids": [self.settings.group_id]} if self.settings.group_id else {},
        }

    def setup_sla(self, minutes: dict[str, int], dry_run: bool) -> SlaPlan:
        clamped = [p for p in PRIORITY if minutes[p] * 60 < SLA_MIN_SECONDS]
        notes = ([f"Freshdesk needs at least {SLA_MIN_SECONDS // 60} minutes per target; "
                  f"{', '.join(clamped)} raised to {SLA_MIN_SECONDS // 60}."] if clamped else [])
        notes.append("Freshdesk's API sets first-response and resolution targets only; for a next-response "
                      "target, edit the policy in Admin → SLA Policies (「次の応答期限」) if your plan has it.")
        if not self.settings.group_id:
            policy = self.sla_policy(minutes)
            return SlaPlan(action="manual", policy=policy, steps=(
                "Freshdesk SLA policies cannot match tags (only company, group, source, ticket type, product), "
                "so Yorisoi tickets need their own group.",
                "Admin → Team → Groups → New group: name it 「SNS / Yorisoi」, add the agents who answer social posts.",
                "Open the group and copy its id from the address bar (…/groups/<id>/edit).",
                "Set FRESHDESK_GROUP_ID=<id> for the connector and restart it: new tickets get that group.",
                "Run `yorisoi setup-sla` again: it creates the policy above for that group.",
            ))
        existing = self._find_policy()
        policy = self.sla_policy(minutes, existing)
        if dry_run:
            return SlaPlan(action="dry-run", policy=policy, steps=tuple(notes))
        if existing is None:
            created = self._request("POST", "/sla_policies", json=policy).json()
            return SlaPlan(action="created", policy=created, steps=tuple(notes))
        if all(existing.get(k) == v for k, v in policy.items() if k != "description"):
            return SlaPlan(action="unchanged", policy=existing, steps=tuple(notes))
        updated = self._request("PUT", f"/sla_policies/{existing['id']}", json=policy).json()
        return SlaPlan(action="updated", policy=updated, steps=tuple(notes))

    def _find_policy(self) -> dict[str, Any] | None:
        policies = self._request("GET", "/sla_policies").json()
        for policy in policies if isinstance(policies, list) else []:
            if policy.get("name") == SLA_POLICY_NAME:
                return policy
        return None


def _iso(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def normalize_status(raw: Any) -> str | None:
    """A status from the automation rule's body: a number (2–7) or the name Freshdesk shows."""
    text = str(raw or "").strip()
    if text.isdigit():
        return STATUS_NAMES.get(int(text), "open")
    return STATUS_LABELS.get(text.lower())


def _seconds(raw: str | None, default: float) -> float:
    """Retry-After is seconds in Freshdesk's answers (FD#ratelimit); tolerate junk."""
    try:
        return max(1.0, float(raw)) if raw else default
    except ValueError:
        return default


__all__ = ["FreshdeskHelpdesk", "FreshdeskSettings", "post_tag", "text_to_html", "MARKER", "note_marker",
           "SLA_POLICY_NAME"]
