"""Mastodon: hashtag timelines (and, on the home instance, status search) → posts; replies.

Facts (docs.joinmastodon.org, mastodon/documentation; ../shared/reference/social-apis.md §2):
- `GET /api/v1/timelines/tag/:hashtag` (tag without `#`), `limit` ≤ 40; paging by the `Link`
  header: `rel="prev"` carries `min_id` for newer posts. We follow the link as given (RFC 8288,
  api/guidelines.md: "do not compute it") and page forward with min_id, which has no gaps.
- Full-text `GET /api/v2/search?type=statuses` only works for a logged-in user, on one
  instance, over authors who opted in; we use it on the home instance only.
- Status ids are per instance (and not guaranteed numeric). The same status seen on two
  instances has two ids but one `uri`, so the post id is the `uri`: one status, one ticket.
  To reply from the home instance to a status seen elsewhere we resolve its uri there first
  (`/api/v2/search?resolve=true`).
- `content` is sanitised HTML: turned into text with connector.sources.html_text.
- Replies: `POST /api/v1/statuses` with `in_reply_to_id` and an `Idempotency-Key` header (kept
  by the server for 1 h), so a retried reply never posts twice.
- 300 requests / 5 min per account and per IP (api/rate-limits.md): we read
  `X-RateLimit-Remaining`/`-Reset` and stop before the limit, leaving head-room for replies.

Configuration: `MASTODON_INSTANCES` is a comma-separated list of instance URLs; the first is
the home instance, where `MASTODON_ACCESS_TOKEN` (the brand's account, scopes `read:statuses
read:search read:accounts write:statuses`) is used for search and replies. Other instances are
read through their public hashtag timelines.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qs, quote, urlsplit

import requests
from pydantic import ValidationError

from connector.envvars import EnvVar
from connector.models import Author, Post
from connector.ports import SourceState
from connector.sources.base import PolledPost, PollResult, ReplyRefused, ReplyResult, ReplyUnknown, SourceError
from connector.sources.html_text import html_to_text
from connector.sources.http import new_session, parse_reset, parse_time, raise_for_status, request
from connector.sources.platform import PlatformInfo
from connector.watch import WatchConfig

log = logging.getLogger(__name__)

INFO = PlatformInfo(
    name="mastodon", display_ja="Mastodon", display_en="Mastodon",
    reply_limit=500, reply_count="mastodon",
    profile_url="https://{host}/@{user}",
    replies=True, compliance=True, poll_interval=120.0,
    env=(
        EnvVar("MASTODON_INSTANCES", "(unset: Mastodon not polled)", "Comma-separated instance URLs (e.g. `https://mstdn.jp`); the first is the brand's home instance. Setting it turns Mastodon polling on.", False, __name__),
        EnvVar("MASTODON_ACCESS_TOKEN", "(unset: replies recorded only)", "Access token of the brand's account on the home instance (search, replies, and hashtag streaming: scope `read:statuses`).", True, __name__),
        EnvVar("MASTODON_STREAM", "on", "`off`: no streaming, the hashtag timelines are polled only (the fallback while a stream is down either way).", False, __name__),
        EnvVar("MASTODON_PUBLIC_STREAM", "(unset: hashtag streams only)", "Comma-separated instance hosts of MASTODON_INSTANCES whose admin allows reading the public stream, each `host` (federated: `public`) or `host:local` (that instance's own posts: `public:local`); its statuses are matched here with the watch file's rules, beside the hashtag streams. Many instances stream it only to a token with `read:statuses` (the home instance's MASTODON_ACCESS_TOKEN).", False, __name__),
    ),
)

PAGE_LIMIT = 40
MAX_PAGES = 5
#: Requests kept in reserve per 5-minute window (replies and compliance must still get through).
RATE_RESERVE = 20



#: Quote states in which the quoted post is shown (mastodon schema QuoteStateEnum; the blocked/muted
#: ones are the viewer's own filters, not the quote's).
_QUOTE_STANDS = frozenset({"accepted", "blocked_account", "blocked_domain", "muted_account"})


def _host(url: str) -> str:
    return urlsplit(url).netloc


class MastodonSource:
    platform = "mastodon"
    #: A resend carries the same Idempotency-Key: Mastodon answers with the first status.
    idempotent_replies = True

    def __init__(self, *, state: SourceState, watch: WatchConfig, instances: Sequence[str], access_token: str | None = None,
                 interval: float = 120.0, session: requests.Session | None = None, stream: bool = False,
                 public_streams: Mapping[str, str] | None = None) -> None:
        if not instances:
            raise ValueError("at least one instance is needed")
        self.state = state
        self.watch = watch
        self.instances = [i.rstrip("/") for i in instances]
        self.home = self.instances[0]
        self._token = access_token
        self.interval = interval
        self.session = session or new_session()
        self._limits: dict[str, tuple[int, float]] = {}  # host → (remaining, reset epoch)
        tags: list[str] = []
        for brand in watch.brands:
            for tag in brand.hashtags:
                name = tag.lstrip("#＃")
                if name not in tags:
                    tags.append(name)
        self.tags = tags
        self.keywords = [k for b in watch.brands for k in b.keywords]
        #: Hashtag streams, one socket per instance (MASTODON_STREAM=off: polling only).
        self.stream = stream and bool(tags)
        #: host → "public" or "public:local": the public stream where the admin allows it
        #: (MASTODON_PUBLIC_STREAM; off by default), filtered here with the watch file's rules.
        self.public_streams = dict(public_streams or {}) if stream else {}

    # --- streaming --------------------------------------------------------------------
    def streams(self, pipeline: Any = None) -> list[Any]:
        if not (self.stream or self.public_streams):
            return []
        from connector.sources.mastodon_stream import MastodonStream
        qualifier = getattr(pipeline, "qualifier", None)

        def wants(post: Post) -> bool:  # the public stream: only posts naming a watched brand
            return bool(qualifier and qualifier.mentions_brand(post.text))

        return [MastodonStream(self, base, self.tags, token=self._token if base == self.home else None,
                               public=self.public_streams.get(_host(base)), wants=wants)
                for base in self.instances if self.tags or _host(base) in self.public_streams]

    def stream_for(self, unit: str) -> str | None:
        """The stream that covers a poll unit while connected (hashtag units only)."""
        match = re.fullmatch(r"mastodon:(.+?):tag:.*", unit)
        return f"mastodon:{match.group(1)}:stream" if (match and self.stream) else None

    def __repr__(self) -> str:
        return f"MastodonSource(instances={self.instances!r}, token={'set' if self._token else 'unset'})"

    def usage(self) -> str | None:
        parts = [f"{host} {remaining} left" for host, (remaining, _r) in sorted(self._limits.items())]
        return ("Mastodon rate limit: " + ", ".join(parts)) if parts else None

    # --- HTTP -------------------------------------------------------------------------
    def _call(self, method: str, base: str, path_or_url: str, *, auth: bool, **kwargs: Any) -> requests.Response:
        host = _host(base)
        remaining, reset_at = self._limits.get(host, (RATE_RESERVE + 1, 0.0))
        if remaining <= RATE_RESERVE and reset_at > time.time() and method == "GET":
            raise SourceError(f"mastodon: {host} rate limit nearly used up ({remaining} left)", retryable=True,
                              retry_after=reset_at - time.time())
        headers = kwargs.pop("headers", {})
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = path_or_url if path_or_url.startswith("http") else base + path_or_url
        response = request(self.session, "mastodon", method, url, headers=headers, **kwargs)
        if "X-RateLimit-Remaining" in response.headers:
            try:
                left = int(response.headers["X-RateLimit-Remaining"])
                reset = parse_reset(response.headers.get("X-RateLimit-Reset")) or 300.0
                self._limits[host] = (left, time.time() + reset)
            except ValueError:
                pass
        return response

    # --- polling ----------------------------------------------------------------------
    def units(self) -> list[str]:
        units = [f"mastodon:{_host(i)}:tag:{t}" for i in self.instances for t in self.tags]
        if self._token:
            units += [f"mastodon:{_host(self.home)}:search:{k}" for k in self.keywords]
        return units

    def _instance(self, host: str) -> str:
        for base in self.instances:
            if _host(base) == host:
                return base
        raise SourceError(f"mastodon: {host} is no longer configured", retryable=False)

    def poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        match = re.fullmatch(r"mastodon:(.+?):(tag|search):(.*)", unit)
        if match is None:
            raise SourceError(f"mastodon: unknown poll unit {unit}", retryable=False)
        host, kind, term = match.groups()  # the host may carry a port
        base = self._instance(host)
        cursor = dict(cursor or {})
        min_id = cursor.get("min_id")
        collected: list[PolledPost] = []
        skipped = 0
        if kind == "tag":
            path = f"/api/v1/timelines/tag/{quote(term, safe='')}"
            params: dict[str, Any] | None = {"limit": PAGE_LIMIT}
            if min_id:
                params["min_id"] = min_id
            next_url: str | None = path
            for _page in range(MAX_PAGES):
                response = self._call("GET", base, next_url or path, auth=bool(self._token and base == self.home),
                                      params=params)
                raise_for_status("mastodon", response)
                statuses = response.json() or []
                posts, bad = self._normalise(statuses, base)
                collected.extend(posts)
                skipped += bad
                prev = (response.links.get("prev") or {}).get("url")
                if prev:
                    found = parse_qs(urlsplit(prev).query).get("min_id")
                    if found:
                        min_id = found[0]
                elif statuses:
                    min_id = max((s["id"] for s in statuses), key=lambda i: (len(i), i))
                if not statuses or not prev or not cursor.get("min_id"):
                    # Empty page: caught up. First poll: only the newest page (no backfill).
                    break
                next_url, params = prev, None
            else:
                return PollResult(collected, {"min_id": min_id}, done=False, note="more pages waiting", skipped=skipped)
            return PollResult(collected, {"min_id": min_id}, skipped=skipped)
        # search on the home instance (logged in)
        params = {"q": term, "type": "statuses", "limit": PAGE_LIMIT}
        if min_id:
            params["min_id"] = min_id
        response = self._call("GET", base, "/api/v2/search", auth=True, params=params)
        raise_for_status("mastodon", response)
        statuses = (response.json() or {}).get("statuses") or []
        posts, skipped = self._normalise(statuses, base)
        if statuses:
            min_id = max((s["id"] for s in statuses), key=lambda i: (len(i), i))
        return PollResult(posts, {"min_id": min_id}, skipped=skipped)

    def _normalise(self, statuses: list[Any], base: str) -> tuple[list[PolledPost], int]:
        # Oldest first, so a reply found in the same page is threaded to its parent.
        ordered = sorted((s for s in statuses if isinstance(s, dict)),
                         key=lambda s: (len(str(s.get("id"))), str(s.get("id"))))
        result: list[PolledPost] = []
        skipped = len(statuses) - len(ordered)
        for status in ordered:
            try:
                polled = self._to_post(status, base)
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                log.warning("mastodon: status %s skipped: %s", status.get("id"), str(exc).splitlines()[0])
                polled = None
            if polled is None:
                skipped += 1
                continue
            result.append(polled)
            # Make it findable for replies later in this same batch.
            self.state.save_post_extras(polled.post.key, "mastodon", polled.extras, ref=polled.ref)
        return result, skipped

    @staticmethod
    def post_id_for(uri: str) -> str:
        return uri if len(uri) <= 256 else "sha256:" + hashlib.sha256(uri.encode()).hexdigest()

    def _author(self, account: dict[str, Any], host: str) -> Author:
        acct = account.get("acct") or account.get("username") or str(account.get("id"))
        if "@" not in acct:
            acct = f"{acct}@{host}"  # local accounts are relative to the instance
        return Author(id=acct, handle=acct, name=account.get("display_name") or None,
                      bio=html_to_text(account.get("note"), 2000) or None,
                      followers=account.get("followers_count"), following=account.get("following_count"),
                      created_at=parse_time(account.get("created_at")), avatar_url=account.get("avatar"))

    def _quoted_post_id(self, quote: Any, host: str) -> str | None:
        """Our id of the post a status quotes (Mastodon 4.4+), or None.

        `Status.quote` is a Quote (`quoted_status`: the whole Status) or, nested inside another
        quote, a ShallowQuote (`quoted_status_id`: the instance's local id only); both carry a
        `state`, and the quoted status is null unless the quote was accepted (or is hidden from
        the viewer by a block or mute: the quote still stands for everyone else). Pending,
        rejected, revoked, deleted and unauthorized quotes do not show the quoted post, and
        unknown states are to be read as unauthorized (QuoteStateEnum), so they do not count. Our id is the quoted status's `uri`, as for
        any status; a bare local id is only resolvable when we stored that status.
        https://docs.joinmastodon.org/entities/Quote/ , /entities/ShallowQuote/"""
        if not isinstance(quote, dict) or quote.get("state") not in _QUOTE_STANDS:
            return None
        quoted = quote.get("quoted_status")
        if isinstance(quoted, dict):
            uri = quoted.get("uri") or quoted.get("url")
            return self.post_id_for(uri) if isinstance(uri, str) and uri else None
        local_id = quote.get("quoted_status_id")
        if isinstance(local_id, (str, int)) and str(local_id):
            key = self.state.post_key_by_ref("mastodon", f"{host}:{local_id}")
            return key.split(":", 1)[1] if key else None
        return None

    def _to_post(self, status: dict[str, Any], base: str) -> PolledPost | None:
        host = _host(base)
        if status.get("reblog"):  # a boost: the original is what matters, and it is not new
            return None
        if status.get("visibility") not in ("public", "unlisted"):
            return None  # only public posts
        text = html_to_text(status.get("content"))
        if status.get("spoiler_text"):
            text = f"{status['spoiler_text']}\n{text}".strip()
        if not text:
            return None  # media only
        uri = status.get("uri") or status.get("url")
        account = status.get("account") or {}
        author = self._author(account, host)
        in_reply_to = conversation = None
        if status.get("in_reply_to_id"):
            parent_key = self.state.post_key_by_ref("mastodon", f"{host}:{status['in_reply_to_id']}")
            if parent_key:
                in_reply_to = parent_key.split(":", 1)[1]
                conversation = self.state.post_extras(parent_key).get("conversation") or in_reply_to
        post_id = self.post_id_for(uri)
        post = Post(platform="mastodon", id=post_id, url=status.get("url") or uri,
                    created_at=parse_time(status.get("created_at")), lang=status.get("language"),
                    text=text, author=author,
                    metrics={"replies": status.get("replies_count") or 0, "reposts": status.get("reblogs_count") or 0,
                             "likes": status.get("favourites_count") or 0, "quotes": status.get("quotes_count") or 0},
                    in_reply_to=in_reply_to, conversation_id=conversation,
                    quote_of=self._quoted_post_id(status.get("quote"), host))
        extras = {"instance": base, "local_id": str(status["id"]), "uri": uri, "acct": author.id,
                  "visibility": status.get("visibility"), "conversation": conversation or post_id}
        return PolledPost(post, extras, ref=f"{host}:{status['id']}")

    # --- profile and compliance ------------------------------------------------------
    def fetch_profile(self, author_id: str) -> Author | None:
        response = self._call("GET", self.home, "/api/v1/accounts/lookup", auth=bool(self._token),
                              params={"acct": author_id})
        if response.status_code == 404:
            return None
        raise_for_status("mastodon", response)
        return self._author(response.json(), _host(self.home))

    def check_exists(self, posts: Sequence[Post]) -> dict[str, str]:
        gone: dict[str, str] = {}
        for post in posts:
            extras = self.state.post_extras(post.key)
            base, local_id = extras.get("instance"), extras.get("local_id")
            if not base or not local_id or base not in self.instances:
                continue  # not polled by us (replay/webhook): nothing to ask
            response = self._call("GET", base, f"/api/v1/statuses/{quote(local_id, safe='')}",
                                  auth=bool(self._token and base == self.home))
            if response.status_code in (404, 410):
                gone[post.id] = "deleted"
                continue
            raise_for_status("mastodon", response)
            if (response.json() or {}).get("visibility") not in ("public", "unlisted"):
                gone[post.id] = "no longer public"
        return gone

    # --- replies ----------------------------------------------------------------------
    def _home_status_id(self, post: Post, extras: dict[str, Any]) -> str:
        if extras.get("instance") == self.home and extras.get("local_id"):
            return str(extras["local_id"])
        uri = extras.get("uri") or (post.id if post.id.startswith("http") else post.url)
        if not uri:
            raise ReplyRefused("mastodon: this post has no address to reply to", retryable=False)
        response = self._call("GET", self.home, "/api/v2/search", auth=True,
                              params={"q": uri, "type": "statuses", "resolve": "true", "limit": 1})
        try:
            raise_for_status("mastodon", response)
        except SourceError as exc:
            raise ReplyRefused(exc.message, retryable=exc.retryable) from None
        statuses = (response.json() or {}).get("statuses") or []
        if not statuses:
            raise ReplyRefused(f"mastodon: {_host(self.home)} cannot find the post {uri} (deleted?)", retryable=False)
        return str(statuses[0]["id"])

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        if not self._token:
            raise ReplyRefused("mastodon: replies need MASTODON_ACCESS_TOKEN (scope write:statuses)", retryable=False)
        extras = self.state.post_extras(post.key)
        in_reply_to_id = self._home_status_id(post, extras)
        acct = extras.get("acct") or post.author.handle
        # Start with @acct so the customer is notified (methods/statuses.md).
        if acct and f"@{acct.split('@')[0]}" not in text:
            text = f"@{acct} {text}"
        body: dict[str, Any] = {"status": text, "in_reply_to_id": in_reply_to_id,
                                "visibility": extras.get("visibility") or "public"}
        if post.lang:
            body["language"] = post.lang.split("-")[0]
        try:
            response = self._call("POST", self.home, "/api/v1/statuses", auth=True, json=body,
                                  headers={"Idempotency-Key": idempotency_key[:200]})
        except SourceError as exc:
            if exc.maybe_sent:
                raise ReplyUnknown(exc.message) from None
            raise ReplyRefused(exc.message, retryable=exc.retryable) from None
        try:
            raise_for_status("mastodon", response)
        except SourceError as exc:
            raise ReplyRefused(exc.message, retryable=exc.retryable) from None
        status = response.json()
        return ReplyResult("sent", str(status.get("id")), status.get("url") or status.get("uri"))


# --- yorisoi doctor -------------------------------------------------------------------------
def doctor(env: Mapping[str, str], session: requests.Session) -> list[Any]:
    """`yorisoi doctor` for Mastodon, read-only: the access token on the home instance
    (`GET /api/v1/accounts/verify_credentials`)."""
    from connector.doctor import fail, get, ok, unreachable, warn

    instances = [i.strip().rstrip("/") for i in (env.get("MASTODON_INSTANCES") or "").split(",") if i.strip()]
    if not instances:
        return []
    token = env.get("MASTODON_ACCESS_TOKEN")
    if not token:
        return [warn("mastodon.token", "MASTODON_ACCESS_TOKEN が未設定: 返信は記録のみです",
                     "MASTODON_ACCESS_TOKEN is unset: replies are recorded only")]
    url = instances[0] + "/api/v1/accounts/verify_credentials"
    response, error = get(session, url, headers={"Authorization": f"Bearer {token}"})
    if response is None:
        return [unreachable("mastodon.token", url, error)]
    if response.status_code in (401, 403):
        return [fail("mastodon.token", f"MASTODON_ACCESS_TOKEN が拒否されました（{response.status_code}）",
                     f"MASTODON_ACCESS_TOKEN was refused ({response.status_code})")]
    if response.status_code != 200:
        return [fail("mastodon.token", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]
    acct = (response.json() or {}).get("acct")
    return [ok("mastodon.token", f"@{acct} として接続できます", f"signed in as @{acct}")]
