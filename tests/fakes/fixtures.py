"""pytest fixtures for the social fakes: import them into a test module with
`from tests.fakes.fixtures import *  # noqa: F401,F403`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer

from connector import create_app
from connector.config import Settings
from tests.fakes.bluesky import HANDLE, PASSWORD, FakeBluesky
from tests.fakes.mastodon import TOKEN as MASTODON_TOKEN
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.rss import FakeFeeds
from tests.fakes.x import BEARER, BRAND_ID, USER_TOKEN, FakeX

WATCH = """
[[brand]]
name = "ソラモバイル"
keywords = ["ソラモバイル", "ソラ光", "Sora Mobile"]
hashtags = ["#ソラモバイル"]
mentions = ["@soramobile_help"]
exclude_words = ["求人"]
exclude_accounts = ["soramobile_help", "soramobile"]
languages = ["ja", "en"]

[[brand]]
name = "ハルカ珈琲"
keywords = ["ハルカ珈琲"]
exclude_accounts = ["haruka-coffee.bsky.social"]
"""


def write_watch(path: Path, feeds: list[str] = ()) -> Path:
    text = WATCH + "".join(f'\n[[feed]]\nurl = "{url}"\nname = "テストフィード"\n' for url in feeds)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def serve_fake() -> Iterator[Callable[[Any], Any]]:
    servers: list[HTTPServer] = []

    def start(fake: Any) -> Any:
        server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        fake.install(server)
        server.start()
        servers.append(server)
        return fake

    yield start
    for server in servers:
        server.clear()
        if server.is_running():
            server.stop()


@pytest.fixture
def fakes(serve_fake: Callable[[Any], Any]) -> dict[str, Any]:
    return {"x": serve_fake(FakeX()), "mastodon": serve_fake(FakeMastodon()),
            "bluesky": serve_fake(FakeBluesky()), "rss": serve_fake(FakeFeeds())}


def social_env(env: dict[str, str], tmp_path: Path, fakes: dict[str, Any], **extra: str) -> dict[str, str]:
    watch = write_watch(tmp_path / "watch.toml", [fakes["rss"].url + "/anond.rss"] if "rss" in fakes else [])
    # The fakes listen on 127.0.0.1: an intranet address, refused unless opted in (SSRF guard).
    result = {**env, "YORISOI_WATCH": str(watch), "YORISOI_ALLOW_PRIVATE_FEEDS": "1"}
    if "x" in fakes:
        result.update(X_BEARER_TOKEN=BEARER, X_API_URL=fakes["x"].url, X_USER_ID=BRAND_ID,
                      X_USER_ACCESS_TOKEN=USER_TOKEN, X_DAILY_READ_BUDGET="10")
    if "mastodon" in fakes:
        result.update(MASTODON_INSTANCES=fakes["mastodon"].url, MASTODON_ACCESS_TOKEN=MASTODON_TOKEN)
    if "bluesky" in fakes:
        result.update(BLUESKY_HANDLE=HANDLE, BLUESKY_APP_PASSWORD=PASSWORD, BLUESKY_SERVICE=fakes["bluesky"].url)
    result.update(extra)
    return result


@pytest.fixture
def social_app(env: dict[str, str], tmp_path: Path, fakes: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """Build an app wired to the fakes (call again to simulate a restart on the same database)."""
    apps = []

    def make(only: tuple[str, ...] | None = None, **extra: str) -> Any:
        chosen = {k: v for k, v in fakes.items() if only is None or k in only}
        app = create_app(Settings.from_env(social_env(env, tmp_path, chosen, **extra)))
        apps.append(app)
        return app.extensions["yorisoi"]

    yield make
    for app in apps:
        app.extensions["yorisoi"].close()
