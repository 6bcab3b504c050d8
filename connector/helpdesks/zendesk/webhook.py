"""`POST /zendesk/webhook`: an agent's public comment in Zendesk goes back to the network.
`POST /zendesk/status`: a ticket's status (and first public agent reply) comes back to Yorisoi.

A Zendesk trigger (docs/zendesk.md) calls this with the JSON body Yorisoi defines
(`helpdesks.zendesk.client.WEBHOOK_BODY_TEMPLATE`), signed by Zendesk with the webhook's signing
secret. Thin: the signature check and the body's meaning live in client.py beside it, the
reply itself in `Services.reply` (signed with the agent's name, sent once per comment).

Answers are chosen for Zendesk's retry behaviour (developer.zendesk.com/api-reference/webhooks/
introduction, "Webhook retries": only some failures are retried — 409, 429/503 with a short
Retry-After, timeouts): a reply that failed for a temporary reason answers 503 with Retry-After
so Zendesk tries again; anything a retry cannot fix (bad signature 401, bad body 400, a ticket
Yorisoi did not create 404) is answered at once and not retried. Every non-2xx also counts
towards Zendesk's circuit breaker for the webhook, so ignored comments answer 200.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from connector.replies import ReplyFailed, UnknownTicket
from connector.services import services

log = logging.getLogger(__name__)
bp = Blueprint("zendesk", __name__)

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"


def _answer(http_status: int, **body: object):
    return jsonify(body), http_status


@bp.post("/zendesk/webhook")
def zendesk_webhook():
    from connector.helpdesks.zendesk.client import WebhookBodyError, ZendeskHelpdesk, parse_agent_reply

    svc = services()
    helpdesk = svc.helpdesk
    if not isinstance(helpdesk, ZendeskHelpdesk):
        return _answer(503, error="Zendesk is not the configured helpdesk (YORISOI_HELPDESK=zendesk)")
    if not helpdesk.config.webhook_secret:
        return _answer(503, error="the Zendesk webhook is disabled: set ZENDESK_WEBHOOK_SECRET")
    body = request.get_data(cache=False)
    problem = helpdesk.verify_webhook(body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
    if problem:
        return _answer(401, error=problem)
    try:
        reply = parse_agent_reply(body)
    except WebhookBodyError as exc:
        return _answer(400, error=str(exc), field=exc.field)
    if reply is None:
        return _answer(200, status="ignored", reason="not a public comment by an agent")
    if reply.text is None:
        # The Zendesk app's body names the comment only (its text never travels inside JSON):
        # read it, and who wrote it, from the API.
        from dataclasses import replace

        from connector.helpdesks.base import HelpdeskError
        from connector.helpdesks.zendesk.client import AGENT_ROLES
        try:
            found = helpdesk.agent_comment(reply.ticket_id, reply.comment_id)
        except HelpdeskError as exc:
            response, status = _answer(503, status="failed", error=f"could not read the comment from Zendesk: {exc}",
                                       retryable=True)
            response.headers["Retry-After"] = "30"
            return response, status
        if found is None:
            return _answer(404, status="unknown_comment",
                           error=f"ticket {reply.ticket_id} has no comment {reply.comment_id}")
        text, public, author, role = found
        if not public or role not in AGENT_ROLES:
            return _answer(200, status="ignored", reason="not a public comment by an agent")
        if not text:
            return _answer(400, error="the comment has no text", field="comment_id")
        reply = replace(reply, text=text, agent=author[:200] or "Zendesk")
    try:
        outcome = svc.reply(ticket_id=reply.ticket_id, agent=reply.agent, text=reply.text, dedupe_key=reply.dedupe_key)
    except UnknownTicket as exc:
        return _answer(404, status="unknown_ticket", error=str(exc))
    except ReplyFailed as exc:
        if exc.retryable:
            response, status = _answer(503, status="failed", error=str(exc), retryable=True)
            response.headers["Retry-After"] = "30"
            return response, status
        return _answer(422, status="failed", error=str(exc), retryable=False)
    exchange = outcome.exchange
    return _answer(200, status="duplicate" if outcome.duplicate else exchange["status"],
                   exchange={"dedupe_key": exchange["dedupe_key"], "text": exchange["text"], "url": exchange.get("url")})


@bp.post("/zendesk/status")
def zendesk_status():
    """The status trigger's call (docs/zendesk.md → ticket status): signed like
    /zendesk/webhook, with the signing secret of its own webhook (ZENDESK_STATUS_WEBHOOK_SECRET).
    A ticket Yorisoi did not create answers 200 "ignored" (no retry, no circuit breaker)."""
    from datetime import datetime, timezone

    from connector.helpdesks.zendesk.client import (
        WebhookBodyError,
        ZendeskHelpdesk,
        parse_status_webhook,
        verify_any_secret,
    )

    svc = services()
    helpdesk = svc.helpdesk
    if not isinstance(helpdesk, ZendeskHelpdesk):
        return _answer(503, error="Zendesk is not the configured helpdesk (YORISOI_HELPDESK=zendesk)")
    secret = helpdesk.config.status_webhook_secret
    if not secret:
        return _answer(503, error="the Zendesk status webhook is disabled: set ZENDESK_STATUS_WEBHOOK_SECRET")
    body = request.get_data(cache=False)
    problem = verify_any_secret((secret, helpdesk.config.app_status_webhook_secret), body,
                                request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
    if problem:
        return _answer(401, error=problem)
    try:
        update = parse_status_webhook(body, datetime.now(timezone.utc))
    except WebhookBodyError as exc:
        return _answer(400, error=str(exc), field=exc.field)
    matched = svc.store.ticket_status.record(helpdesk.name, [update], via="webhook")
    if not matched:
        return _answer(200, status="ignored", reason=f"ticket {update.ticket_id} was not created by Yorisoi")
    return _answer(200, status="recorded", ticket_id=update.ticket_id, ticket_status=update.status)
