"""RSS/Atom feeds (blogs, review sites, はてな匿名ダイアリー, news alerts) → posts. No replies.

Facts (feedparser 6 docs, pythonhosted.org/feedparser; ../shared/reference/social-apis.md §4):
- We fetch with `requests` (timeouts, a size cap while streaming, conditional GET with the
  feed's ETag / Last-Modified so an unchanged feed costs one 304) and hand feedparser the
  bytes: given a string, feedparser may itself open URLs or files.
- `entry.id` is the dedup key (falling back to `entry.link`); `content[0].value` is the full
  HTML (feedparser sanitises it by default), else `summary`; `published_parsed` /
  `updated_parsed` are UTC struct_times.
- Feeds carry every entry, not only those about the brand: an entry becomes a post only when
  it matches a brand's keyword, hashtag or mention (the same compiled watch rules the pipeline
  qualifies with), so unrelated diaries are not stored. The pipeline then qualifies it fully.
- RSS has no reply channel: `post_reply` refuses with a message saying where to reply.
"""
from __future__ import annotations

import calendar
import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import urlsplit

import feedparser
import requests
from pydantic import ValidationError

from connector.models import MAX_TEXT_CHARS, Author, Post
from connector.ports import SourceState
from connector.qualify import Qualifier
from connector.sources.base import PolledPost, PollResult, ReplyRefused, ReplyResult, SourceError
from connector.sources.html_text import html_to_text
from connector.sources.http import TIMEOUT, new_session, raise_for_status, request
from connector.sources.platform import PlatformInfo
from connector.watch import Feed, WatchConfig

log = logging.getLogger(__name__)

INFO = PlatformInfo(
    name="rss", display_ja="RSS/Atom", display_en="RSS/Atom", poll_interval=900.0,
    # Feeds come from the watch file's [[feed]] tables, not from the environment.
)

#: Largest feed body we read; a feed is a few hundred KB, anything bigger is a mistake or hostile.
MAX_FEED_BYTES = 5 * 1024 * 1024


def _when(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None


class RssSource:
    platform = "rss"

    def __init__(self, *, state: SourceState, watch: WatchConfig, feeds: Sequence[Feed], interval: float = 900.0,
                 session: requests.Session | None = None, max_bytes: int = MAX_FEED_BYTES, clock: Any = None) -> None:
        self.state = state
        self.feeds = {f"rss:{f.url}": f for f in feeds}
        self.interval = interval
        self.session = session or new_session()
        self.max_bytes = max_bytes
        self.qualifier = Qualifier(watch)
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"RssSource(feeds={len(self.feeds)})"

    def units(self) -> list[str]:
        return list(self.feeds)

    def usage(self) -> str | None:
        return None

    def _fetch(self, url: str, cursor: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("modified"):
            headers["If-Modified-Since"] = cursor["modified"]
        response = request(self.session, "rss", "GET", url, headers=headers, stream=True, timeout=TIMEOUT)
        with response:
            if response.status_code == 304:
                return 304, b"", dict(response.headers)
            raise_for_status("rss", response)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise SourceError(f"rss: {url} is {declared} bytes; the cap is {self.max_bytes}", retryable=False)
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise SourceError(f"rss: {url} is larger than {self.max_bytes} bytes", retryable=False)
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise SourceError(f"rss: reading {urlsplit(url).netloc} failed: {type(exc).__name__}",
                                  retryable=True) from None
            return response.status_code, b"".join(chunks), dict(response.headers)

    def poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        feed = self.feeds.get(unit)
        if feed is None:
            raise SourceError(f"rss: unknown feed {unit} (the watch file changed?)", retryable=False)
        cursor = dict(cursor or {})
        status, body, headers = self._fetch(feed.url, cursor)
        if status == 304:
            return PollResult([], cursor, note="not modified (304)")
        parsed = feedparser.parse(body, response_headers={
            "content-type": headers.get("Content-Type", "application/xml"), "content-location": feed.url})
        if parsed.bozo and not parsed.entries:
            raise SourceError(f"rss: {feed.url} is not a readable feed ({type(parsed.bozo_exception).__name__})",
                              retryable=True)
        new_cursor = {"etag": headers.get("ETag"), "modified": headers.get("Last-Modified")}
        feed_title = parsed.feed.get("title") or feed.name
        feed_lang = (parsed.feed.get("language") or "")[:16] or None
        fetched_at = self._clock()
        posts: list[PolledPost] = []
        skipped = 0
        for entry in parsed.entries:
            try:
                post = self._to_post(entry, feed, feed_title, feed_lang, fetched_at)
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                log.warning("rss: entry of %s skipped: %s", feed.url, str(exc).splitlines()[0])
                post = None
            if post is None:
                skipped += 1
                continue
            # Only entries about a watched brand become posts (see the module docstring).
            if self.qualifier.decide(post).brand is None:
                continue
            posts.append(PolledPost(post, {"feed": feed.url}))
        return PollResult(posts, new_cursor, skipped=skipped)

    def _to_post(self, entry: Any, feed: Feed, feed_title: str, feed_lang: str | None,
                 fetched_at: datetime | None = None) -> Post | None:
        link = entry.get("link")
        ident = entry.get("id") or link
        if not ident:
            return None
        if len(ident) > 256:
            ident = "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
        html = (entry.get("content") or [{}])[0].get("value") or entry.get("summary") or ""
        title = html_to_text(entry.get("title"), 500)
        body = html_to_text(html, MAX_TEXT_CHARS)
        text = "\n\n".join(part for part in (title, body) if part)[:MAX_TEXT_CHARS]
        if not text.strip():
            return None
        host = urlsplit(link or feed.url).netloc or urlsplit(feed.url).netloc
        author_name = (entry.get("author") or "").strip()[:200]
        author_id = f"{host}/{author_name}" if author_name else host
        fetched_at = fetched_at or self._clock()
        created = _when(entry.get("published_parsed")) or _when(entry.get("updated_parsed")) or fetched_at
        # The entry's date is its author's word: one later than the time we fetched it is
        # clamped to the fetch time (a feed has no index time to bound a back-dated one).
        created = min(created, fetched_at)
        return Post(platform="rss", id=ident, url=link if link and link.startswith(("http://", "https://")) else None,
                    created_at=created, lang=feed_lang, text=text,
                    author=Author(id=author_id[:256], name=author_name or feed_title[:200] or host))

    def fetch_profile(self, author_id: str) -> Author | None:
        return None  # feeds have no profiles

    def check_exists(self, posts: Sequence[Post]) -> dict[str, str]:
        return {}  # nothing to ask: entries simply age out of the feed

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        where = f" ({post.url})" if post.url else ""
        raise ReplyRefused("RSS/Atom has no reply channel: reply on the site itself" + where +
                           " / RSS には返信の経路がありません。掲載サイトで返信してください", retryable=False)
