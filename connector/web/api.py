"""`/api/v1/`: the JSON API behind the agent sidebar extension.

Every route but the OpenAPI description needs `Authorization: Bearer <agent token>` (see
connector/agents.py); an unknown or revoked token gets 401, a token over its rate 429 with
Retry-After. Authentication is the bearer token only — no cookies, so no CSRF exposure, and
the blueprint is exempt from the dashboard's CSRF check (the extension's service worker sends
no Origin on GET and `chrome-extension://…` on POST, so origins prove nothing here either).
Requests are logged with the agent and the token's id, never the token.
"""
from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from connector.agents import AgentIdentity, RateLimiter, authenticate
from connector.config import DEFAULT_REPLY_SIGNATURE, HELPDESKS, ConfigError
from connector.draft_check import DEFAULT_SIMILARITY, LIMITS, check_draft
from connector.labels import VALUE_NAMES
from connector.replies import sign_reply
from connector.services import services
from connector.sidebar import (
    CORRECTABLE_LABELS,
    DraftSettings,
    TicketNotFound,
    build_context,
    draft_context,
    resolve_ticket,
    summarise,
)
from connector.sources.local import LocalSource

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
bp = Blueprint("api_v1", __name__, url_prefix=PREFIX)

#: Largest draft we check: far above any network's limit, small enough to check in a blink.
MAX_DRAFT_CHARS = 10_000
_TICKET_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: Routes that answer without a token (they hold no data).
PUBLIC_ENDPOINTS = frozenset({"api_v1.openapi"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message_en: str, message_ja: str | None = None, **extra: Any) -> None:
        super().__init__(message_en)
        self.status, self.code, self.message_en = status, code, message_en
        self.message_ja = message_ja or message_en
        self.extra = extra


def _error_response(status: int, code: str, message_en: str, message_ja: str, **extra: Any):
    response = jsonify({"error": message_en, "code": code, "message_en": message_en, "message_ja": message_ja, **extra})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    """Register the blueprint with its settings (read from the environment once; a bad value
    stops the connector at start-up with the variable's name)."""
    env = app.extensions["yorisoi"].settings.env
    settings = app.extensions["yorisoi"].settings
    app.extensions["yorisoi_api"] = {
        "limiter": RateLimiter.from_env(env),
        "draft": DraftSettings(signature_template=settings.reply_signature or DEFAULT_REPLY_SIGNATURE,
                               signature_pattern=_signature_pattern(env.get("YORISOI_DRAFT_SIGNATURE_PATTERN")),
                               similarity_threshold=_threshold(env.get("YORISOI_DRAFT_SIMILARITY"))),
    }
    # The dashboard's CSRF protection (cookie sessions) must leave this bearer-token API alone.
    app.extensions.setdefault("csrf_exempt_prefixes", set()).add(PREFIX + "/")
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _api_http_errors(exc: HTTPException):
        # Unknown routes and methods under /api/v1/ answer JSON like the rest of the API.
        if not request.path.startswith(PREFIX + "/"):
            from connector.web.errors import html_error
            return html_error(exc)
        return _error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                               exc.description or exc.name, exc.description or exc.name)


def _signature_pattern(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        re.compile(raw.replace("{agent}", "佐藤").replace("{brand}", "ソラモバイル"))
    except re.error as exc:
        raise ConfigError(f"YORISOI_DRAFT_SIGNATURE_PATTERN is not a valid regular expression: {exc}") from None
    return raw


def _threshold(raw: str | None) -> float:
    if not raw:
        return DEFAULT_SIMILARITY
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0 or math.isnan(value):
        raise ConfigError(f"YORISOI_DRAFT_SIMILARITY={raw!r}: give a number above 0 and at most 1 (e.g. 0.6)")
    return value


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _error_response(exc.status, exc.code, exc.message_en, exc.message_ja, **exc.extra)


@bp.before_request
def _authenticate():
    g.api_started = time.monotonic()
    g.api_agent = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = _error_response(401, "missing_token", "Authorization: Bearer <token> is required",
                                   "Authorization: Bearer <トークン> が必要です。拡張機能の設定でトークンを入力してください。")
        response.headers["WWW-Authenticate"] = 'Bearer realm="yorisoi"'
        return response
    identity = _zendesk_app_identity(token.strip()) or authenticate(services().store, token.strip())
    if identity is None and token.strip().startswith("zaf_"):
        response = _error_response(401, "invalid_token", "The Zendesk sidebar session has expired: reload the app "
                                   "(it lasts an hour)",
                                   "Zendesk サイドバーのセッションが切れました（有効期間 1 時間）。アプリを再読み込みしてください。")
        response.headers["WWW-Authenticate"] = 'Bearer realm="yorisoi", error="invalid_token"'
        return response
    if identity is None:
        response = _error_response(401, "invalid_token", "The token is unknown or revoked; ask an admin for a new one "
                                   "(yorisoi token create --agent NAME)",
                                   "トークンが無効か、取り消されています。管理者に新しいトークンを発行してもらってください。")
        response.headers["WWW-Authenticate"] = 'Bearer realm="yorisoi", error="invalid_token"'
        return response
    g.api_agent = identity
    allowed, wait = current_app.extensions["yorisoi_api"]["limiter"].allow(identity.token_id)
    if not allowed:
        retry = max(1, math.ceil(wait))
        response = _error_response(429, "rate_limited", f"Too many requests for this token; retry in {retry} s",
                                   f"リクエストが多すぎます。{retry} 秒後にもう一度お試しください。", retry_after=retry)
        response.headers["Retry-After"] = str(retry)
        return response
    return None


def _zendesk_app_identity(token: str) -> AgentIdentity | None:
    """The Zendesk app's sidebar calls with a short-lived `zaf_…` credential naming the agent
    Zendesk's signed JWT named (connector/helpdesks/zendesk/app/signed.py). It has no row in
    agent_tokens: its token_id is the negative Zendesk user id (rate limit per agent; stored as
    no token on corrections)."""
    from connector.helpdesks.zendesk.app.signed import SESSION_PREFIX
    if not token.startswith(SESSION_PREFIX):
        return None
    from connector.helpdesks.zendesk.app.web import sessions
    session = sessions().read(token)
    if session is None or not session.user_id.isdigit():
        return None
    return AgentIdentity(-int(session.user_id), session.agent)


@bp.after_request
def _log_request(response):
    agent: AgentIdentity | None = g.get("api_agent")
    elapsed = (time.monotonic() - g.get("api_started", time.monotonic())) * 1000
    # The path (not the query string, not a header): ticket ids are fine to log, tokens never.
    log.info("api %s %s -> %s agent=%s token_id=%s %.0fms", request.method, request.path, response.status_code,
             agent.agent if agent else "-", agent.token_id if agent else "-", elapsed)
    response.headers["Cache-Control"] = "no-store"
    return response


def _helpdesk(value: Any) -> str:
    helpdesk = value if value is not None else services().helpdesk.name
    if not isinstance(helpdesk, str) or helpdesk not in HELPDESKS:
        raise ApiError(400, "bad_request", f"helpdesk must be one of: {', '.join(HELPDESKS)}",
                       f"helpdesk は {', '.join(HELPDESKS)} のいずれかです。", field="helpdesk")
    return helpdesk


def _ticket_id(value: Any, field: str = "ticket") -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _TICKET_ID.match(value):
        raise ApiError(400, "bad_request", f"{field} must be a ticket id (1-64 letters, digits, _ . : -)",
                       f"{field} はチケット ID（英数字と _ . : -、64 文字まで）で指定してください。", field=field)
    return value


def _post_key(helpdesk: str, ticket: str | None, external_id: str | None = None) -> str:
    try:
        return resolve_ticket(services().store, helpdesk, ticket, external_id)
    except TicketNotFound as exc:
        raise ApiError(404, "unknown_ticket", exc.message_en, exc.message_ja) from None


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object (Content-Type: application/json)",
                       "本文は JSON オブジェクトで送ってください（Content-Type: application/json）。")
    return body


@bp.get("/me")
def me():
    """Who the token belongs to: the options page's connection test."""
    agent: AgentIdentity = g.api_agent
    return jsonify({"agent": agent.agent, "token_id": agent.token_id})


@bp.get("/context")
def context():
    """The sidebar's view of one ticket."""
    args = request.args
    helpdesk = _helpdesk(args.get("helpdesk"))
    external = args.get("external_id")
    if args.get("ticket") is None and external:
        if len(external) > 400:
            raise ApiError(400, "bad_request", "external_id is too long", "external_id が長すぎます。", field="external_id")
        key = _post_key(helpdesk, None, external)
    else:
        key = _post_key(helpdesk, _ticket_id(args.get("ticket")))
    svc = services()
    live = [platform for platform, source in svc.sources.items() if not isinstance(source, LocalSource)]
    return jsonify(build_context(svc.store, key, live_sources=live))


def _tokens_agent(body: dict[str, Any]) -> str:
    """The agent is the token's, never a name from the request (issue 16 #14): anyone holding
    a token could otherwise sign replies or corrections as a colleague. An `agent` in the body
    is accepted only when it names the token's own agent."""
    identity: AgentIdentity = g.api_agent
    agent = body.get("agent")
    if agent is not None and (not isinstance(agent, str) or len(agent) > 200):
        raise ApiError(400, "bad_request", "agent must be a name (a string of at most 200 characters)",
                       "agent は名前（200 文字までの文字列）で指定してください。", field="agent")
    if agent is not None and agent.strip() and agent.strip() != identity.agent:
        raise ApiError(403, "forbidden", "agent must be the token's own agent (leave it out)",
                       "agent はトークンのエージェント本人のみ指定できます（省略してください）。", field="agent")
    return identity.agent


@bp.post("/draft-check")
def draft_check():
    """Findings for a draft public reply to a ticket's customer."""
    body = _json_body()
    helpdesk = _helpdesk(body.get("helpdesk"))
    key = _post_key(helpdesk, _ticket_id(body.get("ticket")))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "bad_request", "text must be the draft reply (a non-empty string)",
                       "text に返信の下書き（空でない文字列）を入れてください。", field="text")
    if len(text) > MAX_DRAFT_CHARS:
        raise ApiError(400, "bad_request", f"text is longer than {MAX_DRAFT_CHARS} characters",
                       f"text が {MAX_DRAFT_CHARS} 文字を超えています。", field="text")
    agent = _tokens_agent(body)
    settings: DraftSettings = current_app.extensions["yorisoi_api"]["draft"]
    ctx = draft_context(services().store, key, agent, settings)
    findings = check_draft(text, ctx)
    # What will actually be sent: the signature is appended when the agent is not named.
    signed = sign_reply(text, agent, ctx.brand, settings.signature_template)
    length = None
    if ctx.platform in LIMITS:
        _, maximum, count = LIMITS[ctx.platform]
        length = {"platform": ctx.platform, "count": count(signed), "limit": maximum}
    return jsonify({"findings": [f.to_dict() for f in findings], "counts": summarise(findings),
                    "agent": agent, "signed_text": signed, "length": length})


@bp.post("/corrections")
def corrections():
    """An agent corrects one analysis label of the ticket's post (training data for
    `yorisoi train --from-corrections`)."""
    body = _json_body()
    helpdesk = _helpdesk(body.get("helpdesk"))
    key = _post_key(helpdesk, _ticket_id(body.get("ticket")))
    label, value = body.get("label"), body.get("value")
    if label not in CORRECTABLE_LABELS:
        raise ApiError(400, "bad_request", f"label must be one of: {', '.join(CORRECTABLE_LABELS)}",
                       f"label は {', '.join(CORRECTABLE_LABELS)} のいずれかです。", field="label")
    if value not in VALUE_NAMES[label]:
        raise ApiError(400, "bad_request", f"{label} must be one of: {', '.join(VALUE_NAMES[label])}",
                       f"{label} の値は {', '.join(VALUE_NAMES[label])} のいずれかです。", field="value")
    agent = _tokens_agent(body)
    store = services().store
    token_id = g.api_agent.token_id if g.api_agent.token_id > 0 else None  # a Zendesk app session has no token row
    correction_id = store.corrections.add_correction(key, label, value, agent, token_id=token_id)
    stored = store.corrections.list_corrections(post_key=key)
    row = next(r for r in stored if r["id"] == correction_id)
    return jsonify({"id": correction_id, "ticket": body.get("ticket"), "post_key": key, "label": label,
                    "value": value, "previous": row.get("old_value"), "agent": agent}), 201


@bp.get("/openapi.json")
def openapi():
    from connector.web.openapi import document
    return jsonify(document())
