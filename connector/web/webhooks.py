"""Inbound webhooks. `POST /sources/webhook`: posts pushed by any other tool.

The body is one normalized post or a JSON array of them, signed with HMAC-SHA256 over the raw
body: `X-Yorisoi-Signature: sha256=<hex>`. The signature is checked before the body is parsed,
so an unsigned sender learns nothing about our validation.
"""
from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, jsonify, request

from connector import jsonsafe
from connector.services import services

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

SIGNATURE_HEADER = "X-Yorisoi-Signature"
#: Posts per webhook call; a larger batch should be split by the sender.
MAX_BATCH = 500


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("utf-8", "replace"))


def _error(status: int, message: str, **extra: object):
    return jsonify({"error": message, **extra}), status


@bp.post("/sources/webhook")
def source_webhook():
    svc = services()
    secret = svc.settings.webhook_secret
    if not secret:
        return _error(503, "the source webhook is disabled: set YORISOI_WEBHOOK_SECRET")
    body = request.get_data(cache=False)
    if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
        return _error(401, f"missing or bad {SIGNATURE_HEADER} (expected sha256=<hex HMAC-SHA256 of the raw body>)")
    try:
        payload = jsonsafe.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deep
        return _error(400, f"body is not valid JSON: {exc}")
    batch = payload if isinstance(payload, list) else [payload]
    if not batch:
        return _error(400, "empty batch: send a post object or a non-empty array of posts")
    if len(batch) > MAX_BATCH:
        return _error(413, f"too many posts in one call ({len(batch)} > {MAX_BATCH}); split the batch")

    # One transaction for the whole call: if the database fails (locked, full), none of the
    # posts is stored and the 503 tells the sender to send the same body again.
    outcomes = svc.pipeline.ingest_many(batch, source="webhook")
    for index, outcome in enumerate(outcomes):
        if outcome.error is not None:
            outcome.error["index"] = index
    rejected = [o for o in outcomes if o.status == "rejected"]
    if len(rejected) == len(outcomes):
        first = rejected[0].error or {}
        where = f"posts[{first.get('index')}]." if isinstance(payload, list) else ""
        field = first.get("field")
        return _error(400, f"{where}{field}: {first.get('message')}" if field else str(first.get("message")),
                      errors=[o.error for o in rejected])
    svc.wake_worker()
    return jsonify({
        "accepted": len(outcomes) - len(rejected),
        "rejected": len(rejected),
        "results": [o.as_dict() for o in outcomes],
    }), 202
