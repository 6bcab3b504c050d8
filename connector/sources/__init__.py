"""Source modules, one per network, behind `base.Source`; `make_sources` picks them.

A network with configuration gets its real module (X, Mastodon, Bluesky, RSS); a network
without falls back to `LocalSource`, which records replies in Yorisoi only.

`PLATFORMS` is the registry of networks: each module's `INFO` (a `PlatformInfo`), in the order
the dashboard and reports list them. Adding a network means one new module here, its `INFO`
in this list, its branch in `make_sources`, and its tests (docs/adding-a-network.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from connector.config import ConfigError
from connector.sources import bluesky, mastodon, rss, webhook, x
from connector.sources.base import (
    PolledPost,
    PollingSource,
    PollResult,
    ReplyRefused,
    ReplyResult,
    Source,
    SourceError,
)
from connector.sources.local import LocalSource
from connector.sources.platform import PlatformInfo

if TYPE_CHECKING:
    from connector.config import Settings
    from connector.db import Store
    from connector.watch import WatchConfig

__all__ = ["PLATFORMS", "PLATFORM_NAMES", "PlatformInfo", "PolledPost", "PollResult", "PollingSource", "ReplyRefused", "ReplyResult", "Source", "SourceError",
           "make_sources", "platform_name", "poll_intervals", "polling_sources"]

#: Every network a post can come from, by name. `webhook` is any other tool pushing posts to us.
PLATFORMS: dict[str, PlatformInfo] = {m.INFO.name: m.INFO for m in (x, mastodon, bluesky, rss, webhook)}
#: Display name per network (what tickets, reports and the dashboard show).
PLATFORM_NAMES: dict[str, str] = {p.name: p.display_en for p in PLATFORMS.values()}


def platform_name(platform: str, lang: str = "en") -> str:
    """The network's display name; an unknown name is shown as it is."""
    info = PLATFORMS.get(platform)
    return info.display(lang) if info else platform

#: Seconds between polls of one unit when YORISOI_POLL_INTERVALS does not say otherwise.
DEFAULT_INTERVALS = {p.name: p.poll_interval for p in PLATFORMS.values() if p.poll_interval is not None}


def poll_intervals(raw: str | None) -> dict[str, float]:
    """`x=300,mastodon=120,bluesky=120,rss=900` (any subset), seconds ≥ 10."""
    intervals = dict(DEFAULT_INTERVALS)
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        name, _, seconds = part.partition("=")
        name = name.strip().lower()
        try:
            value = float(seconds)
        except ValueError:
            value = -1
        if name not in intervals or value < 10:
            raise ConfigError(f"YORISOI_POLL_INTERVALS: {part.strip()!r} should look like x=300 "
                              f"(networks: {', '.join(intervals)}; seconds ≥ 10)")
        intervals[name] = value
    return intervals


def _float(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < low:
        raise ConfigError(f"{name}={raw!r} must be at least {low}")
    return value


def _switch(env: Mapping[str, str], name: str) -> bool:
    """An on/off setting that defaults to on (BLUESKY_STREAM, MASTODON_STREAM)."""
    value = (env.get(name) or "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{name}={value!r} should be on or off")
    return value == "on"


def _x_stream_plan(env: Mapping[str, str]) -> Any:
    """The X plan's filtered-stream limits (X_PLAN), or None with X_STREAM=off."""
    from connector.sources.x_stream import PLANS
    plan = (env.get("X_PLAN") or "pay-per-use").strip().lower()
    if plan not in PLANS:
        raise ConfigError(f"X_PLAN={plan!r} should be one of {', '.join(PLANS)}")
    return PLANS[plan] if _switch(env, "X_STREAM") else None


def _public_streams(raw: str | None, instances: list[str]) -> dict[str, str]:
    """`mstdn.jp:local,fedibird.com` → {"mstdn.jp": "public:local", "fedibird.com": "public"}."""
    from urllib.parse import urlsplit
    hosts = {urlsplit(i).netloc for i in instances}
    found: dict[str, str] = {}
    for part in (raw or "").split(","):
        part = part.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not part:
            continue
        host, local = (part[:-len(":local")], True) if part.endswith(":local") else (part, False)
        if host not in hosts:
            raise ConfigError(f"MASTODON_PUBLIC_STREAM: {host!r} is not one of MASTODON_INSTANCES "
                              f"({', '.join(sorted(hosts))})")
        found[host] = "public:local" if local else "public"
    return found


def _poll_bounds(env: Mapping[str, str]) -> tuple[float, float]:
    raw = (env.get("X_POLL_BOUNDS") or "60,900").replace(" ", "")
    try:
        low, high = (float(v) for v in raw.split(","))
    except ValueError:
        raise ConfigError(f"X_POLL_BOUNDS={raw!r} should be two numbers of seconds, like 60,900") from None
    if not 10 <= low <= high:
        raise ConfigError(f"X_POLL_BOUNDS={raw!r}: the shortest must be at least 10 s and not above the longest")
    return low, high


def make_sources(settings: "Settings | None" = None, store: "Store | None" = None,
                 watch: "WatchConfig | None" = None) -> dict[str, Any]:
    """The source for each platform, from the environment (see README, Configuration)."""
    sources: dict[str, Any] = {platform: LocalSource(platform) for platform in PLATFORMS}
    if settings is None or store is None or watch is None:
        return sources
    env = settings.env
    intervals = poll_intervals(env.get("YORISOI_POLL_INTERVALS"))
    # Hosts others may control or redirect (feeds, instances, PDSes): public addresses only,
    # unless YORISOI_ALLOW_PRIVATE_FEEDS opts in (connector/sources/netguard.py).
    from connector.sources.http import new_session
    from connector.sources.netguard import allow_private
    guarded = not allow_private(env)
    if env.get("X_BEARER_TOKEN"):
        from connector.sources.x import DEFAULT_API_URL, DEFAULT_BUDGET_USD, XSource
        user_id = (env.get("X_USER_ID") or "").strip() or None
        if user_id and not user_id.isdigit():
            raise ConfigError(f"X_USER_ID={user_id!r} must be the numeric id of the brand's X account")
        sources["x"] = XSource(
            state=store.sources, watch=watch, bearer_token=env["X_BEARER_TOKEN"],
            api_url=env.get("X_API_URL") or DEFAULT_API_URL,
            user_token=env.get("X_USER_ACCESS_TOKEN") or None, refresh_token=env.get("X_USER_REFRESH_TOKEN") or None,
            client_id=env.get("X_CLIENT_ID") or None, client_secret=env.get("X_CLIENT_SECRET") or None,
            user_id=user_id, budget_usd=_float(env, "X_DAILY_READ_BUDGET", DEFAULT_BUDGET_USD, 0.0),
            interval=intervals["x"], stream_plan=_x_stream_plan(env), poll_bounds=_poll_bounds(env))
    if env.get("MASTODON_INSTANCES"):
        from connector.sources.mastodon import MastodonSource
        instances = [i.strip() for i in env["MASTODON_INSTANCES"].split(",") if i.strip()]
        for instance in instances:
            if not instance.startswith(("https://", "http://")):
                raise ConfigError(f"MASTODON_INSTANCES: {instance!r} should be a URL like https://mstdn.jp")
        sources["mastodon"] = MastodonSource(state=store.sources, watch=watch, instances=instances,
                                             access_token=env.get("MASTODON_ACCESS_TOKEN") or None,
                                             interval=intervals["mastodon"], session=new_session(guarded=guarded),
                                             stream=_switch(env, "MASTODON_STREAM"),
                                             public_streams=_public_streams(env.get("MASTODON_PUBLIC_STREAM"), instances))
    if env.get("BLUESKY_HANDLE") or env.get("BLUESKY_APP_PASSWORD"):
        from connector.sources.bluesky import DEFAULT_SERVICE, BlueskySource
        from connector.sources.jetstream import DEFAULT_JETSTREAM_URL
        stream = "on" if _switch(env, "BLUESKY_STREAM") else "off"
        if not (env.get("BLUESKY_HANDLE") and env.get("BLUESKY_APP_PASSWORD")):
            raise ConfigError("Bluesky needs both BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (an App Password, "
                              "Settings → Privacy and security → App passwords)")
        sources["bluesky"] = BlueskySource(state=store.sources, watch=watch, handle=env["BLUESKY_HANDLE"],
                                           app_password=env["BLUESKY_APP_PASSWORD"],
                                           service=env.get("BLUESKY_SERVICE") or DEFAULT_SERVICE,
                                           interval=intervals["bluesky"], session=new_session(guarded=guarded),
                                           jetstream_url=None if stream == "off" else
                                           (env.get("BLUESKY_JETSTREAM_URL") or DEFAULT_JETSTREAM_URL))
    if watch.feeds:
        from connector.sources.rss import RssSource
        sources["rss"] = RssSource(state=store.sources, watch=watch, feeds=watch.feeds, interval=intervals["rss"],
                                   session=new_session(guarded=guarded))
    return sources


def polling_sources(sources: Mapping[str, Any]) -> list[PollingSource]:
    return [s for s in sources.values() if isinstance(s, PollingSource)]
