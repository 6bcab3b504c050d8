"""The small interface every source (network) module implements.

Two halves:
- replies (every source, the helpdesk reply path uses it): `post_reply`;
- polling (the real networks): the poller asks a source for its `units` (one search query, one
  hashtag timeline on one instance, one feed…), polls each unit from its persisted cursor, and
  gets normalized posts back; plus `fetch_profile` and `check_exists` for the sidebar and for
  platform compliance.
Nothing outside `sources/` knows a network's JSON: what a module needs to keep about a post
beyond the normalized `Post` (a Bluesky cid, X's reply_allowed) travels as `PolledPost.extras`
and is stored by post key in the store's `source_post_extras` table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, Sequence, runtime_checkable

from connector.models import Author, Post

#: How far before the network's own time a client-set time is believed (a post written
#: offline, a slow relay). Beyond it, or at any time after it, the network's time counts.
CLIENT_TIME_TOLERANCE = timedelta(minutes=10)


def clamp_client_time(claimed: datetime | None, observed: datetime,
                      tolerance: timedelta = CLIENT_TIME_TOLERANCE) -> datetime:
    """A time the author's client set (Bluesky `createdAt`, a feed entry's date), held to
    the time the network indexed the post (or we fetched it): a post cannot be written after
    it was seen, and one back-dated far before it would land in a past storm or spike. Any
    author sets these freely, so they must not reorder what Yorisoi groups by time."""
    if claimed is None or claimed > observed or claimed < observed - tolerance:
        return observed
    return claimed


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


class ReplyUnknown(Exception):
    """The reply request went out but no answer came back (a read timeout, a connection cut
    after sending): the network may or may not have posted it. Never resend blindly: X and
    Bluesky have no idempotency key, a second call would post the reply twice in public."""


@runtime_checkable
class ReplyLookup(Protocol):
    """A source that can tell whether a reply of ours is already on the network."""

    def find_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult | None:
        """The brand's reply `text` to `post` if it is posted, None if it is not. Raises
        SourceError when it cannot tell (then the reply must not be resent)."""


class SourceError(Exception):
    """A network call failed while polling, looking up or checking posts.

    - retryable: the same call may work later (429, 5xx, timeouts): back off this unit only.
    - retry_after: seconds the network asked us to wait (429 / rate-limit reset headers).
    - status: the HTTP status, when there was one.
    Messages never contain credentials.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        #: The request may have reached the network (no answer came back): for a write, an
        #: unknown outcome, not a failure.
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class PolledPost:
    """A normalized post plus what its source module wants to remember about it."""

    post: Post
    extras: dict[str, Any] = field(default_factory=dict)
    #: A network-local reference another post may point at (a Mastodon status id on one
    #: instance), so replies found later can be threaded to this post's key.
    ref: str | None = None


@dataclass
class PollResult:
    posts: list[PolledPost]
    cursor: dict[str, Any]
    #: False when the unit has more to fetch (page cap or read budget reached): poll it again
    #: soon; the cursor says where to resume, so nothing is skipped.
    done: bool = True
    note: str | None = None  # shown in `yorisoi poll` (e.g. "daily read budget reached")
    skipped: int = 0  # items the module left out (boosts, non-public, empty, malformed)


class Source(Protocol):
    platform: str

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        """Reply to `post` with `text`. The same idempotency key must never post twice where
        the network supports it (Mastodon's Idempotency-Key); callers record the attempt first."""


@runtime_checkable
class PollingSource(Protocol):
    platform: str
    #: Seconds between two polls of one unit (from YORISOI_POLL_INTERVALS).
    interval: float

    def units(self) -> list[str]:
        """Names of the independently scheduled, independently backed-off poll units."""

    def poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        """New posts of `unit` since `cursor` (None: first poll). Raises SourceError."""

    def fetch_profile(self, author_id: str) -> Author | None:
        """The author's current public profile (None where the network has none)."""

    def check_exists(self, posts: Sequence[Post]) -> dict[str, str]:
        """Which of `posts` are gone: {post id: reason} (deleted, protected…). Posts not in the
        answer are live. Raises SourceError when the network cannot say."""

    def usage(self) -> str | None:
        """One line about spend or limits for `yorisoi poll` (X's read budget), or None."""
