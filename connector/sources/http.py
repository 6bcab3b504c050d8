"""HTTP plumbing shared by the source modules: one `requests.Session` per source, timeouts on
every call, and one mapping of HTTP failures to `SourceError` (429/5xx retryable with the
network's own wait, 4xx not). Error messages carry the URL path and the network's message,
never a header, so no token can leak into logs."""
from __future__ import annotations

import email.utils
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

from connector.sources.base import SourceError

USER_AGENT = "Yorisoi/0.1 (+active support connector)"
#: (connect, read) seconds: a hung network must never stall the poller.
TIMEOUT = (5.0, 30.0)


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp from a network's JSON (a trailing Z allowed); naive means UTC;
    None for missing or unreadable values, so one odd post never breaks a poll."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def new_session(*, guarded: bool = False) -> requests.Session:
    """A session with our User-Agent; `guarded`: only public addresses (connector/sources/netguard.py)."""
    from connector.sources.netguard import guarded_session
    session = guarded_session(allow=not guarded)
    session.headers["User-Agent"] = USER_AGENT
    return session


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit reset header: epoch seconds (X), ISO 8601 (Mastodon) or an
    HTTP date / delta seconds (Retry-After)."""
    if not value:
        return None
    now = time.time() if now is None else now
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        return max(0.0, number - now) if number > 1_000_000_000 else max(0.0, number)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def retry_after(response: requests.Response) -> float | None:
    return (parse_reset(response.headers.get("Retry-After"))
            or parse_reset(response.headers.get("x-rate-limit-reset"))
            or parse_reset(response.headers.get("X-RateLimit-Reset"))
            or parse_reset(response.headers.get("ratelimit-reset")))


def _message(response: requests.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("detail", "error_description", "message", "error", "title"):
            if isinstance(body.get(key), str):
                return body[key][:300]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("detail") or errors[0])[:300]
    return str(body)[:200]


def raise_for_status(platform: str, response: requests.Response) -> None:
    if response.status_code < 400:
        return
    path = urlsplit(response.url).path
    status = response.status_code
    text = f"{platform} {status} on {path}: {_message(response)}"
    if status == 429:
        raise SourceError(text, retryable=True, retry_after=retry_after(response), status=status)
    if status >= 500 or status == 408:
        raise SourceError(text, retryable=True, retry_after=retry_after(response), status=status)
    raise SourceError(text, retryable=False, status=status)


def request(session: requests.Session, platform: str, method: str, url: str, **kwargs: Any) -> requests.Response:
    """One call with timeouts; network failures become retryable SourceErrors."""
    kwargs.setdefault("timeout", TIMEOUT)
    try:
        return session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        from connector.sources.netguard import BlockedAddress
        if isinstance(exc, BlockedAddress):  # the SSRF guard: say why, it needs an admin
            raise SourceError(f"{platform}: refused {urlsplit(url).netloc}: {exc}", retryable=False) from None
        raise SourceError(f"{platform}: cannot reach {urlsplit(url).netloc}: {type(exc).__name__}",
                          retryable=True, maybe_sent=_maybe_sent(exc)) from None


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False only when the request surely never left: no connection could be made."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args):
        return False
    return not isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema))
