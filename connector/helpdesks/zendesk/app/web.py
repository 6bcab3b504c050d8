"""`/zendesk/app/…`: the Zendesk app's `ticket_sidebar` page and its scripts.

Zendesk loads the page in its own apps panel with a POST carrying the ZAF JWT (signed URLs,
see signed.py). The page shows the same context as the browser extension: it loads the
extension's own renderer (extension/render.js and the scripts it needs, served from here) and a
small glue script (static/zaf_sidebar.js) that asks the ZAF client which ticket is open and
calls /api/v1 with the page's `zaf_…` session credential. Whatever the extension's sidebar
shows (context, similar cases, guidelines, banners) appears here too.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template_string, request, send_file

from connector.extension_build import source_dir as extension_dir
from connector.helpdesks.zendesk.app.signed import (
    SidebarSession,
    SidebarSessions,
    ZafNotConfigured,
    ZafSettings,
    ZafTokenError,
    verify_zaf_token,
)

log = logging.getLogger(__name__)
bp = Blueprint("zendesk_app", __name__)

#: The ZAF SDK as Zendesk documents loading it in an app's iframe
#: (https://developer.zendesk.com/documentation/apps/app-developer-guide/getting_started/ "ZAF SDK").
ZAF_SDK_URL = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
#: The extension's scripts the page loads, in dependency order (each defines a global).
EXTENSION_SCRIPTS = ("url.js", "format.js", "dom.js", "helpdesk_pages.js", "protocol.js", "render.js")
STATIC_DIR = Path(__file__).parent / "static"
#: Zendesk frames the page from the agent's Zendesk (and its app sandbox domain).
CSP = ("default-src 'self'; script-src 'self' https://static.zdassets.com; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' https: data:; connect-src 'self'; "
       "frame-ancestors https://*.zendesk.com https://*.zdusercontent.com https://*.apps.zdusercontent.com")


def sessions() -> SidebarSessions:
    app = current_app
    if "yorisoi_zaf_sessions" not in app.extensions:
        app.extensions["yorisoi_zaf_sessions"] = SidebarSessions(app.secret_key or "")
    return app.extensions["yorisoi_zaf_sessions"]


def _messages() -> dict[str, dict[str, Any]]:
    """The extension's UI strings (chrome.i18n format, placeholders included), both languages:
    the page picks one by the agent's Zendesk locale."""
    out = {}
    for lang in ("ja", "en"):
        data = json.loads((extension_dir() / "_locales" / lang / "messages.json").read_text(encoding="utf-8"))
        out[lang] = {key: {k: v for k, v in value.items() if k in ("message", "placeholders")}
                     for key, value in data.items() if isinstance(value, dict)}
    return out


PAGE = """<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="yorisoi-session" content="{{ credential }}">
<title>Yorisoi</title>
<script type="application/json" id="yorisoi-messages">{{ messages|tojson }}</script>
<script src="{{ zaf_sdk }}"></script>
{% for name in scripts %}<script src="/zendesk/app/static/{{ name }}"></script>
{% endfor %}<script src="/zendesk/app/static/zaf_sidebar.js"></script>
</head>
<body><p id="yorisoi-loading">読み込み中… / Loading…</p></body>
</html>
"""

ERROR_PAGE = """<!doctype html>
<html lang="ja">
<head><meta charset="utf-8"><title>Yorisoi</title>
<style>body{font:13px/1.5 system-ui,sans-serif;margin:10px;color:#222}.state{padding:12px;border:1px solid #e0dcd2;
border-radius:6px;background:#fff}h1{font-size:14px;color:#b3261e;margin:0 0 6px}</style></head>
<body><div class="state" data-state="{{ code }}"><h1>Yorisoi のサイドバーを開けません</h1>
<p lang="ja">{{ message_ja }}</p><p lang="en">{{ message_en }}</p></div></body>
</html>
"""


def _error(exc: ZafTokenError, status: int) -> Response:
    response = Response(render_template_string(ERROR_PAGE, code=exc.code, message_ja=exc.message_ja,
                                               message_en=exc.message_en), status=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def _agent_name(user_id: str) -> str:
    """The agent's name as Zendesk has it (replies are signed with it), read with the connector's
    Zendesk credentials; `Zendesk #id` when Zendesk is not the configured helpdesk."""
    from connector.helpdesks.zendesk.client import ZendeskHelpdesk
    from connector.services import services
    helpdesk = services().helpdesk
    if isinstance(helpdesk, ZendeskHelpdesk):
        try:
            user = helpdesk._call("read user", lambda: helpdesk._raw("GET", f"users/{int(user_id)}")).get("user") or {}
            name = str(user.get("name") or "").strip()
            if name:
                return name[:200]
        except Exception as exc:  # a name is a nicety; the agent's identity is the JWT's user id
            log.warning("zendesk app: cannot read the name of user %s: %s", user_id, type(exc).__name__)
    return f"Zendesk #{user_id}"


@bp.route("/zendesk/app/sidebar", methods=["GET", "POST"])
def sidebar():
    from connector.services import services
    settings = ZafSettings.from_env(services().settings.env)
    try:
        agent = verify_zaf_token(request.form.get("token") if request.method == "POST" else None, settings)
    except ZafNotConfigured as exc:
        return _error(exc, 503)
    except ZafTokenError as exc:
        log.info("zendesk app: sidebar refused (%s)", exc.code)  # never the token
        return _error(exc, 401)
    name = _agent_name(agent.user_id)
    credential = sessions().issue(SidebarSession(agent=name, user_id=agent.user_id, account=agent.account))
    log.info("zendesk app: sidebar opened by user %s of %s (installation %s)", agent.user_id, agent.account,
             agent.installation_id)
    response = Response(render_template_string(PAGE, credential=credential, messages=_messages(), zaf_sdk=ZAF_SDK_URL,
                                               scripts=EXTENSION_SCRIPTS))
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/zendesk/app/static/<name>")
def static(name: str):
    if name == "zaf_sidebar.js":
        path = STATIC_DIR / name
    elif name in EXTENSION_SCRIPTS:
        path = extension_dir() / name
    else:
        abort(404)
    response = send_file(path, mimetype="text/javascript", max_age=300)
    response.headers["Content-Security-Policy"] = CSP
    return response
