"""The small interface every source (network) module implements for replies.

Polling and normalising posts come with the real network modules (X, Mastodon, Bluesky,
RSS); what the helpdesk reply path needs now is: post a reply to one post, as the brand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from connector.models import Post


@dataclass(frozen=True)
class ReplyResult:
    """What became of a reply.

    status: `sent` (posted through the network's API), `prepared` (the network does not allow
    an API reply here: `url` is a prepared link the agent opens to post it by hand), or
    `recorded` (the local/demo source: kept in Yorisoi only, nothing left the machine).
    """

    status: str
    network_id: str | None = None
    url: str | None = None


class ReplyRefused(Exception):
    """The network refused the reply; `retryable` says whether trying later may work."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Source(Protocol):
    platform: str

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        """Reply to `post` with `text`. The same idempotency key must never post twice where
        the network supports it (Mastodon's Idempotency-Key); callers record the attempt first."""
