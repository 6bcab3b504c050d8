"""Zendesk Support through zenpy: tickets, notes, follow-ups, bulk jobs, SLA policy, replies.

The only module that knows Zendesk's JSON. Facts and sources: ../shared/reference/helpdesk-apis.md
(§2 Support API, §3 zenpy 2.0.57); the links below point at the official pages.

How a post becomes a ticket (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/):
1. The author becomes an end user found or created by user `external_id`
   `yorisoi:<platform>:<author id>` (`POST /api/v2/users/create_or_update`, unique per account).
2. `POST /api/v2/tickets` with an `Idempotency-Key` (the post's external id, made ASCII): the
   first comment is the post itself, public and authored by that end user (requester =
   submitter, as for a customer's own e-mail), so agents read the customer's words first.
3. The analysis with its evidence is added as a private comment (internal note) in a second
   call whose audit carries `metadata.custom.yorisoi_dedupe_key` — how `has_comment` finds it
   again, so the note lands exactly once even if we stop between 2 and 3 (the outbox looks the
   ticket up by external id and adds the note only when no audit carries its key).

Rate limits (https://developer.zendesk.com/api-reference/introduction/rate-limits/): zenpy
sleeps through a 429 for as long as Retry-After says, again and again (no cap without
`ratelimit_budget`); that would freeze the delivery worker and the CLI. Our requests session
answers a 429 itself by raising, which becomes HelpdeskError(retry_after=…) so the outbox
pauses delivery and everything else keeps running; it also reads X-Rate-Limit-Remaining and
stops sending while fewer than ZENDESK_RATE_LIMIT_RESERVE % of the account's limit remain
(the limit is shared with the agents' own apps).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import requests
from zenpy import Zenpy
from zenpy.lib.api import BaseApi
from zenpy.lib.api_objects import Comment, Ticket, User
from zenpy.lib.exception import APIException, RecordNotFoundException, ZenpyException

from connector import jsonsafe
from connector.config import ConfigError, shared_secret
from connector.helpdesks.base import (
    BULK_LEASE,
    TICKET_STATUSES,
    BulkCreateResult,
    CommentDraft,
    HelpdeskError,
    RedactionOutcome,
    Requester,
    SlaPlan,
    StatusPage,
    StatusUpdate,
    TicketClosed,
    TicketDraft,
)
from connector.helpdesks.deadline import DeadlineSession
from connector.labels import TAG_PREFIX
from connector.models import ANALYSIS_LABELS, TicketRef
from connector.textnorm import is_number_id, scrub

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Zendesk's limits for bulk jobs: ≤100 records per create_many/update_many call
#: (…/tickets/tickets/#create-many-tickets) and ≤30 jobs queued or running per account
#: (support.zendesk.com/hc/en-us/articles/8050017386522).
JOB_BATCH = 100
MAX_JOBS_IN_FLIGHT = 30
#: The Update Ticket endpoint's own limit (`PUT /api/v2/tickets/{id}`), beside the account's:
#: 100 requests per minute per account (300 with the High Volume add-on)
#: (https://developer.zendesk.com/api-reference/introduction/rate-limits/#endpoint-rate-limits;
#: support.zendesk.com/hc/en-us/articles/8638126078234). Every ticket made one by one needs one
#: (its analysis note), so past ~1.7 new tickets a second notes must go through update_many
#: jobs, which this limit does not count: the helpdesk then `prefers_bulk`.
UPDATE_TICKET_LIMIT = 100
#: Updates of that budget kept for follow-up comments, storm counts and urgent posts (which
#: always go one by one) when new tickets switch to bulk jobs.
UPDATE_TICKET_RESERVE = 20
_UPDATE_TICKET_PATH = re.compile(r"/api/v2/tickets/\d+(\.json)?$")
#: Fields the admin may map in ZENDESK_FIELDS: the analysis labels and the post's link.
MAPPABLE_FIELDS = (*ANALYSIS_LABELS, "post_url")
#: Audit metadata key that marks a comment we added (see module docstring, step 3).
DEDUPE_METADATA_KEY = "yorisoi_dedupe_key"
#: Ticket type per intent. Zendesk's types: question, incident, problem, task. A customer's
#: question is a `question`; a report of a bug or outage and a complaint about a failure are
#: each one customer's `incident`, which agents can link to a `problem` they open for the
#: underlying cause (Zendesk's problem/incident linking). A storm of echoes (connector/storms.py)
#: gets its own `problem` ticket and its members become incidents of it (`problem_id`). Requests (要望), praise and other posts fit
#: no type: left unset rather than mislabelled (`task` means an agent's to-do with a due date).
TICKET_TYPES = {"question": "question", "report": "incident", "complaint": "incident"}
#: How old a webhook's signature timestamp may be. Zendesk signs each delivery when it sends
#: it, so a genuine call is seconds old; five minutes allows for clock skew and a slow
#: network, and refuses a captured request replayed later (the dedupe key would stop a second
#: post anyway, but a stale request should not even be read).
WEBHOOK_MAX_AGE = timedelta(minutes=5)
#: Agent roles whose public comments are replies to the customer ({{current_user.role}}).
AGENT_ROLES = {"agent", "admin", "administrator", "light agent"}


# --- configuration ----------------------------------------------------------------------
@dataclass(frozen=True)
class FieldMapping:
    field_id: int
    tag_form: bool  # send `sentiment_negative` (a drop-down option's tag) instead of `negative`


@dataclass(frozen=True)
class ZendeskConfig:
    base_url: str  # https://acme.zendesk.com, or ZENDESK_URL
    subdomain: str
    email: str | None
    api_token: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    status_webhook_secret: str | None = field(default=None, repr=False)
    #: The Zendesk app's webhook secrets (derived from YORISOI_CHANNEL_SECRET), also accepted
    #: when ZENDESK_WEBHOOK_SECRET / ZENDESK_STATUS_WEBHOOK_SECRET hold a hand-made webhook's.
    app_webhook_secret: str | None = field(default=None, repr=False)
    app_status_webhook_secret: str | None = field(default=None, repr=False)
    fields: Mapping[str, FieldMapping] = field(default_factory=dict)
    #: New tickets waiting from which they go through bulk jobs. One by one takes ~0.5 s a
    #: ticket (requester, ticket, note: three calls), so the last of 20 waits ~10 s — as long as
    #: a whole bulk cycle of a batch of 20 (requesters ~2 s, tickets ~6 s in the recorded
    #: timing) — and spends 60 calls of the account's 700/min where bulk spends a handful. At
    #: 200 a storm's first 10 seconds of posts waited for the backlog to build and then for
    #: their jobs: ~20 s (issue 17 storm benchmark).
    bulk_threshold: int = 20
    rate_reserve_percent: int = 10
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ZendeskConfig":
        """Read and check the ZENDESK_* variables; every error names the variable."""
        subdomain = (env.get("ZENDESK_SUBDOMAIN") or "").strip().lower()
        url = (env.get("ZENDESK_URL") or "").strip().rstrip("/")
        if subdomain and not subdomain.replace("-", "").isalnum():
            raise ConfigError(f"ZENDESK_SUBDOMAIN={subdomain!r} should be the bare subdomain, e.g. `acme` "
                              "for https://acme.zendesk.com")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ConfigError(f"ZENDESK_URL={url!r} should be a base URL such as https://acme.zendesk.com "
                                  "or http://127.0.0.1:8089")
            if "." not in parts.netloc.split("@")[-1]:
                # zenpy builds hosts as "<subdomain>.<domain>": the host needs a dot.
                raise ConfigError(f"ZENDESK_URL={url!r}: use a host name with a dot (127.0.0.1 instead of localhost)")
            subdomain = subdomain or parts.netloc.split(".")[0]
        elif not subdomain:
            raise ConfigError("ZENDESK_SUBDOMAIN is required with YORISOI_HELPDESK=zendesk "
                              "(e.g. ZENDESK_SUBDOMAIN=acme for https://acme.zendesk.com), or set ZENDESK_URL")
        else:
            url = f"https://{subdomain}.zendesk.com"
        email = (env.get("ZENDESK_EMAIL") or "").strip() or None
        api_token = env.get("ZENDESK_API_TOKEN") or None
        oauth_token = env.get("ZENDESK_OAUTH_TOKEN") or None
        if api_token and oauth_token:
            raise ConfigError("set either ZENDESK_API_TOKEN (with ZENDESK_EMAIL) or ZENDESK_OAUTH_TOKEN, not both")
        if api_token and not email:
            raise ConfigError("ZENDESK_EMAIL is required with ZENDESK_API_TOKEN (the agent the token belongs to)")
        if api_token is None and oauth_token is None:
            raise ConfigError("Zendesk credentials are missing: set ZENDESK_EMAIL and ZENDESK_API_TOKEN, "
                              "or ZENDESK_OAUTH_TOKEN")
        for name, value in (("ZENDESK_API_TOKEN", api_token), ("ZENDESK_OAUTH_TOKEN", oauth_token),
                            ("ZENDESK_EMAIL", email)):
            if value and (not value.isascii() or not value.isprintable() or value != value.strip()):
                # HTTP auth headers are ASCII: a pasted token with a stray character would fail
                # every call with a cryptic encoding error. The value itself is never shown.
                raise ConfigError(f"{name} contains spaces or non-ASCII characters; paste it again")
        if email and "@" not in email:
            raise ConfigError(f"ZENDESK_EMAIL={email!r} is not an e-mail address")
        return cls(
            base_url=url, subdomain=subdomain, email=email, api_token=api_token, oauth_token=oauth_token,
            webhook_secret=shared_secret(env, "ZENDESK_WEBHOOK_SECRET") or _app_webhook_secret(env, "reply"),
            status_webhook_secret=(shared_secret(env, "ZENDESK_STATUS_WEBHOOK_SECRET")
                                   or _app_webhook_secret(env, "status")),
            app_webhook_secret=_app_webhook_secret(env, "reply"),
            app_status_webhook_secret=_app_webhook_secret(env, "status"),
            fields=_parse_fields(env.get("ZENDESK_FIELDS") or ""),
            bulk_threshold=_int(env, "ZENDESK_BULK_THRESHOLD", cls.bulk_threshold, 0, 1_000_000),
            rate_reserve_percent=_int(env, "ZENDESK_RATE_LIMIT_RESERVE", 10, 0, 90),
            timeout=float(_int(env, "ZENDESK_TIMEOUT", 30, 1, 600)),
        )


def webhook_signing_secret(channel_secret: str, webhook: str) -> str:
    """The signing secret the Zendesk app's requirements.json gives its `webhook` ("reply" or
    "status"). An app's requirements may set a webhook's `signing_secret`
    (https://developer.zendesk.com/documentation/apps/app-developer-guide/apps_requirements/,
    "webhooks"), so the admin never copies one into our environment: both sides derive it from
    YORISOI_CHANNEL_SECRET. 43 URL-safe characters (256 bits)."""
    digest = hmac.new(channel_secret.encode("utf-8"), f"yorisoi-zendesk-app/webhook/{webhook}".encode("ascii"),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _app_webhook_secret(env: Mapping[str, str], webhook: str) -> str | None:
    """The Zendesk app's webhook secret when YORISOI_CHANNEL_SECRET is set (16+ characters, as
    the Channel framework requires), else None: the webhook stays disabled."""
    channel_secret = env.get("YORISOI_CHANNEL_SECRET") or ""
    return webhook_signing_secret(channel_secret, webhook) if len(channel_secret) >= 16 else None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} should be a whole number from {low} to {high}")
    return int(raw)


def _parse_fields(raw: str) -> dict[str, FieldMapping]:
    """`sentiment=360001,intent=360002:tag` → label → custom field."""
    mapping: dict[str, FieldMapping] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        label, _, target = part.partition("=")
        field_id, _, form = target.strip().partition(":")
        label = label.strip()
        if label not in MAPPABLE_FIELDS:
            raise ConfigError(f"ZENDESK_FIELDS: {label!r} is not a Yorisoi label (choose from {', '.join(MAPPABLE_FIELDS)})")
        if not field_id.isdigit():
            raise ConfigError(f"ZENDESK_FIELDS: {part!r} should look like {label}=360001 (the custom field's numeric id)")
        if form not in ("", "tag"):
            raise ConfigError(f"ZENDESK_FIELDS: {part!r}: only `:tag` may follow the field id")
        mapping[label] = FieldMapping(int(field_id), form == "tag")
    return mapping


# --- HTTP session: idempotency header, rate limits ---------------------------------------
class _RateLimited(Exception):
    """Raised from inside zenpy's call so that zenpy never sleeps on a 429."""

    def __init__(self, retry_after: float, refused: bool) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after
        self.refused = refused  # True: Zendesk answered 429; False: we held back (reserve)


class ZendeskSession(DeadlineSession):
    """zenpy's transport, with what zenpy lacks: per-call headers and non-blocking 429s.

    zenpy sends every call through `session.request`; every call ends within the total
    deadline (connector.helpdesks.deadline); we add the thread's extra headers
    (zenpy has no per-request headers, facetoe/zenpy#541), record the rate-limit headers of
    every answer, and raise instead of returning a 429 (zenpy would sleep on it).
    """

    def __init__(self, reserve_percent: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.reserve_percent = reserve_percent
        self.clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: int | None = None
        self.resume_at: float | None = None  # monotonic time until which we hold back
        self._updates: deque[float] = deque()  # when each Update Ticket call of the last minute went out

    @contextmanager
    def extra_headers(self, headers: Mapping[str, str]) -> Iterator[None]:
        previous = getattr(self._local, "headers", None)
        self._local.headers = {**(previous or {}), **headers}
        try:
            yield
        finally:
            self._local.headers = previous

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            if self.resume_at is not None and self.clock() < self.resume_at:
                raise _RateLimited(self.resume_at - self.clock(), refused=False)
        if method.upper() == "PUT" and _UPDATE_TICKET_PATH.search(urlsplit(url).path):
            with self._lock:
                self._updates.append(self.clock())
        extra = getattr(self._local, "headers", None)
        if extra:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **extra}
        response = super().request(method, url, **kwargs)
        self._observe(response)
        if response.status_code == 429:
            raise _RateLimited(_retry_after(response.headers.get("Retry-After")), refused=True)
        return response

    def updates_last_minute(self) -> int:
        """Update Ticket calls sent in the last 60 s. A sliding minute: staying under the limit
        in every sliding minute stays under it in whatever window Zendesk counts."""
        with self._lock:
            horizon = self.clock() - 60.0
            while self._updates and self._updates[0] < horizon:
                self._updates.popleft()
            return len(self._updates)

    def _observe(self, response: requests.Response) -> None:
        limit = _header_int(response.headers, "X-Rate-Limit")
        remaining = _header_int(response.headers, "X-Rate-Limit-Remaining")
        if remaining is None:
            return  # not every endpoint sends them; keep what we knew
        with self._lock:
            self.limit = limit or self.limit
            self.remaining = remaining
            reserve = (self.limit or 0) * self.reserve_percent / 100
            if self.limit and remaining <= reserve:
                # Leave the rest of this minute's budget to the agents' apps: hold back until
                # the window resets (ratelimit-reset, seconds; else the next minute).
                reset = _header_int(response.headers, "ratelimit-reset") or 60
                self.resume_at = self.clock() + max(1, reset)
            else:
                self.resume_at = None


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(str(headers.get(name)).strip())
    except (TypeError, ValueError):
        return None


def _retry_after(raw: str | None) -> float:
    """Seconds from Retry-After (seconds or an HTTP date); 60 when missing or unreadable."""
    if raw:
        try:
            return max(1.0, float(raw))
        except ValueError:
            from email.utils import parsedate_to_datetime
            try:
                return max(1.0, (parsedate_to_datetime(raw) - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    return 60.0


def idempotency_key(external_id: str) -> str:
    """The external id as a header value: ASCII, short; a digest when it is neither."""
    encoded = quote(external_id, safe=":")
    if len(encoded) <= 200:
        return encoded
    return "yorisoi:sha256:" + hashlib.sha256(external_id.encode("utf-8")).hexdigest()


# --- errors ---------------------------------------------------------------------------------
def _error_body(response: requests.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _field_errors(details: Any) -> dict[str, str]:
    """Zendesk's 422 `details`: {field: [{description, error}, …]} → {field: message}."""
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return {"base": details}
    if not isinstance(details, dict):
        return {}
    errors = {}
    for name, problems in details.items():
        items = problems if isinstance(problems, list) else [problems]
        errors[str(name)] = "; ".join(str(p.get("description") or p.get("error") or p) if isinstance(p, dict)
                                      else str(p) for p in items)
    return errors


def translate_error(exc: Exception, what: str) -> HelpdeskError:
    """Any failure of a Zendesk call → HelpdeskError saying whether and when to retry."""
    if isinstance(exc, HelpdeskError):
        return exc
    if isinstance(exc, _RateLimited):
        why = "Zendesk rate limit reached (429)" if exc.refused else \
            "Zendesk API budget nearly used up (ZENDESK_RATE_LIMIT_RESERVE kept for agents)"
        return HelpdeskError(f"{what}: {why}; retrying in {exc.retry_after:.0f} s", retryable=True,
                             retry_after=exc.retry_after, status=429 if exc.refused else None)
    if isinstance(exc, requests.Timeout):
        return HelpdeskError(f"{what}: Zendesk did not answer in time (outcome unknown; looked up before any retry)",
                             retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return HelpdeskError(f"{what}: cannot reach Zendesk ({type(exc).__name__})", retryable=True)
    response = getattr(exc, "response", None)
    if isinstance(exc, (APIException, RecordNotFoundException, requests.HTTPError)) and response is not None:
        status = response.status_code
        body = _error_body(response)
        message = " — ".join(str(x) for x in (body.get("error"), body.get("description")) if x) or response.reason
        text = f"{what}: Zendesk answered {status}: {message}"
        if status in (401, 403):
            hint = " (check ZENDESK_EMAIL/ZENDESK_API_TOKEN or ZENDESK_OAUTH_TOKEN and the agent's role)"
            return HelpdeskError(text + hint, retryable=False, stop_delivery=True, status=status)
        if status == 422:
            return HelpdeskError(text, retryable=False, field_errors=_field_errors(body.get("details")), status=status)
        if status in (409, 423) or status >= 500:  # a lock conflict or Zendesk's trouble: try later
            return HelpdeskError(text, retryable=True, status=status)
        return HelpdeskError(text, retryable=False, status=status)
    if isinstance(exc, ZenpyException):
        return HelpdeskError(f"{what}: unexpected answer from Zendesk ({exc})"[:500], retryable=True)
    return HelpdeskError(f"{what}: {type(exc).__name__}: {exc}"[:500], retryable=True)


# --- the helpdesk --------------------------------------------------------------------------
class ZendeskHelpdesk:
    name = "zendesk"
    bulk_max_drafts = JOB_BATCH * MAX_JOBS_IN_FLIGHT

    def __init__(self, config: ZendeskConfig, *, poll_interval: float = 1.0, job_timeout: float = 600.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.bulk_threshold = config.bulk_threshold
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.session = ZendeskSession(config.rate_reserve_percent)
        self._clients = threading.local()
        self._clients.client = self._make_client()  # the creating thread's; sets up the session once
        self._user_ids: dict[str, int] = {}  # requester external id → Zendesk user id

    def __repr__(self) -> str:
        return f"ZendeskHelpdesk(base_url={self.config.base_url!r})"

    @property
    def client(self) -> Zenpy:
        """This thread's zenpy client (all of them share one `session`).

        zenpy's API objects are not thread-safe: each keeps the objects of its last call in
        `_dirty_object` and, once that call's answer is processed, clears their "modified"
        marks (`_clean_dirty_objects`, zenpy/lib/api.py) — and zenpy serializes only modified
        attributes. The delivery worker's three lanes (connector/services.py) share this
        helpdesk: an urgent ticket's answer in the priority lane cleared the tickets the bulk
        lane was serializing at that moment, which went out as `{}` in create_many and were
        refused "Description: cannot be blank" (issue 17 storm benchmark, tickets lost). One
        client per thread keeps every call's objects to itself. A client costs ~0.5 ms."""
        client: Zenpy | None = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = self._make_client()
        return client

    def _make_client(self) -> Zenpy:
        config = self.config
        parts = urlsplit(config.base_url)
        # zenpy builds "<scheme>://<subdomain>.<domain>/api/v2/…"; splitting the host at its
        # first dot points it at any base URL (sandbox, proxy, local fake) without the
        # process-wide ZENPY_FORCE_* variables, which would redirect every instance at once.
        host_sub, _, host_rest = parts.netloc.partition(".")
        client = Zenpy(subdomain=host_sub, domain=host_rest, email=config.email, token=config.api_token,
                       oauth_token=config.oauth_token, session=self.session, timeout=config.timeout,
                       disable_cache=True)  # the cache would answer lookups without asking
        prefix = "/".join(p for p in (parts.path.strip("/"), "api/v2") if p)
        for api in _apis(client):
            api.protocol = parts.scheme
            api.api_prefix = prefix
        return client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:
            raise translate_error(exc, what) from exc

    def prefers_bulk(self) -> bool:
        """New tickets should go through bulk jobs now, whatever the backlog: one by one, each
        needs an Update Ticket call for its note, and that endpoint's budget is nearly spent
        (UPDATE_TICKET_LIMIT). Without this, 2 posts/s all day (120 notes a minute) met a 429
        every minute and paused all delivery until the minute's end."""
        return self.bulk_threshold > 0 and \
            self.session.updates_last_minute() >= UPDATE_TICKET_LIMIT - UPDATE_TICKET_RESERVE

    def ticket_url(self, ticket_id: Any) -> str:
        return f"{self.config.base_url}/agent/tickets/{ticket_id}"

    def _ref(self, ticket_id: Any) -> TicketRef:
        return TicketRef(self.name, str(ticket_id), self.ticket_url(ticket_id))

    # requesters
    @staticmethod
    def _display_name(requester: Requester) -> str:
        handle = f"@{requester.handle}" if requester.handle else None
        if handle and requester.name and requester.name not in (requester.handle, handle):
            return f"{requester.name} ({handle})"[:255]
        return (handle or requester.name or requester.external_id)[:255]

    def _requester_user(self, requester: Requester) -> User:
        return User(external_id=requester.external_id, name=self._display_name(requester))

    def requester_id(self, requester: Requester) -> int:
        """The end user for this social author, created or refreshed by external id."""
        if requester.external_id in self._user_ids:
            return self._user_ids[requester.external_id]
        user = self._call(f"requester {requester.external_id}",
                          lambda: self.client.users.create_or_update(self._requester_user(requester)))
        self._user_ids[requester.external_id] = int(user.id)
        return int(user.id)

    def _user_id_for(self, external_id: str) -> int | None:
        if external_id in self._user_ids:
            return self._user_ids[external_id]
        users = self._call(f"user {external_id}", lambda: list(self.client.users(external_id=quote(external_id, safe=":"))))
        for user in users:
            if (user.external_id or "").lower() == external_id.lower():
                self._user_ids[external_id] = int(user.id)
                return int(user.id)
        return None

    # tickets
    def _custom_fields(self, draft: TicketDraft) -> list[dict[str, Any]]:
        values = {**draft.labels, "post_url": draft.post_url}
        fields = []
        for label, mapping in self.config.fields.items():
            value = values.get(label)
            if value is None:
                continue
            if mapping.tag_form and label != "post_url":
                value = f"{TAG_PREFIX.get(label, label)}_{value}"
            fields.append({"id": mapping.field_id, "value": value})
        return fields

    def ticket_payload(self, draft: TicketDraft, requester_id: int) -> Ticket:
        ticket = Ticket(
            subject=draft.subject,
            comment=Comment(body=draft.description, public=True, author_id=requester_id),
            requester_id=requester_id, submitter_id=requester_id,
            priority=draft.priority, tags=list(draft.tags), external_id=draft.external_id,
        )
        ticket_type = draft.ticket_type or TICKET_TYPES.get(draft.labels.get("intent", ""))
        if draft.problem_id:
            # A storm's member: an incident linked to the storm's problem ticket; solving the
            # problem solves its incidents with the same comment (…/tickets/tickets/#json-format:
            # problem_id "For tickets of type 'incident', the ID of the problem the incident is linked to").
            ticket_type = "incident"
            ticket.problem_id = int(draft.problem_id)
        if ticket_type:
            ticket.type = ticket_type
        custom_fields = self._custom_fields(draft)
        if custom_fields:
            ticket.custom_fields = custom_fields
        return ticket

    def open_ticket(self, draft: TicketDraft) -> TicketRef:
        """The ticket alone (its requester found or made first), without the analysis note."""
        requester_id = self.requester_id(draft.requester)
        ticket = self.ticket_payload(draft, requester_id)
        # Idempotency-Key: a re-sent create within Zendesk's key lifetime returns the first
        # ticket instead of a second (…/ticketing/introduction/#idempotency).
        with self.session.extra_headers({"Idempotency-Key": idempotency_key(draft.external_id)}):
            audit = self._call(f"ticket {draft.external_id}", lambda: self.client.tickets.create(ticket))
        return self._ref(audit.ticket.id)

    def create_ticket(self, draft: TicketDraft) -> TicketRef:
        ref = self.open_ticket(draft)
        try:
            self.add_comment(ref, draft.note_comment())
        except HelpdeskError as exc:
            # The ticket exists; the retry finds it by external id and adds the missing note.
            raise HelpdeskError(f"ticket #{ref.ticket_id} was created but its analysis note was not added: "
                                f"{exc.message}", retryable=True, retry_after=exc.retry_after, status=exc.status) from exc
        return ref

    def find_ticket(self, external_id: str) -> TicketRef | None:
        # zenpy joins query strings without encoding them (helpdesk-apis.md §3): encode here.
        tickets = self._call(f"lookup {external_id}",
                             lambda: list(self.client.tickets(external_id=quote(external_id, safe=":"))))
        matching = sorted((t for t in tickets if t.external_id == external_id), key=lambda t: int(t.id))
        if len(matching) > 1:  # external_id is not unique in Zendesk; the oldest one is ours
            log.warning("%d Zendesk tickets carry %s: using #%s", len(matching), external_id, matching[0].id)
        return self._ref(matching[0].id) if matching else None

    def _comment_ticket(self, ticket_id: int, comment: CommentDraft, author_id: int | None) -> Ticket:
        body = Comment(body=comment.body, public=comment.public)
        if author_id is not None:
            body.author_id = author_id
        # `metadata` on an update is stored as the audit's metadata.custom (write-only on the
        # ticket; see "metadata" in …/tickets/tickets/#json-format): our dedupe mark.
        return Ticket(id=ticket_id, comment=body, metadata={DEDUPE_METADATA_KEY: comment.dedupe_key})

    def add_comment(self, ticket: TicketRef, comment: CommentDraft) -> None:
        author_id = None
        if comment.public and comment.author_external_id:
            author_id = self._user_id_for(comment.author_external_id)
        update = self._comment_ticket(int(ticket.ticket_id), comment, author_id)
        try:
            self._call(f"comment on ticket #{ticket.ticket_id}", lambda: self.client.tickets.update(update))
        except HelpdeskError as exc:
            if exc.status == 422 and _closed_refusal(exc):
                # "Once a ticket is closed … it can't be reopened. However, you can create a new
                # request that references the closed ticket" (…/tickets/tickets/, via_followup_source_id).
                raise TicketClosed(exc.message, retryable=False, status=422,
                                   field_errors=exc.field_errors) from exc
            raise

    def create_followup(self, closed: TicketRef, draft: TicketDraft) -> TicketRef:
        """A follow-up ticket for a post whose conversation's ticket is closed: the post's own
        ticket (its text first, then its analysis note), linked to the closed one with
        `via_followup_source_id` (…/tickets/tickets/#json-format; "only works with closed
        tickets"). Same Idempotency-Key as any ticket of this post, so a retry gets it back."""
        requester_id = self.requester_id(draft.requester)
        ticket = self.ticket_payload(draft, requester_id)
        ticket.via_followup_source_id = int(closed.ticket_id)
        with self.session.extra_headers({"Idempotency-Key": idempotency_key(draft.external_id)}):
            audit = self._call(f"follow-up of closed ticket #{closed.ticket_id}",
                               lambda: self.client.tickets.create(ticket))
        ref = self._ref(audit.ticket.id)
        self.add_comment(ref, draft.note_comment())
        return ref

    def has_comment(self, ticket: TicketRef, dedupe_key: str) -> bool:
        audits = self._call(f"audits of ticket #{ticket.ticket_id}",
                            lambda: list(self.client.tickets.audits(ticket=int(ticket.ticket_id))))
        return any(_audit_key(audit) == dedupe_key for audit in audits)

    # status comes back (connector/ticket_status.py)
    def status_page(self, cursor: Any, since: datetime) -> StatusPage:
        """One page of the incremental ticket export, cursor based
        (`GET /api/v2/incremental/tickets/cursor.json`, …/ticket-management/incremental_exports/):
        `start_time` (unix seconds, at least a minute ago) on the first call, then `cursor` =
        the previous page's `after_cursor`; `end_of_stream` says whether more wait. Admins only;
        10 calls a minute. `include=metric_sets` sideloads each ticket's metrics
        (…/tickets/ticket_metrics/): `status_updated_at`, and `reply_time_in_minutes.calendar`,
        the time to the first public agent comment, wherever it was written."""
        params: dict[str, Any] = {"include": "metric_sets"}
        if cursor:
            params["cursor"] = cursor
        else:
            start = min(since, datetime.now(timezone.utc) - timedelta(minutes=1))
            params["start_time"] = int(start.timestamp())
        answer = self._call("incremental ticket export", lambda: self._raw("GET", "incremental/tickets/cursor",
                                                                           params=params))
        metrics = {int(m["ticket_id"]): m for m in answer.get("metric_sets") or [] if m.get("ticket_id")}
        updates = []
        for ticket in answer.get("tickets") or []:
            status = normalize_status(ticket.get("status"))
            if status is None:
                continue  # "deleted" tickets: nothing to show as open or solved
            metric = metrics.get(int(ticket["id"])) or {}
            changed = _iso(metric.get("status_updated_at")) or _iso(ticket.get("updated_at")) or datetime.now(timezone.utc)
            reply_at = None
            minutes = (metric.get("reply_time_in_minutes") or {}).get("calendar")
            created = _iso(ticket.get("created_at"))
            if isinstance(minutes, (int, float)) and created is not None:
                reply_at = created + timedelta(minutes=minutes)
            updates.append(StatusUpdate(str(ticket["id"]), status, changed, reply_at))
        return StatusPage(updates, answer.get("after_cursor") or cursor, not answer.get("end_of_stream", True))

    # deletion compliance inside the helpdesk (connector/compliance.py)
    def redact_post(self, ticket: TicketRef, dedupe_keys: Sequence[str], whole_ticket: bool,
                    marker: str = "") -> RedactionOutcome:
        """Remove a purged post's words from the ticket: every comment Yorisoi wrote for it —
        the first comment (the post itself) when the ticket is the post's own (`whole_ticket`),
        and the comments whose audit carries one of `dedupe_keys` (its follow-up comment, its
        analysis note with evidence) — through `PUT /api/v2/comment_redactions/{comment_id}`
        with the whole `html_body` in `<redact>` (…/ticket_comments/, "Redact Ticket Comment In
        Agent Workspace": works on closed tickets too; needs Agent Workspace and, on
        Professional, agents allowed to delete tickets). `marker` is unused: redaction leaves
        ▇ in place of the words."""
        ticket_id = int(ticket.ticket_id)
        audits = self._call(f"audits of ticket #{ticket_id}", lambda: list(self.client.tickets.audits(ticket=ticket_id)))
        wanted: set[int] = set()
        first_comment: int | None = None
        for audit in sorted(audits, key=lambda a: int(a.id)):
            comment_ids = [int(e["id"]) for e in (_as_dict(ev) for ev in (getattr(audit, "events", None) or []))
                           if e.get("type") == "Comment" and e.get("id")]
            if first_comment is None and comment_ids:
                first_comment = comment_ids[0]
            if _audit_key(audit) in dedupe_keys:
                wanted.update(comment_ids)
        if whole_ticket and first_comment is not None:
            wanted.add(first_comment)
        if not wanted:
            return RedactionOutcome("impossible", f"ticket #{ticket_id}: no comment of this post found")
        comments = {int(c["id"]): c for c in self._raw("GET", f"tickets/{ticket_id}/comments").get("comments") or []}
        done = 0
        for comment_id in sorted(wanted):
            comment = comments.get(comment_id)
            if comment is None:
                continue
            body = comment.get("html_body") or html.escape(comment.get("body") or "")
            if not body.strip() or "<redact>" in body:
                done += 1
                continue
            try:
                self._call(f"redact comment {comment_id}", lambda: self._raw(
                    "PUT", f"comment_redactions/{comment_id}",
                    {"ticket_id": ticket_id, "html_body": _redact_all(body)}))
            except HelpdeskError as exc:
                return RedactionOutcome("failed", f"ticket #{ticket_id} comment {comment_id}: {exc.message}",
                                        retryable=exc.retryable)
            done += 1
        return RedactionOutcome("redacted", f"ticket #{ticket_id}: {done} comment(s) redacted")

    # storms (connector/storms.py)
    def link_incident(self, problem: TicketRef, incident: TicketRef) -> None:
        """Make an existing ticket an incident of the storm's problem (one ticket update)."""
        update = Ticket(id=int(incident.ticket_id), type="incident", problem_id=int(problem.ticket_id))
        self._call(f"link ticket #{incident.ticket_id} to problem #{problem.ticket_id}",
                   lambda: self.client.tickets.update(update))

    def update_problem(self, problem: TicketRef, subject: str, note: CommentDraft) -> None:
        """New count in the subject and a count note in ONE update: Zendesk allows 30 updates
        per ticket per 10 minutes (Update Ticket rate limit, …/tickets/tickets/#update-ticket)."""
        update = self._comment_ticket(int(problem.ticket_id), note, None)
        update.subject = subject
        self._call(f"update problem #{problem.ticket_id}", lambda: self.client.tickets.update(update))

    def describe(self) -> dict[str, Any]:
        auth = "API token of " + (self.config.email or "?") if self.config.api_token else "OAuth token"
        return {"name": self.name, "where": self.config.base_url, "auth": auth,
                "custom_fields": {k: v.field_id for k, v in self.config.fields.items()},
                "bulk_threshold": self.bulk_threshold,
                "reply_webhook": "enabled" if self.config.webhook_secret else "disabled (ZENDESK_WEBHOOK_SECRET unset)"}

    # bulk
    def create_tickets_many(self, drafts: list[TicketDraft], *,
                            more: Callable[[], list[TicketDraft]] | None = None,
                            on_result: Callable[[int, TicketRef | HelpdeskError], None] | None = None
                            ) -> BulkCreateResult:
        """Requesters, tickets and notes through bulk jobs, the stages of different batches in
        flight at once (see `_BulkRun`).

        `more()` (optional) is asked for further drafts whenever a job slot is free: a storm
        that keeps arriving is fed into the running jobs instead of waiting for them all to
        end; its drafts are numbered after the ones before. `on_result(index, ref or error)`
        (optional) hears each draft's outcome as soon as it is known, so a ticket is recorded
        seconds after its job ends rather than after the last job of the run. The returned
        result holds every outcome as well. A ticket whose note job fails is reported
        retryable: the outbox retries it one by one, finds the ticket and adds the note
        exactly once.
        """
        return _BulkRun(self, list(drafts), more, on_result).run()

    def _submit_job(self, stage: str, batch: "_Batch") -> Any:
        """One bulk call for a batch at `stage`: users create_or_update_many, tickets
        create_many or tickets update_many (the notes); each ≤ JOB_BATCH records."""
        drafts = batch.run.drafts
        if stage == "users":
            return self.client.users.create_or_update([self._requester_user(r) for r in batch.requesters])
        if stage == "tickets":
            return self.client.tickets.create(
                [self.ticket_payload(drafts[i], self._user_ids[drafts[i].requester.external_id]) for i in batch.waiting])
        return self.client.tickets.update(
            [self._comment_ticket(batch.created[i], drafts[i].note_comment(), None) for i in sorted(batch.created)])


    # SLA
    def sla_policy(self, minutes: Mapping[str, int]) -> dict[str, Any]:
        """The policy JSON (…/business-rules/sla_policies/): tickets tagged `yorisoi`, first and
        next reply targets per priority, counted in calendar hours — public posts do not wait
        for office hours (a storm at night is still a storm)."""
        metrics = [{"priority": priority, "metric": metric, "target": target, "business_hours": False}
                   for priority, target in minutes.items()
                   for metric in ("first_reply_time", "next_reply_time")]
        return {
            "title": SLA_TITLE,
            "description": "Yorisoi: 公開投稿から作られたチケットの返信目標 / reply targets for tickets made from public "
                           "posts (managed by `yorisoi setup-sla`; edits here are overwritten).",
            "filter": {"all": [{"field": "current_tags", "operator": "includes", "value": "yorisoi"}], "any": []},
            "policy_metrics": metrics,
        }

    def setup_sla(self, minutes: dict[str, int], dry_run: bool) -> SlaPlan:
        policy = self.sla_policy(minutes)
        if dry_run:
            return SlaPlan(action="dry-run", policy=policy)
        existing = self._call("list SLA policies", lambda: self._raw("GET", "slas/policies"))
        for current in existing.get("sla_policies") or []:
            if current.get("title") == SLA_TITLE:
                if _same_policy(current, policy):
                    return SlaPlan(action="unchanged", policy=current)
                updated = self._call("update SLA policy",
                                     lambda: self._raw("PUT", f"slas/policies/{current['id']}", {"sla_policy": policy}))
                return SlaPlan(action="updated", policy=updated.get("sla_policy") or policy)
        created = self._call("create SLA policy", lambda: self._raw("POST", "slas/policies", {"sla_policy": policy}))
        return SlaPlan(action="created", policy=created.get("sla_policy") or policy)

    def _raw(self, method: str, path: str, payload: dict[str, Any] | None = None,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A call through zenpy's transport (URL, auth, errors) returning the JSON as is.

        For SLA policies: zenpy's SlaPolicyApi.create/update return None (2.0.57) and its
        objects would reshape the filter, so the documented JSON is sent and read directly."""
        api = self.client.sla_policies
        url = f"{api.protocol}://{api.base_url}/{api.api_prefix}/{path}.json"
        method_fn = {"GET": self.session.get, "POST": self.session.post, "PUT": self.session.put}[method]
        kwargs: dict[str, Any] = {"timeout": api.timeout}
        if payload is not None:
            kwargs["json"] = payload
        if params:
            kwargs["params"] = dict(params)
        response = api._call_api(method_fn, url, **kwargs)
        return response.json() if response.content else {}

    # replies (POST /zendesk/webhook)
    def agent_comment(self, ticket_id: str, comment_id: str) -> tuple[str, bool, str, str] | None:
        """(text, public, author name, author role) of a ticket's comment, read from the API
        (GET /api/v2/tickets/{id}/comments, newest first; GET /api/v2/users/{id}); None when
        the ticket has no such comment. For the app's webhook body, which carries ids only."""
        wanted = int(comment_id)
        page: dict[str, Any] = self._call("read comments", lambda: self._raw(
            "GET", f"tickets/{int(ticket_id)}/comments", params={"sort_order": "desc"}))
        comment = None
        for _ in range(20):  # the trigger fires at once: the comment is on the first page in practice
            comment = next((c for c in page.get("comments") or [] if c.get("id") == wanted), None)
            next_page = page.get("next_page")
            if comment is not None or not next_page:
                break
            query = dict(parse_qsl(urlsplit(next_page).query))
            page = self._call("read comments", lambda: self._raw("GET", f"tickets/{int(ticket_id)}/comments",
                                                                  params=query))
        if comment is None:
            return None
        author: dict[str, Any] = {}
        if comment.get("author_id"):
            author = self._call("read user", lambda: self._raw("GET", f"users/{int(comment['author_id'])}")).get("user") or {}
        text = comment.get("plain_body") or comment.get("body") or ""
        return (scrub(str(text)).strip(), bool(comment.get("public")), scrub(str(author.get("name") or "")).strip(),
                str(author.get("role") or "").lower())

    def verify_webhook(self, body: bytes, signature: str | None, timestamp: str | None,
                       now: datetime | None = None) -> str | None:
        """None when the call is genuine; else why not (for a 401)."""
        secret = self.config.webhook_secret
        if not secret:
            return "ZENDESK_WEBHOOK_SECRET is not set"
        return verify_any_secret((secret, self.config.app_webhook_secret), body, signature, timestamp, now)


#: Batch size while the backlog is small: a job's time in Zendesk grows with its records
#: (the recorded create_many of 100 tickets: queued → 19 % at 6 s → 65 % at 11 s → completed
#: at 16 s; users and update_many of 100 about 10 s — facetoe/zenpy's betamax cassettes, see
#: tests/fakes/zendesk.py), so three stages of 100 take half a minute. Batches of
#: BULK_SPREAD_JOBS-th of the backlog, at least MIN_JOB_BATCH, run side by side instead.
MIN_JOB_BATCH = 20
BULK_SPREAD_JOBS = MAX_JOBS_IN_FLIGHT // 3
#: Drafts arriving while a run goes on are taken at most this often, so they come in batches
#: worth a job (a storm of 20 posts/s: ~20 a batch) rather than one job per handful — with
#: ~10 s per batch in flight, batches of 10 fill the 30 job slots and the run falls behind.
FEED_SECONDS = 1.0
#: A batch this small (the helpdesk `prefers_bulk` at a steady few posts a second, not a storm)
#: opens its tickets one by one — `POST /api/v2/tickets` answers in a fraction of a second where
#: a create_many job starts after ~4 s — and only its notes go through an update_many job,
#: which the Update Ticket limit does not count. Each ticket still carries its Idempotency-Key.
DIRECT_BATCH_MAX = 4
#: Job status polling: the first look FIRST_POLL_SECONDS after a submission (a small job may
#: be done by then), then each quiet poll waits POLL_BACKOFF times longer, up to the
#: helpdesk's `poll_interval`; a job's own `progress` / `total` shortens the wait to its
#: expected end. One `show_many` call covers every job in flight, so polling costs one request
#: per look whatever the number of jobs (the account's limit is shared with the agents' apps).
FIRST_POLL_SECONDS = 0.5
POLL_BACKOFF = 1.6
STAGES = ("users", "tickets", "notes")
#: Job submissions sent at once (each its own zenpy client: `ZendeskHelpdesk.client`).
SUBMIT_THREADS = 6


@dataclass
class _Batch:
    """≤ JOB_BATCH drafts going through the three stages together."""

    run: "_BulkRun"
    indices: list[int]
    stage: str = "users"  # users → tickets → notes → done
    requesters: list[Requester] = field(default_factory=list)  # created by this batch's users job
    waiting: list[int] = field(default_factory=list)  # indices whose tickets job is next / running
    created: dict[int, int] = field(default_factory=dict)  # index → ticket id, note job next / running
    job_id: str | None = None
    submitted_at: float = 0.0
    direct: bool = False  # tickets opened one by one, only the notes in a job (DIRECT_BATCH_MAX)


class _BulkRun:
    """One bulk run: batches advance stage by stage, each as soon as its previous stage's job
    has ended, with at most MAX_JOBS_IN_FLIGHT jobs of any stage in flight
    (…/ticket-management/job_statuses/ and the job limit in
    https://developer.zendesk.com/api-reference/introduction/rate-limits/#job-limit: "30 jobs
    queued or running"; a 31st is refused with 429 TooManyJobs). Later stages go first, so the
    oldest batches finish first; a batch's tickets job waits only for the users jobs that
    create its own requesters (a requester shared with an earlier batch is created once).
    """

    def __init__(self, helpdesk: ZendeskHelpdesk, drafts: list[TicketDraft],
                 more: Callable[[], list[TicketDraft]] | None,
                 on_result: Callable[[int, TicketRef | HelpdeskError], None] | None) -> None:
        self.helpdesk = helpdesk
        self.drafts: list[TicketDraft] = []
        self.more = more
        self.on_result = on_result
        self.result = BulkCreateResult()
        self.batches: list[_Batch] = []
        self.in_flight: dict[str, _Batch] = {}
        self.pending_users: dict[str, _Batch] = {}  # requester external id → batch creating it
        self.failed_users: set[str] = set()
        self.stopped: HelpdeskError | None = None
        self.delay = min(FIRST_POLL_SECONDS, helpdesk.poll_interval)
        self.fed_at = time.monotonic()
        self.pool: ThreadPoolExecutor | None = None  # for submissions side by side (`_submit_ready`)
        self._add(drafts)

    # --- outcomes ---------------------------------------------------------------------
    def _done(self, index: int, outcome: TicketRef | HelpdeskError) -> None:
        if isinstance(outcome, HelpdeskError):
            self.result.errors[index] = outcome
        else:
            self.result.refs[index] = outcome
        if self.on_result is not None:
            self.on_result(index, outcome)

    def _unsent(self, indices: Sequence[int]) -> None:
        self.result.unsent.extend(indices)

    # --- batches ----------------------------------------------------------------------
    def _add(self, drafts: list[TicketDraft]) -> None:
        if not drafts:
            return
        start = len(self.drafts)
        self.drafts.extend(drafts)
        indices = list(range(start, len(self.drafts)))
        size = max(MIN_JOB_BATCH, min(JOB_BATCH, -(-len(indices) // BULK_SPREAD_JOBS)))
        for offset in range(0, len(indices), size):
            batch = _Batch(self, indices[offset:offset + size])
            if len(indices) <= DIRECT_BATCH_MAX and self._budget_to_spare():
                batch.direct, batch.stage, batch.waiting = True, "tickets", list(batch.indices)
                self.batches.append(batch)
                continue
            known = self.helpdesk._user_ids
            wanted: dict[str, Requester] = {}
            for i in batch.indices:
                requester = self.drafts[i].requester
                if requester.external_id not in known and requester.external_id not in self.pending_users:
                    wanted.setdefault(requester.external_id, requester)
            batch.requesters = list(wanted.values())
            for external_id in wanted:
                self.pending_users[external_id] = batch
            batch.waiting = list(batch.indices)
            if not batch.requesters:
                batch.stage = "tickets"
            self.batches.append(batch)

    def _budget_to_spare(self) -> bool:
        """More than half of the account's per-minute requests left (or not known yet): a few
        tickets may be opened one call each without crowding out a storm's jobs."""
        session = self.helpdesk.session
        return session.limit is None or session.remaining is None or session.remaining > session.limit / 2

    def _ready(self, batch: _Batch) -> bool:
        if batch.job_id is not None or batch.stage == "done":
            return False
        if batch.stage == "tickets":
            # Its requesters must exist; those another batch creates may still be in its job.
            return not any(self.drafts[i].requester.external_id in self.pending_users for i in batch.waiting)
        return True

    def _open_directly(self, batch: _Batch) -> None:
        """A small batch's tickets, one call each; its notes then go in one update_many job."""
        while batch.waiting and self.stopped is None:
            i = batch.waiting[0]
            try:
                ref = self.helpdesk.open_ticket(self.drafts[i])
            except HelpdeskError as exc:
                if exc.status == 429 or exc.retry_after is not None or exc.stop_delivery:
                    self.stopped = exc  # refused before it ran: this one and the rest stay unsent
                    break
                batch.waiting.pop(0)
                self._done(i, exc)  # unknown or refused: the outbox looks it up before any resend
                continue
            batch.waiting.pop(0)
            batch.created[i] = int(ref.ticket_id)
        if not batch.waiting:
            batch.stage = "notes" if batch.created else "done"

    def _submit_ready(self) -> None:
        # A streaming run lives as long as a storm: forget its finished batches, so each pass
        # over the rest stays short.
        self.batches = [b for b in self.batches if b.stage != "done"]
        order = sorted((b for b in self.batches if self._ready(b)),
                       key=lambda b: (-STAGES.index(b.stage), b.indices[0]))
        picked: list[_Batch] = []
        for batch in order:
            if len(self.in_flight) + len(picked) >= MAX_JOBS_IN_FLIGHT or self.stopped is not None:
                break
            if batch.direct and batch.stage == "tickets":
                self._open_directly(batch)
                if batch.stage != "notes" or len(self.in_flight) + len(picked) >= MAX_JOBS_IN_FLIGHT \
                        or self.stopped is not None:
                    continue
            if batch.stage == "tickets":
                unknown = [i for i in batch.waiting if self.drafts[i].requester.external_id in self.failed_users
                           or self.drafts[i].requester.external_id not in self.helpdesk._user_ids]
                if unknown:  # their requester could not be made: nothing of them was sent
                    self._unsent(unknown)
                    batch.waiting = [i for i in batch.waiting if i not in set(unknown)]
                if not batch.waiting:
                    batch.stage = "done"
                    continue
            picked.append(batch)
        if not picked:
            return
        # The submissions go out side by side: each is a round trip (~0.15 s to Zendesk), and
        # after a poll a storm has ~10 stages to start — one after another they held up the
        # loop (and so the next poll and feed) for seconds (issue 17). Every call is awaited
        # and every job it started is tracked, whatever its neighbours' fate.
        outcomes = list(self._pool().map(self._submit, picked)) if len(picked) > 1 else [self._submit(picked[0])]
        refused: HelpdeskError | None = None
        for batch, outcome in zip(picked, outcomes):
            if isinstance(outcome, HelpdeskError):
                refused = refused or outcome
                continue
            batch.job_id = str(outcome.id)
            batch.submitted_at = time.monotonic()
            self.in_flight[batch.job_id] = batch
            self.delay = min(FIRST_POLL_SECONDS, self.helpdesk.poll_interval)  # a fresh job: look soon
        if refused is not None and not (refused.status == 429 and self.in_flight):
            # A 429 while jobs of ours run: too many jobs (or requests) now, those batches are
            # submitted again once ours end. Anything else stops the run.
            self.stopped = refused

    def _submit(self, batch: _Batch) -> Any:
        """One batch's job for its stage: the job status, or the HelpdeskError."""
        stage = batch.stage
        try:
            return self.helpdesk._call(f"{stage} bulk job", lambda: self.helpdesk._submit_job(stage, batch))
        except HelpdeskError as exc:
            return exc

    def _pool(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=SUBMIT_THREADS, thread_name_prefix="zendesk-submit")
        return self.pool

    def _feed(self) -> None:
        """Take further drafts while a job slot is free and nothing stopped us."""
        if self.more is None or self.stopped is not None or time.monotonic() - self.fed_at < FEED_SECONDS:
            return
        if len(self.in_flight) >= MAX_JOBS_IN_FLIGHT or any(self._ready(b) for b in self.batches):
            return
        self.fed_at = time.monotonic()
        self._add(self.more())

    # --- the loop ---------------------------------------------------------------------
    def run(self) -> BulkCreateResult:
        try:
            self._loop()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)  # every submission is answered before we finish
        self._finish()
        return self.result

    def _loop(self) -> None:
        helpdesk = self.helpdesk
        while True:
            # The stages that the last poll advanced go first; then new drafts, if a job slot
            # is left, go out in the same turn. (Feeding first never fed while any batch was
            # ready — and after most polls one is — so a storm's posts waited ~10 s between
            # feeds and came in batches of 200: issue 17.)
            self._submit_ready()
            self._feed()
            self._submit_ready()
            if not self.in_flight:
                if self.stopped is None and self.more is not None and not any(self._ready(b) for b in self.batches):
                    before = len(self.drafts)
                    self._add(self.more())
                    if len(self.drafts) > before:
                        continue
                break
            helpdesk.sleep(self.delay)
            try:
                # GET /api/v2/job_statuses/show_many?ids=…: one call for every job in flight
                # (zenpy answers a dict {"job_statuses": [JobStatus, …]}).
                answer = helpdesk._call("job status", lambda: helpdesk.client.job_status(ids=list(self.in_flight)))
                statuses = answer.get("job_statuses", []) if isinstance(answer, dict) else list(answer)
            except HelpdeskError as exc:
                if not exc.retryable or self._overdue():
                    self._give_up(f"outcome unknown ({exc.message})")
                    self.stopped = self.stopped or (exc if not exc.retryable else None)
                    break
                # Honour Retry-After on a 429; otherwise back off as after a quiet poll.
                helpdesk.sleep(exc.retry_after if exc.retry_after is not None else self.delay)
                self.delay = min(self.delay * POLL_BACKOFF, helpdesk.poll_interval)
                continue
            ended = 0
            eta: list[float] = []
            for status in statuses:
                batch = self.in_flight.get(str(status.id))
                if batch is None:
                    continue
                if status.status in ("queued", "working"):
                    eta.append(self._eta(batch, status))
                    continue
                del self.in_flight[str(status.id)]
                batch.job_id = None
                self._ended(batch, status)
                ended += 1
            if ended:
                self.delay = min(FIRST_POLL_SECONDS, helpdesk.poll_interval)
            else:
                self.delay = min(self.delay * POLL_BACKOFF, helpdesk.poll_interval)
            if eta:  # a job that says how far it is: look again when the first should be done
                self.delay = min(self.delay, max(min(eta), min(FIRST_POLL_SECONDS, helpdesk.poll_interval)))
            if self._overdue():
                self._give_up(None)
                break

    @staticmethod
    def _eta(batch: _Batch, status: Any) -> float:
        """Seconds until this job should end, from its progress so far (inf: no estimate)."""
        progress, total = getattr(status, "progress", None), getattr(status, "total", None)
        elapsed = time.monotonic() - batch.submitted_at
        if not isinstance(progress, int) or not isinstance(total, int) or progress <= 0 or total <= progress:
            return float("inf")
        return elapsed * (total - progress) / progress

    def _overdue(self) -> bool:
        horizon = time.monotonic() - self.helpdesk.job_timeout
        return any(batch.submitted_at < horizon for batch in self.in_flight.values())

    def _give_up(self, why: str | None) -> None:
        """Jobs still in flight when we stop polling may yet run in Zendesk: their rows wait out
        the job horizon before their lookup (see pipeline.BULK_LEASE)."""
        for job_id, batch in list(self.in_flight.items()):
            message = (f"{batch.stage} job {job_id}: {why}" if why else
                       f"{batch.stage} job {job_id} still running after {self.helpdesk.job_timeout:.0f} s")
            error = HelpdeskError(message, retryable=True, retry_after=_horizon())
            if batch.stage == "users":
                # A users job sends no ticket: its drafts were never sent (users are idempotent).
                for external_id in [r.external_id for r in batch.requesters]:
                    self.pending_users.pop(external_id, None)
                    self.failed_users.add(external_id)
                self._unsent(batch.waiting)
            else:
                for i in (batch.waiting if batch.stage == "tickets" else sorted(batch.created)):
                    self._done(i, error)
            batch.stage = "done"
        self.in_flight.clear()

    def _finish(self) -> None:
        """What never reached its next stage: tickets not created are unsent; tickets created
        whose note job never ran are retryable errors (the ticket exists; the retry finds it
        and adds the note exactly once)."""
        for batch in self.batches:
            if batch.stage in ("users", "tickets"):
                self._unsent(batch.waiting)
            if batch.stage != "done":  # tickets that exist (a direct batch stopped midway, or notes never sent)
                for i in sorted(batch.created):
                    self._done(i, HelpdeskError(f"ticket #{batch.created[i]} was created but its analysis note "
                                                "is not confirmed", retryable=True))
            batch.stage = "done"
        self.result.stopped = self.stopped

    def _ended(self, batch: _Batch, status: Any) -> None:
        results = [r if isinstance(r, dict) else _as_dict(r) for r in (status.results or [])]
        failed = None
        if not (status.status == "completed" or results):
            failed = HelpdeskError(f"{batch.stage} job {status.id} {status.status}: {status.message or ''}",
                                   retryable=True)
        if batch.stage == "users":
            matched = _match_users(batch.requesters, results) if failed is None else {}
            self.helpdesk._user_ids.update(matched)
            for requester in batch.requesters:
                self.pending_users.pop(requester.external_id, None)
                if requester.external_id not in matched:
                    self.failed_users.add(requester.external_id)
            batch.stage = "tickets"
        elif batch.stage == "tickets":
            drafts = self.drafts
            if failed is not None:
                for i in batch.waiting:
                    self._done(i, failed)
            else:
                by_index = {e.get("index"): e for e in results if isinstance(e, dict)}
                for position, i in enumerate(batch.waiting):
                    entry = by_index.get(position)
                    if entry and entry.get("id") and not entry.get("error"):
                        batch.created[i] = int(entry["id"])
                    elif entry and entry.get("error"):
                        # Nothing was created for it. Retryable, so the outbox sends it again one
                        # by one (a lookup first, then `POST /api/v2/tickets` with its own answer):
                        # a refusal that came from the bulk call itself never loses the post, and
                        # one that is the ticket's own fault is refused again there and marked
                        # failed with the field errors for the admin to see.
                        self._done(i, HelpdeskError(
                            f"ticket {drafts[i].external_id}: Zendesk refused it in a bulk job "
                            f"({entry.get('error')}); retrying it alone",
                            retryable=True, field_errors=_field_errors(entry.get("details")), status=422))
                    else:  # no result for it: outcome unknown, look up before re-sending
                        self._done(i, HelpdeskError(
                            f"ticket {drafts[i].external_id}: the bulk job reported no result for it", retryable=True))
            batch.waiting = []
            batch.stage = "notes" if batch.created else "done"
        else:
            confirmed: set[int] = set()
            if failed is None:
                # update_many results are {id, action, success, status} with no `index`
                # (…/job_statuses/#results, UpdateResourceResult): match them by ticket id.
                by_id = {str(e["id"]): e for e in results if isinstance(e, dict) and e.get("id") is not None}
                confirmed = {i for i in batch.created if (e := by_id.get(str(batch.created[i]))) and _update_succeeded(e)}
            for i in sorted(batch.created):
                if i in confirmed:
                    self._done(i, self.helpdesk._ref(batch.created[i]))
                else:
                    self._done(i, HelpdeskError(f"ticket #{batch.created[i]} was created but its analysis note is not "
                                                "confirmed" + (f": {failed.message}" if failed else ""), retryable=True))
            batch.created = {}
            batch.stage = "done"


SLA_TITLE = "Yorisoi ソーシャル投稿 / social posts"


def verify_any_secret(secrets: Sequence[str | None], body: bytes, signature: str | None, timestamp: str | None,
                      now: datetime | None = None) -> str | None:
    """None when the call is signed with one of `secrets` (a hand-made webhook's, the app's)."""
    problem = "no signing secret"
    for secret in dict.fromkeys(s for s in secrets if s):
        problem = verify_webhook_signature(secret, body, signature, timestamp, now) or ""
        if not problem:
            return None
    return problem


def verify_webhook_signature(secret: str, body: bytes, signature: str | None, timestamp: str | None,
                             now: datetime | None = None) -> str | None:
    """Zendesk's webhook signature: base64(HMAC-SHA256(secret, timestamp + raw body)).

    https://developer.zendesk.com/documentation/webhooks/verifying/ — not hex, no separator.
    Returns None when it matches and the timestamp is fresh, else the reason.
    """
    if not signature or not timestamp:
        return "missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp"
    expected = base64.b64encode(hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + body,
                                         hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace")):
        return "bad X-Zendesk-Webhook-Signature (expected base64 HMAC-SHA256 of timestamp + body with the signing secret)"
    sent = _parse_timestamp(timestamp)
    if sent is None:
        return "unreadable X-Zendesk-Webhook-Signature-Timestamp"
    now = now or datetime.now(timezone.utc)
    if abs(now - sent) > WEBHOOK_MAX_AGE:
        return f"stale webhook: signed at {sent.isoformat()}, more than {int(WEBHOOK_MAX_AGE.total_seconds() // 60)} minutes from now"
    return None


def _parse_timestamp(raw: str) -> datetime | None:
    raw = raw.strip()
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw), timezone.utc)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class AgentReply:
    ticket_id: str
    comment_id: str
    agent: str
    #: None for the Zendesk app's body (WEBHOOK_BODY_TEMPLATE_V2): the text is read from the API.
    text: str | None

    @property
    def dedupe_key(self) -> str:
        return f"zendesk:{self.ticket_id}:{self.comment_id}"


class WebhookBodyError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


#: The JSON body the admin pastes into the trigger's webhook action (docs/zendesk.md).
#: Placeholders: support.zendesk.com/hc/en-us/articles/4408886858138 (ticket.id, current_user,
#: the Liquid ticket.comments list, newest first).
WEBHOOK_BODY_TEMPLATE = """{
  "ticket_id": "{{ticket.id}}",
  "comment_id": "{% for comment in ticket.comments limit:1 %}{{comment.id}}{% endfor %}",
  "public": "{% for comment in ticket.comments limit:1 %}{{comment.is_public}}{% endfor %}",
  "text": "{% for comment in ticket.comments limit:1 %}{{comment.value}}{% endfor %}",
  "agent": "{{current_user.name}}",
  "author_role": "{{current_user.role}}"
}"""


#: The body the Zendesk app's reply trigger sends (connector/helpdesks/zendesk/app/). Every value
#: is a number, a boolean or a role word, so nothing an agent types can break the JSON: a reply
#: with `"` or a line break in it used to end in `400 body: not valid JSON` with the body above.
#: The connector reads the comment itself (text, public, author) from the Zendesk API by id.
WEBHOOK_BODY_TEMPLATE_V2 = """{
  "format": "yorisoi-2",
  "ticket_id": "{{ticket.id}}",
  "comment_id": "{% for comment in ticket.comments limit:1 %}{{comment.id}}{% endfor %}",
  "public": "{% for comment in ticket.comments limit:1 %}{{comment.is_public}}{% endfor %}",
  "author_id": "{{current_user.id}}"
}"""


def _json_object(body: bytes) -> dict[str, Any]:
    """A webhook body as a JSON object, parsed with the nesting bound every inbound route has
    (connector/jsonsafe.py). Raises WebhookBodyError naming the body."""
    try:
        data = jsonsafe.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookBodyError("body", f"not valid JSON ({exc}); paste the body from docs/zendesk.md") from None
    if not isinstance(data, dict):
        raise WebhookBodyError("body", "should be a JSON object")
    return data


def parse_agent_reply(body: bytes) -> AgentReply | None:
    """The webhook body → the agent's reply; None when it is to be ignored (a private note,
    or a comment by an end user). Raises WebhookBodyError naming the bad field."""
    data = _json_object(body)

    def text(name: str, required: bool = True) -> str:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise WebhookBodyError(name, "is missing or empty")
            return ""
        if not isinstance(value, (str, int, bool)):
            raise WebhookBodyError(name, "should be a string")
        return scrub(str(value)).strip()

    ticket_id = text("ticket_id")
    if not is_number_id(ticket_id):
        raise WebhookBodyError("ticket_id", f"should be a ticket number, not {ticket_id[:40]!r}")
    if data.get("format") == "yorisoi-2":
        # The app's body: ids only; whether it is public and who wrote it come from the API.
        comment_id = text("comment_id")
        if not is_number_id(comment_id):
            raise WebhookBodyError("comment_id", f"should be a comment number, not {comment_id[:40]!r}")
        if text("public", required=False).lower() in ("false", "0", "no"):
            return None
        return AgentReply(ticket_id=ticket_id, comment_id=comment_id, agent="", text=None)
    public = text("public", required=False).lower()
    role = text("author_role", required=False).lower()
    if public in ("false", "0", "no") or (role and role not in AGENT_ROLES):
        return None
    comment_id = text("comment_id")
    if not is_number_id(comment_id):
        raise WebhookBodyError("comment_id", f"should be a comment number, not {comment_id[:40]!r}")
    return AgentReply(ticket_id=ticket_id, comment_id=comment_id, agent=text("agent")[:200], text=text("text"))


def _same_policy(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    def metrics(policy: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((m.get("priority"), m.get("metric"), int(m.get("target") or 0), bool(m.get("business_hours")))
                      for m in policy.get("policy_metrics") or [])
    return (current.get("filter") == wanted["filter"] and metrics(current) == metrics(wanted)
            and (current.get("description") or "") == wanted["description"])


def _audit_key(audit: Any) -> str | None:
    metadata = getattr(audit, "metadata", None)
    if metadata is None:
        return None
    custom = metadata.get("custom") if hasattr(metadata, "get") else getattr(metadata, "custom", None)
    if custom is None:
        return None
    return custom.get(DEDUPE_METADATA_KEY) if hasattr(custom, "get") else None


def _update_succeeded(entry: Mapping[str, Any]) -> bool:
    """An update_many result that says the update was applied (not a FailedResult)."""
    return not entry.get("error") and entry.get("success") is not False and entry.get("status") != "Failed"


def _match_users(chunk: Sequence[Requester], results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """external id → user id from a users/create_or_update_many job's results.

    Real results are `{id, status, email?}`, one per submitted user, in request order, with no
    `index` and no `external_id` (…/job_statuses/#results; the recorded answers). A result is
    placed by the identity it returns (`external_id`, or `index` where one is given) and
    otherwise by its position — which is only trusted when there is exactly one result per user.
    """
    by_external_id = {r.external_id.lower(): r for r in chunk}
    positional = len(results) == len(chunk)
    found: dict[str, int] = {}
    for position, entry in enumerate(results):
        if not isinstance(entry, Mapping) or not entry.get("id") or entry.get("error") \
                or entry.get("success") is False or entry.get("status") == "Failed":
            continue
        requester: Requester | None = None
        if entry.get("external_id"):
            requester = by_external_id.get(str(entry["external_id"]).lower())
        elif isinstance(entry.get("index"), int) and 0 <= entry["index"] < len(chunk):
            requester = chunk[entry["index"]]
        elif positional:
            requester = chunk[position]
        if requester is not None:
            found[requester.external_id] = int(entry["id"])
    return found


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _horizon() -> float:
    return BULK_LEASE.total_seconds()


def _apis(client: Zenpy) -> Iterator[BaseApi]:
    seen: set[int] = set()
    for value in vars(client).values():
        for api in (value, *vars(value).values()) if hasattr(value, "__dict__") else (value,):
            if isinstance(api, BaseApi) and id(api) not in seen:
                seen.add(id(api))
                yield api


def make_zendesk(env: Mapping[str, str]) -> ZendeskHelpdesk:
    return ZendeskHelpdesk(ZendeskConfig.from_env(env))


#: Zendesk's statuses, and the labels {{ticket.status}} renders in English and Japanese
#: accounts (support.zendesk.com/hc/en-us/articles/4408886858138, ticket.status).
_STATUS_NAMES = {**{s: s for s in TICKET_STATUSES}, "on-hold": "hold", "on hold": "hold",
                 "新規": "new", "オープン": "open", "保留中": "pending", "待機中": "hold", "解決済み": "solved",
                 "終了": "closed", "終了済み": "closed"}


def normalize_status(raw: Any) -> str | None:
    return _STATUS_NAMES.get(str(raw or "").strip().lower()) if raw is not None else None


def _iso(raw: Any) -> datetime | None:
    return _parse_timestamp(str(raw)) if raw else None


def _closed_refusal(exc: HelpdeskError) -> bool:
    """Zendesk's 422 for an update of a closed ticket: RecordInvalid with
    details.status "Status: closed prevents ticket update"."""
    text = " ".join([exc.message, *exc.field_errors.values()]).lower()
    return "closed prevents ticket update" in text


def _redact_all(html_body: str) -> str:
    """Every run of text wrapped in <redact>, links and images given the `redact` attribute:
    the two forms the Agent Workspace redaction documents."""
    out = []
    for part in re.split(r"(<[^>]+>)", html_body):
        if part.startswith("<"):
            if re.match(r"<(a|img)\b", part, re.I) and not re.search(r"\sredact\b", part):
                part = re.sub(r"\s*/?>$", lambda m: " redact" + m.group(0).strip(), part)
            out.append(part)
        elif part.strip():
            out.append(f"<redact>{part}</redact>")
        else:
            out.append(part)
    return "".join(out)


#: The JSON body of the status trigger's webhook action (docs/zendesk.md → status).
STATUS_BODY_TEMPLATE = """{
  "ticket_id": "{{ticket.id}}",
  "status": "{{ticket.status}}",
  "updated_at": "{{ticket.updated_at_with_timestamp}}",
  "comment_public": "{% for comment in ticket.comments limit:1 %}{{comment.is_public}}{% endfor %}",
  "author_role": "{{current_user.role}}"
}"""


def parse_status_webhook(body: bytes, received_at: datetime) -> StatusUpdate:
    """The status trigger's body → a StatusUpdate. The trigger fires on a status change and
    on a public agent comment; the latter also records the first public reply time.
    Raises WebhookBodyError naming the bad field."""
    data = _json_object(body)
    ticket_id = scrub(str(data.get("ticket_id") or "")).strip()
    if not is_number_id(ticket_id):
        raise WebhookBodyError("ticket_id", f"should be a ticket number, not {ticket_id[:40]!r}")
    status = normalize_status(scrub(str(data.get("status") or "")))
    if status is None:
        raise WebhookBodyError("status", f"unknown status {str(data.get('status'))[:40]!r} "
                                         f"(expected one of {', '.join(TICKET_STATUSES)})")
    changed = _iso(scrub(str(data.get("updated_at") or ""))) or received_at
    public = str(data.get("comment_public") or "").strip().lower() in ("true", "1", "yes")
    role = str(data.get("author_role") or "").strip().lower()
    reply_at = changed if public and role in AGENT_ROLES else None
    return StatusUpdate(ticket_id, status, changed, reply_at)
