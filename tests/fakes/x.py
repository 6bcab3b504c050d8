"""A stateful fake of the X API v2: recent search, mentions, tweet lookup, users, replies, token refresh.

Bodies follow tests/fixtures/social/x-search-recent.ja.json (shape of the real search sample).
Replies are refused with 403 unless the target post mentions or quotes the brand's account,
as X does for self-serve apps since 2026-02-23.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import Any

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

    # --- state ------------------------------------------------------------------------
    def add_user(self, user_id: str, username: str, name: str, **extra: Any) -> dict[str, Any]:
        user = clone(self.user_template)
        user.update(id=user_id, username=username, name=name, **extra)
        self.users[user_id] = user
        return user

    def add_post(self, text: str, *, author: str = "1850000000000000101", created_at: datetime | None = None,
                 mention_brand: bool = False, quote_of: str | None = None, reply_to: str | None = None) -> str:
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
        return post_id

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
