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
