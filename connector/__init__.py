"""Yorisoi: public posts about your brand become tickets in the helpdesk you already use."""
from __future__ import annotations

import logging
import secrets

from flask import Flask, g, request

from connector.config import PACKAGE_DIR, Settings
from connector.jsonsafe import SafeJSONProvider
from connector.version import __version__

__all__ = ["__version__", "create_app"]


def _template_folder() -> str:
    # Installed wheels carry the top-level templates/ inside the package (see pyproject's
    # force-include); a source checkout keeps them beside the package.
    packaged = PACKAGE_DIR / "templates"
    return str(packaged if packaged.is_dir() else PACKAGE_DIR.parent / "templates")


#: Libraries that log request and response bodies, SQL parameters or headers at INFO/DEBUG:
#: zenpy logs every ticket it sends (post text, author names), urllib3/requests/httpx the
#: URLs and headers, SQLAlchemy the statements' parameters. YORISOI_LOG_LEVEL=DEBUG is for
#: Yorisoi's own loggers; these stay at WARNING (or above, when the configured level is higher).
QUIET_LIBRARY_LOGGERS = ("zenpy", "urllib3", "requests", "requests_oauthlib", "oauthlib", "charset_normalizer",
                         "httpx", "httpcore", "hpack", "feedparser", "sqlalchemy", "psycopg", "atproto", "mastodon")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = max(logging.WARNING, logging.getLevelName(level) if isinstance(logging.getLevelName(level), int)
                else logging.WARNING)
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def create_app(settings: Settings | None = None, *, start_worker: bool = False) -> Flask:
    from connector import cli
    from connector.helpdesks import helpdesk_packages
    from connector.services import Services
    from connector.web import api, auth, dashboard, i18n, webhooks
    from connector.web import extension as extension_routes

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__, template_folder=_template_folder())
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_AS_ASCII=False,
    )
    # Request bodies are parsed with bounded nesting (connector.jsonsafe): a deeply nested
    # body is a 400 on every JSON route, never a RecursionError and a 500.
    app.json = SafeJSONProvider(app)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    svc = Services.build(settings)
    app.extensions["yorisoi"] = svc
    if start_worker:
        svc.start_worker()

    auth.init_app(app)  # login, session cookie flags, CSRF tokens for the dashboard
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(extension_routes.bp)  # the sidebar extension's sign-in and updates
    # Each helpdesk package brings its own routes (reply webhooks, Zendesk's Channel framework).
    # All are registered whichever helpdesk is configured: a webhook of another helpdesk
    # answers 404 naming YORISOI_HELPDESK, and the Channel framework has settings of its own.
    for package in helpdesk_packages():
        for blueprint in package.blueprints():
            app.register_blueprint(blueprint)
    api.init_app(app)  # /api/v1/: the agent sidebar (bearer tokens; exempt from CSRF)
    cli.register(app)

    from werkzeug.exceptions import RequestEntityTooLarge

    @app.before_request
    def _body_size_limit() -> None:
        # Checked on every route before any view runs, not left to the first read of the
        # body: a view that answers early (disabled integration, bad signature) or reads the
        # body through get_json(silent=True) would otherwise never refuse an oversized one.
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            raise RequestEntityTooLarge()

    @app.before_request
    def _no_nul_in_url():
        # No browser, helpdesk or network puts U+0000 in a URL: it is forged input, and
        # PostgreSQL cannot even compare text holding it (`/posts/%00` would fail in the query).
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            return {"error": "the URL contains a NUL character (%00)"}, 400
        return None

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge):
        return {"error": f"本文が大きすぎます（上限 {settings.max_body_bytes} バイト） / request body larger than "
                         f"{settings.max_body_bytes} bytes (YORISOI_MAX_BODY_BYTES); split it or send less"}, 413

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

    from connector.db.errors import Unavailable

    @app.errorhandler(Unavailable)
    def _database_unavailable(exc: Unavailable):
        # Database locked (another writer, lock_timeout), disk full, server gone: the request
        # is not acknowledged, so the sender (a webhook, Zendesk, the extension) retries it.
        # Every state change is one transaction, so nothing half-stored is left behind; a
        # resent post that was stored before the failure is skipped as a duplicate.
        # Logged without the statement's parameters (post text, tokens in replies).
        log = logging.getLogger("connector.web")
        reason = exc.reason
        log.error("%s %s: database unavailable: %s: %s", request.method, request.path, exc.kind, reason)
        body = {"error": "データベースが一時的に使えません（ロック中または容量不足）。この要求は完了していません。"
                         "しばらくして同じ内容を再送してください（保存済みの投稿は重複しません）。 / "
                         "The database is unavailable (locked or full): this request was not completed. "
                         "Send it again later; posts already stored are skipped, never duplicated.",
                "reason": reason}
        return body, 503, {"Retry-After": "30"}

    from connector.labels import label_name, value_name
    from connector.ticket_format import excerpt
    app.jinja_env.globals.update(label_name=label_name, value_name=value_name, excerpt=excerpt)
    return app
