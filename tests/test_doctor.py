"""`yorisoi doctor`: each integration's checks against the fakes on loopback (pytest-httpserver),
one line per check (ok / warn / FAIL, Japanese and English), exit code 1 on any FAIL."""
from __future__ import annotations

import re
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connector import create_app, doctor
from connector.cli import main
from connector.config import Settings
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.zendesk import FakeZendesk

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[Request], Response]], str]]:
    """Serve a handler on 127.0.0.1; returns its base URL."""
    servers: list[HTTPServer] = []

    def start(handler: Callable[[Request], Response]) -> str:
        server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        server.expect_request(re.compile(".*")).respond_with_handler(handler)
        server.start()
        servers.append(server)
        return server.url_for("/").rstrip("/")

    yield start
    for server in servers:
        server.clear()
        server.stop()


@pytest.fixture
def zendesk(loopback) -> tuple[FakeZendesk, dict[str, str]]:
    fake = FakeZendesk(email="agent@example.com", token="doctor-token")
    url = loopback(fake.handle)
    return fake, {"YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": url, "ZENDESK_EMAIL": "agent@example.com",
                  "ZENDESK_API_TOKEN": "doctor-token", "ZENDESK_FIELDS": "sentiment=360001:tag,intent=360002"}


@pytest.fixture
def public_url(loopback, env) -> str:
    """The real connector app, answering its /healthz."""
    app = create_app(Settings.from_env(env))
    yield loopback(lambda request: Response.from_app(app.wsgi_app, request.environ))
    app.extensions["yorisoi"].close()


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_everything_configured_and_healthy_is_ok(env, tmp_path, fakes, zendesk, public_url):
    fake, zd_env = zendesk
    fakes["x"].add_post("ソラモバイル、圏外です", mention_brand=True)
    full = {**social_env(env, tmp_path, fakes), **zd_env, "YORISOI_PUBLIC_URL": public_url}
    checks = by_name(doctor.run(full))
    assert set(checks) == {"zendesk.credentials", "zendesk.sla", "zendesk.fields", "x.token", "x.naming", "x.stream",
                           "x.user_token", "mastodon.token", "bluesky.session", "public_url"}
    assert {c.status for c in checks.values()} == {"ok"}, [c.line() for c in checks.values()]
    assert "2.159" in checks["x.naming"].en and "retweet_count" in checks["x.naming"].en
    assert "agent@example.com" in checks["zendesk.credentials"].en
    for check in checks.values():  # one line, Japanese and English
        line = check.line()
        assert "\n" not in line and JAPANESE.search(check.ja) and " / " in line
    # Read-only: the helpdesk saw only GETs, and no ticket, user or policy was made.
    assert {m for m, *_ in fake.log} == {"GET"} and not fake.tickets and not fake.users
    # The networks: GETs, and Bluesky's createSession only.
    writes = [(name, r["path"]) for name, f in fakes.items() for r in f.requests if r["method"] != "GET"]
    assert writes == [("bluesky", "/xrpc/com.atproto.server.createSession")]

    result = CliRunner().invoke(main, ["doctor"], env=full)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(checks) + 1 and all(l.startswith("ok ") for l in lines[:-1])


def test_a_refused_helpdesk_credential_fails_and_exits_nonzero(env, tmp_path, zendesk):
    fake, zd_env = zendesk
    bad = {**env, **zd_env, "ZENDESK_API_TOKEN": "wrong-token"}
    checks = by_name(doctor.run(bad))
    assert checks["zendesk.credentials"].status == "FAIL"
    assert "ZENDESK_API_TOKEN" in checks["zendesk.credentials"].en
    assert "zendesk.sla" not in checks  # nothing further is tried with a refused credential
    result = CliRunner().invoke(main, ["doctor"], env=bad)
    assert result.exit_code == 1
    assert re.search(r"^FAIL zendesk\.credentials: .*認証に失敗.* / authentication failed", result.output, re.M)


def test_zendesk_plan_features_sla_missing_warns_and_unknown_field_fails(env, zendesk):
    fake, zd_env = zendesk
    fake.fail_next("GET", r"/api/v2/slas/policies", 403, {"error": "Forbidden", "description": "SLA not in plan"})
    checks = by_name(doctor.run({**env, **zd_env, "ZENDESK_FIELDS": "sentiment=360001,risk=999999"}))
    assert checks["zendesk.credentials"].status == "ok"
    assert checks["zendesk.sla"].status == "warn" and "403" in checks["zendesk.sla"].en
    assert checks["zendesk.fields"].status == "FAIL" and "risk=999999" in checks["zendesk.fields"].en
    assert checks["public_url"].status == "warn"  # YORISOI_PUBLIC_URL unset


def test_freshdesk_credentials_sla_and_fields(env, loopback):
    fake = FakeFreshdesk(api_key="fd-key")
    url = loopback(fake.handle)
    fd_env = {**env, "YORISOI_HELPDESK": "freshdesk", "FRESHDESK_URL": url, "FRESHDESK_API_KEY": "fd-key",
              "FRESHDESK_FIELDS": "sentiment=cf_sentiment,intent=cf_intent"}
    checks = by_name(doctor.run(fd_env))
    assert [checks[n].status for n in ("freshdesk.credentials", "freshdesk.sla", "freshdesk.fields")] == ["ok"] * 3
    missing = by_name(doctor.run({**fd_env, "FRESHDESK_FIELDS": "sentiment=cf_feeling"}))
    assert missing["freshdesk.fields"].status == "FAIL" and "cf_feeling" in missing["freshdesk.fields"].en
    refused = by_name(doctor.run({**fd_env, "FRESHDESK_API_KEY": "stale-key"}))
    assert refused["freshdesk.credentials"].status == "FAIL" and "FRESHDESK_API_KEY" in refused["freshdesk.credentials"].en
    assert CliRunner().invoke(main, ["doctor"], env={**fd_env, "FRESHDESK_API_KEY": "stale-key"}).exit_code == 1


def test_x_tells_which_naming_the_api_answered(env, tmp_path, fakes):
    x = fakes["x"]
    x.add_post("ソラモバイル、圏外です", mention_brand=True)
    x.naming = "2.167"
    checks = by_name(doctor.run(social_env(env, tmp_path, {"x": x})))
    assert checks["x.naming"].status == "ok"
    assert "repost_count" in checks["x.naming"].en and "2.167" in checks["x.naming"].ja
    [sample] = x.calls("/2/users/")[:1]
    assert "tweet.fields" in sample["args"]  # the request itself stays on 2.159's names


def test_x_without_sample_post_warns_and_bad_tokens_fail(env, tmp_path, fakes):
    x = fakes["x"]
    base = social_env(env, tmp_path, {"x": x})
    checks = by_name(doctor.run(base))
    assert checks["x.token"].status == "ok" and checks["x.naming"].status == "warn"
    bad = by_name(doctor.run({**base, "X_BEARER_TOKEN": "revoked"}))
    assert bad["x.token"].status == "FAIL" and "x.naming" not in bad
    expired = by_name(doctor.run({**base, "X_USER_ACCESS_TOKEN": "old", "X_USER_REFRESH_TOKEN": "r", "X_CLIENT_ID": "c"}))
    assert expired["x.user_token"].status == "warn"
    assert by_name(doctor.run({**base, "X_USER_ACCESS_TOKEN": "old"}))["x.user_token"].status == "FAIL"


def test_mastodon_and_bluesky_refused_tokens_fail(env, tmp_path, fakes):
    base = social_env(env, tmp_path, {"mastodon": fakes["mastodon"], "bluesky": fakes["bluesky"]})
    checks = by_name(doctor.run(base))
    assert checks["mastodon.token"].status == "ok" and "@soramobile" in checks["mastodon.token"].en
    assert checks["bluesky.session"].status == "ok"
    bad = by_name(doctor.run({**base, "MASTODON_ACCESS_TOKEN": "nope", "BLUESKY_APP_PASSWORD": "nope"}))
    assert bad["mastodon.token"].status == "FAIL" and bad["bluesky.session"].status == "FAIL"
    no_token = {k: v for k, v in base.items() if k != "MASTODON_ACCESS_TOKEN"}
    assert by_name(doctor.run(no_token))["mastodon.token"].status == "warn"


def test_public_url_unreachable_or_unhealthy_fails(env, loopback):
    down = loopback(lambda request: Response("boom", status=503))
    checks = by_name(doctor.run({**env, "YORISOI_PUBLIC_URL": down}))
    assert checks["public_url"].status == "FAIL" and "503" in checks["public_url"].en
    closed = by_name(doctor.run({**env, "YORISOI_PUBLIC_URL": "http://127.0.0.1:9"}))
    assert closed["public_url"].status == "FAIL"
    assert by_name(doctor.run(env))["helpdesk"].status == "ok"  # local helpdesk: nothing to check


def test_a_configuration_error_is_a_fail_line_not_a_traceback(env):
    checks = doctor.run({**env, "YORISOI_HELPDESK": "zendesk"})  # no ZENDESK_SUBDOMAIN / URL
    [config] = [c for c in checks if c.name == "zendesk.config"]
    assert config.status == "FAIL" and "ZENDESK_SUBDOMAIN" in config.en
