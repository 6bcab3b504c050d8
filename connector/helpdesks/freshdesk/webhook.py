"""`POST /freshdesk/webhook`: an agent's public reply in Freshdesk goes back to the network.
`POST /freshdesk/status`: a ticket's status (and an agent's public reply) comes back to Yorisoi.

A Freshdesk automation rule ("Ticket updates" → event "Reply is sent", performed by an agent,
on tickets tagged `yorisoi`) calls this URL with a JSON body the admin writes with Freshdesk
placeholders (docs/freshdesk.md):

    {"ticket_id": "{{ticket.id}}", "agent": "{{ticket.agent.name}}", "text": "{{ticket.latest_public_comment}}"}

Freshdesk does not sign webhook calls, so the rule carries a shared secret: the header
`X-Yorisoi-Token: <FRESHDESK_WEBHOOK_TOKEN>` (preferred: headers stay out of access logs and
proxies' URL logs) or `?token=<…>` in the URL (works where custom headers are unavailable).
It is compared in constant time before the body is read.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from typing import Any

from flask import Blueprint, jsonify, request

from connector import jsonsafe
from connector.replies import ReplyFailed, UnknownTicket
from connector.services import services
from connector.textnorm import is_number_id, scrub

log = logging.getLogger(__name__)
bp = Blueprint("freshdesk", __name__)

TOKEN_HEADER = "X-Yorisoi-Token"
MAX_TEXT_CHARS = 10_000


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def token_ok(expected: str, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.strip().encode("utf-8", "replace"))


def comment_text(raw: str) -> str:
    """{{ticket.latest_public_comment}} may arrive as HTML: keep the words and line breaks."""
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", raw)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return "\n".join(line.rstrip() for line in text.strip().splitlines()).strip()


def dedupe_key(ticket_id: str, agent: str, text: str, comment_id: str | None) -> str:
    """Stable across Freshdesk re-sending the same event: the comment id when the payload has
    one, else ticket + a hash of agent and text (the same words by the same agent on the same
    ticket are one reply)."""
    if comment_id:
        if len(comment_id) > 64:  # keys are at most 400 characters: a long id goes as its hash
            comment_id = "sha256:" + hashlib.sha256(comment_id.encode("utf-8")).hexdigest()
        return f"freshdesk:{ticket_id}:comment:{comment_id}"
    digest = hashlib.sha256(f"{agent}\n{' '.join(text.split())}".encode("utf-8")).hexdigest()[:32]
    return f"freshdesk:{ticket_id}:{digest}"


def _payload() -> dict[str, Any] | None:
    # JSON is the documented choice; a form-encoded body (Freshdesk's other encoding) works too.
    if request.form:
        return request.form.to_dict()
    try:
        data = jsonsafe.loads(request.get_data(cache=True) or b"null")
    except ValueError:  # not JSON, not UTF-8 (UnicodeDecodeError), or nested too deep
        return None
    return data if isinstance(data, dict) else None



def _verified_payload(svc: Any) -> tuple[dict[str, Any], Any]:
    """The JSON object of a Freshdesk automation call whose token is right, or the error answer
    (404 when Freshdesk is not configured, 503 without a token, 401, 400 for a non-object)."""
    if svc.helpdesk.name != "freshdesk":
        return {}, _error(404, "Freshdesk is not the configured helpdesk (YORISOI_HELPDESK)")
    expected = svc.helpdesk.settings.webhook_token  # type: ignore[attr-defined]
    if not expected:
        return {}, _error(503, "the Freshdesk webhook is disabled: set FRESHDESK_WEBHOOK_TOKEN")
    if not token_ok(expected, request.headers.get(TOKEN_HEADER) or request.args.get("token")):
        return {}, _error(401, f"missing or wrong token (send it in the {TOKEN_HEADER} header)")
    payload = _payload()
    if payload is None:
        return {}, _error(400, "body is not a JSON object: see docs/freshdesk.md for the payload")
    return payload, None

@bp.post("/freshdesk/webhook")
def freshdesk_webhook():
    svc = services()
    payload, refused = _verified_payload(svc)
    if refused is not None:
        return refused
    ticket_id = scrub(str(payload.get("ticket_id") or "")).strip().lstrip("#")
    agent = scrub(str(payload.get("agent") or "")).strip()[:200]
    text = comment_text(scrub(str(payload.get("text") or "")))
    missing = [name for name, value in (("ticket_id", ticket_id), ("agent", agent), ("text", text)) if not value]
    if missing:
        return _error(400, f"missing {', '.join(missing)} (a placeholder may be misspelt in the rule's JSON)")
    if not is_number_id(ticket_id):
        return _error(400, f"ticket_id: {ticket_id[:40]!r} is not a Freshdesk ticket number")
    if len(text) > MAX_TEXT_CHARS:
        return _error(413, f"text: {len(text)} characters is more than {MAX_TEXT_CHARS}")
    from connector.helpdesks.freshdesk.client import MARKER
    if MARKER in text:
        # Yorisoi's own notes (a customer's follow-up post) are never sent back out.
        return jsonify({"status": "ignored", "reason": "Yorisoi's own note"}), 200
    key = dedupe_key(ticket_id, agent, text, scrub(str(payload.get("comment_id") or "")).strip() or None)
    try:
        outcome = svc.reply(ticket_id=ticket_id, agent=agent, text=text, dedupe_key=key)
    except UnknownTicket:
        # Not a Yorisoi ticket (the rule's tag condition was left out): nothing to post. 200, so
        # Freshdesk does not retry or flag the webhook as failing.
        return jsonify({"status": "ignored", "reason": f"ticket {ticket_id} was not created by Yorisoi"}), 200
    except ReplyFailed as exc:
        log.warning("Freshdesk reply on ticket %s not sent: %s", ticket_id, exc)
        return _error(503 if exc.retryable else 422, f"the reply was not sent: {exc}")
    exchange = outcome.exchange
    return jsonify({"status": "duplicate" if outcome.duplicate else exchange["status"],
                    "dedupe_key": key, "url": exchange.get("url")}), 200


@bp.post("/freshdesk/status")
def freshdesk_status():
    """The status automation rule's call (docs/freshdesk.md → status): same token as
    /freshdesk/webhook. Body: {"ticket_id": "{{ticket.id}}", "status": "{{ticket.status}}",
    "agent_reply": "true"|"" }; `agent_reply` set by the rule for "Reply is sent" records the
    first public agent reply time. A ticket Yorisoi did not create answers 200 "ignored"."""
    from datetime import datetime, timezone

    from connector.helpdesks.base import StatusUpdate
    from connector.helpdesks.freshdesk.client import normalize_status

    svc = services()
    payload, refused = _verified_payload(svc)
    if refused is not None:
        return refused
    ticket_id = scrub(str(payload.get("ticket_id") or "")).strip().lstrip("#")
    if not is_number_id(ticket_id):
        return _error(400, f"ticket_id: {ticket_id[:40]!r} is not a Freshdesk ticket number")
    status = normalize_status(scrub(str(payload.get("status") or "")))
    if status is None:
        return _error(400, f"status: unknown status {str(payload.get('status'))[:40]!r}")
    now = datetime.now(timezone.utc)
    replied = str(payload.get("agent_reply") or "").strip().lower() in ("true", "1", "yes")
    update = StatusUpdate(ticket_id, status, now, now if replied else None)
    if not svc.store.ticket_status.record("freshdesk", [update], via="webhook"):
        return jsonify({"status": "ignored", "reason": f"ticket {ticket_id} was not created by Yorisoi"}), 200
    return jsonify({"status": "recorded", "ticket_id": ticket_id, "ticket_status": status}), 200
