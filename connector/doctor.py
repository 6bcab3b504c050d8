"""`yorisoi doctor`: the live configuration checked end to end, read-only.

Each integration knows how to check itself: a `doctor(env, session)` function in each helpdesk
package (`connector/helpdesks/zendesk`, `…/freshdesk`) and source module (`connector/sources/x`,
`mastodon`, `bluesky`) returns `Check`s; this module only gathers them, adds the public URL, and
prints one line per check (ok / warn / FAIL, Japanese and English). Nothing is written anywhere:
only GETs, plus Bluesky's `createSession` (the one way to test an app password; it creates a
session, not data). X's sample read is billed by X (see `connector.sources.x.doctor`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import requests

OK, WARN, FAIL = "ok", "warn", "FAIL"
TIMEOUT = 15.0


@dataclass(frozen=True)
class Check:
    status: str  # OK | WARN | FAIL
    name: str  # e.g. "zendesk.credentials"
    ja: str
    en: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.ja} / {self.en}"


def ok(name: str, ja: str, en: str) -> Check:
    return Check(OK, name, ja, en)


def warn(name: str, ja: str, en: str) -> Check:
    return Check(WARN, name, ja, en)


def fail(name: str, ja: str, en: str) -> Check:
    return Check(FAIL, name, ja, en)


def get(session: requests.Session, url: str, **kwargs: Any) -> tuple[requests.Response | None, str]:
    """A GET that never raises: (response, "") or (None, what went wrong)."""
    return call(session, "GET", url, **kwargs)


def call(session: requests.Session, method: str, url: str, **kwargs: Any) -> tuple[requests.Response | None, str]:
    kwargs.setdefault("timeout", TIMEOUT)
    try:
        return session.request(method, url, **kwargs), ""
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def unreachable(name: str, url: str, error: str) -> Check:
    return fail(name, f"{url} に接続できません（{error}）", f"cannot reach {url} ({error})")


def public_url(env: Mapping[str, str], session: requests.Session) -> list[Check]:
    """YORISOI_PUBLIC_URL answers GET /healthz (webhooks and the Channel framework call it)."""
    base = (env.get("YORISOI_PUBLIC_URL") or "").strip().rstrip("/")
    if not base:
        return [warn("public_url", "YORISOI_PUBLIC_URL が未設定: ヘルプデスクからの Webhook や Channel framework は使えません",
                     "YORISOI_PUBLIC_URL is unset: helpdesk webhooks and the Channel framework cannot reach this connector")]
    url = base + "/healthz"
    response, error = get(session, url, allow_redirects=False)
    if response is None:
        return [unreachable("public_url", url, error)]
    if response.status_code == 200:
        return [ok("public_url", f"{url} に到達できます", f"{url} answers 200")]
    return [fail("public_url", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]


def run(env: Mapping[str, str] | None = None, session: requests.Session | None = None) -> list[Check]:
    """Every check for the configuration in `env` (default: the process environment)."""
    from connector.helpdesks import freshdesk, zendesk
    from connector.sources import bluesky, mastodon, x

    env = os.environ if env is None else env
    session = session or requests.Session()
    checks: list[Check] = []
    helpdesk = (env.get("YORISOI_HELPDESK") or "local").strip().lower()
    doctors: dict[str, Callable[..., list[Check]]] = {"zendesk": zendesk.doctor, "freshdesk": freshdesk.doctor}
    if helpdesk in doctors:
        checks += _guarded(helpdesk, doctors[helpdesk], env, session)
    elif helpdesk == "local":
        checks.append(ok("helpdesk", "ローカル（データベース内）のチケット: 確認する外部サービスはありません",
                         "local helpdesk (tickets in the database): no external service to check"))
    else:
        checks.append(fail("helpdesk", f"YORISOI_HELPDESK={helpdesk!r} は未対応です",
                           f"YORISOI_HELPDESK={helpdesk!r} is not supported"))
    for name, module in (("x", x), ("mastodon", mastodon), ("bluesky", bluesky)):
        checks += _guarded(name, module.doctor, env, session)
    checks += public_url(env, session)
    return checks


def _guarded(name: str, doctor: Callable[..., list[Check]], env: Mapping[str, str],
             session: requests.Session) -> list[Check]:
    """A configuration error (ConfigError, bad value) is a FAIL line, not a traceback."""
    try:
        return doctor(env, session)
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [fail(f"{name}.config", f"設定エラー: {message}", f"configuration error: {message}")]
