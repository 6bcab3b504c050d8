"""Bluesky Jetstream: the JSON firehose over WebSocket, filtered client-side by the watch file.

Facts (bluesky-social/jetstream README, docs.bsky.app advanced-guides/firehose;
../shared/reference/social-apis.md §3):
- `wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post`
  (also jetstream1, and us-west); no server-side text filter, so we match posts locally with
  the qualifier's brand rules (`Qualifier.mentions_brand`) and keep replies to posts we store.
- Every event is one JSON text frame: `{"did", "time_us", "kind": "commit"|"identity"|"account",
  "commit": {"rev", "operation": "create"|"update"|"delete", "collection", "rkey", "record", "cid"}}`.
  A post's uri is `at://<did>/app.bsky.feed.post/<rkey>`; the author's handle is not in the event.
- `cursor` (microseconds since the epoch, the `time_us` of an event) replays from that time.
  Several operations of one commit share a `time_us`, so we resume from the stored cursor
  minus a small overlap; posts seen twice are skipped by the store as already stored.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

from pydantic import ValidationError

from connector.models import Author, Post
from connector.sources.base import PolledPost, clamp_client_time
from connector.sources.bluesky import quoted_post_uri
from connector.sources.http import parse_time
from connector.sources.ws import StreamBatch, open_websocket, recv_frames

log = logging.getLogger(__name__)

DEFAULT_JETSTREAM_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
COLLECTION = "app.bsky.feed.post"
#: Resume this far before the stored cursor: the operations of one commit share a time_us.
OVERLAP_US = 2_000_000
#: No frame for this long (the firehose never pauses that long): the stream is stalled.
STALL_SECONDS = 30.0


def _web_url(did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{did}/post/{rkey}"


class JetstreamStream:
    """One Jetstream subscription, as the stream supervisor runs it (connector/streaming.py)."""

    platform = "bluesky"
    name = "bluesky:jetstream"

    def __init__(self, *, url: str = DEFAULT_JETSTREAM_URL, wants: Callable[[Post], bool],
                 stall_seconds: float = STALL_SECONDS, overlap_us: int = OVERLAP_US) -> None:
        self.url = url
        self.wants = wants  # the client-side filter (brand named, or a reply to a stored post)
        self.stall_seconds = stall_seconds
        self.overlap_us = overlap_us

    def __repr__(self) -> str:
        return f"JetstreamStream(url={self.url!r})"

    def subscribe_url(self, cursor: dict[str, Any] | None) -> str:
        params: list[tuple[str, str]] = [("wantedCollections", COLLECTION)]
        time_us = (cursor or {}).get("time_us")
        if time_us:
            params.append(("cursor", str(max(0, int(time_us) - self.overlap_us))))
        return f"{self.url}{'&' if '?' in self.url else '?'}{urlencode(params)}"

    def events(self, cursor: dict[str, Any] | None, stop: threading.Event) -> Iterator[StreamBatch]:
        """Connect and yield one batch per frame until `stop`; raises SourceError when the
        connection drops or stalls (the supervisor reconnects from the stored cursor)."""
        newest = int((cursor or {}).get("time_us") or 0)
        with open_websocket(self.subscribe_url(cursor), "bluesky") as ws:
            yield StreamBatch(connected=True)
            for frame in recv_frames(ws, "bluesky", self.stall_seconds, stop):
                if frame is None:
                    yield StreamBatch()  # a quiet tick: still connected
                    continue
                batch = self.parse(frame)
                if batch is None:
                    continue
                # Out of order (a replay after a reconnect, a slow relay): the cursor never
                # moves backwards, so a restart resumes after the newest event stored.
                newest = max(newest, batch.time_us or 0)
                batch.cursor = {"time_us": newest} if newest else None
                yield batch

    def parse(self, frame: str | bytes) -> StreamBatch | None:
        """One frame → a batch (a post, a delete, or nothing we want). A malformed frame is
        logged and skipped."""
        try:
            event = json.loads(frame)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
            time_us = int(event["time_us"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("bluesky jetstream: malformed frame skipped (%s): %.200r", exc, frame)
            return None
        commit = event.get("commit") if event.get("kind") == "commit" else None
        if not isinstance(commit, dict) or commit.get("collection") != COLLECTION:
            return StreamBatch(time_us=time_us, events=1)
        did, rkey = event.get("did"), commit.get("rkey")
        if not isinstance(did, str) or not isinstance(rkey, str):
            log.warning("bluesky jetstream: commit without did/rkey skipped at %s", time_us)
            return StreamBatch(time_us=time_us, events=1)
        uri = f"at://{did}/{COLLECTION}/{rkey}"
        operation = commit.get("operation")
        if operation == "delete":
            return StreamBatch(time_us=time_us, events=1, deletes=[uri])
        if operation != "create":
            return StreamBatch(time_us=time_us, events=1)  # edits are not tickets of their own
        try:
            polled = self.to_post(did, rkey, commit, time_us)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            log.warning("bluesky jetstream: post %s skipped: %s", uri, str(exc).splitlines()[0])
            return StreamBatch(time_us=time_us, events=1)
        if polled is None or not self.wants(polled.post):
            return StreamBatch(time_us=time_us, events=1)
        return StreamBatch(time_us=time_us, events=1, posts=[polled])

    @staticmethod
    def to_post(did: str, rkey: str, commit: dict[str, Any], time_us: int) -> PolledPost | None:
        record = commit.get("record") or {}
        if not isinstance(record, dict):
            raise ValueError("record is not an object")
        text = (record.get("text") or "").strip()
        if not text:
            return None
        uri = f"at://{did}/{COLLECTION}/{rkey}"
        seen = datetime.fromtimestamp(time_us / 1_000_000, tz=timezone.utc)
        created = clamp_client_time(parse_time(record.get("createdAt")), seen)  # time_us: the relay's time
        reply = record.get("reply") or {}
        parent = (reply.get("parent") or {}).get("uri")
        root = reply.get("root") or None
        langs = record.get("langs") or []
        post = Post(platform="bluesky", id=uri, url=_web_url(did, rkey), created_at=created,
                    lang=langs[0] if langs else None, text=text, author=Author(id=did),
                    metrics={"replies": 0, "reposts": 0, "likes": 0, "quotes": 0},
                    in_reply_to=parent, conversation_id=(root or {}).get("uri") if root else None,
                    quote_of=quoted_post_uri(record))
        extras = {"uri": uri, "cid": commit.get("cid"), "root": root, "time_us": time_us}
        return PolledPost(post, extras)
