"""`/api/v1/*` fuzzed from its own OpenAPI description (schemathesis), with a valid agent token
and without: never a 500, answers that match the description, no half-stored correction."""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from connector.agents import create_token
from tests.test_fuzz import assert_no_half_records

EXAMPLES = int(os.environ.get("YORISOI_FUZZ_EXAMPLES") or 60)


@pytest.fixture
def api_app(db_env, app_factory):
    app = app_factory(**db_env)
    svc = app.extensions["yorisoi"]
    from tests.conftest import post_dict
    svc.pipeline.ingest_raw(post_dict(id="api-1", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.deliver()
    _id, token = create_token(svc.store, "佐藤")
    return app, token


def test_fuzz_api_v1_from_its_openapi_description(api_app):
    app, token = api_app
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/me", "/context", "/draft-check", "/corrections"} or \
        {op.path for op in operations} >= {"/api/v1/me", "/api/v1/context", "/api/v1/draft-check", "/api/v1/corrections"}
    calls = {"n": 0}
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), authorized=st.booleans())
        def run(case, authorized: bool) -> None:
            headers = {"Authorization": f"Bearer {token}"} if authorized else {}
            response = case.call(headers=headers)
            calls["n"] += 1
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
            if authorized:
                case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                                          response_schema_conformance))

        run()
    assert calls["n"] >= len(operations) * 10, calls
    assert_no_half_records(app.extensions["yorisoi"].store)
