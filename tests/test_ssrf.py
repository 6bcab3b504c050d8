"""SSRF (issue 16, #11): a watched feed, a network host or the alert webhook must not reach
loopback, link-local, private or reserved addresses unless YORISOI_ALLOW_PRIVATE_FEEDS opts in.

The "public" feed is a fake on 127.0.0.2 that the tests count as public (every other address
is judged as in production); it redirects to a secret on 127.0.0.1 or to 169.254.169.254.
"""
from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from connector.config import Settings
from connector.poller import Poller
from connector.services import Services
from connector.sources import netguard
from tests.fakes.fixtures import write_watch

SECRET_FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>internal</title>
<item><title>ソラモバイル 内部メモ</title><link>http://127.0.0.1/secret</link><guid>secret-1</guid>
<description>ソラモバイルの社内向け秘密情報 AWS_SECRET=abc</description></item></channel></rss>"""


@pytest.fixture
def public_feed(monkeypatch):
    real = netguard.is_public
    monkeypatch.setattr(netguard, "is_public", lambda address: address == "127.0.0.2" or real(address))
    server = HTTPServer(host="127.0.0.2", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def secret(httpserver):
    httpserver.expect_request("/secret").respond_with_data(SECRET_FEED, content_type="application/rss+xml")
    return httpserver


def poll_feed(env, tmp_path, url, **extra):
    watch = write_watch(tmp_path / "watch.toml", [url])
    svc = Services.build(Settings.from_env({**env, "YORISOI_WATCH": str(watch), **extra}))
    try:
        report = Poller(svc).run_once(compliance=False, ignore_interval=True)
        return report, svc.store.posts.decisions()
    finally:
        svc.close()


@pytest.mark.parametrize("target", ["loopback", "http://169.254.169.254/latest/meta-data/"])
def test_a_feed_redirecting_inward_is_refused(env, tmp_path, public_feed, secret, target):
    location = secret.url_for("/secret") if target == "loopback" else target
    public_feed.expect_request("/feed.rss").respond_with_data("", status=302, headers={"Location": location})
    report, stored = poll_feed(env, tmp_path, public_feed.url_for("/feed.rss"))
    assert stored == []
    assert not secret.log  # the internal address was never contacted
    [unit] = report.units
    assert unit.error and "non-public address" in unit.error, unit


def test_a_feed_on_a_private_address_is_refused_unless_opted_in(env, tmp_path, secret):
    report, stored = poll_feed(env, tmp_path, secret.url_for("/secret"))
    assert stored == [] and not secret.log
    # A database of its own (also when the suite runs on PostgreSQL): the first, refused poll
    # put the unit on back-off in the first one.
    other = tmp_path / "other"
    report, stored = poll_feed({**env, "YORISOI_DATA_DIR": str(other),
                                "YORISOI_DATABASE": f"sqlite:///{other}/yorisoi.sqlite3"}, tmp_path,
                               secret.url_for("/secret"), YORISOI_ALLOW_PRIVATE_FEEDS="1")
    assert len(secret.log) == 1  # an intranet feed, explicitly allowed


def test_redirect_chains_are_bounded(public_feed):
    for i in range(7):
        public_feed.expect_request(f"/r{i}").respond_with_data("", status=302, headers={"Location": f"/r{i + 1}"})
    import requests
    with pytest.raises(requests.TooManyRedirects):
        netguard.GuardedSession().get(public_feed.url_for("/r0"), timeout=5)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "240.0.0.1", "::1", "fe80::1", "fc00::1",
                                     "::ffff:127.0.0.1", "224.0.0.1"])
def test_internal_addresses_are_not_public(address):
    assert not netguard.is_public(address)
    assert netguard.is_public("93.184.216.34") and netguard.is_public("2606:4700::1111")


def test_the_alert_webhook_cannot_reach_internal_addresses(httpserver):
    from connector.storms import _post_json

    httpserver.expect_request("/hook").respond_with_data("ok")
    with pytest.raises(netguard.BlockedAddress):
        _post_json(httpserver.url_for("/hook"), {"text": "spike"})
    assert not httpserver.log
    _post_json(httpserver.url_for("/hook"), {"text": "spike"}, allow_private=True)
    assert len(httpserver.log) == 1
