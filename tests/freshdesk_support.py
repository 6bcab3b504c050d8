"""Shared set-up for the Freshdesk tests: the fake behind pytest-httpserver and the settings."""
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.fakes.freshdesk import FakeFreshdesk

API_KEY = "fd-test-key-7f3a9c"
WEBHOOK_TOKEN = "fd-webhook-token-0123456789abcdef"
GROUP_ID = 43000190415


def serve(httpserver: Any, fake: FakeFreshdesk) -> FakeFreshdesk:
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    return fake


def freshdesk_env(httpserver: Any, **extra: str) -> dict[str, str]:
    return {"YORISOI_HELPDESK": "freshdesk", "FRESHDESK_URL": httpserver.url_for("/").rstrip("/"),
            "FRESHDESK_API_KEY": API_KEY, "FRESHDESK_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "FRESHDESK_GROUP_ID": str(GROUP_ID),
            "FRESHDESK_FIELDS": "sentiment=cf_sentiment,intent=cf_intent,risk=cf_risk", **extra}


@pytest.fixture
def fake(httpserver) -> FakeFreshdesk:
    return serve(httpserver, FakeFreshdesk(api_key=API_KEY))


@pytest.fixture
def fd_app(app_factory, httpserver, fake):
    return app_factory(**freshdesk_env(httpserver))


@pytest.fixture
def fd_svc(fd_app):
    return fd_app.extensions["yorisoi"]
