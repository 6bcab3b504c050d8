"""The local source: replies are recorded in Yorisoi and sent nowhere.

It is the embedded default for every platform until a network's real module is configured,
so the demo and tests exercise the whole reply path without accounts or network access.
"""
from __future__ import annotations

import hashlib

from connector.models import Post
from connector.sources.base import ReplyResult


class LocalSource:
    #: Nothing leaves the machine: a repeat after an interrupted attempt is harmless.
    idempotent_replies = True

    def __init__(self, platform: str) -> None:
        self.platform = platform

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        # A stable id per idempotency key, as a network would return for a replayed request.
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:16]
        return ReplyResult(status="recorded", network_id=f"local-{digest}")
