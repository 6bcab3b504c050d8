from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from connector import create_app
from connector.config import Settings
from tests import pg

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_SECRET = "test-webhook-secret-変える"

_ids = itertools.count(1)


def post_dict(**overrides: Any) -> dict[str, Any]:
    """A valid normalized post; override any field (use author={...} to merge author fields)."""
    n = next(_ids)
    post: dict[str, Any] = {
        "platform": "x", "id": f"18600000000000{n:05d}",
        "url": f"https://x.com/tanaka_k/status/18600000000000{n:05d}",
        "created_at": "2026-11-20T09:00:00Z", "lang": "ja",
        "text": "ソラモバイル、駅で全然繋がらない。最悪",
        "author": {"id": "90000001", "handle": "tanaka_k", "name": "田中", "bio": "", "location": "東京",
                   "followers": 320, "following": 100, "created_at": "2016-05-01T00:00:00Z", "avatar_url": None},
        "metrics": {"replies": 0, "reposts": 2, "likes": 6, "quotes": 0},
        "in_reply_to": None, "conversation_id": None, "repost_of": None,
    }
    author = overrides.pop("author", None)
    if author:
        post["author"] = {**post["author"], **author}
    post.update(overrides)
    return post


def write_jsonl(path: Path, posts: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
    return path


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def env(tmp_path: Path):
    base = {
        "YORISOI_DATA_DIR": str(tmp_path / "data"),
        "YORISOI_WATCH": str(FIXTURES / "watch.toml"),
        "YORISOI_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "YORISOI_LOG_LEVEL": "WARNING",
        # Many tests replay a dozen near-identical synthetic posts, which is a storm (and a
        # spike) by the defaults: grouping still runs, but storm/alert tickets only appear in
        # the storm tests, which set their own thresholds (tests/test_storms.py).
        "YORISOI_STORM_MIN_POSTS": "100000",
        "YORISOI_SPIKE_MIN_COUNT": "100000",
    }
    if os.environ.get("YORISOI_TEST_DATABASE") == "postgresql":
        # The whole suite on PostgreSQL (a check of "same schema, same behaviour"; CI runs
        # the tests marked for both backends through the `backend` fixture instead).
        if pg.unavailable():
            pytest.skip(pg.unavailable())
        with pg.fresh_database() as url:
            yield {**base, "YORISOI_DATABASE": url}
        return
    yield base


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """Run a test on SQLite and on a real PostgreSQL server (skipped with the reason when none)."""
    if request.param == "postgresql" and pg.unavailable():
        pytest.skip(pg.unavailable())
    return request.param


@pytest.fixture
def db_env(env: dict[str, str], backend: str):
    """`env` with YORISOI_DATABASE on the chosen backend (a fresh PostgreSQL database, dropped after)."""
    if backend == "postgresql" and "YORISOI_DATABASE" not in env:
        with pg.fresh_database() as url:
            yield {**env, "YORISOI_DATABASE": url}
        return
    if backend == "sqlite":  # SQLite even when the whole suite runs on PostgreSQL
        yield {**env, "YORISOI_DATABASE": f"sqlite:///{env['YORISOI_DATA_DIR']}/yorisoi.sqlite3"}
        return
    yield env


def database_url(env: dict[str, str]) -> str:
    return env.get("YORISOI_DATABASE") or f"sqlite:///{env['YORISOI_DATA_DIR']}/yorisoi.sqlite3"


@pytest.fixture
def app_factory(env: dict[str, str]) -> Callable[..., Any]:
    apps = []

    def make(**extra: str):
        app = create_app(Settings.from_env({**env, **extra}))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["yorisoi"].close()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def svc(app):
    return app.extensions["yorisoi"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def httpserver_listen_address():
    # Fakes of external services listen on the loopback address only (house rule); an IP,
    # not "localhost", also suits clients that build host names (zenpy: "<sub>.<domain>").
    return ("127.0.0.1", 0)


SUPERVISOR = ("supervisor", "a-long-test-password-監督")


def csrf_from(html: str) -> str:
    import re
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, app, name: str = SUPERVISOR[0], password: str = SUPERVISOR[1]):
    """Create the supervisor account (once) and sign the test client in through the form."""
    from connector.web.auth import hash_password
    store = app.extensions["yorisoi"].store
    if store.accounts.user_password_hash(name) is None:
        store.accounts.create_user(name, hash_password(password))
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"name": name, "password": password, "csrf_token": token, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def supervisor(app):
    """A test client signed in to the dashboard (the webhooks' `client` stays anonymous)."""
    return login(app.test_client(), app)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the pipeline catches it."""


def raise_once(monkeypatch, cls, name: str, exc_factory, before: bool = True) -> None:
    """Make `cls.name` raise `exc_factory()` on its first call only: before doing its work
    (the call never happened) or after it (the work happened, the answer was lost)."""
    original = getattr(cls, name)
    state = {"raised": False}

    def wrapper(self, *args, **kwargs):
        if state["raised"]:
            return original(self, *args, **kwargs)
        state["raised"] = True
        if not before:
            original(self, *args, **kwargs)
        raise exc_factory()

    monkeypatch.setattr(cls, name, wrapper)
