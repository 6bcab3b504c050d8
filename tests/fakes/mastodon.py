"""A stateful fake of a Mastodon instance: hashtag timelines with Link paging, search, status
lookup, replies with Idempotency-Key, account lookup, rate-limit headers.

Statuses follow tests/fixtures/social/mastodon-status.ja.json (shape of the documented Status)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote

from werkzeug import Request, Response

from tests.fakes.base import FakeServer, clone, json_response, template

TOKEN = "test-mastodon-token"


class FakeMastodon(FakeServer):
    name = "mastodon"

    def __init__(self, host: str = "mstdn.example") -> None:
        super().__init__()
        self.host = host
        self.status_template = template("mastodon-status.ja.json")
        self.statuses: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.posted: list[dict[str, Any]] = []
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.rate_remaining = 300
        self._next_id = 113500000000001000
        #: configuration.urls.streaming of /api/v2/instance (a tests/fakes/wsserver.py URL).
        self.streaming_url: str | None = None

    def add_status(self, content_html: str, *, tags: list[str] = (), username: str = "yamada", acct: str | None = None,
                   in_reply_to: str | None = None, visibility: str = "public", reblog: bool = False,
                   uri: str | None = None, quote_of: str | None = None, quote_state: str = "accepted",
                   shallow_quote: bool = False) -> str:
        with self.lock:
            self._next_id += 1
            status_id = str(self._next_id)
        status = clone(self.status_template)
        status.update(id=status_id, content=content_html, visibility=visibility,
                      created_at=(datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
                                  + timedelta(minutes=len(self.statuses))).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                      uri=uri or f"https://{self.host}/users/{username}/statuses/{status_id}",
                      url=f"https://{self.host}/@{username}/{status_id}",
                      in_reply_to_id=in_reply_to, tags=[{"name": t, "url": f"https://{self.host}/tags/{quote(t)}"} for t in tags])
        host = (acct or username).split("@")[1] if "@" in (acct or username) else self.host
        status["account"].update(username=username, acct=acct or username, display_name=username,
                                 url=f"https://{host}/@{username}", uri=f"https://{host}/users/{username}")
        if quote_of:
            # Mastodon 4.4+ Status.quote: a Quote (the quoted Status, null unless the state shows
            # it) or, nested in another quote, a ShallowQuote (its local id only).
            shown = quote_state in ("accepted", "blocked_account", "blocked_domain", "muted_account")
            status["quote"] = ({"state": quote_state, "quoted_status_id": quote_of if shown else None} if shallow_quote
                               else {"state": quote_state, "quoted_status": clone(self.statuses[quote_of]) if shown else None})
        if reblog:
            status["reblog"] = clone(status)
        self.statuses[status_id] = status
        return status_id

    def routes(self):
        return [
            ("GET", re.compile(r"/api/v1/timelines/tag/([^/]+)"), self.tag_timeline),
            ("GET", re.compile(r"/api/v1/timelines/public"), self.public_timeline),
            ("GET", re.compile(r"/api/v2/search"), self.search),
            ("GET", re.compile(r"/api/v1/statuses/([^/]+)"), self.get_status),
            ("POST", re.compile(r"/api/v1/statuses"), self.post_status),
            ("GET", re.compile(r"/api/v1/accounts/lookup"), self.lookup),
            ("GET", re.compile(r"/api/v1/accounts/verify_credentials"), self.verify_credentials),
            ("GET", re.compile(r"/api/v2/instance"), lambda r, b: json_response(
                {"domain": self.host, "configuration": {"urls": {"streaming": self.streaming_url}}})),
            ("GET", re.compile(r"/_fake/posted"), lambda r, b: json_response(self.posted)),  # demo control
        ]

    def _headers(self) -> dict[str, str]:
        self.rate_remaining -= 1
        reset = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(max(0, self.rate_remaining)),
                "X-RateLimit-Reset": reset}

    def _live(self) -> list[dict[str, Any]]:
        return [s for s in self.statuses.values() if s["id"] not in self.deleted]

    def public_timeline(self, request: Request, _body: Any) -> Response:
        """`GET /api/v1/timelines/public` (`local=true`: this instance's own; every fake status
        is local). Paged like the tag timeline (methods/timelines.md)."""
        return self.tag_timeline(request, _body, None)

    def tag_timeline(self, request: Request, _body: Any, tag: str | None) -> Response:
        tag = unquote(tag) if tag is not None else None
        limit = min(40, int(request.args.get("limit", "20")))
        tagged = sorted((s for s in self._live() if tag is None or any(t["name"] == tag for t in s["tags"])),
                        key=lambda s: int(s["id"]))
        min_id, max_id = request.args.get("min_id"), request.args.get("max_id")
        if min_id:  # the statuses right after min_id (oldest first window), returned newest first
            window = [s for s in tagged if int(s["id"]) > int(min_id)][:limit]
        else:
            window = [s for s in tagged if not max_id or int(s["id"]) < int(max_id)][-limit:]
        page = list(reversed(window))
        headers = self._headers()
        if page:
            base = f"{self.url}/api/v1/timelines/tag/{quote(tag)}" if tag is not None else f"{self.url}/api/v1/timelines/public"
            headers["Link"] = (f'<{base}?limit={limit}&max_id={page[-1]["id"]}>; rel="next", '
                               f'<{base}?limit={limit}&min_id={page[0]["id"]}>; rel="prev"')
        return json_response(clone(page), headers=headers)

    def search(self, request: Request, _body: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"error": "Search queries require a logged-in user"}, 401)
        q = request.args.get("q", "")
        if request.args.get("resolve") == "true" and q.startswith("http"):
            found = [s for s in self._live() if s["uri"] == q]
            if not found:  # federate it in, as a real instance would, with a local id
                with self.lock:
                    self._next_id += 1
                    local = {**clone(self.status_template), "id": str(self._next_id), "uri": q, "url": q}
                self.statuses[local["id"]] = local
                found = [local]
            return json_response({"accounts": [], "statuses": clone(found[:1]), "hashtags": []}, headers=self._headers())
        min_id = int(request.args.get("min_id") or 0)
        found = sorted((s for s in self._live() if q in s["content"] and int(s["id"]) > min_id),
                       key=lambda s: int(s["id"]), reverse=True)
        return json_response({"accounts": [], "statuses": clone(found[:40]), "hashtags": []}, headers=self._headers())

    def get_status(self, request: Request, _body: Any, status_id: str) -> Response:
        status = self.statuses.get(status_id)
        if status is None or status_id in self.deleted:
            return json_response({"error": "Record not found"}, 404, self._headers())
        return json_response(clone(status), headers=self._headers())

    def post_status(self, request: Request, body: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"error": "The access token is invalid"}, 401)
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotency:
            return json_response(clone(self.idempotency[key]))  # the same status again, not a new one
        new_id = self.add_status(f"<p>{body['status']}</p>", username="soramobile", in_reply_to=body.get("in_reply_to_id"),
                                 visibility=body.get("visibility", "public"))
        status = clone(self.statuses[new_id])
        self.posted.append({"id": new_id, "idempotency_key": key, **body})
        if key:
            self.idempotency[key] = status
        return json_response(status)

    def lookup(self, request: Request, _body: Any) -> Response:
        acct = request.args.get("acct", "")
        account = clone(self.status_template["account"])
        username, _, host = acct.partition("@")
        account.update(acct=acct, username=username, url=f"https://{host or self.host}/@{username}",
                       uri=f"https://{host or self.host}/users/{username}")
        return json_response(account, headers=self._headers())


    def verify_credentials(self, request: Request, _body: Any) -> Response:
        """The brand's own account (a CredentialAccount: an Account plus `source`)."""
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_response({"error": "The access token is invalid"}, 401)
        account = clone(self.status_template["account"])
        account.update(username="soramobile", acct="soramobile", display_name="ソラモバイル公式",
                       url=f"https://{self.host}/@soramobile", uri=f"https://{self.host}/users/soramobile")
        account["source"] = {"privacy": "public", "sensitive": False, "language": "ja", "note": "",
                             "fields": [], "follow_requests_count": 0, "indexable": True,
                             "hide_collections": False, "discoverable": True}
        account["role"] = {"id": "-99", "name": "", "color": "", "permissions": "0", "highlighted": False}
        return json_response(account, headers=self._headers())


def demo_setup(fake: FakeMastodon) -> None:
    fake.add_status("<p>ソラ光の工事、予約から3週間待ちって長すぎない？ #ソラモバイル</p>", tags=["ソラモバイル"])


if __name__ == "__main__":
    FakeMastodon.main(demo_setup)
