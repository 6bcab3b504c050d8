"""A stateful fake Freshdesk (API v2) for tests, the closing-note demo and benchmarks.

Shapes follow the official reference, https://developers.freshdesk.com/api/ (tickets, list,
notes, conversations, SLA policies, errors, rate-limit headers). It keeps tickets, contacts,
conversations and SLA policies in memory and validates what the real API validates where
Yorisoi depends on it (requester identifier, enums, tags, custom fields, groups, user_id of a
note, SLA targets). `fail_next` queues faults (429, 5xx, 400…) for one request pattern.

Use it from pytest-httpserver:
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
or standalone (loopback only):
    python -m tests.fakes.freshdesk --port 8901
`GET /_fake/state` (not a Freshdesk URL) shows what it holds.
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
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from werkzeug import Request, Response

from tests.fakes.base import Fault, serve_wsgi

TICKET_KEYS = {"name", "requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id",
               "subject", "type", "status", "priority", "description", "responder_id", "attachments",
               "cc_emails", "custom_fields", "due_by", "email_config_id", "fr_due_by", "group_id", "parent_id",
               "product_id", "source", "tags", "company_id", "internal_agent_id", "internal_group_id",
               "lookup_parameter"}
REQUESTER_KEYS = ("requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id")
NOTE_KEYS = {"body", "structured_body", "incoming", "notify_emails", "private", "user_id", "attachments"}
SOURCES = {1, 2, 3, 4, 5, 6, 7, 9, 10}
MAX_TAG_CHARS = 32


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def strip_html(body: str) -> str:
    text = re.sub(r"<br\s*/?>", "\n", body)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def validation_error(*errors: tuple[str, str, str]) -> tuple[int, Any]:
    return 400, {"description": "Validation failed",
                 "errors": [{"field": f, "message": m, "code": c} for f, m, c in errors]}




class FakeFreshdesk:
    def __init__(self, api_key: str | None = "fake-api-key", *, rate_total: int = 400,
                 custom_fields: dict[str, list[str] | None] | None = None,
                 groups: dict[int, str] | None = None, search_lag_seconds: float = 0.0,
                 contact_notes_allowed: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.api_key = api_key  # None: accept any key (standalone demo)
        self.rate_total = rate_total
        self.custom_fields = custom_fields if custom_fields is not None else {
            "cf_sentiment": ["negative", "neutral", "positive"], "cf_intent": None, "cf_risk": None}
        self.groups = groups if groups is not None else {43000190415: "SNS / Yorisoi"}
        self.search_lag_seconds = search_lag_seconds
        self.contact_notes_allowed = contact_notes_allowed
        self.clock = clock
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.indexed_at: dict[int, float] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        self.agents = {1: {"id": 1, "name": "Yorisoi API", "email": "api@example.com"}}
        self.sla_policies: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "Default SLA Policy", "description": "default policy", "active": True,
                "applicable_to": {}, "is_default": True, "position": 1,
                "created_at": "2015-07-03T09:08:53Z", "updated_at": "2015-07-03T09:08:53Z"}}
        #: FD#list_all_tickets include=stats: per ticket, when it was first responded to,
        #: its status changed, it was resolved, closed or reopened.
        self.stats: dict[int, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, Any]] = []  # (method, path, json) of every API request
        self.window_start = clock()
        self.used = 0
        #: Creates accepted but not processed yet (see `process_late`): (due, ticket) where due
        #: is a time on `clock`, or None for "right after the next create is processed".
        self.late_creates: list[tuple[float | None, dict[str, Any]]] = []
        self._late_next: tuple[float, float | None] | None = None  # (hold, delay) for the next create

    # --- test controls ----------------------------------------------------------------
    def fail_next(self, method: str, path: str, status: int, body: Any = None, *,
                  headers: dict[str, str] | None = None, times: int = 1, after: bool = False) -> None:
        """The next `times` requests matching METHOD and the path regex get this answer."""
        self.faults.append(Fault(method, re.compile(path), status, body, headers or {}, times, after))

    def process_late(self, hold: float, delay: float | None = None) -> None:
        """The next POST /tickets is processed late: its answer comes only after `hold` real
        seconds (beyond the client's read timeout, so the client never hears of it) and the
        ticket appears `delay` seconds later on `clock` — or, with delay None, right after the
        next create is processed (it lands between a resend and its recording).

        Freshdesk's create is not idempotent and has no request id to ask about an in-flight
        request (FD#create_ticket, https://developers.freshdesk.com/api/#create_ticket); a client
        that stops waiting does not cancel the server's work, and a busy account may finish it
        after the client's timeout. Until it does, neither listing nor search shows the ticket
        (FD#list_all_tickets, https://developers.freshdesk.com/api/#list_all_tickets).
        """
        with self.lock:
            self._late_next = (hold, delay)

    def land_late(self, *, after_create: bool = False) -> None:
        """Creates whose processing has finished become tickets, with the id and time of
        when they were processed (a later ticket than any created meanwhile)."""
        still: list[tuple[float | None, dict[str, Any]]] = []
        for due, ticket in self.late_creates:
            if (due is None and after_create) or (due is not None and due <= self.clock()):
                ticket_id = next(self.ids)
                stamp = now_iso()
                ticket.update(id=ticket_id, created_at=stamp, updated_at=stamp)
                self.tickets[ticket_id] = ticket
                self.indexed_at[ticket_id] = self.clock() + self.search_lag_seconds
                self.conversations[ticket_id] = []
                self.stats[ticket_id] = {"agent_responded_at": None, "requester_responded_at": None,
                                         "first_responded_at": None, "status_updated_at": stamp,
                                         "reopened_at": None, "resolved_at": None, "closed_at": None,
                                         "pending_since": None}
            else:
                still.append((due, ticket))
        self.late_creates = still

    def calls(self, method: str, path: str) -> list[Any]:
        pattern = re.compile(path)
        return [body for m, p, body in self.log if m == method and pattern.fullmatch(p)]

    # --- HTTP -------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        hold = None
        with self.lock:
            self.land_late()
            if request.method == "POST" and request.path == "/api/v2/tickets" and self._late_next is not None:
                (hold, delay), self._late_next = self._late_next, None
                response = self._handle(request)
                if response.status_code == 201:  # accepted, not processed yet: hide it until due
                    ticket_id = json.loads(response.get_data(as_text=True))["id"]
                    ticket = self.tickets.pop(ticket_id)
                    for table in (self.indexed_at, self.conversations, self.stats):
                        table.pop(ticket_id, None)
                    self.late_creates.append((None if delay is None else self.clock() + delay, ticket))
            else:
                response = self._handle(request)
                if request.method == "POST" and request.path == "/api/v2/tickets" and response.status_code == 201:
                    self.land_late(after_create=True)
        if hold is not None:
            time.sleep(hold)  # outside the lock: other requests go on meanwhile
        return response

    def _handle(self, request: Request) -> Response:
        with self.lock:
            if request.path == "/_fake/state":
                return self._json(200, self.state())
            if not self._authorised(request):
                return self._json(401, {"code": "invalid_credentials",
                                        "message": "You have to be logged in to perform this action."})
            body: Any = None
            if request.method in ("POST", "PUT"):
                try:
                    body = json.loads(request.get_data(as_text=True) or "null")
                except json.JSONDecodeError as exc:
                    return self._json(*validation_error(("", f"Invalid JSON: {exc}", "invalid_json")))
            self.log.append((request.method, request.path, body))
            fault = self._fault(request)
            if fault is not None and not fault.after:
                return self._json(fault.status, fault.body, fault.headers, count=True)
            status, payload = self._route(request, body)
            if fault is not None:  # the work happened, but the caller never hears about it
                return self._json(fault.status, fault.body, fault.headers, count=True)
            headers = {"Location": f"{request.host_url.rstrip('/')}/api/v2/tickets/{payload['id']}"} \
                if status == 201 and request.path == "/api/v2/tickets" else {}
            return self._json(status, payload, headers, count=True)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return bool(user) and (self.api_key is None or user == self.api_key)

    def _fault(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if fault.method == request.method and fault.path.fullmatch(request.path) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None, count: bool = False) -> Response:
        response = Response("" if payload is None else json.dumps(payload, ensure_ascii=False), status=status,
                            content_type="application/json; charset=utf-8")
        if count:  # FD#ratelimit: every API answer carries the budget, invalid requests included
            now = self.clock()
            if now - self.window_start >= 60:
                self.window_start, self.used = now, 0
            self.used += 1
            response.headers["X-RateLimit-Total"] = str(self.rate_total)
            response.headers["X-RateLimit-Remaining"] = str(max(0, self.rate_total - self.used))
            response.headers["X-RateLimit-Used-CurrentRequest"] = "1"
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def _route(self, request: Request, body: Any) -> tuple[int, Any]:
        path, method, args = request.path, request.method, request.args
        if path == "/api/v2/tickets" and method == "POST":
            return self.create_ticket(body)
        if path == "/api/v2/tickets" and method == "GET":
            return self.list_tickets(args)
        if path == "/api/v2/search/tickets" and method == "GET":
            return self.search_tickets(args.get("query", ""))
        match = re.fullmatch(r"/api/v2/tickets/(\d+)(/notes|/conversations)?", path)
        if match:
            ticket = self.tickets.get(int(match.group(1)))
            if ticket is None:
                return 404, None
            if match.group(2) is None and method == "GET":
                return 200, self._ticket_view(ticket)
            if match.group(2) is None and method == "PUT":
                return self.update_ticket(ticket, body)
            if match.group(2) == "/notes" and method == "POST":
                return self.create_note(ticket, body)
            if match.group(2) == "/conversations" and method == "GET":
                return self.list_conversations(ticket, args)
            return 405, None
        if path == "/api/v2/agents/me" and method == "GET":
            return 200, {"id": 43000000001, "available": True, "occasional": False, "ticket_scope": 1,
                         "signature": None, "group_ids": list(self.groups), "role_ids": [43000000100],
                         "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                         "contact": {"name": "Yorisoi Agent", "email": "agent@example.com", "active": True,
                                     "language": "ja", "time_zone": "Tokyo"}}
        if path == "/api/v2/ticket_fields" and method == "GET":
            fields = [{"id": 43000000200 + n, "name": name, "label": name.removeprefix("cf_").title(),
                       "type": "custom_dropdown" if choices else "custom_text", "default": False,
                       "position": 20 + n, "choices": list(choices or []),
                       "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
                      for n, (name, choices) in enumerate(self.custom_fields.items())]
            return 200, [{"id": 43000000100, "name": "subject", "label": "Subject", "type": "default_subject",
                          "default": True, "position": 1, "created_at": "2026-01-01T00:00:00Z",
                          "updated_at": "2026-01-01T00:00:00Z"}] + fields
        match = re.fullmatch(r"/api/v2/conversations/(\d+)", path)
        if match and method == "PUT":
            return self.update_conversation(int(match.group(1)), body)
        if path == "/api/v2/sla_policies" and method == "GET":
            return 200, list(self.sla_policies.values())
        if path == "/api/v2/sla_policies" and method == "POST":
            return self.save_sla_policy(None, body)
        match = re.fullmatch(r"/api/v2/sla_policies/(\d+)", path)
        if match and method == "PUT":
            if int(match.group(1)) not in self.sla_policies:
                return 404, None
            return self.save_sla_policy(int(match.group(1)), body)
        return 404, None

    # --- tickets ----------------------------------------------------------------------
    def create_ticket(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return validation_error(("", "Request body must be a JSON object", "invalid_json"))
        errors = [(key, "Unexpected/invalid field in request", "invalid_field") for key in body if key not in TICKET_KEYS]
        if not any(body.get(key) for key in REQUESTER_KEYS):
            errors.append(("requester_id", "Please fill at least 1 of requester_id, phone, email, twitter_id, "
                                           "facebook_id, unique_external_id fields", "missing_field"))
        for key in ("subject", "description"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                errors.append((key, "It should be a/an String", "missing_field"))
        for key, allowed in (("priority", {1, 2, 3, 4}), ("status", {2, 3, 4, 5, 6, 7}), ("source", SOURCES)):
            if key in body and body[key] not in allowed:
                errors.append((key, f"It should be one of these values: '{','.join(map(str, sorted(allowed)))}'",
                               "invalid_value"))
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors.append(("tags", "It should be a/an Array", "datatype_mismatch"))
        elif any(len(t) > MAX_TAG_CHARS or "," in t for t in tags):
            errors.append(("tags", f"It should only contain elements that have maximum of {MAX_TAG_CHARS} characters",
                           "invalid_value"))
        if "group_id" in body and body["group_id"] not in self.groups:
            errors.append(("group_id", "There is no group matching the given group_id", "invalid_value"))
        for name, value in (body.get("custom_fields") or {}).items():
            if name not in self.custom_fields:
                errors.append((name, "Unexpected/invalid field in request", "invalid_field"))
            elif self.custom_fields[name] is not None and value not in self.custom_fields[name]:
                errors.append((name, f"It should be one of these values: '{','.join(self.custom_fields[name])}'",
                               "invalid_value"))
        if errors:
            return validation_error(*errors)
        contact = self._requester(body)
        ticket_id = next(self.ids)
        stamp = now_iso()
        ticket = {
            "cc_emails": [], "fwd_emails": [], "reply_cc_emails": [], "email_config_id": None,
            "fr_escalated": False, "group_id": body.get("group_id"), "priority": body.get("priority", 1),
            "requester_id": contact["id"], "responder_id": None, "source": body.get("source", 2), "spam": False,
            "status": body.get("status", 2), "subject": body["subject"], "company_id": None, "id": ticket_id,
            "type": body.get("type"), "to_emails": None, "product_id": body.get("product_id"),
            "fr_escalated_at": None, "is_escalated": False, "created_at": stamp, "updated_at": stamp,
            # FD#create_ticket's sample answer has both deadlines set ("due_by": "2015-07-09T13:08:06Z",
            # "fr_due_by": "2015-07-04T15:08:06Z"): Freshdesk computes them from the SLA policy on
            # create, and the OAS types them as non-null date-times.
            **self._deadlines(body.get("priority", 1)),
            "description": body["description"],
            "description_text": strip_html(body["description"]),
            "custom_fields": {name: (body.get("custom_fields") or {}).get(name) for name in self.custom_fields},
            "tags": list(tags), "attachments": [],
        }
        self.tickets[ticket_id] = ticket
        self.indexed_at[ticket_id] = self.clock() + self.search_lag_seconds
        self.conversations[ticket_id] = []
        self.stats[ticket_id] = {"agent_responded_at": None, "requester_responded_at": None,
                                 "first_responded_at": None, "status_updated_at": stamp, "reopened_at": None,
                                 "resolved_at": None, "closed_at": None, "pending_since": None}
        return 201, ticket

    @staticmethod
    def _deadlines(priority: int) -> dict[str, str]:
        """First-response and resolution deadlines as Freshdesk sets them from an SLA policy
        (calendar hours by priority here: urgent 1/4, high 4/8, medium 8/24, low 24/72; only
        their presence and format matter to Yorisoi and its tests)."""
        respond, resolve = {4: (1, 4), 3: (4, 8), 2: (8, 24)}.get(priority, (24, 72))
        now = datetime.now(timezone.utc)
        return {"fr_due_by": (now + timedelta(hours=respond)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "due_by": (now + timedelta(hours=resolve)).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def _requester(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("requester_id") in self.contacts:
            return self.contacts[body["requester_id"]]
        external = body.get("unique_external_id")
        for contact in self.contacts.values():
            if external and contact["unique_external_id"] == external:
                return contact
        contact_id = next(self.ids) + 1000
        self.contacts[contact_id] = {"id": contact_id, "name": body.get("name") or external, "email": None,
                                     "unique_external_id": external, "twitter_id": body.get("twitter_id"),
                                     "created_at": now_iso(), "updated_at": now_iso()}
        return self.contacts[contact_id]

    def _ticket_view(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return dict(ticket)

    # --- test controls: what agents do in Freshdesk itself ----------------------------------
    def agent_reply(self, ticket_id: int, body: str) -> dict[str, Any]:
        """An agent's public reply written in Freshdesk (FD#reply_ticket: source 0 = Reply)."""
        with self.lock:
            stamp = now_iso()
            reply = {"body_text": strip_html(body), "body": body, "id": next(self.ids) + 5000, "incoming": False,
                     "private": False, "user_id": 1, "source": 0, "ticket_id": ticket_id, "to_emails": [],
                     "attachments": [], "created_at": stamp, "updated_at": stamp}
            self.conversations[ticket_id].append(reply)
            self.tickets[ticket_id]["updated_at"] = stamp
            stats = self.stats[ticket_id]
            stats["agent_responded_at"] = stamp
            stats["first_responded_at"] = stats["first_responded_at"] or stamp
            return reply

    def set_status(self, ticket_id: int, status: int) -> None:
        with self.lock:
            self._set_status(self.tickets[ticket_id], status)

    def _set_status(self, ticket: dict[str, Any], status: int) -> None:
        if ticket["status"] == status:
            return
        stamp = now_iso()
        stats = self.stats[ticket["id"]]
        if status == 2 and ticket["status"] in (4, 5):
            stats["reopened_at"] = stamp
        if status == 4:
            stats["resolved_at"] = stamp
        if status == 5:
            stats["closed_at"] = stamp
        stats["pending_since"] = stamp if status == 3 else None
        stats["status_updated_at"] = stamp
        ticket["status"] = status
        ticket["updated_at"] = stamp

    def update_ticket(self, ticket: dict[str, Any], body: Any) -> tuple[int, Any]:
        """FD#update_ticket: the fields of create, all optional; closed tickets can be updated."""
        if not isinstance(body, dict):
            return validation_error(("", "Request body must be a JSON object", "invalid_json"))
        errors = [(key, "Unexpected/invalid field in request", "invalid_field") for key in body if key not in TICKET_KEYS]
        if "status" in body and body["status"] not in {2, 3, 4, 5, 6, 7}:
            errors.append(("status", "It should be one of these values: '2,3,4,5,6,7'", "invalid_value"))
        for key in ("subject", "description"):
            if key in body and (not isinstance(body[key], str) or not body[key].strip()):
                errors.append((key, "It should be a/an String", "datatype_mismatch"))
        if errors:
            return validation_error(*errors)
        if "status" in body:
            self._set_status(ticket, body["status"])
        if "subject" in body:
            ticket["subject"] = body["subject"]
        if "description" in body:
            ticket["description"] = body["description"]
            ticket["description_text"] = strip_html(body["description"])
        ticket["updated_at"] = now_iso()
        return 200, self._ticket_view(ticket)

    def update_conversation(self, conversation_id: int, body: Any) -> tuple[int, Any]:
        """FD#update_conversation: `body` (HTML) of a note (only notes can be edited)."""
        for conversations in self.conversations.values():
            for conversation in conversations:
                if conversation["id"] != conversation_id:
                    continue
                if conversation.get("source") == 0:
                    return 405, {"code": "method_not_allowed", "message": "Only notes can be updated"}
                if not isinstance(body, dict) or set(body) - {"body", "attachments"} or not str(body.get("body") or "").strip():
                    return validation_error(("body", "It should be a/an String", "missing_field"))
                conversation.update(body=body["body"], body_text=strip_html(body["body"]), updated_at=now_iso())
                return 200, conversation
        return 404, None

    def list_tickets(self, args: Any) -> tuple[int, Any]:
        tickets = list(self.tickets.values())
        if "updated_since" in args:
            tickets = [t for t in tickets if t["updated_at"] >= args["updated_since"]]
        if "unique_external_id" in args:
            contact = next((c for c in self.contacts.values()
                            if c["unique_external_id"] == args["unique_external_id"]), None)
            if contact is None:
                return validation_error(("unique_external_id", "There is no contact matching the given "
                                                               "unique_external_id", "invalid_value"))
            tickets = [t for t in tickets if t["requester_id"] == contact["id"]]
        if "requester_id" in args:
            tickets = [t for t in tickets if str(t["requester_id"]) == args["requester_id"]]
        order = args.get("order_by", "created_at")
        tickets.sort(key=lambda t: (t[order] if order in ("created_at", "updated_at") else t["created_at"], t["id"]),
                     reverse=args.get("order_type", "desc") == "desc")
        per_page = int(args.get("per_page", 30))
        if per_page > 100:
            return validation_error(("per_page", "It should be a Positive Integer less than or equal to 100",
                                     "invalid_value"))
        page = int(args.get("page", 1))
        chosen = tickets[(page - 1) * per_page: page * per_page]
        # FD#list_all_tickets sample answer: no description, no tags in the list view.
        include = args.get("include", "")
        return 200, [{**{k: v for k, v in t.items() if k not in ("description", "description_text", "tags")},
                      **({"stats": dict(self.stats[t["id"]])} if "stats" in include else {})}
                     for t in chosen]

    def search_tickets(self, query: str) -> tuple[int, Any]:
        match = re.fullmatch(r"\"tag:'([^']+)'\"", query)
        if not match:
            return validation_error(("query", "Given query is invalid", "invalid_value"))
        now = self.clock()  # FD: "updates will take a few minutes to get indexed"
        results = [t for t in self.tickets.values() if match.group(1) in t["tags"] and self.indexed_at[t["id"]] <= now]
        return 200, {"total": len(results), "results": results[:30]}

    def create_note(self, ticket: dict[str, Any], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return validation_error(("", "Request body must be a JSON object", "invalid_json"))
        errors = [(key, "Unexpected/invalid field in request", "invalid_field") for key in body if key not in NOTE_KEYS]
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            errors.append(("body", "It should be a/an String", "missing_field"))
        user_id = body.get("user_id")
        if user_id is not None and not (user_id in self.agents or (self.contact_notes_allowed and user_id in self.contacts)):
            errors.append(("user_id", "There is no user matching the given user_id", "invalid_value"))
        if errors:
            return validation_error(*errors)
        stamp = now_iso()
        note = {"body_text": strip_html(body["body"]), "body": body["body"], "id": next(self.ids) + 5000,
                "incoming": bool(body.get("incoming", False)), "private": bool(body.get("private", True)),
                "user_id": user_id or 1, "support_email": None, "source": 2, "ticket_id": ticket["id"],
                # An array, never null: `Conversation.to_emails` in the Freshdesk OAS
                # (../shared/specs/freshdesk/freshdesk-rest-api-openapi.yml) is a non-nullable array.
                "to_emails": [], "attachments": [], "created_at": stamp, "updated_at": stamp}
        self.conversations[ticket["id"]].append(note)
        ticket["updated_at"] = stamp
        return 201, note

    def list_conversations(self, ticket: dict[str, Any], args: Any) -> tuple[int, Any]:
        per_page, page = int(args.get("per_page", 30)), int(args.get("page", 1))
        return 200, self.conversations[ticket["id"]][(page - 1) * per_page: page * per_page]

    # --- SLA policies -----------------------------------------------------------------
    def save_sla_policy(self, policy_id: int | None, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return validation_error(("", "Request body must be a JSON object", "invalid_json"))
        errors = []
        created = policy_id is None
        if created and not body.get("name"):
            errors.append(("name", "It should be a/an String", "missing_field"))
        applicable = body.get("applicable_to")
        if not isinstance(applicable, dict) or not any(applicable.values()):
            errors.append(("applicable_to", "It should contain at least one of company_ids, group_ids, sources, "
                                            "ticket_types, product_ids", "missing_field"))
        else:
            for group in applicable.get("group_ids", []):
                if group not in self.groups:
                    errors.append(("group_ids", f"There is no group matching the given group_id {group}", "invalid_value"))
        target = body.get("sla_target")
        if not isinstance(target, dict) or list(target) != ["priority_4", "priority_3", "priority_2", "priority_1"]:
            errors.append(("sla_target", "priority_4, priority_3, priority_2, priority_1 are mandatory, in this order",
                           "missing_field"))
        else:
            for key, value in target.items():
                for metric in ("respond_within", "resolve_within"):
                    seconds = value.get(metric)
                    if not isinstance(seconds, int) or seconds % 60 or seconds < 900:
                        errors.append((f"{key}.{metric}", "It should be a multiple of 60 and at least 900",
                                       "invalid_value"))
        if errors:
            return validation_error(*errors)
        stamp = now_iso()
        if policy_id is None:
            policy_id = next(self.ids) + 9000
            policy = {"id": policy_id, "is_default": False, "position": len(self.sla_policies) + 1,
                      "active": True, "created_at": stamp, "escalation": {}}
        else:
            policy = self.sla_policies[policy_id]
        policy.update({k: v for k, v in body.items() if k in ("name", "description", "active", "sla_target",
                                                               "applicable_to", "escalation", "position")})
        policy["updated_at"] = stamp
        self.sla_policies[policy_id] = policy
        return (201 if created else 200), policy

    def state(self) -> dict[str, Any]:
        return {"tickets": list(self.tickets.values()), "contacts": list(self.contacts.values()),
                "conversations": self.conversations, "sla_policies": list(self.sla_policies.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Freshdesk API v2 on the loopback interface.")
    parser.add_argument("--port", type=int, default=8901)
    parser.add_argument("--api-key", default=None, help="Accept only this key (default: any non-empty key).")
    parser.add_argument("--search-lag", type=float, default=120.0,
                        help="Seconds before a new ticket shows up in /search (as on the real service).")
    args = parser.parse_args(argv)
    fake = FakeFreshdesk(api_key=args.api_key, search_lag_seconds=args.search_lag)
    serve_wsgi(fake.wsgi, args.port, "fake Freshdesk listening on http://127.0.0.1:{port}  (state: /_fake/state)")


if __name__ == "__main__":
    main()
