"""Zendesk, in one folder: everything Yorisoi does with Zendesk lives here.

- `client.py`: `ZendeskHelpdesk` (tickets, comments, bulk jobs, SLA) and `ZendeskConfig`;
- `webhook.py`: `POST /zendesk/webhook`, an agent's public comment going back to the network;
- `channel/`: the Zendesk Channel framework (signed tokens, external resources, the manifest,
  and its blueprint in `channel/web.py`).

`ENV` lists the variables this helpdesk reads; `blueprints()` the routes it adds to the app.
Light on purpose: importing the package loads neither zenpy nor Flask.
"""
from __future__ import annotations

from typing import Any

from connector.envvars import EnvVar

_CLIENT = "connector.helpdesks.zendesk.client"
_CHANNEL = "connector.helpdesks.zendesk.channel"

ENV: tuple[EnvVar, ...] = (
    EnvVar("ZENDESK_SUBDOMAIN", "(required with YORISOI_HELPDESK=zendesk, unless ZENDESK_URL)",
           "Your Zendesk subdomain: `acme` for https://acme.zendesk.com.", False, _CLIENT),
    EnvVar("ZENDESK_URL", "https://<subdomain>.zendesk.com",
           "Base URL of the Zendesk API instead of the subdomain (a test double such as http://127.0.0.1:8089).",
           False, _CLIENT),
    EnvVar("ZENDESK_EMAIL", "(unset)", "E-mail of the agent ZENDESK_API_TOKEN belongs to.", False, _CLIENT),
    EnvVar("ZENDESK_API_TOKEN", "(unset)", "Zendesk API token (with ZENDESK_EMAIL), or use ZENDESK_OAUTH_TOKEN.",
           True, _CLIENT),
    EnvVar("ZENDESK_OAUTH_TOKEN", "(unset)", "Zendesk OAuth access token, instead of ZENDESK_EMAIL + ZENDESK_API_TOKEN.",
           True, _CLIENT),
    EnvVar("ZENDESK_WEBHOOK_SECRET", "(unset: reply webhook disabled)",
           "Signing secret of the Zendesk webhook that calls `POST /zendesk/webhook` with agents' replies.",
           True, "connector.helpdesks.zendesk.webhook"),
    EnvVar("ZENDESK_STATUS_WEBHOOK_SECRET", "(unset: status webhook disabled; `yorisoi sync-status` still catches up)",
           "Signing secret of the Zendesk webhook that calls `POST /zendesk/status` when a Yorisoi ticket's status "
           "changes or an agent comments publicly.", True, "connector.helpdesks.zendesk.webhook"),
    EnvVar("ZENDESK_FIELDS", "(unset: tags only)",
           "Labels copied into custom ticket fields: `sentiment=360001,intent=360002:tag` (label=field id[:tag]).",
           False, _CLIENT),
    EnvVar("ZENDESK_BULK_THRESHOLD", "200",
           "New tickets waiting from which delivery uses bulk jobs (`create_many`, 100 per job); 0 always.",
           False, _CLIENT),
    EnvVar("ZENDESK_RATE_LIMIT_RESERVE", "10",
           "Percent of Zendesk's rate limit left for everything else; delivery holds back below it.", False, _CLIENT),
    EnvVar("ZENDESK_TIMEOUT", "30", "Seconds before a Zendesk API call times out.", False, _CLIENT),
    EnvVar("YORISOI_PUBLIC_URL", "(unset: Channel framework disabled)",
           "Public https URL where Zendesk reaches this connector (e.g. `https://yorisoi.example.co.jp`); "
           "the Channel framework manifest's URLs are built from it.", False, _CHANNEL),
    EnvVar("YORISOI_CHANNEL_SECRET", "(unset: Channel framework disabled)",
           "Server secret (16+ characters) that signs the Zendesk Channel framework metadata, pull state and "
           "admin forms, and derives install codes. Secret.", True, _CHANNEL),
    EnvVar("YORISOI_CHANNEL_PUSH_CLIENT_ID", "(unset)",
           "Zendesk global OAuth client id to put in the Channel framework manifest as `push_client_id` "
           "(only if you registered one).", False, _CHANNEL),
)


def blueprints() -> list[Any]:
    """The reply webhook and the Channel framework routes (both answer whatever helpdesk is
    configured: the Channel framework needs only YORISOI_PUBLIC_URL and YORISOI_CHANNEL_SECRET)."""
    from connector.helpdesks.zendesk import webhook
    from connector.helpdesks.zendesk.channel import web
    return [webhook.bp, web.bp]
