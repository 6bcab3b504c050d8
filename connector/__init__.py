"""Yorisoi: public posts about your brand become tickets in the helpdesk you already use."""
from __future__ import annotations

import logging
import secrets

from flask import Flask, g, request

from connector.config import PACKAGE_DIR, Settings

__version__ = "0.1.0"


def _template_folder() -> str:
    # Installed wheels carry the top-level templates/ inside the package (see pyproject's
    # force-include); a source checkout keeps them beside the package.
    packaged = PACKAGE_DIR / "templates"
    return str(packaged if packaged.is_dir() else PACKAGE_DIR.parent / "templates")


def create_app(settings: Settings | None = None, *, start_worker: bool = False) -> Flask:
    from connector.services import Services
    from connector.web import api, auth, channel, dashboard, i18n, webhooks, zendesk
    from connector.web import freshdesk as freshdesk_web
    from connector import cli

    settings = settings or Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, template_folder=_template_folder())
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    svc = Services.build(settings)
    app.extensions["yorisoi"] = svc
    if start_worker:
        svc.start_worker()

    auth.init_app(app)  # login, session cookie flags, CSRF tokens for the dashboard
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(zendesk.bp)
    app.register_blueprint(channel.bp)
    app.register_blueprint(freshdesk_web.bp)
    api.init_app(app)  # /api/v1/: the agent sidebar (bearer tokens; exempt from CSRF)
    cli.register(app)

    @app.before_request
    def _language() -> None:
        g.lang = i18n.pick_lang(request)
        g.t = i18n.translator(g.lang)

    @app.after_request
    def _remember_language(response):
        if request.args.get("lang") in i18n.LANGS:
            response.set_cookie("lang", request.args["lang"], max_age=365 * 86400, samesite="Lax")
        # Post text is hostile: even if escaping failed somewhere, no script may run.
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
                                    "script-src 'self'; frame-ancestors 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    from connector.labels import label_name, value_name
    from connector.ticket_format import excerpt
    app.jinja_env.globals.update(label_name=label_name, value_name=value_name, excerpt=excerpt)
    return app
