"""A stateful fake of the Zendesk Support API, at the HTTP level, for tests and demos.

It keeps users, tickets, comments, audits, background jobs and SLA policies in memory and
answers with bodies shaped like the documented ones, so the real client code (zenpy over
requests) runs against it unchanged:

- tickets: developer.zendesk.com/api-reference/ticketing/tickets/tickets/
- create_many / update_many + job statuses: …/ticketing/ticket-management/job_statuses/
- users create_or_update(_many): …/ticketing/users/users/
- SLA policies: …/ticketing/business-rules/sla_policies/
- errors and rate-limit headers: …/api-reference/introduction/rate-limits ,
  …/ticketing/introduction/#idempotency

Two ways to run it:
- in pytest: `httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)`
  (see tests/test_zendesk.py's fixture);
- standalone on the loopback interface, for the closing demo and benchmarks:
  `python -m tests.fakes.zendesk --port 8089`; `GET /__fake/state` shows what it holds.

Fault injection (tests): `fail_next(...)` answers the next matching calls with a given status;
`slow_next(...)` processes the next matching call and then stalls longer than the client's
timeout (an unknown outcome); `reject_ticket` refuses tickets with a 422 like Zendesk's.

Outage modes, for tests with real connector processes and for benchmarks (set them with
`set_mode(...)` or `POST /__fake/mode {"mode": …, "seconds": …, "latency": …}`):
`ok`; `error` — every API call answers 500; `slow` — every call is processed, then the answer
stalls `seconds` (longer than ZENDESK_TIMEOUT: the client gives up, the outcome is unknown).
`latency` adds that many seconds to every call (a far-away Zendesk). "Down" (connection
refused) is the server not running: see tests/fakes/base.py's LoopbackServer.
The rate limit (`rate_limit` per minute, 700 like Zendesk Enterprise; `--rate-limit`) answers
429 with Retry-After until the minute's window resets.

Realistic timing (`FakeZendesk.realistic()`, `--realistic`; the benchmarks use it). Tests keep
the instant defaults (a job runs at its second poll) so they stay fast. The figures come from
real Zendesk answers recorded by facetoe/zenpy's betamax cassettes (tests/test_api/betamax/,
2023; ../shared/specs/zendesk/recorded_job_results.json is extracted from the same
recordings):
- a call's own time: `X-Runtime` 0.06–0.28 s (median ≈ 0.1 s) → `latency` 0.15 s per call
  (server time plus a round trip);
- bulk jobs run in the background and report `progress` as they go — tickets/create_many of
  100: queued, 19/100 at +6 s, 65/100 at +11 s, completed by +16 s (≈ 3.9 s before the first
  record, then 0.11 s per record); tickets/update_many of 100: 31 at +5 s, 98 at +11 s (≈ 2.2 s,
  then 0.09 s per record); users/create_many of 100: 53 at +5 s, completed by +11 s (≈ 0.2 s,
  then 0.09 s per record) → `JOB_TIMING`;
- the Update Ticket endpoint's own limit, 100 requests per minute per account on top of the
  account's 700 (developer.zendesk.com/api-reference/introduction/rate-limits/#endpoint-rate-limits;
  support.zendesk.com/hc/en-us/articles/8638126078234) → `update_rate_limit` 100; a 429 from it
  carries Retry-After like the account limit's;
- at most 30 jobs queued or running per account (…/rate-limits/#job-limit): the 31st is
  refused with 429 TooManyJobs (always on).
"""
from __future__ import annotations

import argparse
import base64
import html
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from tests.fakes.base import Fault, serve_wsgi

#: Zendesk's own answer for a request without valid credentials.
UNAUTHORIZED = {"error": "Couldn't authenticate you"}
FORBIDDEN = {"error": "Forbidden",
             "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")




#: Per-call time of the realistic fake (X-Runtime of the recorded answers plus a round trip).
REALISTIC_LATENCY = 0.15
#: Recorded job timing per kind: (seconds before the first record, seconds per record).
JOB_TIMING = {"create": (3.9, 0.11), "update": (2.2, 0.09), "users": (0.2, 0.09)}
#: Update Ticket endpoint limit per minute per account.
UPDATE_TICKET_LIMIT = 100


@dataclass
class Stall:
    method: str
    path: re.Pattern[str]
    seconds: float
    times: int


@dataclass
class FakeZendesk:
    subdomain: str = "acme"
    #: Basic-auth user (`email/token`) and token, or a bearer token, that the fake accepts.
    email: str = "agent@example.com"
    token: str = "test-token"
    oauth_token: str | None = None
    #: X-Rate-Limit per minute (Zendesk Enterprise is 700); the window resets each minute.
    rate_limit: int = 700
    #: The account id Zendesk puts in tickets/create_many results.
    account_id: int = 90001
    #: Polls of a job status before the job runs (0: done at the first poll).
    job_polls_before_done: int = 1
    #: Jobs timed like a real Zendesk's (see the module docstring): kind → (seconds before the
    #: first record, seconds per record). None: the poll count above decides.
    job_timing: dict[str, tuple[float, float]] | None = None
    #: Update Ticket (`PUT /api/v2/tickets/{id}`) requests per minute per account (Zendesk: 100);
    #: None: only the account limit.
    update_rate_limit: int | None = None
    #: A ticket for which this returns a details dict is refused with 422 RecordInvalid.
    reject_ticket: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    audits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sla_policies: dict[int, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    log: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    max_jobs_in_flight_seen: int = 0
    #: Outage mode (see module docstring): ok | error | slow, and its stall in seconds.
    mode: str = "ok"
    mode_seconds: float = 0.0
    latency: float = 0.0
    #: Calls answered 429 by the rate limit (for benchmarks: "within the rate limit").
    refused_429: int = 0
    created_times: dict[int, float] = field(default_factory=dict)
    #: Custom ticket fields (`GET /api/v2/ticket_fields`), by id, in Zendesk's TicketField shape.
    ticket_fields: dict[int, dict[str, Any]] = field(default_factory=lambda: {
        360001: {"id": 360001, "type": "tagger", "title": "Sentiment", "active": True, "removable": True,
                 "custom_field_options": [{"id": 1, "name": "negative", "value": "sentiment_negative"}]},
        360002: {"id": 360002, "type": "text", "title": "Intent", "active": True, "removable": True}})
    #: Ticket metric sets (…/tickets/ticket_metrics/), sideloaded by the incremental export.
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Change order of tickets, for the incremental export's cursor (opaque to clients).
    change_seq: dict[int, int] = field(default_factory=dict)
    #: Tickets per incremental export page (Zendesk: up to 1000).
    export_page_size: int = 1000

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._window = (int(time.time() // 60), 0)
        self._update_window = (int(time.time() // 60), 0)

    @classmethod
    def realistic(cls, **kwargs: Any) -> "FakeZendesk":
        """A fake timed like the real service (module docstring): call latency, job durations
        growing with their records, the Update Ticket endpoint limit."""
        return cls(**{"latency": REALISTIC_LATENCY, "job_timing": dict(JOB_TIMING),
                      "update_rate_limit": UPDATE_TICKET_LIMIT, **kwargs})

    # --- test helpers -------------------------------------------------------------------
    def serve_on(self, httpserver: Any) -> "FakeZendesk":
        """Answer every request to pytest-httpserver's `httpserver` (loopback) as this fake."""
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.handle)
        return self

    def fail_next(self, method: str, path: str, status: int, body: Any = None,
                  headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method.upper(), re.compile(path), status, body, headers or {}, times))

    def slow_next(self, method: str, path: str, seconds: float, times: int = 1) -> None:
        self.stalls.append(Stall(method.upper(), re.compile(path), seconds, times))

    def set_mode(self, mode: str, seconds: float = 0.0, latency: float | None = None) -> None:
        if mode not in ("ok", "error", "slow"):
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self.mode, self.mode_seconds = mode, seconds
            if latency is not None:
                self.latency = latency

    def calls(self, method: str | None = None, path: str | None = None) -> list[tuple[str, str, dict[str, str], Any]]:
        return [c for c in self.log if (method is None or c[0] == method)
                and (path is None or re.search(path, c[1]))]

    def agent(self, name: str = "Agent Sato") -> int:
        """An agent user (for agents' comments written in Zendesk)."""
        for user in self.users.values():
            if user.get("role") == "agent" and user.get("name") == name:
                return int(user["id"])
        user, _ = self._upsert_user({"name": name, "role": "agent", "email": f"{name.split()[-1].lower()}@example.com"})
        return int(user["id"])

    def agent_comment(self, ticket_id: int, body: str, public: bool = True, status: str | None = None) -> None:
        """An agent answers in Zendesk itself (not through Yorisoi)."""
        with self._lock:
            data: dict[str, Any] = {"comment": {"body": body, "public": public, "author_id": self.agent()}}
            if status:
                data["status"] = status
            self._update_ticket(self.tickets[ticket_id], data)

    def set_status(self, ticket_id: int, status: str) -> None:
        """An agent changes the status (closing bypasses the closed-ticket lock, as Zendesk's
        automation that closes solved tickets does)."""
        with self._lock:
            ticket = self.tickets[ticket_id]
            self._status_changed(ticket, status)

    def ticket_by_external_id(self, external_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tickets.values() if t["external_id"] == external_id]

    # --- HTTP ---------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = re.sub(r"\.json$", "", request.path)
        body = request.get_json(silent=True) if request.data else None
        with self._lock:
            self.log.append((request.method, path, dict(request.headers), body))
        stall = self._take(self.stalls, request.method, path)
        if path == "/__fake/mode" and request.method == "POST":
            self.set_mode(str((body or {}).get("mode", "ok")), float((body or {}).get("seconds") or 0),
                          (body or {}).get("latency"))
            return self._json(200, {"mode": self.mode, "seconds": self.mode_seconds, "latency": self.latency})
        if path == "/__fake/tickets":
            with self._lock:
                return self._json(200, {"tickets": [
                    {"id": t["id"], "external_id": t["external_id"], "created_at": t["created_at"],
                     "created": self.created_times.get(t["id"]),
                     "notes": sum(1 for a in self.audits.get(t["id"], [])
                                  if (a.get("metadata") or {}).get("custom", {}).get("yorisoi_dedupe_key"))}
                    for t in self.tickets.values()]})
        if path.startswith("/__fake/"):
            return self._json(200, self.state())
        if self.latency:
            time.sleep(self.latency)
        if not self._authorized(request):
            return self._json(401, UNAUTHORIZED)
        if self.mode == "error":
            return self._json(500, {"error": "InternalServerError", "description": "fake outage"})
        fault = self._take(self.faults, request.method, path)
        if fault is not None:
            return self._json(fault.status, fault.body or {"error": "fault"}, fault.headers)
        limited = self._count_rate()
        if limited is None and request.method == "PUT" and re.fullmatch(r"/api/v2/tickets/\d+", path):
            limited = self._count_update_rate()
        if limited is not None:
            return limited
        with self._lock:
            status, payload, headers = self._route(request, path, body)
        if stall is not None:
            time.sleep(stall.seconds)  # processed, but the client gives up first
        elif self.mode == "slow":
            time.sleep(self.mode_seconds)
        return self._json(status, payload, {**headers, **self._rate_headers()})

    def _take(self, queue: list[Any], method: str, path: str) -> Any:
        with self._lock:
            for item in queue:
                if item.method == method and item.path.search(path):
                    item.times -= 1
                    if item.times <= 0:
                        queue.remove(item)
                    return item
        return None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.oauth_token and header == f"Bearer {self.oauth_token}":
            return True
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _count_rate(self) -> Response | None:
        with self._lock:
            minute, used = self._window
            now_minute = int(time.time() // 60)
            if now_minute != minute:
                minute, used = now_minute, 0
            if used >= self.rate_limit:
                self._window = (minute, used)
                self.refused_429 += 1
                return self._json(429, {"error": "APIRateLimitExceeded"},
                                  {"Retry-After": str(60 - int(time.time()) % 60), **self._rate_headers()})
            self._window = (minute, used + 1)
        return None

    def _count_update_rate(self) -> Response | None:
        """The Update Ticket endpoint's own per-minute window (update_rate_limit)."""
        if self.update_rate_limit is None:
            return None
        with self._lock:
            minute, used = self._update_window
            now_minute = int(time.time() // 60)
            if now_minute != minute:
                minute, used = now_minute, 0
            if used >= self.update_rate_limit:
                self.refused_429 += 1
                return self._json(429, {"error": "APIRateLimitExceeded"},
                                  {"Retry-After": str(60 - int(time.time()) % 60), **self._rate_headers()})
            self._update_window = (minute, used + 1)
        return None

    def _rate_headers(self) -> dict[str, str]:
        _, used = self._window
        return {"X-Rate-Limit": str(self.rate_limit), "X-Rate-Limit-Remaining": str(max(0, self.rate_limit - used)),
                "ratelimit-reset": str(60 - int(time.time()) % 60)}

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False), status=status,
                        headers=headers or {}, content_type="application/json; charset=utf-8")

    def _url(self, request: Request, path: str) -> str:
        return f"{request.host_url.rstrip('/')}{path}.json"

    # --- routes -------------------------------------------------------------------------
    def _route(self, request: Request, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        m = request.method
        if path == "/api/v2/users/create_or_update" and m == "POST":
            user, created = self._upsert_user((body or {}).get("user") or {})
            return (201 if created else 200), {"user": user}, {}
        if path == "/api/v2/users/create_or_update_many" and m == "POST":
            return self._job(request, "users", (body or {}).get("users") or [])
        if path == "/api/v2/users/show_many" and m == "GET":
            wanted = {unquote(x).lower() for x in request.args.get("external_ids", "").split(",") if x}
            return 200, {"users": [u for u in self.users.values() if (u.get("external_id") or "").lower() in wanted],
                         "next_page": None, "previous_page": None}, {}
        if path == "/api/v2/users/me" and m == "GET":
            return 200, {"user": {"id": 1, "url": f"{request.host_url.rstrip('/')}/api/v2/users/1.json",
                                  "name": "Yorisoi Agent", "email": self.email, "role": "admin", "active": True,
                                  "verified": True, "created_at": "2026-01-01T00:00:00Z",
                                  "updated_at": "2026-01-01T00:00:00Z"}}, {}
        if path == "/api/v2/ticket_fields" and m == "GET":
            host = request.host_url.rstrip("/")
            return 200, {"ticket_fields": [dict(f, url=f"{host}/api/v2/ticket_fields/{i}.json")
                                           for i, f in sorted(self.ticket_fields.items())],
                         "next_page": None, "previous_page": None, "count": len(self.ticket_fields)}, {}
        if (g := re.fullmatch(r"/api/v2/users/(\d+)", path)) and m == "GET":
            user = self.users.get(int(g[1]))
            return (200, {"user": user}, {}) if user else (404, {"error": "RecordNotFound", "description": "Not found"}, {})
        if path == "/api/v2/tickets" and m == "POST":
            return self._create_ticket_call(request, (body or {}).get("ticket") or {})
        if path == "/api/v2/tickets" and m == "GET":
            wanted = unquote(request.args.get("external_id", "")) or None
            found = [t for t in self.tickets.values() if wanted is None or t["external_id"] == wanted]
            return 200, {"tickets": found, "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
                         "links": {"next": None, "prev": None}}, {}
        if path == "/api/v2/tickets/create_many" and m == "POST":
            return self._job(request, "create", (body or {}).get("tickets") or [])
        if path == "/api/v2/tickets/update_many" and m == "PUT":
            return self._job(request, "update", (body or {}).get("tickets") or [])
        if g := re.fullmatch(r"/api/v2/tickets/(\d+)(/comments|/audits)?", path):
            ticket = self.tickets.get(int(g[1]))
            if ticket is None:
                return 404, {"error": "RecordNotFound", "description": "Not found"}, {}
            if g[2] == "/comments" and m == "GET":
                return 200, {"comments": self.comments[ticket["id"]], "next_page": None, "previous_page": None,
                             "count": len(self.comments[ticket["id"]])}, {}
            if g[2] == "/audits" and m == "GET":
                return 200, {"audits": self.audits[ticket["id"]], "next_page": None, "previous_page": None,
                             "count": len(self.audits[ticket["id"]])}, {}
            if g[2] is None and m == "GET":
                return 200, {"ticket": ticket}, {}
            if g[2] is None and m == "PUT":
                return self._update_ticket(ticket, (body or {}).get("ticket") or {})
        if path == "/api/v2/incremental/tickets/cursor" and m == "GET":
            return self._incremental_export(request)
        if (g := re.fullmatch(r"/api/v2/comment_redactions/(\d+)", path)) and m == "PUT":
            return self._redact(int(g[1]), body or {})
        if path == "/api/v2/job_statuses/show_many" and m == "GET":
            ids = [i for i in request.args.get("ids", "").split(",") if i]
            return 200, {"job_statuses": [self._poll(i) for i in ids if i in self.jobs]}, {}
        if (g := re.fullmatch(r"/api/v2/job_statuses/([\w-]+)", path)) and m == "GET":
            if g[1] not in self.jobs:
                return 404, {"error": "RecordNotFound", "description": "Not found"}, {}
            return 200, {"job_status": self._poll(g[1])}, {}
        if path == "/api/v2/slas/policies" and m == "GET":
            return 200, {"sla_policies": sorted(self.sla_policies.values(), key=lambda p: p["position"]),
                         "next_page": None, "previous_page": None, "count": len(self.sla_policies)}, {}
        if path == "/api/v2/slas/policies" and m == "POST":
            return self._save_policy(None, (body or {}).get("sla_policy") or {})
        if (g := re.fullmatch(r"/api/v2/slas/policies/(\d+)", path)) and m == "PUT":
            if int(g[1]) not in self.sla_policies:
                return 404, {"error": "RecordNotFound", "description": "Not found"}, {}
            return self._save_policy(int(g[1]), (body or {}).get("sla_policy") or {})
        return 404, {"error": "InvalidEndpoint", "description": f"Not found: {m} {path}"}, {}

    # users
    def _upsert_user(self, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        external_id = data.get("external_id")
        for user in self.users.values():
            if external_id and (user.get("external_id") or "").lower() == str(external_id).lower():
                user.update({k: v for k, v in data.items() if k != "id"}, updated_at=_now())
                return user, False
        user_id = next(self._ids)
        user = {"id": user_id, "url": f"/api/v2/users/{user_id}.json", "name": data.get("name") or "Unknown",
                "email": data.get("email"), "external_id": external_id, "role": data.get("role") or "end-user",
                "verified": bool(data.get("verified")), "created_at": _now(), "updated_at": _now(),
                "tags": [], "user_fields": {}, "active": True}
        user.update({k: v for k, v in data.items() if k not in ("id",)})
        self.users[user_id] = user
        return user, True

    # tickets
    def _validate(self, data: dict[str, Any]) -> dict[str, Any] | None:
        details: dict[str, Any] = {}
        if not (data.get("comment") or {}).get("body") and not (data.get("comment") or {}).get("html_body"):
            details["base"] = [{"description": "Description: cannot be blank", "error": "BlankValue"}]
        if data.get("priority") not in (None, "urgent", "high", "normal", "low"):
            details["priority"] = [{"description": "Priority: is invalid", "error": "InvalidValue"}]
        if data.get("type") not in (None, "problem", "incident", "question", "task"):
            details["type"] = [{"description": "Type: is invalid", "error": "InvalidValue"}]
        if data.get("problem_id") is not None:
            # Zendesk links only incidents, and only to an existing problem ticket.
            problem = self.tickets.get(int(data["problem_id"]))
            if data.get("type") != "incident" or problem is None or problem.get("type") != "problem":
                details["problem_id"] = [{"description": "Problem: is invalid", "error": "InvalidValue"}]
        if data.get("requester_id") and int(data["requester_id"]) not in self.users:
            details["requester"] = [{"description": "Requester: is invalid", "error": "InvalidValue"}]
        if not details and self.reject_ticket is not None:
            details = self.reject_ticket(data) or {}
        return details or None

    def _create_ticket_call(self, request: Request, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        key = request.headers.get("Idempotency-Key")
        fingerprint = json.dumps(data, sort_keys=True, ensure_ascii=False)
        if key and key in self.idempotency:
            previous, status, payload = self.idempotency[key]
            if previous != fingerprint:
                return 400, {"error": "IdempotentRequestError",
                             "description": "Idempotency key already used with different parameters"}, {}
            return status, payload, {"x-idempotency-lookup": "hit"}
        details = self._validate(data)
        if details:
            return 422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details}, {}
        ticket, audit = self._create_ticket(data)
        payload = {"ticket": ticket, "audit": audit}
        if key:
            self.idempotency[key] = (fingerprint, 201, payload)
        return 201, payload, {"Location": ticket["url"], **({"x-idempotency-lookup": "miss"} if key else {})}

    def _create_ticket(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ticket_id = next(self._ids)
        comment = data.get("comment") or {}
        requester_id = data.get("requester_id")
        ticket = {
            "id": ticket_id, "url": f"/api/v2/tickets/{ticket_id}.json", "external_id": data.get("external_id"),
            "subject": data.get("subject"), "raw_subject": data.get("subject"), "description": comment.get("body"),
            "priority": data.get("priority"), "type": data.get("type"), "status": data.get("status") or "new",
            "problem_id": data.get("problem_id"),
            "requester_id": requester_id, "submitter_id": data.get("submitter_id") or requester_id,
            "assignee_id": None, "group_id": None, "tags": sorted(set(data.get("tags") or [])),
            "custom_fields": data.get("custom_fields") or [], "via": {"channel": "api", "source": {}},
            "created_at": _now(), "updated_at": _now(), "brand_id": data.get("brand_id"),
        }
        source = self.tickets.get(int(data.get("via_followup_source_id") or 0))
        if source is not None and source["status"] == "closed":
            # via_followup_source_id "only works with closed tickets" (…/tickets/tickets/,
            # Creating a follow-up ticket); the ticket's via names the closed one.
            ticket["via"] = {"channel": "api", "source": {"rel": "follow_up",
                                                          "from": {"ticket_id": source["id"], "subject": source["subject"]}}}
            ticket["followup_source_id"] = source["id"]
        self.metrics[ticket_id] = {
            "id": next(self._ids), "ticket_id": ticket_id, "created_at": ticket["created_at"],
            "updated_at": ticket["created_at"], "status_updated_at": ticket["created_at"], "replies": 0,
            "reply_time_in_minutes": {"calendar": None, "business": None}, "solved_at": None,
            "latest_comment_added_at": ticket["created_at"]}
        self._touch(ticket_id)
        self.created_times[ticket_id] = time.time()  # epoch seconds, for the latency benchmark
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        self.audits[ticket_id] = []
        audit = self._add_audit(ticket, comment, data.get("metadata"),
                                author_id=comment.get("author_id") or ticket["submitter_id"])
        return ticket, audit

    def _add_audit(self, ticket: dict[str, Any], comment: dict[str, Any], metadata: dict[str, Any] | None,
                   author_id: Any) -> dict[str, Any]:
        # An audit (and its comment) always has an author: the comment's author, else the user
        # making the API call (AuditObject.author_id is a non-null integer in the Support OAS;
        # 1 is the API user `users/me` answers).
        author_id = author_id or 1
        events = []
        if comment:
            comment_id = next(self._ids)
            stored = {"id": comment_id, "type": "Comment", "author_id": comment.get("author_id") or author_id,
                      "body": comment.get("body"), "plain_body": comment.get("body"),
                      "html_body": '<div class="zd-comment" dir="auto">'
                                   + html.escape(comment.get("body") or "").replace("\n", "<br>") + "</div>",
                      "public": comment.get("public", True), "created_at": _now(), "attachments": []}
            self.comments[ticket["id"]].append(stored)
            events.append(stored)
        audit = {"id": next(self._ids), "ticket_id": ticket["id"], "created_at": _now(), "author_id": author_id,
                 "metadata": {"system": {"client": "zenpy"}, "custom": metadata or {}},
                 "via": {"channel": "api"}, "events": events}
        self.audits[ticket["id"]].append(audit)
        return audit

    def _update_ticket(self, ticket: dict[str, Any], data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        comment = data.get("comment") or {}
        if ticket["status"] == "closed":
            # "Once a ticket is closed … it can't be reopened" (…/tickets/tickets/); an update
            # answers 422 RecordInvalid with this detail (recorded from a real Zendesk).
            return 422, {"error": "RecordInvalid", "description": "Record validation errors",
                         "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}, {}
        if comment and not comment.get("body"):
            return 422, {"error": "RecordInvalid", "description": "Record validation errors",
                         "details": {"base": [{"description": "Comment: cannot be blank"}]}}, {}
        if data.get("problem_id") is not None:
            merged = {**ticket, **{k: data[k] for k in ("type", "problem_id") if k in data},
                      "comment": {"body": "x"}}
            details = self._validate(merged)
            if details:
                return 422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details}, {}
        for key in ("priority", "type", "tags", "subject", "problem_id"):
            if key in data:
                ticket[key] = data[key]
        ticket["updated_at"] = _now()
        if "status" in data:
            self._status_changed(ticket, data["status"])
        elif comment and ticket["status"] == "new":
            self._status_changed(ticket, "open")
        audit = self._add_audit(ticket, comment, data.get("metadata"), author_id=comment.get("author_id"))
        author = self.users.get(int(comment.get("author_id") or 0)) or {}
        metric = self.metrics.get(ticket["id"])
        if metric is not None and comment:
            metric["latest_comment_added_at"] = _now()
            if comment.get("public", True) and author.get("role") in ("agent", "admin"):
                # reply_time_in_minutes: minutes to the first public agent comment (ticket metrics).
                metric["replies"] += 1
                if metric["reply_time_in_minutes"]["calendar"] is None:
                    created = datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
                    minutes = int((datetime.now(timezone.utc) - created).total_seconds() // 60)
                    metric["reply_time_in_minutes"] = {"calendar": minutes, "business": minutes}
        self._touch(ticket["id"])
        return 200, {"ticket": ticket, "audit": audit}, {}

    def _status_changed(self, ticket: dict[str, Any], status: str) -> None:
        if ticket["status"] == status:
            return
        ticket["status"] = status
        ticket["updated_at"] = _now()
        metric = self.metrics.get(ticket["id"])
        if metric is not None:
            metric["status_updated_at"] = metric["updated_at"] = _now()
            if status in ("solved", "closed") and not metric["solved_at"]:
                metric["solved_at"] = _now()
        self._touch(ticket["id"])

    def _touch(self, ticket_id: int) -> None:
        self.change_seq[ticket_id] = next(self._ids)

    # incremental export (…/ticket-management/incremental_exports/#incremental-ticket-export-cursor-based)
    def _incremental_export(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        cursor = request.args.get("cursor")
        if cursor:
            try:
                after = int(base64.b64decode(cursor).decode())
            except ValueError:
                return 400, {"error": "InvalidPaginationParameter", "description": "cursor is invalid"}, {}
            changed = [t for t in self.tickets.values() if self.change_seq.get(t["id"], 0) > after]
        elif request.args.get("start_time", "").isdigit():
            start = int(request.args["start_time"])
            if start > time.time() - 60:
                return 400, {"error": "InvalidValue", "description": "start_time must be at least one minute in the past"}, {}
            changed = [t for t in self.tickets.values()
                       if datetime.fromisoformat(t["updated_at"].replace("Z", "+00:00")).timestamp() >= start]
            after = 0
        else:
            return 400, {"error": "InvalidValue", "description": "start_time or cursor is required"}, {}
        changed.sort(key=lambda t: self.change_seq.get(t["id"], 0))
        page = changed[:self.export_page_size]
        last = self.change_seq.get(page[-1]["id"], after) if page else after
        next_cursor = base64.b64encode(str(last).encode()).decode()
        answer: dict[str, Any] = {
            "tickets": page, "after_cursor": next_cursor,
            "after_url": f"{request.host_url.rstrip('/')}/api/v2/incremental/tickets/cursor.json?cursor={next_cursor}",
            "before_cursor": None, "before_url": None, "end_of_stream": len(changed) <= self.export_page_size}
        if "metric_sets" in request.args.get("include", ""):
            answer["metric_sets"] = [self.metrics[t["id"]] for t in page if t["id"] in self.metrics]
        return 200, answer, {}

    # redaction (…/tickets/ticket_comments/#redact-ticket-comment-in-agent-workspace)
    def _redact(self, comment_id: int, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        ticket = self.tickets.get(int(data.get("ticket_id") or 0))
        if ticket is None:
            return 404, {"error": "RecordNotFound", "description": "Not found"}, {}
        comment = next((c for c in self.comments[ticket["id"]] if c["id"] == comment_id), None)
        if comment is None:
            return 404, {"error": "RecordNotFound", "description": "Not found"}, {}
        given = str(data.get("html_body") or "")
        if re.sub(r"</?redact>|\sredact(?=[\s/>])", "", given) != comment["html_body"]:
            return 422, {"error": "RecordInvalid", "description": "html_body does not match the comment"}, {}

        def blot(match: re.Match[str]) -> str:
            return "▇" * len(html.unescape(match.group(1)))
        comment["html_body"] = re.sub(r"<redact>(.*?)</redact>", blot, given, flags=re.S)
        comment["body"] = comment["plain_body"] = html.unescape(re.sub(r"<[^>]+>", "", comment["html_body"]))
        if ticket.get("description") and comment is self.comments[ticket["id"]][0]:
            ticket["description"] = comment["body"]
        return 200, {"comment": comment}, {}

    # jobs
    def _job(self, request: Request, kind: str, items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        if len(items) > 100:
            return 400, {"error": "TooManyValues", "description": "Too many values (maximum 100)"}, {}
        for job in self.jobs.values():
            self._advance(job)
        in_flight = sum(1 for j in self.jobs.values() if j["status"] in ("queued", "working"))
        if in_flight >= 30:
            # Zendesk refuses a 31st queued or running job of the account.
            return 429, {"error": "TooManyJobs", "description": "Number of allowed concurrent jobs exceeded"}, \
                {"Retry-After": "5"}
        self.max_jobs_in_flight_seen = max(self.max_jobs_in_flight_seen, in_flight + 1)
        job_id = f"V3-{next(self._ids):08x}"
        self.jobs[job_id] = {"id": job_id, "url": self._url(request, f"/api/v2/job_statuses/{job_id}"),
                             "job_type": {"create": "ThirdPartyTicketCreateMany", "update": "BulkUpdateTickets",
                                          "users": "CreateOrUpdateManyUsers"}[kind],
                             "total": len(items), "progress": 0, "status": "queued", "message": None,
                             "results": None, "_kind": kind, "_items": items, "_polls": 0,
                             "_submitted": time.monotonic()}
        return 200, {"job_status": self._public_job(self.jobs[job_id])}, {}

    def _advance(self, job: dict[str, Any]) -> None:
        """Timed jobs (job_timing): queued until their first record is due, then working with
        `progress` growing one record per step, completed (run) when the last one is done."""
        if self.job_timing is None or job["status"] not in ("queued", "working"):
            return
        start, per_record = self.job_timing[job["_kind"]]
        elapsed = time.monotonic() - job["_submitted"] - start
        if elapsed < 0:
            return
        done = min(job["total"], int(elapsed / per_record) if per_record > 0 else job["total"])
        if done >= job["total"]:
            self.run_job(job["id"])
        else:
            job.update(status="working", progress=done)

    def _poll(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        if self.job_timing is not None:
            self._advance(job)
        elif job["status"] in ("queued", "working"):
            job["_polls"] += 1
            if job["_polls"] > self.job_polls_before_done:
                self.run_job(job_id)
            else:
                job["status"] = "working"
        return self._public_job(job)

    def run_job(self, job_id: str) -> None:
        """Run a queued job now (what Zendesk's workers do in the background).

        The results have the shapes a real Zendesk answers (the recordings in
        ../shared/specs/zendesk/recorded_job_results.json, checked by tests/contracts):
        tickets/create_many `{index, id, account_id}`; tickets/update_many `{id, action, success,
        status}` with no `index`, a failed one `{index, error, id, details}`;
        users/create_or_update_many `{id, status}` (`email` too when one was sent), one per user
        in request order, with no `index`, `external_id` or `action`.
        """
        job = self.jobs[job_id]
        results: list[dict[str, Any]] = []
        for index, item in enumerate(job["_items"]):
            if job["_kind"] == "create":
                details = self._validate(item)
                if details:
                    results.append({"index": index, "error": "RecordInvalid", "details": json.dumps(details)})
                    continue
                ticket, _ = self._create_ticket(item)
                results.append({"index": index, "id": ticket["id"], "account_id": self.account_id})
            elif job["_kind"] == "update":
                ticket = self.tickets.get(int(item.get("id") or 0))
                if ticket is None:
                    results.append({"index": index, "error": "TicketUpdateFailed", "id": item.get("id"),
                                    "details": "Ticket not found"})
                    continue
                status, answer, _ = self._update_ticket(ticket, item)
                if status != 200:
                    # A refused update is a failed result, not "Updated": the recorded failures
                    # are {index, error, id, details} with details as text
                    # (../shared/specs/zendesk/recorded_job_results.json, organizations/update_many).
                    details = "; ".join(p.get("description", "") for ps in answer.get("details", {}).values() for p in ps)
                    results.append({"index": index, "error": "TicketUpdateFailed", "id": ticket["id"],
                                    "details": details})
                    continue
                results.append({"id": ticket["id"], "action": "update", "success": True, "status": "Updated"})
            else:
                user, created = self._upsert_user(item)
                results.append({"id": user["id"], "status": "Created" if created else "Updated",
                                **({"email": user["email"]} if item.get("email") and user.get("email") else {})})
        job.update(status="completed", progress=job["total"], results=results, message="Completed at " + _now())

    @staticmethod
    def _public_job(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    # SLA policies
    def _save_policy(self, policy_id: int | None, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if not data.get("title"):
            return 422, {"error": "RecordInvalid", "description": "Record validation errors",
                         "details": {"title": [{"description": "Title: cannot be blank"}]}}, {}
        created = policy_id is None
        if policy_id is None:
            policy_id = next(self._ids)
            self.sla_policies[policy_id] = {"id": policy_id, "url": f"/api/v2/slas/policies/{policy_id}.json",
                                            "position": len(self.sla_policies) + 1, "created_at": _now()}
        policy = self.sla_policies[policy_id]
        policy.update({k: v for k, v in data.items() if k in ("title", "description", "filter", "policy_metrics", "position")},
                      updated_at=_now())
        policy.setdefault("description", "")
        return (201 if created else 200), {"sla_policy": policy}, {}

    # inspection
    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tickets": len(self.tickets), "users": len(self.users), "jobs": len(self.jobs),
                "sla_policies": len(self.sla_policies),
                "external_ids": sorted(t["external_id"] or "" for t in self.tickets.values()),
                "duplicate_external_ids": sorted({t["external_id"] for t in self.tickets.values()
                                                  if len(self.ticket_by_external_id(t["external_id"])) > 1}),
                "max_jobs_in_flight_seen": self.max_jobs_in_flight_seen,
                "requests": len(self.log), "refused_429": self.refused_429,
            }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Zendesk Support API on the loopback interface.")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--email", default="agent@example.com", help="accepted ZENDESK_EMAIL")
    parser.add_argument("--token", default="test-token", help="accepted ZENDESK_API_TOKEN")
    parser.add_argument("--rate-limit", type=int, default=700, help="requests per minute before 429 (default 700)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--job-polls", type=int, default=1, help="job status polls before a bulk job has run")
    parser.add_argument("--realistic", action="store_true",
                        help="time calls and jobs like the recorded Zendesk answers, with the Update Ticket limit "
                             "(see the module docstring); --latency still overrides the call time")
    args = parser.parse_args(argv)
    options = dict(email=args.email, token=args.token, rate_limit=args.rate_limit, job_polls_before_done=args.job_polls)
    if args.latency or not args.realistic:
        options["latency"] = args.latency
    fake = FakeZendesk.realistic(**options) if args.realistic else FakeZendesk(**options)
    serve_wsgi(fake.wsgi, args.port, f"fake Zendesk on http://127.0.0.1:{{port}} (accepts {args.email}/token:{args.token})")


if __name__ == "__main__":
    main()
