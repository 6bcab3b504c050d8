"""A fake feed host: serves RSS/Atom bytes with an ETag and Last-Modified, answers 304 to a
matching conditional GET, and can serve an oversized body."""
from __future__ import annotations

import hashlib
import re
from typing import Any

from werkzeug import Request, Response

from tests.fakes.base import FIXTURES, FakeServer

LAST_MODIFIED = "Fri, 20 Nov 2026 01:00:00 GMT"


class FakeFeeds(FakeServer):
    name = "rss"

    def __init__(self) -> None:
        super().__init__()
        self.feeds: dict[str, bytes] = {"/anond.rss": (FIXTURES / "feed-hatena.rss").read_bytes()}

    def set_feed(self, path: str, body: bytes) -> None:
        self.feeds[path] = body

    def routes(self):
        return [("GET", re.compile(r"(/.+)"), self.feed)]

    def feed(self, request: Request, _body: Any, path: str) -> Response:
        body = self.feeds.get(path)
        if body is None:
            return Response("not found", 404)
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, 200, headers={"ETag": etag, "Last-Modified": LAST_MODIFIED},
                        content_type="application/rss+xml; charset=utf-8")


if __name__ == "__main__":
    FakeFeeds.main()
