"""Zendesk, in one folder: everything Yorisoi does with Zendesk lives here.

- `client.py`: `ZendeskHelpdesk` (tickets, comments, bulk jobs, SLA) and `ZendeskConfig`;
- `webhook.py`: `POST /zendesk/webhook`, an agent's public comment going back to the network;
- `channel/`: the Zendesk Channel framework (signed tokens, external resources, the manifest,
  and its blueprint in `channel/web.py`);
- `app/`: the Zendesk app package admins upload (`yorisoi zendesk-app`) and its ticket sidebar
  page (`app/web.py`, ZAF signed URLs).

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
    EnvVar("ZENDESK_WEBHOOK_SECRET", "(unset: the Zendesk app's secret, derived from YORISOI_CHANNEL_SECRET; "
           "without either, reply webhook disabled)",
           "Signing secret of the Zendesk webhook that calls `POST /zendesk/webhook` with agents' replies.",
           True, "connector.helpdesks.zendesk.webhook"),
    EnvVar("ZENDESK_STATUS_WEBHOOK_SECRET", "(unset: the Zendesk app's secret, derived from YORISOI_CHANNEL_SECRET; "
           "without either, status webhook disabled and `yorisoi sync-status` still catches up)",
           "Signing secret of the Zendesk webhook that calls `POST /zendesk/status` when a Yorisoi ticket's status "
           "changes or an agent comments publicly.", True, "connector.helpdesks.zendesk.webhook"),
    EnvVar("ZENDESK_FIELDS", "(unset: tags only)",
           "Labels copied into custom ticket fields: `sentiment=360001,intent=360002:tag` (label=field id[:tag]).",
           False, _CLIENT),
    EnvVar("ZENDESK_BULK_THRESHOLD", "20",
           "New tickets waiting from which delivery uses bulk jobs (`create_many`, ≤100 per job, batches side by side); "
           "also below it while Zendesk's Update Ticket limit (100/min) is nearly spent; 0: never (one by one).",
           False, _CLIENT),
    EnvVar("ZENDESK_RATE_LIMIT_RESERVE", "10",
           "Percent of Zendesk's rate limit left for everything else; delivery holds back below it.", False, _CLIENT),
    EnvVar("ZENDESK_TIMEOUT", "30", "Seconds before a Zendesk API call times out.", False, _CLIENT),
    EnvVar("YORISOI_PUBLIC_URL", "(unset: Channel framework disabled)",
           "Public https URL where Zendesk reaches this connector (e.g. `https://yorisoi.example.co.jp`); "
           "the Channel framework manifest's URLs are built from it.", False, _CHANNEL),
    EnvVar("YORISOI_CHANNEL_SECRET", "(unset: Channel framework disabled)",
           "Server secret (16+ characters) that signs the Zendesk Channel framework metadata, pull state and "
           "admin forms, and derives install codes and the Zendesk app's webhook signing secrets "
           "(`yorisoi zendesk-app`). Secret.", True, _CHANNEL),
    EnvVar("ZENDESK_APP_PUBLIC_KEY", "(unset: the Zendesk app's sidebar answers 503)",
           "Public key (PEM text, or the path of a .pem file) of the installed Zendesk app, from "
           "`GET /api/v2/apps/{app_id}/public_key.pem`: checks the ZAF JWT (RS256) Zendesk posts to the app's "
           "ticket sidebar. The Zendesk account is ZENDESK_SUBDOMAIN.", False, "connector.helpdesks.zendesk.app.signed"),
    EnvVar("YORISOI_CHANNEL_PUSH_CLIENT_ID", "(unset)",
           "Zendesk global OAuth client id to put in the Channel framework manifest as `push_client_id` "
           "(only if you registered one).", False, _CHANNEL),
)


def blueprints() -> list[Any]:
    """The reply webhook, the Channel framework routes and the Zendesk app's sidebar (all answer
    whatever helpdesk is configured: the Channel framework needs only YORISOI_PUBLIC_URL and
    YORISOI_CHANNEL_SECRET, the sidebar ZENDESK_APP_PUBLIC_KEY and ZENDESK_SUBDOMAIN)."""
    from connector.helpdesks.zendesk import webhook
    from connector.helpdesks.zendesk.app import web as app_web
    from connector.helpdesks.zendesk.channel import web
    return [webhook.bp, web.bp, app_web.bp]


def doctor(env: Any, session: Any) -> list[Any]:
    """`yorisoi doctor` for Zendesk, read-only: the credentials (`GET /api/v2/users/me`), the SLA
    policies API (Professional plan and up; `yorisoi setup-sla` needs it) and the custom ticket
    fields named in ZENDESK_FIELDS."""
    import base64

    from connector.doctor import fail, get, ok, unreachable, warn
    from connector.helpdesks.zendesk.client import ZendeskConfig

    config = ZendeskConfig.from_env(env)
    if config.oauth_token:
        headers = {"Authorization": f"Bearer {config.oauth_token}"}
    elif config.api_token and config.email:
        pair = base64.b64encode(f"{config.email}/token:{config.api_token}".encode()).decode()
        headers = {"Authorization": f"Basic {pair}"}
    else:
        return [fail("zendesk.credentials", "ZENDESK_API_TOKEN（と ZENDESK_EMAIL）または ZENDESK_OAUTH_TOKEN が未設定です",
                     "neither ZENDESK_API_TOKEN (with ZENDESK_EMAIL) nor ZENDESK_OAUTH_TOKEN is set")]
    api = config.base_url + "/api/v2"
    url = api + "/users/me.json"
    response, error = get(session, url, headers=headers)
    if response is None:
        return [unreachable("zendesk.credentials", url, error)]
    user = (response.json() or {}).get("user") or {} if response.status_code == 200 else {}
    if response.status_code in (401, 403) or (response.status_code == 200 and user.get("id") is None):
        # Zendesk answers bad credentials with 401, or (no credentials) with an anonymous user.
        return [fail("zendesk.credentials", f"認証に失敗しました（{response.status_code}）: ZENDESK_EMAIL / ZENDESK_API_TOKEN を確認してください",
                     f"authentication failed ({response.status_code}): check ZENDESK_EMAIL / ZENDESK_API_TOKEN or ZENDESK_OAUTH_TOKEN")]
    if response.status_code != 200:
        return [fail("zendesk.credentials", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]
    checks = []
    role = user.get("role")
    if role in ("agent", "admin"):
        checks.append(ok("zendesk.credentials", f"{user.get('email') or user.get('name')}（{role}）として接続できます",
                         f"signed in as {user.get('email') or user.get('name')} ({role})"))
    else:
        checks.append(fail("zendesk.credentials", f"トークンの利用者の役割が {role!r} です: エージェントか管理者が必要です",
                           f"the token's user has role {role!r}: an agent or admin is needed"))
    url = api + "/slas/policies.json"
    response, error = get(session, url, headers=headers)
    if response is None:
        checks.append(unreachable("zendesk.sla", url, error))
    elif response.status_code == 200:
        count = len((response.json() or {}).get("sla_policies") or [])
        checks.append(ok("zendesk.sla", f"SLA ポリシー API が使えます（{count} 件）", f"SLA policies API available ({count} policies)"))
    else:
        checks.append(warn("zendesk.sla", f"SLA ポリシー API が {response.status_code} を返しました（プランに SLA がない?）: yorisoi setup-sla は使えません",
                           f"SLA policies API answered {response.status_code} (plan without SLAs?): yorisoi setup-sla will not work"))
    if config.fields:
        checks.append(_fields_check(session, api, headers, config.fields))
    return checks


def _fields_check(session: Any, api: str, headers: dict[str, str], fields: Any) -> Any:
    from connector.doctor import fail, get, ok, unreachable

    url: str | None = api + "/ticket_fields.json"
    found: dict[int, dict[str, Any]] = {}
    for _page in range(20):
        if not url:
            break
        response, error = get(session, url, headers=headers)
        if response is None:
            return unreachable("zendesk.fields", url, error)
        if response.status_code != 200:
            return fail("zendesk.fields", f"チケットフィールドを読めません（{response.status_code}）",
                        f"cannot list ticket fields ({response.status_code})")
        body = response.json() or {}
        found.update({f.get("id"): f for f in body.get("ticket_fields") or [] if isinstance(f, dict)})
        url = body.get("next_page")
    wanted = {label: mapping.field_id for label, mapping in fields.items()}
    missing = [f"{label}={field_id}" for label, field_id in wanted.items() if field_id not in found]
    inactive = [f"{label}={field_id}" for label, field_id in wanted.items()
                if field_id in found and found[field_id].get("active") is False]
    if missing or inactive:
        what = ", ".join(missing + [f"{x} (inactive)" for x in inactive])
        return fail("zendesk.fields", f"ZENDESK_FIELDS のフィールドが見つからないか無効です: {what}",
                    f"ZENDESK_FIELDS names fields that do not exist or are inactive: {what}")
    names = ", ".join(f"{label}={found[i].get('title')!s}" for label, i in wanted.items())
    return ok("zendesk.fields", f"ZENDESK_FIELDS のフィールドがあります: {names}", f"ZENDESK_FIELDS fields exist: {names}")
