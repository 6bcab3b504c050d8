"""Freshdesk, in one folder: `client.py` (`FreshdeskHelpdesk`, `FreshdeskSettings`) and
`webhook.py` (`POST /freshdesk/webhook`, an agent's public reply going back to the network).

`ENV` lists the variables this helpdesk reads; `blueprints()` the routes it adds to the app.
"""
from __future__ import annotations

from typing import Any

from connector.envvars import EnvVar

_CLIENT = "connector.helpdesks.freshdesk.client"

ENV: tuple[EnvVar, ...] = (
    EnvVar("FRESHDESK_DOMAIN", "(required with YORISOI_HELPDESK=freshdesk, unless FRESHDESK_URL)",
           "Your Freshdesk subdomain: `acme` for acme.freshdesk.com.", False, _CLIENT),
    EnvVar("FRESHDESK_URL", "https://<domain>.freshdesk.com",
           "Base URL of the Freshdesk API instead of the domain (a test double such as http://127.0.0.1:8901).",
           False, _CLIENT),
    EnvVar("FRESHDESK_API_KEY", "(required with YORISOI_HELPDESK=freshdesk)",
           "API key of the Freshdesk agent Yorisoi acts as (profile settings → API key).", True, _CLIENT),
    EnvVar("FRESHDESK_GROUP_ID", "(unset)",
           "Group that answers social posts: new tickets go to it and `yorisoi setup-sla` targets it.", False, _CLIENT),
    EnvVar("FRESHDESK_SOURCE", "2", "Ticket source number for new tickets (2 = Portal).", False, _CLIENT),
    EnvVar("FRESHDESK_FIELDS", "(unset: tags only)",
           "Labels copied into custom ticket fields: `sentiment=cf_sentiment,intent=cf_intent`.", False, _CLIENT),
    EnvVar("FRESHDESK_WEBHOOK_TOKEN", "(unset: reply webhook disabled)",
           "Shared secret (16+ characters) the Freshdesk automation rule sends as `X-Yorisoi-Token` to "
           "`POST /freshdesk/webhook`.", True, "connector.helpdesks.freshdesk.webhook"),
)


def blueprints() -> list[Any]:
    from connector.helpdesks.freshdesk import webhook
    return [webhook.bp]


def doctor(env: Any, session: Any) -> list[Any]:
    """`yorisoi doctor` for Freshdesk, read-only: the API key (`GET /api/v2/agents/me`), the SLA
    policies API (Growth plan and up) and the custom fields named in FRESHDESK_FIELDS
    (`GET /api/v2/ticket_fields`)."""
    from connector.doctor import fail, get, ok, unreachable, warn
    from connector.helpdesks.freshdesk.client import FreshdeskSettings

    settings = FreshdeskSettings.from_env(env)
    auth = (settings.api_key, "X")
    api = settings.base_url + "/api/v2"
    url = api + "/agents/me"
    response, error = get(session, url, auth=auth)
    if response is None:
        return [unreachable("freshdesk.credentials", url, error)]
    if response.status_code in (401, 403):
        return [fail("freshdesk.credentials", f"認証に失敗しました（{response.status_code}）: FRESHDESK_API_KEY を確認してください",
                     f"authentication failed ({response.status_code}): check FRESHDESK_API_KEY")]
    if response.status_code != 200:
        return [fail("freshdesk.credentials", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]
    agent = response.json() or {}
    who = (agent.get("contact") or {}).get("email") or (agent.get("contact") or {}).get("name") or agent.get("id")
    checks = [ok("freshdesk.credentials", f"エージェント {who} として接続できます", f"signed in as agent {who}")]
    url = api + "/sla_policies"
    response, error = get(session, url, auth=auth)
    if response is None:
        checks.append(unreachable("freshdesk.sla", url, error))
    elif response.status_code == 200:
        checks.append(ok("freshdesk.sla", f"SLA ポリシー API が使えます（{len(response.json() or [])} 件）",
                         f"SLA policies API available ({len(response.json() or [])} policies)"))
    else:
        checks.append(warn("freshdesk.sla", f"SLA ポリシー API が {response.status_code} を返しました（プランに SLA がない?）: yorisoi setup-sla は使えません",
                           f"SLA policies API answered {response.status_code} (plan without SLAs?): yorisoi setup-sla will not work"))
    if settings.fields:
        url = api + "/ticket_fields"
        response, error = get(session, url, auth=auth)
        if response is None:
            checks.append(unreachable("freshdesk.fields", url, error))
        elif response.status_code != 200:
            checks.append(fail("freshdesk.fields", f"チケットフィールドを読めません（{response.status_code}）",
                               f"cannot list ticket fields ({response.status_code})"))
        else:
            names = {f.get("name") for f in response.json() or [] if isinstance(f, dict)}
            missing = [f"{label}={name}" for label, name in settings.fields.items() if name not in names]
            if missing:
                checks.append(fail("freshdesk.fields", f"FRESHDESK_FIELDS のフィールドがありません: {', '.join(missing)}",
                                   f"FRESHDESK_FIELDS names fields that do not exist: {', '.join(missing)}"))
            else:
                listed = ", ".join(f"{label}={name}" for label, name in settings.fields.items())
                checks.append(ok("freshdesk.fields", f"FRESHDESK_FIELDS のフィールドがあります: {listed}",
                                 f"FRESHDESK_FIELDS fields exist: {listed}"))
    return checks
