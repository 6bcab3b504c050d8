"""Contract: the fake Zendesk answers what Zendesk publishes beyond job statuses, and the real
client (zenpy over requests, plus the raw calls and the doctor) sends what Zendesk accepts.

Reference: the Support API OAS in ../shared/specs/zendesk/Ticketing.json (skipped with the
reason when absent). It documents success answers only; errors are checked against the shape
Zendesk's error reference gives (`{"error", "description"?, "details"?}`). Job statuses and
their results, where the recorded answers win over the OAS, are test_contract_zendesk_jobs.py's.

Every exchange is captured at the HTTP layer (the client's own requests.Session) and checked:
- the operation exists (method and path, `.json` stripped), its query parameters are declared
  (enums respected), the request body validates against the request schema and has no key
  that schema does not name;
- the answer validates against the operation's response schema for its status.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.doctor import OK
from connector.helpdesks import zendesk as zendesk_pkg
from connector.helpdesks.base import CommentDraft, HelpdeskError, Requester, TicketDraft
from connector.helpdesks.zendesk.client import ZendeskConfig, ZendeskHelpdesk
from tests.contracts.openapi import (
    Capture,
    Exchange,
    errors,
    load,
    operation,
    query_problems,
    response_validator,
    schema_validator,
)
from tests.fakes.zendesk import FakeZendesk

OAS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "zendesk" / "Ticketing.json"

pytestmark = pytest.mark.skipif(not OAS.is_file(), reason="../shared/specs/zendesk/Ticketing.json (Zendesk's "
                                                          "published Support OAS) is absent beside the repository")

EMAIL, TOKEN = "agent@example.com", "contract-token"

#: Query parameters Zendesk documents outside the operation's parameter list.
DOCUMENTED_QUERY = {
    # …/api-reference/introduction/pagination/: cursor pagination `page[size]` / `page[after]`
    # on every list endpoint (zenpy sends it).
    "*": {"page[size]", "page[after]"},
    # The operation's own description, "Sideloading: see Tickets sideloads" (metric_sets).
    ("GET", "/api/v2/incremental/tickets/cursor"): {"include"},
}
#: Request bodies the OAS leaves out of these operations, as their documentation gives them.
DOCUMENTED_BODIES = {
    # The operation's description: `{"html_body": "<div …>…<redact>…</redact>…</div>", "ticket_id": 100}`.
    ("PUT", "/api/v2/comment_redactions/{ticket_comment_id}"): {"html_body": {"type": "string"},
                                                               "ticket_id": {"type": "integer"}},
    # …/business-rules/sla_policies/#create-sla-policy, #update-sla-policy: `{"sla_policy": {…}}`
    # with the writable fields of SLAPolicyObject.
    ("POST", "/api/v2/slas/policies"): {"sla_policy": {"$ref": "#/components/schemas/SLAPolicyObject"}},
    ("PUT", "/api/v2/slas/policies/{sla_policy_id}"): {"sla_policy": {"$ref": "#/components/schemas/SLAPolicyObject"}},
}
#: Fields Zendesk answers null where the OAS types them non-null. NOT verified against a live
#: account (no recording covers users): a user created from an external id and a name alone
#: has no address, and the fake answers `"email": null` for it.
OAS_NULLABLE = {("UserForAdmin", "email"), ("UserForEndUser", "email")}


# --- the reference ----------------------------------------------------------------------------
def _local(path: str) -> str:
    return re.sub(r"\.json$", "", path)


def _resolve(node: Any) -> Any:
    spec = load(OAS)
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _properties(schema: Any) -> dict[str, Any] | None:
    """The properties a (possibly allOf-composed) object schema names; None when it is open
    (additionalProperties) or not an object schema we can close."""
    schema = _resolve(schema)
    if not isinstance(schema, dict) or schema.get("additionalProperties") not in (None, False):
        return None
    props: dict[str, Any] = dict(schema.get("properties") or {})
    for part in schema.get("allOf") or []:
        inner = _properties(part)
        if inner is None:
            return None
        props.update(inner)
    return props if props or schema.get("allOf") else None


def unknown_keys(schema: Any, body: Any, where: str) -> list[str]:
    """Keys of `body` its request schema does not name, one nesting level at a time."""
    props = _properties(schema)
    if props is None or not isinstance(body, dict):
        return []
    problems = []
    for key, value in body.items():
        if key not in props:
            problems.append(f"{where}: key {key!r} is not in the OAS request schema")
        else:
            problems += unknown_keys(props[key], value, f"{where}.{key}")
    return problems


def request_problems(e: Exchange) -> list[str]:
    local = _local(e.path)
    where = f"{e.method} {local}"
    try:
        _template, op = operation(OAS, e.method, local)
    except LookupError:
        return [f"{where}: no such operation in Zendesk's OAS"]
    extra = DOCUMENTED_QUERY["*"] | DOCUMENTED_QUERY.get((e.method, _template), set())
    problems = query_problems(OAS, e.method, local, {k: v for k, v in e.args.items() if k not in extra})
    body_spec = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
    if body_spec is None and (e.method, _template) in DOCUMENTED_BODIES:
        body_spec = {"schema": {"type": "object", "properties": DOCUMENTED_BODIES[e.method, _template],
                                "additionalProperties": False}}
    if body_spec is None:
        if e.request_body not in (None, ""):
            problems.append(f"{where}: sends a body the operation does not take")
        return problems
    problems += [f"{where} body: {m}" for m in errors(schema_validator(OAS, body_spec["schema"]), e.request_body)]
    return problems + unknown_keys(body_spec["schema"], e.request_body, f"{where} body")


def _allow_documented_nulls() -> None:
    """OAS_NULLABLE into the loaded OAS (a cached copy; the file is untouched)."""
    schemas = load(OAS)["components"]["schemas"]
    for name, field in OAS_NULLABLE:
        schemas[name]["properties"][field]["nullable"] = True


if OAS.is_file():  # before any validator is built from the (cached) components
    _allow_documented_nulls()


def response_problems(e: Exchange) -> list[str]:
    local = _local(e.path)
    where = f"{e.method} {local} → {e.status}"
    if e.status >= 400:  # …/api-reference/introduction/errors/: {"error": …, "description": …, "details": …}
        ok = isinstance(e.body, dict) and isinstance(e.body.get("error"), (str, dict)) \
            and isinstance(e.body.get("description", ""), str) and isinstance(e.body.get("details", {}), dict)
        return [] if ok else [f"{where}: not Zendesk's error shape: {e.body!r}"[:300]]
    try:
        validator = response_validator(OAS, e.method, local, e.status)
    except (LookupError, KeyError):
        return [f"{where}: no such answer in Zendesk's OAS"]
    return [f"{where}: {m}" for m in errors(validator, e.body)]


# --- driving the fake through the real client -------------------------------------------------
def _draft(n: int) -> TicketDraft:
    return TicketDraft(f"yorisoi:x:{7000 + n}", f"[ソラモバイル] 圏外 {n}", f"圏外です {n}", "分析: negative", "high",
                       ("yorisoi", "src_x"), Requester("yorisoi:x:u1", "鈴木 健", "ken_s"),
                       f"https://x.com/a/status/{7000 + n}", {"sentiment": "negative"})


@pytest.fixture
def served(httpserver):
    fake = FakeZendesk(email=EMAIL, token=TOKEN, job_polls_before_done=0)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    env = {"ZENDESK_URL": httpserver.url_for("/").rstrip("/"), "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN,
           "ZENDESK_TIMEOUT": "5", "ZENDESK_FIELDS": "sentiment=360001,intent=360002:tag"}
    return fake, env


def _helpdesk(env: dict[str, str], capture: Capture) -> ZendeskHelpdesk:
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(env), poll_interval=0.001)
    capture.attach(helpdesk.session)
    return helpdesk


def drive(fake: FakeZendesk, env: dict[str, str]) -> Capture:
    capture = Capture()
    helpdesk = _helpdesk(env, capture)
    refs = [helpdesk.create_ticket(_draft(n)) for n in range(3)]  # users/create_or_update + tickets
    assert helpdesk.find_ticket("yorisoi:x:7001") == refs[1]  # GET /tickets?external_id=
    helpdesk.add_comment(refs[0], CommentDraft("yorisoi:x:7100", "まだ圏外", True, "yorisoi:x:u1"))
    assert helpdesk.has_comment(refs[0], "yorisoi:x:7100")  # audits
    agent = fake.agent()
    fake.agent_comment(int(refs[0].ticket_id), "ご不便をおかけしております")
    fake.set_status(int(refs[1].ticket_id), "closed")
    helpdesk.create_followup(refs[1], _draft(10))  # via_followup_source_id
    page = helpdesk.status_page(None, datetime.now(timezone.utc) - timedelta(hours=1))  # incremental export
    assert page.updates
    outcome = helpdesk.redact_post(refs[2], ["yorisoi:x:7002"], True, "［削除されました］")  # comments + redactions
    assert outcome.state in ("redacted", "impossible"), outcome
    minutes = {"urgent": 30, "high": 60, "normal": 240, "low": 480}
    assert helpdesk.setup_sla(minutes, dry_run=False).action == "created"
    assert helpdesk.setup_sla({**minutes, "urgent": 20}, dry_run=False).action == "updated"
    session = requests.Session()
    capture.attach(session)
    checks = zendesk_pkg.doctor(env, session)  # users/me, slas/policies, ticket_fields
    assert all(c.status == OK for c in checks), checks
    fake.reject_ticket = lambda t: {"subject": [{"description": "Subject: is invalid", "error": "InvalidValue"}]}
    with pytest.raises(HelpdeskError):  # 422 RecordInvalid
        helpdesk.create_ticket(_draft(20))
    with pytest.raises(HelpdeskError):  # 401
        _helpdesk({**env, "ZENDESK_API_TOKEN": "wrong"}, capture).create_ticket(_draft(21))
    assert agent
    return capture


# --- the contract -----------------------------------------------------------------------------
def test_the_reference_reads_as_expected():
    """Self-check of the checker."""
    assert operation(OAS, "GET", "/api/v2/users/me")[0] == "/api/v2/users/me"
    assert request_problems(Exchange("POST", "/api/v2/tickets.json", {}, 201, None,
                                     {"ticket": {"comment": {"body": "x"}, "nonsense": 1}}))
    assert request_problems(Exchange("GET", "/api/v2/frobnicate.json", {}, 200, None, None))
    assert response_problems(Exchange("GET", "/api/v2/users/me.json", {}, 200, {"user": {"id": "x"}}, None))


def test_every_request_and_answer_matches_zendesk(served):
    fake, env = served
    capture = drive(fake, env)
    seen = {(e.method, re.sub(r"/\d+", "/{id}", _local(e.path))) for e in capture.exchanges}
    assert {("POST", "/api/v2/users/create_or_update"), ("POST", "/api/v2/tickets"), ("GET", "/api/v2/tickets"),
            ("PUT", "/api/v2/tickets/{id}"), ("GET", "/api/v2/tickets/{id}/audits"),
            ("GET", "/api/v2/tickets/{id}/comments"), ("PUT", "/api/v2/comment_redactions/{id}"),
            ("GET", "/api/v2/incremental/tickets/cursor"), ("GET", "/api/v2/slas/policies"),
            ("POST", "/api/v2/slas/policies"), ("PUT", "/api/v2/slas/policies/{id}"), ("GET", "/api/v2/users/me"),
            ("GET", "/api/v2/ticket_fields")} <= seen, seen
    assert {e.status for e in capture.exchanges} >= {200, 201, 401, 422}
    problems = [p for e in capture.exchanges for p in request_problems(e) + response_problems(e)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("wrong, expected", [
    ({"status": "frozen"}, "'frozen' is not one of"),
    ({"id": "1001"}, "'1001' is not of type 'integer'"),
])
def test_a_wrong_fake_field_fails_the_contract(served, wrong, expected):
    """Deliberately drift the fake's tickets: the contract names the field."""
    fake, env = served
    create = fake._create_ticket

    def drifted(data):
        ticket, audit = create(data)
        return {**ticket, **wrong}, audit
    fake._create_ticket = drifted
    capture = Capture()
    helpdesk = _helpdesk(env, capture)
    try:
        helpdesk.create_ticket(_draft(0))
    except HelpdeskError:
        pass
    problems = [p for e in capture.exchanges for p in response_problems(e)]
    assert any(expected in p for p in problems), problems
