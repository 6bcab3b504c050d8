"""Contract: the fake Freshdesk answers what Freshdesk publishes, and the real client sends what
Freshdesk accepts.

References, from ../shared/specs/freshdesk/ (skipped with the reason when absent):
- `freshdesk-rest-api-openapi.yml`: a third-party OpenAPI 3.1 of API v2 (it still writes
  OpenAPI 3.0's `nullable`, read here as 3.0 does). Its objects are open, so an unknown field in
  an ANSWER cannot be flagged; REQUEST bodies are checked closed: a key neither in the request
  schema nor in `DOCUMENTED_BODY_KEYS` (fields the official reference documents and this OAS
  omits) fails.
- `docs.txt`: Freshworks' own endpoint list. Every request the client sends must be an OAS
  operation or on that list; the few endpoints on neither are listed in `DOCUMENTED_ELSEWHERE`
  with the section of https://developers.freshdesk.com/api/ that documents them, and their
  bodies are checked against our reading of that section only (named in the test output).

The fake (tests/fakes/freshdesk.py) is driven by the real client code
(connector/helpdesks/freshdesk/client.py and its doctor), every exchange captured at the HTTP
layer through the client's requests.Session.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from connector.doctor import OK
from connector.helpdesks import freshdesk as freshdesk_pkg
from connector.helpdesks.base import CommentDraft, HelpdeskError, Requester, TicketDraft
from connector.helpdesks.freshdesk.client import FreshdeskHelpdesk, FreshdeskSettings
from tests.contracts.openapi import Capture, Exchange, _openapi30_to_jsonschema, errors
from tests.fakes.freshdesk import FakeFreshdesk
from tests.freshdesk_support import API_KEY, freshdesk_env, serve

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "freshdesk"
OAS = SPECS / "freshdesk-rest-api-openapi.yml"
ENDPOINTS = SPECS / "docs.txt"
PREFIX = "/api/v2"

pytestmark = pytest.mark.skipif(
    not (OAS.is_file() and ENDPOINTS.is_file()),
    reason="../shared/specs/freshdesk/ (Freshdesk's OAS and Freshworks' endpoint list) is absent beside the repository")

#: Body keys the official reference documents for a request and the third-party OAS omits.
DOCUMENTED_BODY_KEYS = {
    # FD#create_ticket: "name — Name of the requester", "unique_external_id — External ID of the
    # requester. If no contact exists with this external ID in Freshdesk, they will be added as a
    # new contact."
    ("POST", "/tickets"): {"name", "unique_external_id"},
    # FD#create_note: "user_id — ID of the agent/user who is adding the note".
    ("POST", "/tickets/{ticket_id}/notes"): {"user_id"},
}
#: Query parameters the official reference documents and the OAS omits.
DOCUMENTED_QUERY = {
    # FD#list_all_tickets, "Filter by": requester_id, email, unique_external_id, company_id.
    ("GET", "/tickets"): {"unique_external_id"},
}
#: Endpoints on neither the OAS nor Freshworks' list, with where Freshdesk documents them and
#: the body keys that section lists.
DOCUMENTED_ELSEWHERE = {
    ("POST", "/sla_policies"): ("FD#create_sla_policy", {"name", "description", "active", "sla_target",
                                                         "applicable_to", "escalation"}),
    ("PUT", "/sla_policies/{id}"): ("FD#update_sla_policy", {"name", "description", "active", "sla_target",
                                                             "applicable_to", "escalation", "position"}),
}


# --- the references ---------------------------------------------------------------------------
@lru_cache(maxsize=None)
def spec() -> dict[str, Any]:
    import yaml
    return yaml.safe_load(OAS.read_text(encoding="utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(_openapi30_to_jsonschema({**schema, "components": spec()["components"]}))


def operation(method: str, concrete: str) -> tuple[str, dict[str, Any]] | None:
    """The OAS operation for METHOD /api/v2/…, literal templates before parameterised."""
    local = concrete.removeprefix(PREFIX)
    found = []
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, local) and method.lower() in item:
            found.append((template.count("{"), template))
    if not found:
        return None
    template = min(found)[1]
    return template, spec()["paths"][template][method.lower()]


@lru_cache(maxsize=None)
def official_endpoints() -> tuple[tuple[str, "re.Pattern[str]"], ...]:
    """Freshworks' list: `GET /api/v2/tickets/[id]` → (GET, ^/api/v2/tickets/[^/]+$)."""
    text = ENDPOINTS.read_text(encoding="utf-8")
    out = []
    for method, path in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/?api/v2/[^\s?]+)", text):
        path = "/" + path.lstrip("/")
        out.append((method, re.compile("^" + re.sub(r"\\\[[^\]]+\\\]", "[^/]+", re.escape(path)) + "$")))
    return tuple(out)


def elsewhere(method: str, concrete: str) -> tuple[str, set[str]] | None:
    local = re.sub(r"/\d+", "/{id}", concrete.removeprefix(PREFIX))
    return DOCUMENTED_ELSEWHERE.get((method, local))


def request_problems(e: Exchange) -> list[str]:
    """Method and path, query parameters (declared, enum, type) and body against the references."""
    where = f"{e.method} {e.path}"
    found = operation(e.method, e.path)
    if found is None:
        documented = elsewhere(e.method, e.path)
        if documented is None:
            if any(m == e.method and p.match(e.path) for m, p in official_endpoints()):
                return []
            return [f"{where}: on neither the OAS nor Freshworks' endpoint list"]
        _section, keys = documented
        return [f"{where}: body key {k!r} is not in {_section}" for k in (e.request_body or {}) if k not in keys]
    template, op = found
    problems = []
    declared = {}
    for param in op.get("parameters") or []:
        param = _resolve(param)
        if param.get("in") == "query":
            declared[param["name"]] = param
    extra = DOCUMENTED_QUERY.get((e.method, template), set())
    for name, values in e.args.items():
        if name in extra:
            continue
        if name not in declared:
            problems.append(f"{where}: undeclared query parameter {name!r}")
            continue
        schema = _resolve(declared[name].get("schema") or {})
        for value in values:
            typed: Any = int(value) if schema.get("type") == "integer" and value.lstrip("-").isdigit() else value
            problems += [f"{where}: {name}={value!r}: {m}" for m in errors(validator(schema), typed)]
    required = {_resolve(p)["name"] for p in op.get("parameters") or [] if _resolve(p).get("required")
                and _resolve(p).get("in") == "query"}
    problems += [f"{where}: required query parameter {n!r} missing" for n in required - set(e.args)]
    body_spec = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
    if body_spec is None:
        if e.request_body is not None:
            problems.append(f"{where}: sends a body the operation does not take")
        return problems
    schema = _resolve(body_spec["schema"])
    problems += [f"{where} body: {m}" for m in errors(validator(schema), e.request_body)]
    allowed = set(schema.get("properties") or {}) | DOCUMENTED_BODY_KEYS.get((e.method, template), set())
    problems += [f"{where} body: key {k!r} is neither in the OAS request schema nor documented"
                 for k in (e.request_body or {}) if k not in allowed]
    return problems


def response_problems(e: Exchange) -> list[str]:
    """The answer against the OAS response schema of its status (Error for 4xx); answers of
    endpoints the OAS lacks are not checked here (see DOCUMENTED_ELSEWHERE)."""
    found = operation(e.method, e.path)
    if found is None or e.body is None:
        return []
    _template, op = found
    responses = op["responses"]
    response = responses.get(str(e.status))
    if response is None and e.status >= 400:
        response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if response is None:
        return [f"{e.method} {e.path}: status {e.status} is not an answer the OAS lists"]
    content = (_resolve(response).get("content") or {}).get("application/json")
    if content is None:
        return []
    return [f"{e.method} {e.path} → {e.status}: {m}" for m in errors(validator(content["schema"]), e.body)]


# --- driving the fake through the real client --------------------------------------------------
def _draft(n: int, author: str = "yorisoi:x:u1") -> TicketDraft:
    return TicketDraft(f"yorisoi:x:{9000 + n}", f"[ソラモバイル] 圏外 {n}", f"圏外です {n}\nhttps://x.com/a/status/{9000 + n}",
                       "分析: negative", "high", ("yorisoi", "src_x", "sentiment_negative"),
                       Requester(author, "鈴木 健", "ken_s"), f"https://x.com/a/status/{9000 + n}",
                       {"sentiment": "negative", "intent": "complaint", "risk": "low"})


def _store_knowing(author: str) -> Any:
    """Just enough of the store for find_ticket: every post was written by `author`."""
    return SimpleNamespace(posts=SimpleNamespace(load_post=lambda _key: (SimpleNamespace(author_external_id=author),)))


def _helpdesk(env: dict[str, str], capture: Capture, store: Any = None) -> FreshdeskHelpdesk:
    session = requests.Session()
    capture.attach(session)
    return FreshdeskHelpdesk(FreshdeskSettings.from_env(env), store, session=session)


def drive(httpserver: Any, fake: FakeFreshdesk) -> Capture:
    """Everything Yorisoi does with Freshdesk, in the order a deployment does it."""
    env = freshdesk_env(httpserver)
    capture = Capture()
    author = "yorisoi:x:u1"
    helpdesk = _helpdesk(env, capture, _store_knowing(author))
    refs = [helpdesk.create_ticket(_draft(n)) for n in range(3)]  # POST /tickets + POST notes
    assert helpdesk.find_ticket("yorisoi:x:9001") == refs[1]  # list by requester, ticket, conversations
    assert _helpdesk(env, capture).find_ticket("yorisoi:x:9002") == refs[2]  # no store: search by tag
    helpdesk.add_comment(refs[0], CommentDraft("yorisoi:x:9100", "まだ圏外", True, author))
    fake.agent_reply(int(refs[0].ticket_id), "<div>ご不便をおかけしております</div>")
    fake.set_status(int(refs[1].ticket_id), 5)
    restarted = _helpdesk(env, capture, _store_knowing(author))  # a new process: reads the ticket
    restarted.add_comment(refs[1], CommentDraft("yorisoi:x:9101", "また圏外", True, author))  # reopens (PUT)
    page = helpdesk.status_page(None, datetime.now(timezone.utc) - timedelta(hours=1))
    assert page.updates
    minutes = {"urgent": 30, "high": 60, "normal": 240, "low": 480}
    assert helpdesk.setup_sla(minutes, dry_run=False).action == "created"
    assert helpdesk.setup_sla({**minutes, "urgent": 20}, dry_run=False).action == "updated"
    outcome = helpdesk.redact_post(refs[2], ["yorisoi:x:9002#note"], True, "［削除されました］")
    assert outcome.state == "redacted", outcome
    session = requests.Session()
    capture.attach(session)
    checks = freshdesk_pkg.doctor(env, session)  # agents/me, sla_policies, ticket_fields
    assert all(c.status == OK for c in checks), checks
    # Errors Freshdesk answers: a validation error and a wrong key.
    with pytest.raises(HelpdeskError):  # 400: no such group
        _helpdesk({**env, "FRESHDESK_GROUP_ID": "12345"}, capture).create_ticket(_draft(4))
    bad = _helpdesk({**env, "FRESHDESK_API_KEY": "wrong-key"}, capture)
    with pytest.raises(HelpdeskError):  # 401
        bad.create_ticket(_draft(5))
    return capture


@pytest.fixture
def fake(httpserver) -> FakeFreshdesk:
    return serve(httpserver, FakeFreshdesk(api_key=API_KEY))


# --- the contract -----------------------------------------------------------------------------
def test_the_reference_reads_as_expected():
    """Self-check of the checker: the OAS operations and Freshworks' list are where we look."""
    assert operation("POST", "/api/v2/tickets")[0] == "/tickets"
    assert operation("GET", "/api/v2/agents/me")[0] == "/agents/{agent_id}"
    assert any(m == "PUT" and p.match("/api/v2/conversations/12") for m, p in official_endpoints())
    assert request_problems(Exchange("POST", "/api/v2/tickets", {}, 201, None, {"subject": "s", "nonsense": 1})) \
        == ["POST /api/v2/tickets body: key 'nonsense' is neither in the OAS request schema nor documented"]
    assert request_problems(Exchange("GET", "/api/v2/tickets", {"order_by": ["size"]}, 200, None, None))
    assert request_problems(Exchange("GET", "/api/v2/frobnicate", {}, 200, None, None))


def test_every_request_and_answer_matches_freshdesk(httpserver, fake):
    capture = drive(httpserver, fake)
    seen = {(e.method, re.sub(r"/\d+", "/{id}", e.path)) for e in capture.exchanges}
    assert {("POST", "/api/v2/tickets"), ("POST", "/api/v2/tickets/{id}/notes"), ("GET", "/api/v2/tickets"),
            ("GET", "/api/v2/tickets/{id}"), ("GET", "/api/v2/tickets/{id}/conversations"),
            ("GET", "/api/v2/search/tickets"), ("PUT", "/api/v2/tickets/{id}"), ("PUT", "/api/v2/conversations/{id}"),
            ("GET", "/api/v2/sla_policies"), ("POST", "/api/v2/sla_policies"), ("PUT", "/api/v2/sla_policies/{id}"),
            ("GET", "/api/v2/agents/me"), ("GET", "/api/v2/ticket_fields")} <= seen, seen
    assert {e.status for e in capture.exchanges} >= {200, 201, 400, 401}
    problems = [p for e in capture.exchanges for p in request_problems(e) + response_problems(e)]
    assert not problems, "\n".join(problems)


def test_the_contacts_the_fake_keeps_are_freshdesk_contacts(httpserver, fake):
    """Contacts are created by POST /tickets (unique_external_id) and never served on their
    own; what the fake keeps must still be a Freshdesk `Contact`. A contact known only by its
    external id has no e-mail: FD#create_contact makes `email` optional when
    `unique_external_id` is given, and Freshdesk then answers `"email": null`."""
    drive(httpserver, fake)
    contact_schema = _resolve({"$ref": "#/components/schemas/Contact"})
    schema = {**contact_schema, "properties": {**contact_schema["properties"],
                                               "email": {"type": ["string", "null"]}}}
    assert fake.contacts
    for contact in fake.contacts.values():
        assert not errors(validator(schema), contact), contact


@pytest.mark.parametrize("wrong, expected", [
    ({"status": "open"}, "'open' is not of type 'integer'"),
    ({"due_by": None}, "None is not of type 'string'"),
    ({"priority": 9}, "9 is not one of [1, 2, 3, 4]"),
])
def test_a_wrong_fake_field_fails_the_contract(httpserver, fake, wrong, expected):
    """Deliberately drift the fake's ticket: the contract names the field."""
    view = fake._ticket_view
    fake._ticket_view = lambda ticket: {**view(ticket), **wrong}
    capture = drive(httpserver, fake)
    problems = [p for e in capture.exchanges for p in response_problems(e)]
    assert any(expected in p for p in problems), problems
