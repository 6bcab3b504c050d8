"""A stateful fake of a Bluesky PDS (proxying the AppView): sessions with expiry and refresh,
searchPosts with since/cursor, getProfile, getPosts, createRecord.

PostViews follow tests/fixtures/social/bluesky-search-posts.ja.json (shape of the real PostView)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from werkzeug import Request, Response

from tests.fakes.base import FakeServer, clone, json_response, template
from tests.fakes.cid import cid_for

HANDLE = "haruka-coffee.bsky.social"
PASSWORD = "test-app-password"
BRAND_DID = "did:plc:harukacoffee000000000001"


class FakeBluesky(FakeServer):
    name = "bluesky"

    def __init__(self) -> None:
        super().__init__()
        self.view_template = template("bluesky-search-posts.ja.json")["posts"][0]
        self.posts: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self.records_by_key: dict[str, dict[str, Any]] = {}
        self.sessions_created = 0
        self.refreshes = 0
        self.access = ""
        self.refresh = ""
        self._n = 0

    def add_post(self, text: str, *, did: str = "did:plc:suzukiexample0000000001", handle: str = "suzuki.bsky.social",
                 reply_to: str | None = None, quote_of: str | None = None, with_media: bool = False) -> str:
        with self.lock:
            self._n += 1
            n = self._n
        view = clone(self.view_template)
        uri = f"at://{did}/app.bsky.feed.post/3lbfake{n:08d}"
        when = (datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        view.update(uri=uri, indexedAt=when)
        view["author"].update(did=did, handle=handle)
        view["record"].update(text=text, createdAt=when)
        if reply_to:
            parent = self.posts[reply_to]
            root = (parent["record"].get("reply") or {}).get("root") or {"uri": parent["uri"], "cid": parent["cid"]}
            view["record"]["reply"] = {"root": root, "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
        if quote_of:
            # lexicons app.bsky.embed.record / recordWithMedia: a strongRef, bare or under media.
            quoted = self.posts[quote_of]
            embed: dict[str, Any] = {"$type": "app.bsky.embed.record", "record": {"uri": quoted["uri"], "cid": quoted["cid"]}}
            if with_media:
                embed = {"$type": "app.bsky.embed.recordWithMedia", "record": embed,
                         "media": {"$type": "app.bsky.embed.external",
                                   "external": {"uri": "https://example.com/", "title": "", "description": ""}}}
            view["record"]["embed"] = embed
        # A real CIDv1 (dag-cbor, sha2-256) of the record: a PDS refuses a strong ref without one.
        view["cid"] = cid_for(json.dumps([uri, view["record"]], sort_keys=True, ensure_ascii=False))
        self.posts[uri] = view
        return uri

    def expire_access(self) -> None:
        self.access = "expired"

    def routes(self):
        x = "/xrpc/"
        return [
            ("POST", re.compile(x + r"com\.atproto\.server\.createSession"), self.create_session),
            ("POST", re.compile(x + r"com\.atproto\.server\.refreshSession"), self.refresh_session),
            ("GET", re.compile(x + r"app\.bsky\.feed\.searchPosts"), self.search),
            ("GET", re.compile(x + r"app\.bsky\.feed\.getPosts"), self.get_posts),
            ("GET", re.compile(x + r"app\.bsky\.actor\.getProfile"), self.get_profile),
            ("POST", re.compile(x + r"com\.atproto\.repo\.createRecord"), self.create_record),
            ("GET", re.compile(x + r"com\.atproto\.repo\.getRecord"), self.get_record),
            ("GET", re.compile(r"/_fake/records"), lambda r, b: json_response(self.records)),  # demo control
        ]

    def _session_body(self) -> dict[str, Any]:
        return {"accessJwt": self.access, "refreshJwt": self.refresh, "handle": HANDLE, "did": BRAND_DID, "active": True}

    def create_session(self, request: Request, body: Any) -> Response:
        if (body or {}).get("identifier") != HANDLE or body.get("password") != PASSWORD:
            return json_response({"error": "AuthenticationRequired", "message": "Invalid identifier or password"}, 401)
        self.sessions_created += 1
        self.access, self.refresh = f"access-{self.sessions_created}", f"refresh-{self.sessions_created}"
        return json_response(self._session_body())

    def refresh_session(self, request: Request, _body: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.refresh}":
            return json_response({"error": "ExpiredToken", "message": "Token has expired"}, 400)
        self.refreshes += 1
        self.access, self.refresh = f"access-r{self.refreshes}", f"refresh-r{self.refreshes}"
        return json_response(self._session_body())

    def _authorized(self, request: Request) -> Response | None:
        auth = request.headers.get("Authorization")
        if auth == "Bearer expired" or (auth and auth != f"Bearer {self.access}" and self.access):
            return json_response({"error": "ExpiredToken", "message": "Token has expired"}, 400)
        if not auth:
            return json_response({"error": "AuthenticationRequired", "message": "Authentication Required"}, 401)
        return None

    def search(self, request: Request, _body: Any) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        q = request.args.get("q", "")
        since = request.args.get("since")
        limit = int(request.args.get("limit", "25"))
        offset = int(request.args.get("cursor") or 0)
        hits = sorted((v for uri, v in self.posts.items() if uri not in self.deleted and q.lower() in v["record"]["text"].lower()
                       and (not since or v["indexedAt"] >= since)), key=lambda v: v["indexedAt"], reverse=True)
        page = hits[offset:offset + limit]
        body: dict[str, Any] = {"posts": clone(page), "hitsTotal": len(hits)}
        if offset + limit < len(hits):
            body["cursor"] = str(offset + limit)
        return json_response(body)

    def get_posts(self, request: Request, _body: Any) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        uris = request.args.getlist("uris")
        if len(uris) > 25:
            return json_response({"error": "InvalidRequest", "message": "uris must not have more than 25 elements"}, 400)
        return json_response({"posts": [clone(self.posts[u]) for u in uris if u in self.posts and u not in self.deleted]})

    def get_profile(self, request: Request, _body: Any) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        actor = request.args.get("actor", "")
        return json_response({"did": actor if actor.startswith("did:") else "did:plc:suzukiexample0000000001",
                              "handle": "suzuki.bsky.social", "displayName": "鈴木", "description": "コーヒー好き。",
                              "followersCount": 210, "followsCount": 180, "postsCount": 900,
                              "createdAt": "2024-02-10T03:00:00.000Z", "indexedAt": "2024-02-10T03:00:00.000Z"})

    def create_record(self, request: Request, body: Any) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        if body.get("repo") != BRAND_DID or body.get("collection") != "app.bsky.feed.post":
            return json_response({"error": "InvalidRequest", "message": "bad repo or collection"}, 400)
        n = len(self.records) + 1
        rkey = body.get("rkey") or f"3lbreply{n:06d}"
        if rkey in self.records_by_key:
            # What the PDS answers today for a taken record key (bluesky-social/atproto#3718).
            return json_response({"error": "InternalServerError", "message": "Internal Server Error"}, 500)
        self.records.append(body["record"])
        uri = f"at://{BRAND_DID}/app.bsky.feed.post/{rkey}"
        cid = cid_for(json.dumps([uri, body["record"]], sort_keys=True, ensure_ascii=False))
        self.records_by_key[rkey] = {"uri": uri, "cid": cid, "value": body["record"]}
        return json_response({"uri": uri, "cid": cid, "validationStatus": "valid"})

    def get_record(self, request: Request, _body: Any) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        found = self.records_by_key.get(request.args.get("rkey", ""))
        if request.args.get("repo") != BRAND_DID or found is None:
            return json_response({"error": "RecordNotFound", "message": "Could not locate record"}, 400)
        return json_response(found)


def demo_setup(fake: FakeBluesky) -> None:
    fake.add_post("ハルカ珈琲の新しいブレンド、酸味が強くて前の方が好きだったなあ")


if __name__ == "__main__":
    FakeBluesky.main(demo_setup)
