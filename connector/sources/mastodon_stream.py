"""Mastodon streaming: the watched hashtags of one instance over one WebSocket.

Facts (docs.joinmastodon.org methods/streaming.md, methods/instance.md;
../shared/reference/social-apis.md §2):
- The streaming host can differ from the instance: `GET /api/v2/instance` →
  `configuration.urls.streaming` (e.g. `wss://streaming.mastodon.social`).
- `GET /api/v1/streaming` upgraded to a WebSocket; one socket carries several streams, each
  added with `{"type": "subscribe", "stream": "hashtag", "tag": "<tag without #>"}`.
- Since 4.2 hashtag streams need a user token with `read:statuses` (sent as a Bearer
  header; the home instance's MASTODON_ACCESS_TOKEN). Other instances are tried without one:
  where refused, their hashtag timelines stay polled.
- Frames: `{"stream": ["hashtag", "<tag>"], "event": "update", "payload": "<Status as a JSON
  string>"}`; `delete` carries the status id (of this instance); `status.update` is an edit.
- A hashtag can be silent for hours, so silence is not a stall here: the socket's pings
  (websockets' keep-alive) find a dead connection; a reconnect after STALL_SECONDS of
  silence only costs a catch-up request.
- Catch-up: after every (re)connect, each tag's REST timeline from the last id seen (min_id,
  the same paging as the poller), so nothing posted while disconnected is missed.
- The public stream (`{"type": "subscribe", "stream": "public"}`, or `public:local` for the
  instance's own posts) carries every public status: only where the admin allows it
  (MASTODON_PUBLIC_STREAM names the instance; off by default), filtered here with the watch
  file's brand rules. Instances may refuse it without a token (`timeline_preview` off, or
  Mastodon 4.x's "public timelines require login" settings): the server answers the
  subscription with an error frame `{"error": …, "status": 401}`, logged; the hashtag streams
  on the same socket go on. Catch-up: `GET /api/v1/timelines/public` (`local=true` for
  public:local) from the last id seen.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlsplit

from connector.sources.http import raise_for_status
from connector.sources.ws import StreamBatch, open_websocket, recv_frames, send_frame

if TYPE_CHECKING:
    from connector.sources.mastodon import MastodonSource

log = logging.getLogger(__name__)

STALL_SECONDS = 900.0
#: Catch-up pages per tag and reconnect (40 statuses each); more waits for the next reconnect
#: or the poller, whose cursor is separate.
CATCH_UP_PAGES = 5


def _newer(a: str | None, b: str | None) -> str | None:
    """The newer of two status ids (ids are strings; longer is newer, then lexical)."""
    if not a or not b:
        return a or b
    return max(a, b, key=lambda i: (len(i), i))


class MastodonStream:
    platform = "mastodon"

    def __init__(self, source: "MastodonSource", base: str, tags: list[str], *,
                 token: str | None = None, stall_seconds: float = STALL_SECONDS,
                 public: str | None = None, wants: Callable[[Any], bool] | None = None) -> None:
        self.source = source
        self.base = base
        self.host = urlsplit(base).netloc
        self.name = f"mastodon:{self.host}:stream"
        self.tags = tags
        self._token = token
        self.stall_seconds = stall_seconds
        #: "public" / "public:local" where the admin allows it, else None (hashtags only).
        self.public = public
        self.wants = wants or (lambda post: False)

    def __repr__(self) -> str:
        return f"MastodonStream({self.base!r}, tags={self.tags!r})"

    def streaming_url(self) -> str:
        response = self.source._call("GET", self.base, "/api/v2/instance", auth=bool(self._token))
        raise_for_status("mastodon", response)
        try:
            url = ((response.json() or {}).get("configuration") or {}).get("urls", {}).get("streaming")
        except (ValueError, AttributeError):
            url = None
        if not url:  # older servers: the instance itself serves the streaming API
            url = self.base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return url.rstrip("/") + "/api/v1/streaming"

    def events(self, cursor: dict[str, Any] | None, stop: threading.Event) -> Iterator[StreamBatch]:
        last: dict[str, str | None] = dict((cursor or {}).get("last_id") or {})
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        with open_websocket(self.streaming_url(), "mastodon", headers=headers) as ws:
            for tag in self.tags:
                send_frame(ws, "mastodon", json.dumps({"type": "subscribe", "stream": "hashtag", "tag": tag}))
            if self.public:
                send_frame(ws, "mastodon", json.dumps({"type": "subscribe", "stream": self.public}))
            yield StreamBatch(connected=True)
            # Subscribed first, then caught up: a status posted in between comes both ways,
            # and the store keeps it once.
            for tag in self.tags:
                yield from self._catch_up(tag, last)
            if self.public:
                yield from self._catch_up_public(last)
            for frame in recv_frames(ws, "mastodon", self.stall_seconds, stop):
                if frame is None:
                    yield StreamBatch()  # a quiet tick: still connected
                    continue
                batch = self.parse(frame, last)
                if batch is not None:
                    yield batch

    def _catch_up(self, tag: str, last: dict[str, str | None]) -> Iterator[StreamBatch]:
        if not last.get(tag):
            return  # first connection: live from now (the poller did the backfill)
        unit = f"mastodon:{self.host}:tag:{tag}"
        cursor: dict[str, Any] = {"min_id": last[tag]}
        for _ in range(CATCH_UP_PAGES):
            result = self.source.poll(unit, cursor)
            cursor = result.cursor
            last[tag] = _newer(last.get(tag), cursor.get("min_id"))
            yield StreamBatch(posts=result.posts, cursor={"last_id": dict(last)})
            if result.done:
                return

    def _catch_up_public(self, last: dict[str, str | None]) -> Iterator[StreamBatch]:
        """The public timeline from the last id seen, filtered like the stream."""
        key = f"@{self.public}"
        if not last.get(key):
            return  # first connection: live from now
        params: dict[str, Any] | None = {"limit": 40, "min_id": last[key]}
        if self.public == "public:local":
            params = dict(params, local="true")
        url = "/api/v1/timelines/public"
        for _ in range(CATCH_UP_PAGES):
            response = self.source._call("GET", self.base, url, auth=bool(self._token), params=params)
            raise_for_status("mastodon", response)
            statuses = response.json() or []
            posts, _bad = self.source._normalise(statuses, self.base)
            for status in statuses:
                if isinstance(status, dict) and status.get("id") is not None:
                    last[key] = _newer(last.get(key), str(status["id"]))
            yield StreamBatch(posts=[p for p in posts if self.wants(p.post)], cursor={"last_id": dict(last)})
            prev = (response.links.get("prev") or {}).get("url")
            if not statuses or not prev:
                return
            url, params = prev, None

    def parse(self, frame: str | bytes, last: dict[str, str | None]) -> StreamBatch | None:
        try:
            message = json.loads(frame)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
            event = message.get("event")
            stream = message.get("stream") or []
            payload = message.get("payload")
        except (ValueError, TypeError) as exc:
            log.warning("mastodon stream %s: malformed frame skipped (%s): %.200r", self.host, exc, frame)
            return None
        if message.get("error") is not None and event is None:
            # A subscription the server refused (the public stream without a token, where
            # the instance requires one); the other subscriptions on this socket go on.
            log.warning("mastodon stream %s refused a subscription: %s (%s)", self.host,
                        str(message.get("error"))[:200], message.get("status"))
            return StreamBatch(events=1)
        if event == "delete" and isinstance(payload, str):
            key = self.source.state.post_key_by_ref("mastodon", f"{self.host}:{payload}")
            return StreamBatch(events=1, deletes=[key.split(":", 1)[1]] if key else [])
        if event != "update" or not isinstance(payload, str):
            return StreamBatch(events=1)  # status.update, notifications, errors of the server
        try:
            status = json.loads(payload)
            polled = self.source._to_post(status, self.base)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("mastodon stream %s: status skipped (%s)", self.host, str(exc).splitlines()[0])
            return StreamBatch(events=1)
        kind = stream[0] if isinstance(stream, list) and stream else None
        if kind in ("public", "public:local"):
            # Every public status of the instance: keep only those naming a watched brand.
            if isinstance(status, dict) and status.get("id") is not None and self.public:
                last[f"@{self.public}"] = _newer(last.get(f"@{self.public}"), str(status["id"]))
            wanted = polled is not None and self.wants(polled.post)
            return StreamBatch(events=1, posts=[polled] if wanted and polled else [], cursor={"last_id": dict(last)})
        tag = stream[1] if isinstance(stream, list) and len(stream) > 1 else None
        if isinstance(status, dict) and status.get("id") is not None:
            for name in ([tag] if tag in self.tags else self.tags):
                last[name] = _newer(last.get(name), str(status["id"]))
        return StreamBatch(events=1, posts=[polled] if polled else [], cursor={"last_id": dict(last)})
