"""Contract: the fake Zendesk's job statuses are what a real Zendesk answers.

Two references, both from ../shared/specs/zendesk/ (skipped with the reason when absent):
- the Support API OAS (`Ticketing.json`): `JobStatusResponse` / `JobStatusesResponse` and the
  result objects `CreateResourceResult`, `UpdateResourceResult`, `FailedResult`;
- `recorded_job_results.json`: results recorded from a real Zendesk account. Where the two
  disagree the recording wins: users' create_many results are `{id, status}` (no `index`,
  `action` or `success`), which matches none of the OAS result objects, so users' results are
  checked against the recording only.

The fake is driven by the real client code (zenpy over requests), its answers captured at
the HTTP layer.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft7Validator

from connector.helpdesks.base import Requester, TicketDraft
from connector.helpdesks.zendesk.client import ZendeskConfig, ZendeskHelpdesk
from tests.fakes.zendesk import FakeZendesk

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "zendesk"
OAS = SPECS / "Ticketing.json"
RECORDED = SPECS / "recorded_job_results.json"

pytestmark = pytest.mark.skipif(
    not (OAS.is_file() and RECORDED.is_file()),
    reason="../shared/specs/zendesk/ (Zendesk's published OAS and recorded job results) is absent beside the repository")

EMAIL, TOKEN = "agent@example.com", "contract-token"
#: The fake's job kinds → the recorded endpoint whose successful results they must look like.
RECORDED_ENDPOINT = {"create": "POST /api/v2/tickets/create_many.json",
                     "update": "PUT /api/v2/tickets/update_many.json",
                     "users": "POST /api/v2/users/create_many.json"}
#: Keys a result may carry beyond the recording: users' results name the email when one was
#: sent ({id, status, email?} in …/users/users/#create-or-update-many-users).
OPTIONAL = {"users": {"email"}}


# --- the references ---------------------------------------------------------------------------
def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema (`type: [t, "null"]`)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k not in ("nullable", "example", "description")}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=None)
def _components() -> dict[str, Any]:
    return _openapi_to_jsonschema(json.loads(OAS.read_text(encoding="utf-8"))["components"])


def oas_validator(name: str, *, any_results: bool = False) -> Draft7Validator:
    """A validator for components/schemas/<name>; `any_results` leaves `results` unchecked
    (users' results, which the recording describes and the OAS does not)."""
    components = copy.deepcopy(_components())
    if any_results:
        components["schemas"]["JobStatusObject"]["properties"]["results"] = {"type": ["array", "null"]}
    return Draft7Validator({"$ref": f"#/components/schemas/{name}", "components": components})


@lru_cache(maxsize=None)
def recorded() -> dict[str, Any]:
    return json.loads(RECORDED.read_text(encoding="utf-8"))["jobs"]


def _failure_shapes() -> dict[str, type]:
    """Key → type over every recorded failed result (they carry `error`)."""
    shapes: dict[str, type] = {}
    for job in recorded().values():
        for entry in job["results"]:
            if "error" in entry:
                shapes.update({k: type(v) for k, v in entry.items()})
    return shapes


def result_shape_errors(kind: str, result: dict[str, Any]) -> list[str]:
    """What differs between one fake result and the results Zendesk recorded for that endpoint."""
    if "error" in result:
        allowed = _failure_shapes()
        wanted: set[str] = {"error"}
    else:
        sample = recorded()[RECORDED_ENDPOINT[kind]]["results"]
        allowed = {k: type(v) for entry in sample for k, v in entry.items()}
        wanted = set(recorded()[RECORDED_ENDPOINT[kind]]["keys"])
        allowed.update({k: str for k in OPTIONAL.get(kind, ())})
    problems = [f"{kind} result {result}: `{k}` is not in Zendesk's recorded answers" for k in result if k not in allowed]
    problems += [f"{kind} result {result}: `{k}` is missing (Zendesk sends it)" for k in sorted(wanted - set(result))]
    problems += [f"{kind} result {result}: `{k}` is {type(v).__name__}, Zendesk sends {allowed[k].__name__}"
                 for k, v in result.items() if k in allowed and v is not None and not isinstance(v, allowed[k])]
    return problems


def job_status_errors(job_status: dict[str, Any], kind: str) -> list[str]:
    """The envelope against the OAS; each successful tickets result against the OAS result
    objects; every result against the recorded shapes. (Failed results are checked against the
    recording only: the recorded failure `{index, error, id, details}` lacks the `action` and
    `success` the OAS's FailedResult requires.)"""
    problems = [f"job_status {job_status.get('id')}: {e.message} at {list(e.absolute_path)}"
                for e in oas_validator("JobStatusResponse", any_results=True).iter_errors({"job_status": job_status})]
    result_validator = oas_validator("JobStatusResultObject")
    for result in job_status.get("results") or []:
        if kind != "users" and "error" not in result:
            problems += [f"{kind} result {result}: {e.message}" for e in result_validator.iter_errors(result)]
        problems += result_shape_errors(kind, result)
    return problems


# --- capturing the fake's answers ------------------------------------------------------------
@pytest.fixture
def captured(httpserver):
    """The fake behind httpserver, and every (path, job kind by id, answer) it served."""
    fake = FakeZendesk(email=EMAIL, token=TOKEN, job_polls_before_done=1)
    answers: list[tuple[str, Any]] = []

    def handle(request):
        response = fake.handle(request)
        if "job_status" in response.get_data(as_text=True):
            answers.append((request.path, json.loads(response.get_data())))
        return response
    httpserver.expect_request(re.compile(".*")).respond_with_handler(handle)
    env = {"ZENDESK_URL": httpserver.url_for("/").rstrip("/"), "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN,
           "ZENDESK_TIMEOUT": "2"}
    return fake, answers, env, httpserver


def _statuses(answers: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for _path, body in answers:
        out += body.get("job_statuses") or ([body["job_status"]] if "job_status" in body else [])
    return out


def _drive(fake: FakeZendesk, env: dict[str, str], httpserver) -> None:
    """A bulk delivery through the real client (requesters, tickets with one refused, notes),
    an update_many naming a ticket that does not exist, and one single job status read."""
    fake.reject_ticket = lambda t: {"subject": [{"description": "Subject: is invalid", "error": "InvalidValue"}]} \
        if "refused" in (t.get("subject") or "") else None
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(env), poll_interval=0.001)
    drafts = [TicketDraft(f"yorisoi:x:c{n}", "refused" if n == 3 else f"s{n}", "text", "note", "normal", ("yorisoi",),
                          Requester(f"yorisoi:x:u{n % 7}", "n", None), None, {}) for n in range(12)]
    result = helpdesk.create_tickets_many(drafts)
    assert len(result.refs) == 11 and list(result.errors) == [3]
    auth = (f"{EMAIL}/token", TOKEN)
    base = httpserver.url_for("/api/v2")
    job = requests.put(f"{base}/tickets/update_many.json", auth=auth, timeout=5, json={"tickets": [
        {"id": next(iter(fake.tickets)), "comment": {"body": "x", "public": False}}, {"id": 999999, "status": "open"}]}).json()
    for _ in range(3):
        requests.get(f"{base}/job_statuses/{job['job_status']['id']}.json", auth=auth, timeout=5).raise_for_status()


# --- the contract -----------------------------------------------------------------------------
def test_the_references_agree_with_each_other():
    """Self-check of the checker: the recorded tickets results are OAS results, and pass."""
    for endpoint, job in recorded().items():
        if "/tickets/" in endpoint:
            validator = oas_validator("JobStatusObject")
            assert not list(validator.iter_errors({"id": "x", "status": "completed", "results": job["results"]})), endpoint
    for kind, endpoint in RECORDED_ENDPOINT.items():
        for entry in recorded()[endpoint]["results"]:
            assert result_shape_errors(kind, entry) == [], (kind, entry)


def test_every_job_status_the_fake_serves_is_what_zendesk_answers(captured):
    fake, answers, env, httpserver = captured
    _drive(fake, env, httpserver)
    kinds = {job_id: job["_kind"] for job_id, job in fake.jobs.items()}
    statuses = _statuses(answers)
    seen = {(kinds[s["id"]], s["status"]) for s in statuses}
    assert {("users", "completed"), ("create", "completed"), ("update", "completed"),
            ("create", "queued"), ("update", "working")} <= seen, seen
    assert any("error" in r for s in statuses if kinds[s["id"]] == "update" for r in s.get("results") or [])
    assert {p for p, _ in answers} >= {"/api/v2/job_statuses/show_many.json", "/api/v2/tickets/create_many.json",
                                       "/api/v2/tickets/update_many.json", "/api/v2/users/create_or_update_many.json"}
    for path, body in answers:  # the envelopes (results: status by status below)
        schema = "JobStatusesResponse" if "show_many" in path else "JobStatusResponse"
        errors = [e.message for e in oas_validator(schema, any_results=True).iter_errors(body)]
        assert not errors, (path, errors)
    problems = [p for s in statuses for p in job_status_errors(s, kinds[s["id"]])]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind, wrong, expected", [
    ("update", {"index": 0}, "`index` is not in Zendesk's recorded answers"),
    ("users", {"external_id": "yorisoi:x:u1"}, "`external_id` is not in Zendesk's recorded answers"),
    ("users", {"action": "create"}, "`action` is not in Zendesk's recorded answers"),
    ("update", {"success": "yes"}, "`success` is str, Zendesk sends bool"),
    ("create", {"index": None, "id": 5}, None),  # index missing from a create result: OAS + recording
])
def test_a_wrong_fake_field_fails_the_contract(captured, kind, wrong, expected):
    """Deliberately drift the fake: the contract names the field."""
    fake, answers, env, httpserver = captured
    run_job = fake.run_job

    def drifted(job_id):
        run_job(job_id)
        job = fake.jobs[job_id]
        if job["_kind"] == kind:
            for result in job["results"]:
                result.update(wrong)
                if wrong.get("index", 0) is None:
                    del result["index"]
    fake.run_job = drifted
    helpdesk = ZendeskHelpdesk(ZendeskConfig.from_env(env), poll_interval=0.001)
    helpdesk.create_tickets_many([TicketDraft(f"yorisoi:x:w{n}", "s", "text", "note", "normal", ("yorisoi",),
                                              Requester(f"yorisoi:x:u{n}", "n", None), None, {}) for n in range(6)])  # > DIRECT_BATCH_MAX: jobs
    kinds = {job_id: job["_kind"] for job_id, job in fake.jobs.items()}
    problems = [p for s in _statuses(answers) if kinds[s["id"]] == kind for p in job_status_errors(s, kind)]
    assert problems
    if expected:
        assert any(expected in p for p in problems), problems
    else:
        assert any("`index` is missing" in p for p in problems) and any("is not valid under any" in p for p in problems)
