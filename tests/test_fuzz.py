"""Every inbound route fuzzed with malformed and hostile bodies (hypothesis), on SQLite and on
PostgreSQL: never a 500, never a half-stored record (a qualifying post always has its analysis
and its outbox row; an exchange always has its posts), and request size limits everywhere.

`/api/v1/*` is fuzzed from its OpenAPI description in tests/test_api_fuzz.py (schemathesis)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connector.db.schema import analyses, exchanges, outbox, posts
from tests.conftest import login, post_dict, sign
from tests.fakes.base import LoopbackServer
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk
from tests.test_channel import PUBLIC_URL, install
from tests.test_channel import SECRET as CHANNEL_SECRET

ZENDESK_SECRET = "zendesk-webhook-secret-fuzz"
FRESHDESK_TOKEN = "fd-webhook-token-fuzz-0123456789"
EXAMPLES = int(os.environ.get("YORISOI_FUZZ_EXAMPLES") or 60)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("YORISOI_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# --- strategies ---------------------------------------------------------------------------------
NASTY = [
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)", "\x00", "a\x00b",
    "\ud800", "\udfff", "'; DROP TABLE posts; --", "${jndi:ldap://x}", "{{7*7}}", "%s%s%n", "\u202e\u2066",
    "ソラモバイル最悪", "ｿﾗﾓﾊﾞｲﾙ", "🙃" * 50, "\r\n\r\nX-Injected: 1", "A" * 3000, " ", "", "9" * 80, "-1", "1e309",
]
hostile_text = st.one_of(st.text(max_size=200), st.sampled_from(NASTY))
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), hostile_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
                           max_leaves=12)


@st.composite
def post_shaped(draw) -> Any:
    """A normalized post with some fields replaced by hostile values (or dropped)."""
    post = post_dict(id=draw(st.text(min_size=1, max_size=20)) if draw(st.booleans()) else f"fz{draw(st.integers(0, 10**9))}")
    post["text"] = "ソラモバイル " + draw(hostile_text)  # mostly qualifying, so analysis and outbox run
    for name in draw(st.lists(st.sampled_from(list(post) + ["author.id", "author.followers", "metrics.likes"]), max_size=3)):
        value = draw(json_values)
        if "." in name:
            outer, inner = name.split(".")
            post[outer] = {**post[outer], inner: value} if isinstance(post.get(outer), dict) else value
        elif draw(st.booleans()):
            post.pop(name, None)
        else:
            post[name] = value
    return post


def encode(value: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as \\udXXX escapes, as a hostile sender would send them
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(encode),
    post_shaped().map(encode),
    st.lists(post_shaped(), min_size=1, max_size=3).map(encode),
)


# --- invariants -----------------------------------------------------------------------------
def assert_no_half_records(store) -> None:
    with store.engine.connect() as conn:
        qualified_without_outbox = conn.execute(
            select(func.count()).select_from(posts).outerjoin(outbox, outbox.c.post_key == posts.c.key)
            .where(posts.c.qualified == True).where(outbox.c.id.is_(None))).scalar()  # noqa: E712
        qualified_without_analysis = conn.execute(
            select(func.count()).select_from(posts).outerjoin(analyses, analyses.c.post_key == posts.c.key)
            .where(posts.c.qualified == True).where(analyses.c.post_key.is_(None))).scalar()  # noqa: E712
        outbox_without_post = conn.execute(
            select(func.count()).select_from(outbox).outerjoin(posts, posts.c.key == outbox.c.post_key)
            .where(posts.c.key.is_(None))).scalar()
        exchanges_without_post = conn.execute(
            select(func.count()).select_from(exchanges).outerjoin(posts, posts.c.key == exchanges.c.ticket_post_key)
            .where(posts.c.key.is_(None))).scalar()
    assert (qualified_without_outbox, qualified_without_analysis, outbox_without_post, exchanges_without_post) == (0, 0, 0, 0)


def check(response, allowed: set[int] | None = None) -> None:
    assert response.status_code < 500 or response.status_code == 503 and "disabled" in response.get_data(as_text=True), \
        (response.status_code, response.get_data(as_text=True)[:500])
    if allowed is not None:
        assert response.status_code in allowed, (response.status_code, response.get_data(as_text=True)[:300])


# --- apps -------------------------------------------------------------------------------------
@pytest.fixture
def zendesk_app(db_env, app_factory, monkeypatch):
    """Zendesk mode with the reply webhook and the Channel framework on, and one real ticket."""
    fake = FakeZendesk()
    server = LoopbackServer(fake.wsgi).start()
    app = app_factory(**db_env, YORISOI_HELPDESK="zendesk", ZENDESK_URL=server.url, ZENDESK_EMAIL="agent@example.com",
                      ZENDESK_API_TOKEN="test-token", ZENDESK_WEBHOOK_SECRET=ZENDESK_SECRET,
                      YORISOI_PUBLIC_URL=PUBLIC_URL, YORISOI_CHANNEL_SECRET=CHANNEL_SECRET)
    svc = app.extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="fz-ticket", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.deliver()
    yield app, svc.store.outbox.ticket_for("x:fz-ticket").ticket_id
    server.stop()


@pytest.fixture
def freshdesk_app(db_env, app_factory):
    fake = FakeFreshdesk(api_key="fd-fuzz-key")
    server = LoopbackServer(fake.wsgi).start()
    app = app_factory(**db_env, YORISOI_HELPDESK="freshdesk", FRESHDESK_URL=server.url, FRESHDESK_API_KEY="fd-fuzz-key",
                      FRESHDESK_WEBHOOK_TOKEN=FRESHDESK_TOKEN, FRESHDESK_GROUP_ID="43000190415")
    svc = app.extensions["yorisoi"]
    svc.pipeline.ingest_raw(post_dict(id="fd-ticket", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.deliver()
    ref = svc.store.outbox.ticket_for("x:fd-ticket")
    yield app, ref.ticket_id if ref else "1"
    server.stop()


# --- the routes -------------------------------------------------------------------------------
def test_fuzz_source_webhook(zendesk_app):
    app, _ticket = zendesk_app
    client = app.test_client()
    store = app.extensions["yorisoi"].store

    @FUZZ
    @given(body=bodies, signed=st.booleans(), content_type=st.sampled_from(["application/json", "text/plain", None]))
    def run(body: bytes, signed: bool, content_type: str | None) -> None:
        headers = {"X-Yorisoi-Signature": sign(body)} if signed else {}
        response = client.post("/sources/webhook", data=body, headers=headers, content_type=content_type)
        check(response, {202, 400, 401, 413} if signed else {401})

    run()
    assert_no_half_records(store)


def _zendesk_signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    signature = base64.b64encode(hmac.new(ZENDESK_SECRET.encode(), timestamp.encode() + body, hashlib.sha256).digest())
    return {"X-Zendesk-Webhook-Signature": signature.decode(), "X-Zendesk-Webhook-Signature-Timestamp": timestamp}


def test_fuzz_zendesk_reply_webhook(zendesk_app):
    app, ticket_id = zendesk_app
    client = app.test_client()
    store = app.extensions["yorisoi"].store
    shaped = st.fixed_dictionaries({}, optional={
        "ticket_id": st.one_of(st.just(ticket_id), json_values), "comment_id": st.one_of(st.integers(0, 10**20).map(str), json_values),
        "public": st.sampled_from(["true", "false", True, None, "x"]), "text": json_values, "agent": json_values,
        "author_role": st.sampled_from(["agent", "admin", "end-user", "", None, 7]),
    }).map(encode)
    header_text = hostile_text.map(lambda t: "".join(c for c in t if c.isprintable() and c.isascii()))

    @FUZZ
    @given(body=st.one_of(bodies, shaped), signed=st.booleans(), timestamp=st.one_of(st.none(), header_text))
    def run(body: bytes, signed: bool, timestamp: str | None) -> None:
        headers = _zendesk_signed(body) if signed else _zendesk_signed(b"x" + body, timestamp or None)
        response = client.post("/zendesk/webhook", data=body, headers=headers, content_type="application/json")
        check(response, {200, 400, 404, 422} if signed else {401})

    run()
    assert_no_half_records(store)


def test_fuzz_freshdesk_reply_webhook(freshdesk_app):
    app, ticket_id = freshdesk_app
    client = app.test_client()
    store = app.extensions["yorisoi"].store
    shaped = st.fixed_dictionaries({}, optional={
        "ticket_id": st.one_of(st.just(ticket_id), json_values), "agent": json_values, "text": json_values,
        "comment_id": json_values})

    @FUZZ
    @given(payload=st.one_of(shaped, json_values), raw=st.one_of(st.none(), st.binary(max_size=200)),
           as_form=st.booleans(), token=st.sampled_from([FRESHDESK_TOKEN, "", "wrong", FRESHDESK_TOKEN + "x"]))
    def run(payload: Any, raw: bytes | None, as_form: bool, token: str) -> None:
        headers = {"X-Yorisoi-Token": token}
        if raw is not None:
            response = client.post("/freshdesk/webhook", data=raw, headers=headers, content_type="application/json")
        elif as_form and isinstance(payload, dict):
            form = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in payload.items()}
            form = {k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"):
                    v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in form.items()}
            response = client.post("/freshdesk/webhook", data=form, headers=headers)
        else:
            response = client.post("/freshdesk/webhook", data=encode(payload), headers=headers, content_type="application/json")
        check(response, {200, 400, 413, 422, 503} if token == FRESHDESK_TOKEN else {401})

    run()
    assert_no_half_records(store)


def test_fuzz_channel_framework_endpoints(zendesk_app):
    app, _ticket = zendesk_app
    client = app.test_client()
    store = app.extensions["yorisoi"].store
    metadata = install(client)
    field_text = st.one_of(hostile_text, st.just(metadata), json_values.map(json.dumps))
    forms = st.dictionaries(st.sampled_from(["metadata", "state", "message", "parent_id", "thread_id", "recipient_id",
                                             "request_unique_identifier", "return_url", "subdomain", "locale", "name",
                                             "form_token", "brand", "signature", "install_code", "file_urls[]"]),
                            field_text, max_size=8)
    routes = st.sampled_from(["/zendesk/channel/pull", "/zendesk/channel/channelback", "/zendesk/channel/admin_ui",
                              "/zendesk/channel/admin_ui/save", "/zendesk/channel/events"])

    def clean(value: str) -> str:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    @FUZZ
    @given(route=routes, form=forms, valid_metadata=st.booleans(), raw=st.one_of(st.none(), bodies))
    def run(route: str, form: dict[str, str], valid_metadata: bool, raw: bytes | None) -> None:
        if valid_metadata:
            form["metadata"] = metadata
        if raw is not None:
            response = client.post(route, data=raw, content_type="application/json")
        else:
            response = client.post(route, data={clean(k): clean(v) for k, v in form.items()})
        check(response)

    run()

    @FUZZ
    @given(external_id=field_text)
    def clickthrough(external_id: str) -> None:
        check(client.get("/zendesk/channel/clickthrough", query_string={"external_id": clean(external_id)}))

    clickthrough()
    assert_no_half_records(store)


def test_fuzz_dashboard(zendesk_app):
    app, _ticket = zendesk_app
    client = login(app.test_client(), app)
    anonymous = app.test_client()

    @FUZZ
    @given(form=st.dictionaries(st.sampled_from(["name", "password", "csrf_token", "next", "back"]), hostile_text, max_size=5),
           route=st.sampled_from(["/login", "/logout", "/outbox/1/retry", "/outbox/retry-failed"]), signed_in=st.booleans())
    def forms(form: dict[str, str], route: str, signed_in: bool) -> None:
        clean = lambda v: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # noqa: E731
        check((client if signed_in and route != "/logout" else anonymous).post(
            route, data={clean(k): clean(v) for k, v in form.items()}))

    forms()

    @FUZZ
    @given(path=st.sampled_from(["/", "/topics", "/risk", "/response-times", "/tickets", "/decisions", "/outbox",
                                 "/posts/", "/healthz", "/export/tickets.csv", "/export/posts.csv"]), tail=hostile_text,
           args=st.dictionaries(st.sampled_from(["only", "lang", "page", "q", "brand", "from", "to", "period", "platform",
                                                 "sentiment", "label", "value", "cursor", "status"]), hostile_text, max_size=4))
    def run(path: str, tail: str, args: dict[str, str]) -> None:
        clean = lambda v: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # noqa: E731
        target = path + (clean(tail).replace("?", "").replace("#", "") if path.endswith("/") and path != "/" else "")
        check(client.get(target, query_string={k: clean(v) for k, v in args.items()}))

    run()


# --- size limits ------------------------------------------------------------------------------
POST_ROUTES = ["/sources/webhook", "/zendesk/webhook", "/freshdesk/webhook", "/zendesk/status", "/freshdesk/status",
               "/zendesk/channel/pull",
               "/zendesk/channel/channelback", "/zendesk/channel/admin_ui", "/zendesk/channel/admin_ui/save",
               "/zendesk/channel/events", "/login", "/logout", "/outbox/<int:outbox_id>/retry", "/outbox/retry-failed",
               "/storms/<int:storm_id>/statement",
               "/api/v1/draft-check", "/api/v1/corrections", "/zendesk/app/sidebar", "/extension/signin",
               "/extension/signout"]


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("encoding", ["json", "form"])
def test_request_size_limit_is_enforced_on_every_route(app_factory, route, encoding):
    app = app_factory(YORISOI_MAX_BODY_BYTES="4096", YORISOI_PUBLIC_URL=PUBLIC_URL,
                      YORISOI_CHANNEL_SECRET=CHANNEL_SECRET, FRESHDESK_WEBHOOK_TOKEN=FRESHDESK_TOKEN)
    client = app.test_client()
    route = route.replace("<int:outbox_id>", "1").replace("<int:storm_id>", "1")
    big = "あ" * 5000
    if encoding == "json":
        body = json.dumps({"text": big, "metadata": big}).encode()
        headers = {"X-Yorisoi-Signature": sign(body), **_zendesk_signed(body), "X-Yorisoi-Token": FRESHDESK_TOKEN,
                   "Authorization": "Bearer some-token"}
        response = client.post(route, data=body, headers=headers, content_type="application/json")
    else:
        response = client.post(route, data={"metadata": big, "message": big, "text": big},
                               headers={"X-Yorisoi-Token": FRESHDESK_TOKEN})
    assert response.status_code == 413, (route, response.status_code, response.get_data(as_text=True)[:200])
    assert app.extensions["yorisoi"].store.posts.counts()["posts"] == 0


def test_every_post_route_is_covered(app):
    routes = {rule.rule for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert routes <= set(POST_ROUTES), routes - set(POST_ROUTES)


# --- deep nesting (issue 16 #17) ---------------------------------------------------------------
DEEP_BODIES = [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b"[" * 100 + b"]" * 100]


def test_deeply_nested_json_is_a_400_on_every_json_route(zendesk_app, freshdesk_app):
    """`json.loads` raises RecursionError (not a ValueError) on deep nesting, which every
    'not valid JSON → 400' branch missed: a 500, on the unauthenticated Channel event callback
    too. Every route that reads a JSON body is sent one, authenticated so the body is read."""
    from connector.agents import create_token
    from connector.jsonsafe import JSONTooDeep, loads
    with pytest.raises(JSONTooDeep):
        loads(DEEP_BODIES[0])
    assert loads(b"[" * 64 + b"]" * 64) is not None  # the limit itself is accepted
    zendesk, _ticket = zendesk_app
    freshdesk, _ticket = freshdesk_app
    _id, token = create_token(zendesk.extensions["yorisoi"].store, "佐藤")
    for body in DEEP_BODIES:
        calls = [
            (zendesk, "/sources/webhook", {"X-Yorisoi-Signature": sign(body)}),
            (zendesk, "/zendesk/webhook", _zendesk_signed(body)),
            (zendesk, "/zendesk/channel/events", {}),
            (zendesk, "/api/v1/draft-check", {"Authorization": f"Bearer {token}"}),
            (zendesk, "/api/v1/corrections", {"Authorization": f"Bearer {token}"}),
            (zendesk, "/extension/signin", {"X-Yorisoi-Extension": "1"}),
            (freshdesk, "/freshdesk/webhook", {"X-Yorisoi-Token": FRESHDESK_TOKEN}),
        ]
        for app, route, headers in calls:
            response = app.test_client().post(route, data=body, headers=headers, content_type="application/json")
            assert response.status_code == 400, (route, len(body), response.status_code,
                                                 response.get_data(as_text=True)[:200])
