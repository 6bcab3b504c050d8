"""A stateful fake of the X API v2: recent search, mentions, tweet lookup, users, replies, token refresh.

Bodies follow tests/fixtures/social/x-search-recent.ja.json (shape of the real search sample).
Replies are refused with 403 unless the target post mentions or quotes the brand's account,
as X does for self-serve apps since 2026-02-23.
"""
from __future__ import annotations

import html
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from werkzeug import Request, Response

from tests.fakes.base import FakeServer, clone, json_response, template

#: 2.159 → 2.167 field names (X API v2 specs in ../shared/specs/x/).
NEWER_NAMES = {"referenced_tweets": "referenced_posts", "retweet_count": "repost_count",
               "note_tweet": "note_post", "tweets": "posts", "edit_history_tweet_ids": "edit_history_post_ids",
               "tweet_count": "post_count"}

BRAND_ID = "1850000000000000001"
BRAND_HANDLE = "soramobile_help"
BEARER = "test-x-bearer"
USER_TOKEN = "test-x-user-token"


def _problem(status: int, title: str, detail: str, kind: str) -> Response:
    return json_response({"title": title, "detail": detail, "type": f"https://api.x.com/2/problems/{kind}",
                          "status": status}, status)


class FakeX(FakeServer):
    name = "x"

    def __init__(self) -> None:
        super().__init__()
        sample = template("x-search-recent.ja.json")
        self.tweet_template = sample["data"][0]
        self.user_template = sample["includes"]["users"][0]
        self.users: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.protected_users: set[str] = set()
        self.replies: list[dict[str, Any]] = []
        self.user_token = USER_TOKEN
        #: Which spec's field names the fake answers in: "2.159" (`referenced_tweets`,
        #: `retweet_count`, …) or "2.167" (`referenced_posts`, `repost_count`, …). X serves both.
        self.naming = "2.159"
        self._next_id = 1870000000000001000
        self.add_user(BRAND_ID, BRAND_HANDLE, "ソラモバイル公式サポート")
        # --- filtered stream (GET /2/tweets/search/stream, …/rules) ----------------------
        #: "pay-per-use"/"pro" (1,000 rules × 1,024 chars), "enterprise" (backfill_minutes),
        #: or "basic" (no filtered stream: 403 client-forbidden, as X answers).
        self.plan = "pay-per-use"
        self.rules: dict[str, dict[str, str]] = {}
        self._next_rule = 1_600_000_000_000_000_000
        #: Every post published while the fake runs, in order: (monotonic time, post id or a raw line).
        self.stream_log: list[tuple[float, str, bool]] = []
        self.stream_connections: list[dict[str, Any]] = []
        self.keepalive_seconds = 20.0  # X: a `\r\n` every ~20 s
        self.stream_stalled = False
        self.one_connection = False  # True: a second connection gets 429 TooManyConnections
        self._stream_drops: list[int] = []
        self._too_many = 0
        self.streams_closed = threading.Event()

    # --- state ------------------------------------------------------------------------
    def add_user(self, user_id: str, username: str, name: str, **extra: Any) -> dict[str, Any]:
        user = clone(self.user_template)
        user.update(id=user_id, username=username, name=name, **extra)
        self.users[user_id] = user
        return user

    def add_post(self, text: str, *, author: str = "1850000000000000101", created_at: datetime | None = None,
                 mention_brand: bool = False, quote_of: str | None = None, reply_to: str | None = None,
                 stream: bool = True) -> str:
        with self.lock:
            self._next_id += 1
            post_id = str(self._next_id)
        if author not in self.users:
            self.add_user(author, f"user{author[-4:]}", f"利用者{author[-4:]}")
        tweet = clone(self.tweet_template)
        if mention_brand and f"@{BRAND_HANDLE}" not in text:
            text = f"@{BRAND_HANDLE} {text}"
        created = created_at or datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc) + timedelta(minutes=len(self.tweets))
        # X answers post text with `&`, `<`, `>` HTML-escaped (and nothing else).
        tweet.update(id=post_id, text=html.escape(text, quote=False), author_id=author, edit_history_tweet_ids=[post_id],
                     conversation_id=post_id, created_at=created.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        mentions = [{"start": m.start(), "end": m.end(), "username": m.group(1),
                     "id": BRAND_ID if m.group(1) == BRAND_HANDLE else "1"} for m in re.finditer(r"@(\w+)", text)]
        tweet["entities"] = {"mentions": mentions} if mentions else {}
        if not mentions:
            tweet.pop("entities")
        refs = []
        if quote_of:
            refs.append({"type": "quoted", "id": quote_of})
        if reply_to:
            refs.append({"type": "replied_to", "id": reply_to})
            tweet["conversation_id"] = self.tweets[reply_to]["conversation_id"] if reply_to in self.tweets else reply_to
        if refs:
            tweet["referenced_tweets"] = refs
        self.tweets[post_id] = tweet
        if stream:
            self.stream_post(post_id)
        return post_id

    # --- filtered stream controls -----------------------------------------------------
    def stream_post(self, post_id: str) -> None:
        """Deliver a post on the stream (again: a duplicate event; in any order: out of order)."""
        with self.lock:
            self.stream_log.append((time.monotonic(), post_id, False))

    def stream_raw(self, line: str) -> None:
        """Send a raw line on the stream (a malformed line, an error object)."""
        with self.lock:
            self.stream_log.append((time.monotonic(), line, True))

    def drop_stream_after(self, lines: int) -> None:
        """The next stream connection ends after `lines` lines (X restarting a server)."""
        self._stream_drops.append(lines)

    def drop_streams_now(self) -> None:
        """End every open stream connection now (the client reconnects and catches up)."""
        for conn in self.open_streams():
            conn["kick"] = True

    def too_many_connections(self, times: int = 1) -> None:
        self._too_many += times

    def close_streams(self) -> None:
        self.streams_closed.set()

    def open_streams(self) -> list[dict[str, Any]]:
        return [c for c in self.stream_connections if c["open"]]

    def delete(self, post_id: str) -> None:
        self.deleted.add(post_id)

    def _visible(self, tweet: dict[str, Any]) -> bool:
        return tweet["id"] not in self.deleted and tweet["author_id"] not in self.protected_users

    def _named(self, body: Any) -> Any:
        """The answer in the fake's naming (stored posts use 2.159's names)."""
        if self.naming == "2.159":
            return body
        if isinstance(body, dict):
            return {NEWER_NAMES.get(k, k): self._named(v) for k, v in body.items()}
        if isinstance(body, list):
            return [self._named(v) for v in body]
        return body

    # --- routes -----------------------------------------------------------------------
    def routes(self):
        return [
            ("GET", re.compile(r"/2/tweets/search/recent"), self.search),
            ("GET", re.compile(r"/2/users/(\d+)/mentions"), self.mentions),
            ("GET", re.compile(r"/2/tweets"), self.lookup),
            ("GET", re.compile(r"/2/users/me"), self.me),
            ("GET", re.compile(r"/2/users/(\d+)"), self.user),
            ("GET", re.compile(r"/2/tweets/search/stream/rules"), self.get_rules),
            ("POST", re.compile(r"/2/tweets/search/stream/rules"), self.update_rules),
            ("GET", re.compile(r"/2/tweets/search/stream"), self.stream),
            ("POST", re.compile(r"/2/tweets"), self.create),
            ("POST", re.compile(r"/2/oauth2/token"), self.token),
            # Controls for loopback demos (not part of X's API).
            ("POST", re.compile(r"/_fake/delete/(\d+)"), lambda r, b, i: (self.delete(i), json_response({"deleted": i}))[1]),
            ("GET", re.compile(r"/_fake/replies"), lambda r, b: json_response(self.replies)),
        ]

    def _app_auth(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {BEARER}":
            return json_response({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}, 401)
        return None

    def _page(self, request: Request, tweets: list[dict[str, Any]], page_param: str) -> Response:
        try:
            max_results = int(request.args.get("max_results", "10"))
        except ValueError:
            max_results = 0
        low = 5 if page_param == "pagination_token" else 10
        if not low <= max_results <= 100:
            return _problem(400, "Invalid Request", "max_results out of range", "invalid-request")
        since = int(request.args.get("since_id") or 0)
        matching = sorted((t for t in tweets if int(t["id"]) > since and self._visible(t)),
                          key=lambda t: int(t["id"]), reverse=True)
        offset = int((request.args.get(page_param) or "p0")[1:])
        page = matching[offset:offset + max_results]
        headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "449", "x-rate-limit-reset": "9999999999"}
        if not page:
            return json_response({"meta": {"result_count": 0}}, headers=headers)
        authors = {t["author_id"] for t in page}
        included = [self.tweets[r["id"]] for t in page for r in t.get("referenced_tweets", []) if r["id"] in self.tweets]
        meta: dict[str, Any] = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"], "result_count": len(page)}
        if offset + max_results < len(matching):
            meta["next_token"] = f"p{offset + max_results}"
        body = {"data": clone(page), "includes": {"users": [clone(self.users[a]) for a in sorted(authors)]}, "meta": meta}
        if included:
            body["includes"]["tweets"] = clone(included)
        return json_response(self._named(body), headers=headers)

    # --- filtered stream ----------------------------------------------------------------
    def _plan_limits(self) -> tuple[int, int]:
        return {"enterprise": (25000, 2048)}.get(self.plan, (1000, 1024))

    def _client_forbidden(self) -> Response | None:
        """What X answers an app whose plan has no filtered stream (the ClientForbiddenProblem
        of spec 2.159, reason `client-not-enrolled`)."""
        if self.plan not in ("basic", "free"):
            return None
        return json_response({
            "client_id": "29000001", "title": "Client Forbidden", "reason": "client-not-enrolled",
            "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens "
                      "from a Twitter developer App that is attached to a Project. You can create a project via "
                      "the developer portal.",
            "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
            "required_enrollment": "Appropriate Level of API Access",
            "type": "https://api.twitter.com/2/problems/client-forbidden"}, 403)

    def get_rules(self, request: Request, _body: Any) -> Response:
        denied = self._app_auth(request) or self._client_forbidden()
        if denied:
            return denied
        rules = sorted(self.rules.values(), key=lambda r: r["id"])
        sent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if not rules:
            return json_response({"meta": {"sent": sent, "result_count": 0}})
        return json_response({"data": clone(rules), "meta": {"sent": sent, "result_count": len(rules)}})

    def update_rules(self, request: Request, body: Any) -> Response:
        """`POST …/rules`: exactly one of `add` / `delete` (UpdateRulesRequest, spec 2.167)."""
        denied = self._app_auth(request) or self._client_forbidden()
        if denied:
            return denied
        if not isinstance(body, dict) or len(set(body) & {"add", "delete"}) != 1 or set(body) - {"add", "delete"}:
            return _problem(400, "Invalid Request", "exactly one of add or delete", "invalid-request")
        sent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        count, chars = self._plan_limits()
        if "delete" in body:
            ids = (body["delete"] or {}).get("ids") or []
            deleted = [i for i in ids if self.rules.pop(str(i), None) is not None]
            return json_response({"meta": {"sent": sent, "summary": {"deleted": len(deleted),
                                                                     "not_deleted": len(ids) - len(deleted)}}})
        created, errors = [], []
        for rule in body["add"]:
            value = str(rule.get("value") or "")
            if not value or len(value) > chars:
                errors.append({"value": value, "details": [f"Rule exceeds {chars} characters"], "title": "Invalid Rule",
                               "type": "https://api.twitter.com/2/problems/invalid-rules"})
                continue
            dup = next((r for r in self.rules.values() if r["value"] == value), None)
            if dup is not None:
                errors.append({"value": value, "id": dup["id"], "title": "DuplicateRule",
                               "type": "https://api.twitter.com/2/problems/duplicate-rules"})
                continue
            if len(self.rules) >= count:
                return json_response({"title": "RulesCapExceeded", "detail": f"Rule cap of {count} reached",
                                      "type": "https://api.twitter.com/2/problems/rule-cap"}, 403)
            self._next_rule += 1
            new = {"id": str(self._next_rule), "value": value, "tag": str(rule.get("tag") or "")}
            self.rules[new["id"]] = new
            created.append(new)
        answer: dict[str, Any] = {"meta": {"sent": sent, "summary": {
            "created": len(created), "not_created": len(errors), "valid": len(created), "invalid": len(errors)}}}
        if created:
            answer["data"] = clone(created)
        if errors:
            answer["errors"] = errors
        return json_response(answer)

    def _rule_matches(self, tweet: dict[str, Any]) -> list[dict[str, str]]:
        matched = []
        for rule in self.rules.values():
            group = re.match(r"\(([^)]*)\)", rule["value"])
            terms = [t.strip().strip('"') for t in (group.group(1) if group else rule["value"]).split(" OR ")]
            if any(term and term.lower() in _plain(tweet["text"]).lower() for term in terms):
                matched.append({"id": rule["id"], "tag": rule["tag"]})
        return matched

    def _stream_line(self, entry: tuple[float, str, bool]) -> bytes | None:
        _at, item, raw = entry
        if raw:
            return item.encode("utf-8") + b"\r\n"
        tweet = self.tweets.get(item)
        if tweet is None or not self._visible(tweet):
            return None
        matching = self._rule_matches(tweet)
        if not matching:
            return None
        included = [self.tweets[r["id"]] for r in tweet.get("referenced_tweets", []) if r["id"] in self.tweets]
        body: dict[str, Any] = {"data": clone(tweet), "includes": {"users": [clone(self.users[tweet["author_id"]])]},
                                "matching_rules": matching}
        if included:
            body["includes"]["tweets"] = clone(included)
        return json.dumps(self._named(body), ensure_ascii=False).encode("utf-8") + b"\r\n"

    def stream(self, request: Request, _body: Any) -> Response:
        """`GET /2/tweets/search/stream`: newline-delimited JSON for as long as the client reads,
        a `\r\n` keep-alive every `keepalive_seconds`; posts published from the moment of
        connection on (Enterprise: `backfill_minutes` earlier ones too)."""
        denied = self._app_auth(request) or self._client_forbidden()
        if denied:
            return denied
        backfill = request.args.get("backfill_minutes")
        if backfill is not None:
            if self.plan != "enterprise":
                return _problem(400, "Invalid Request", "backfill_minutes requires Enterprise access", "invalid-request")
            if not backfill.isdigit() or not 0 <= int(backfill) <= 5:
                return _problem(400, "Invalid Request", "backfill_minutes must be 0..5", "invalid-request")
        if self._too_many or (self.one_connection and self.open_streams()):
            self._too_many = max(0, self._too_many - 1)
            return json_response({"title": "ConnectionException", "connection_issue": "TooManyConnections",
                                  "detail": "This stream is currently at the maximum allowed connection limit.",
                                  "type": "https://api.twitter.com/2/problems/streaming-connection"}, 429)
        with self.lock:
            since = time.monotonic() - 60 * int(backfill or 0)
            start = len(self.stream_log)
            if backfill:
                start = next((i for i, e in enumerate(self.stream_log) if e[0] >= since), start)
            drop = self._stream_drops.pop(0) if self._stream_drops else None
            conn = {"args": request.args.to_dict(), "open": True, "start": start, "sent": 0}
            self.stream_connections.append(conn)
        return Response(self._stream_body(conn, start, drop), status=200, content_type="application/json",
                        direct_passthrough=True)

    def _stream_body(self, conn: dict[str, Any], index: int, drop: int | None) -> Iterator[bytes]:
        keepalive = time.monotonic()
        try:
            yield b""  # the status line and headers at once, as X sends them (werkzeug sends them on the first chunk)
            while not self.streams_closed.is_set():
                if conn.get("kick"):
                    return
                if self.stream_stalled:
                    time.sleep(0.02)
                    continue
                with self.lock:
                    entries = self.stream_log[index:]
                    index += len(entries)
                    lines = [line for line in (self._stream_line(e) for e in entries) if line is not None]
                for line in lines:
                    yield line
                    conn["sent"] += 1
                    if drop is not None and conn["sent"] >= drop:
                        return
                if time.monotonic() - keepalive >= self.keepalive_seconds:
                    keepalive = time.monotonic()
                    yield b"\r\n"
                time.sleep(0.02)
        finally:
            conn["open"] = False

    def search(self, request: Request, _body: Any) -> Response:
        denied = self._app_auth(request)
        if denied:
            return denied
        query = request.args.get("query", "")
        if not query or len(query) > 512:
            return _problem(400, "Invalid Request", "query must be 1..512 characters", "invalid-request")
        conversation = re.fullmatch(r"conversation_id:(\d+) from:(\d+)", query)
        if conversation:  # the brand's posts in one conversation
            matching = [t for t in self.tweets.values() if t["conversation_id"] == conversation.group(1)
                        and t["author_id"] == conversation.group(2)]
            return self._page(request, matching, "next_token")
        group = re.match(r"\(([^)]*)\)", query)
        terms = [t.strip().strip('"') for t in (group.group(1) if group else query).split(" OR ")]
        matching = [t for t in self.tweets.values() if any(term and term.lower() in _plain(t["text"]).lower() for term in terms)]
        return self._page(request, matching, "next_token")

    def mentions(self, request: Request, _body: Any, user_id: str) -> Response:
        denied = self._app_auth(request)
        if denied:
            return denied
        mine = [t for t in self.tweets.values()
                if any(m.get("id") == user_id for m in (t.get("entities") or {}).get("mentions", []))]
        return self._page(request, mine, "pagination_token")

    def lookup(self, request: Request, _body: Any) -> Response:
        denied = self._app_auth(request)
        if denied:
            return denied
        ids = [i for i in (request.args.get("ids") or "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return _problem(400, "Invalid Request", "ids: 1..100", "invalid-request")
        data, errors = [], []
        for post_id in ids:
            tweet = self.tweets.get(post_id)
            if tweet is None or post_id in self.deleted:
                errors.append({"value": post_id, "detail": f"Could not find tweet with ids: [{post_id}].",
                               "title": "Not Found Error", "resource_type": "tweet", "parameter": "ids",
                               "resource_id": post_id, "type": "https://api.x.com/2/problems/resource-not-found"})
            elif tweet["author_id"] in self.protected_users:
                errors.append({"value": post_id, "detail": f"Sorry, you are not authorized to see the Tweet with ids: [{post_id}].",
                               "title": "Authorization Error", "resource_type": "tweet", "parameter": "ids",
                               "resource_id": post_id, "type": "https://api.x.com/2/problems/not-authorized-for-resource"})
            else:
                data.append(clone(tweet))
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return json_response(self._named(body))

    def user(self, request: Request, _body: Any, user_id: str) -> Response:
        denied = self._app_auth(request)
        if denied:
            return denied
        if user_id not in self.users:
            return json_response({"errors": [{"value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                                              "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                                              "resource_id": user_id,
                                              "type": "https://api.x.com/2/problems/resource-not-found"}]})
        return json_response(self._named({"data": clone(self.users[user_id])}))

    def me(self, request: Request, _body: Any) -> Response:
        """`GET /2/users/me`: the user-context token's account (the brand)."""
        if request.headers.get("Authorization") != f"Bearer {self.user_token}":
            return json_response({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}, 401)
        return json_response(self._named({"data": clone(self.users[BRAND_ID])}))

    def create(self, request: Request, body: Any) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.user_token}":
            return json_response({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}, 401)
        target = ((body or {}).get("reply") or {}).get("in_reply_to_tweet_id")
        tweet = self.tweets.get(target or "")
        if target and tweet is not None:
            mentioned = any(m.get("id") == BRAND_ID for m in (tweet.get("entities") or {}).get("mentions", []))
            quoted = any(r["type"] == "quoted" and self.tweets.get(r["id"], {}).get("author_id") == BRAND_ID
                         for r in tweet.get("referenced_tweets", []))
            if not (mentioned or quoted):
                return json_response({"detail": "Reply to this conversation is not allowed because you have not been "
                                                "mentioned or otherwise engaged by the author of the post you are replying to.",
                                      "type": "about:blank", "title": "Forbidden", "status": 403}, 403)
        new_id = self.add_post(body["text"], author=BRAND_ID, reply_to=target)
        self.replies.append({"id": new_id, **body})
        return json_response({"data": {"id": new_id, "text": body["text"], "edit_history_tweet_ids": [new_id]}}, 201)

    def token(self, request: Request, _body: Any) -> Response:
        form = request.form
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return json_response({"error": "invalid_request"}, 400)
        self.user_token = f"refreshed-{len(self.requests)}"
        return json_response({"token_type": "bearer", "expires_in": 7200, "access_token": self.user_token,
                              "scope": "tweet.read users.read tweet.write offline.access",
                              "refresh_token": f"rotated-{len(self.requests)}"})


def demo_setup(fake: FakeX) -> None:
    fake.add_post("ソラモバイル、朝から駅で全然つながりません。いつ直りますか？", mention_brand=True)
    fake.add_post("ソラモバイルの請求、今月なぜか二重になってる…", author="1850000000000000102")


if __name__ == "__main__":
    FakeX.main(demo_setup)


def _plain(text: str) -> str:
    """The author's text of a stored (escaped, as X serves it) post, for matching queries."""
    return re.sub(r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)
