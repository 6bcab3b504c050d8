"""Bluesky (AT Protocol): searchPosts → posts, getProfile, replies with root/parent strong refs.

Facts (bluesky-social/atproto lexicons, docs.bsky.app; ../shared/reference/social-apis.md §3):
- Search needs an authenticated session since 2025-01 (atproto#3423; `cursor` is refused
  without auth), so every call goes to the PDS (`BLUESKY_SERVICE`, default https://bsky.social)
  with the session's `accessJwt`; the PDS proxies app.bsky.* to the AppView.
- `com.atproto.server.createSession` is limited to 30 / 5 min and 300 / day per account: the
  session is kept in the store (so restarts and `poll --once` from cron reuse it), renewed
  with `refreshSession` when the access token expires, and we log in again at most
  `MAX_SESSIONS_PER_DAY` times per UTC day.
- `app.bsky.feed.searchPosts`: `q`, `sort=latest`, `since` (inclusive, compared with sortAt),
  `limit` ≤ 100, `cursor`. One query per watched keyword/hashtag (terms are ANDed in one q).
- A reply is `com.atproto.repo.createRecord` of an `app.bsky.feed.post` whose `reply.parent`
  is the post's strong ref (uri + cid) and `reply.root` is the parent's own `reply.root`, or
  the parent itself when it is not a reply (docs/advanced-guides/posts.md). The cid and root
  are kept per post in the store's extras; a post that reached us another way is looked up
  with `app.bsky.feed.getPosts` first.
- Deleted posts are missing from `app.bsky.feed.getPosts` (≤ 25 uris per call).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import requests
from pydantic import ValidationError

from connector.envvars import EnvVar
from connector.models import Author, Post
from connector.ports import SourceState
from connector.sources.base import (
    PolledPost,
    PollResult,
    ReplyRefused,
    ReplyResult,
    ReplyUnknown,
    SourceError,
    clamp_client_time,
)
from connector.sources.http import new_session, parse_time, raise_for_status, request
from connector.sources.platform import PlatformInfo
from connector.watch import WatchConfig

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "https://bsky.social"
PAGE_LIMIT = 100
MAX_PAGES = 5
#: Far below the 300/day createSession limit: refreshSession does the daily work.
MAX_SESSIONS_PER_DAY = 20
#: Bluesky posts are at most 300 graphemes (lexicons/app/bsky/feed/post.json).
MAX_REPLY_CHARS = 300

INFO = PlatformInfo(
    name="bluesky", display_ja="Bluesky", display_en="Bluesky",
    reply_limit=MAX_REPLY_CHARS, reply_count="graphemes",
    profile_url="https://bsky.app/profile/{handle_or_id}",
    replies=True, compliance=True, poll_interval=120.0,
    env=(
        EnvVar("BLUESKY_HANDLE", "(unset: Bluesky not polled)", "Handle of the brand's Bluesky account (e.g. `brand.bsky.social`); with BLUESKY_APP_PASSWORD it turns Bluesky polling on.", False, __name__),
        EnvVar("BLUESKY_APP_PASSWORD", "(unset)", "An App Password of that account (Settings → Privacy and security → App passwords).", True, __name__),
        EnvVar("BLUESKY_SERVICE", DEFAULT_SERVICE, "The account's PDS, for accounts not hosted on bsky.social.", False, __name__),
        EnvVar("BLUESKY_JETSTREAM_URL", "wss://jetstream2.us-east.bsky.network/subscribe", "Jetstream endpoint streaming Bluesky posts in real time (any Jetstream instance, or a relay of your own).", False, __name__),
        EnvVar("BLUESKY_STREAM", "on", "`off`: no Jetstream, Bluesky is polled with searchPosts only (the fallback while the stream is down either way).", False, __name__),
    ),
)



def _web_url(handle_or_did: str, uri: str) -> str:
    return f"https://bsky.app/profile/{handle_or_did}/post/{uri.rsplit('/', 1)[-1]}"


def quoted_post_uri(record: Mapping[str, Any]) -> str | None:
    """The at-uri of the post a post record quotes, or None.

    A quote is the record's `embed` (lexicon app.bsky.feed.post: a union) of type
    `app.bsky.embed.record` (`record`: a com.atproto.repo.strongRef {uri, cid}) or
    `app.bsky.embed.recordWithMedia` (`record`: an app.bsky.embed.record, so one level deeper).
    The same embed also points at feed generators, lists and starter packs: only a strongRef
    into the `app.bsky.feed.post` collection is a quoted post."""
    embed = record.get("embed")
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    ref = embed.get("record")
    if kind == "app.bsky.embed.recordWithMedia":
        ref = ref.get("record") if isinstance(ref, dict) else None
    elif kind != "app.bsky.embed.record":
        return None
    uri = ref.get("uri") if isinstance(ref, dict) else None
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[len("at://"):].split("/")
    return uri if len(parts) == 3 and parts[1] == "app.bsky.feed.post" and parts[0] and parts[2] else None


_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
#: Reply record keys carry a timestamp in 2024 (a TID's syntax; the AppView orders posts by
#: createdAt, not by key).
_TID_EPOCH_US = 1_704_067_200_000_000
_TID_SPAN_US = 366 * 24 * 3600 * 1_000_000


def reply_rkey(dedupe_key: str) -> str:
    """A record key in TID syntax (13 base32-sortable characters) derived only from the
    reply's dedupe key: the same reply always asks for the same key, so a repeat of a
    createRecord whose answer was lost fails as a conflict instead of posting twice."""
    digest = int.from_bytes(hashlib.sha256(dedupe_key.encode("utf-8")).digest()[:8], "big")
    micros = _TID_EPOCH_US + digest % _TID_SPAN_US
    clock_id = (digest >> 54) & 0x3FF
    value = (micros << 10) | clock_id
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


class BlueskySource:
    platform = "bluesky"

    def __init__(self, *, state: SourceState, watch: WatchConfig, handle: str, app_password: str,
                 service: str = DEFAULT_SERVICE, interval: float = 120.0,
                 session: requests.Session | None = None, clock: Any = None,
                 jetstream_url: str | None = None) -> None:
        self.state = state
        self.watch = watch
        self.handle = handle.lstrip("@")
        self._password = app_password
        self.service = service.rstrip("/")
        self.interval = interval
        self.session = session or new_session()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        #: Jetstream (None: BLUESKY_STREAM=off). While its stream is connected the poller
        #: leaves this source's searches alone; when it is down, searchPosts polling resumes.
        self.jetstream_url = jetstream_url
        self.stream_name = "bluesky:jetstream" if jetstream_url else None
        terms: list[str] = []
        for brand in watch.brands:
            for term in (*brand.keywords, *(t.replace("＃", "#") for t in brand.hashtags)):
                if term not in terms:
                    terms.append(term)
        self.terms = terms
        langs = {l.split("-")[0] for b in watch.brands for l in b.languages}
        self.lang = langs.pop() if len(langs) == 1 else None

    def __repr__(self) -> str:
        return f"BlueskySource(service={self.service!r}, handle={self.handle!r})"

    # --- session ----------------------------------------------------------------------
    @property
    def _state_key(self) -> str:
        return f"session:bluesky:{self.handle}"

    def _day(self) -> str:
        return self._clock().astimezone(timezone.utc).strftime("%Y-%m-%d")

    def _create_session(self) -> dict[str, Any]:
        used = self.state.usage_today("bluesky", self._day()).get("create_session", 0)
        if used >= MAX_SESSIONS_PER_DAY:
            raise SourceError(f"bluesky: already logged in {used} times today; waiting for tomorrow (UTC) to "
                              "stay under createSession's 300/day limit", retryable=True, retry_after=3600)
        self.state.add_usage("bluesky", self._day(), "create_session", 1)
        response = request(self.session, "bluesky", "POST", self.service + "/xrpc/com.atproto.server.createSession",
                           json={"identifier": self.handle, "password": self._password})
        if response.status_code == 401:
            raise SourceError("bluesky: BLUESKY_HANDLE / BLUESKY_APP_PASSWORD were refused", retryable=False, status=401)
        raise_for_status("bluesky", response)
        body = response.json()
        session = {k: body.get(k) for k in ("accessJwt", "refreshJwt", "did", "handle")}
        self.state.set_state(self._state_key, session)
        return session

    def _refresh_session(self, session: dict[str, Any]) -> dict[str, Any]:
        response = request(self.session, "bluesky", "POST", self.service + "/xrpc/com.atproto.server.refreshSession",
                           headers={"Authorization": f"Bearer {session.get('refreshJwt')}"})
        if response.status_code in (400, 401):
            return self._create_session()  # the refresh token expired or was revoked
        raise_for_status("bluesky", response)
        body = response.json()
        fresh = {**session, **{k: body.get(k) for k in ("accessJwt", "refreshJwt", "did", "handle") if body.get(k)}}
        self.state.set_state(self._state_key, fresh)
        return fresh

    def _current_session(self) -> dict[str, Any]:
        return self.state.get_state(self._state_key) or self._create_session()

    @staticmethod
    def _expired(response: requests.Response) -> bool:
        if response.status_code not in (400, 401):
            return False
        try:
            error = (response.json() or {}).get("error")
        except ValueError:
            return False
        return error in ("ExpiredToken", "InvalidToken", "AuthenticationRequired")

    def _xrpc(self, method: str, nsid: str, **kwargs: Any) -> requests.Response:
        session = self._current_session()
        for attempt in range(2):
            response = request(self.session, "bluesky", method, f"{self.service}/xrpc/{nsid}",
                               headers={"Authorization": f"Bearer {session.get('accessJwt')}"}, **kwargs)
            if attempt == 0 and self._expired(response):
                session = self._refresh_session(session)
                continue
            return response
        return response

    # --- streaming --------------------------------------------------------------------
    def stream_for(self, unit: str) -> str | None:
        """The stream that covers a poll unit while connected: Jetstream covers every search."""
        return self.stream_name

    def streams(self, pipeline: Any) -> list[Any]:
        """The Jetstream subscription, filtered client-side: a post is kept when it names a
        watched brand (the qualifier's own rules) or replies to a post we store (a follow-up)."""
        if not self.jetstream_url:
            return []
        from connector.sources.jetstream import JetstreamStream
        qualifier, posts = pipeline.qualifier, pipeline.store.posts

        def wants(post: Post) -> bool:
            if qualifier.mentions_brand(post.text):
                return True
            return any(ref and posts.post_exists(f"bluesky:{ref}")
                       for ref in (post.in_reply_to, post.conversation_id, post.quote_of))

        return [JetstreamStream(url=self.jetstream_url, wants=wants)]

    # --- polling ----------------------------------------------------------------------
    def units(self) -> list[str]:
        return [f"bluesky:search:{t}" for t in self.terms]

    def usage(self) -> str | None:
        used = self.state.usage_today("bluesky", self._day()).get("create_session", 0)
        return f"Bluesky logins today: {used} of {MAX_SESSIONS_PER_DAY} (createSession limit 300/day)"

    def poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        term = unit.split(":", 2)[2]
        cursor = dict(cursor or {})
        since, page, newest = cursor.get("since"), cursor.get("cursor"), cursor.get("sweep_newest")
        collected: list[PolledPost] = []
        skipped = 0
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"q": term, "sort": "latest", "limit": PAGE_LIMIT}
            if since:
                params["since"] = since
            if page:
                params["cursor"] = page
            if self.lang:
                params["lang"] = self.lang
            response = self._xrpc("GET", "app.bsky.feed.searchPosts", params=params)
            raise_for_status("bluesky", response)
            body = response.json() or {}
            views = body.get("posts") or []
            for view in views:
                try:
                    polled = self._to_post(view)
                except (ValidationError, KeyError, TypeError, ValueError) as exc:
                    log.warning("bluesky: post skipped: %s", str(exc).splitlines()[0])
                    polled = None
                if polled is None:
                    skipped += 1
                    continue
                collected.append(polled)
                stamp = polled.extras["sort_at"]
                newest = max(newest or stamp, stamp)
            page = body.get("cursor")
            if not views or not page:
                # `since` is inclusive: the newest post comes back once more next time and
                # is skipped as already stored.
                return PollResult(collected, {"since": newest or since}, skipped=skipped)
        return PollResult(collected, {"since": since, "cursor": page, "sweep_newest": newest}, done=False,
                          note="more pages waiting", skipped=skipped)

    def _to_post(self, view: dict[str, Any]) -> PolledPost | None:
        record = view.get("record") or {}
        text = (record.get("text") or "").strip()
        if not text:
            return None  # image-only or quote-only post
        author_view = view.get("author") or {}
        did = author_view["did"]
        handle = author_view.get("handle")
        reply = record.get("reply") or {}
        parent = (reply.get("parent") or {}).get("uri")
        root = reply.get("root") or None
        claimed = parse_time(record.get("createdAt"))
        indexed = parse_time(view.get("indexedAt"))
        # createdAt is the author's client's word; indexedAt is the AppView's (the network's time).
        created = clamp_client_time(claimed, indexed) if indexed else (claimed or self._clock())
        indexed = indexed or created
        sort_at = min(created, indexed).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        langs = record.get("langs") or []
        post = Post(platform="bluesky", id=view["uri"], url=_web_url(handle or did, view["uri"]),
                    created_at=created, lang=langs[0] if langs else None, text=text,
                    author=Author(id=did, handle=handle, name=author_view.get("displayName") or None,
                                  avatar_url=author_view.get("avatar"),
                                  created_at=parse_time(author_view.get("createdAt"))),
                    metrics={"replies": view.get("replyCount") or 0, "reposts": view.get("repostCount") or 0,
                             "likes": view.get("likeCount") or 0, "quotes": view.get("quoteCount") or 0},
                    in_reply_to=parent, conversation_id=(root or {}).get("uri") if root else None,
                    quote_of=quoted_post_uri(record))
        extras = {"uri": view["uri"], "cid": view["cid"], "root": root, "sort_at": sort_at}
        return PolledPost(post, extras)

    # --- profile and compliance ------------------------------------------------------
    def fetch_profile(self, author_id: str) -> Author | None:
        response = self._xrpc("GET", "app.bsky.actor.getProfile", params={"actor": author_id})
        if response.status_code == 400:
            return None  # unknown or deactivated actor
        raise_for_status("bluesky", response)
        p = response.json()
        return Author(id=p["did"], handle=p.get("handle"), name=p.get("displayName") or None,
                      bio=p.get("description") or None, followers=p.get("followersCount"),
                      following=p.get("followsCount"), created_at=parse_time(p.get("createdAt")),
                      avatar_url=p.get("avatar"))

    def _get_posts(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(uris), 25):
            batch = list(uris[start:start + 25])
            response = self._xrpc("GET", "app.bsky.feed.getPosts", params={"uris": batch})
            raise_for_status("bluesky", response)
            for view in (response.json() or {}).get("posts") or []:
                found[view.get("uri")] = view
        return found

    def check_exists(self, posts: Sequence[Post]) -> dict[str, str]:
        uris = [p.id for p in posts if p.id.startswith("at://")]
        found = self._get_posts(uris)
        return {uri: "deleted" for uri in uris if uri not in found}

    # --- replies ----------------------------------------------------------------------
    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        if len(text) > MAX_REPLY_CHARS:
            raise ReplyRefused(f"bluesky: the reply is {len(text)} characters; Bluesky allows {MAX_REPLY_CHARS}",
                               retryable=False)
        try:
            extras = self.state.post_extras(post.key)
            if not extras.get("cid"):
                view = self._get_posts([post.id]).get(post.id)
                if view is None:
                    raise ReplyRefused("bluesky: the post no longer exists", retryable=False)
                extras = {"uri": view["uri"], "cid": view["cid"], "root": (view.get("record") or {}).get("reply", {}).get("root")}
            parent = {"uri": extras["uri"], "cid": extras["cid"]}
            root = extras.get("root") or parent
            session = self._current_session()
            record: dict[str, Any] = {
                "$type": "app.bsky.feed.post", "text": text,
                "createdAt": self._clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "reply": {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent},
            }
            if post.lang:
                record["langs"] = [post.lang]
            # The record key comes from the dedupe key: a resend after an unknown outcome
            # asks for the same key and fails as a conflict if the first one was posted.
            rkey = reply_rkey(idempotency_key)
            try:
                response = self._xrpc("POST", "com.atproto.repo.createRecord", json={
                    "repo": session.get("did"), "collection": "app.bsky.feed.post", "rkey": rkey,
                    "record": record})
            except SourceError as exc:
                if exc.maybe_sent:
                    raise ReplyUnknown(exc.message) from None
                raise
            if response.status_code >= 400:
                # A repeat of a reply whose answer was lost fails because the key is taken (the
                # PDS answers 409/400, or 500 today): the record under our key is our reply.
                found = self._reply_record(session, rkey)
                if found is not None:
                    log.info("bluesky: reply %s was already posted (record key taken)", rkey)
                    return found
            raise_for_status("bluesky", response)
        except SourceError as exc:
            raise ReplyRefused(exc.message, retryable=exc.retryable) from None
        body = response.json()
        return ReplyResult("sent", body.get("uri"), _web_url(session.get("handle") or self.handle, body.get("uri", "")))

    def _reply_record(self, session: dict[str, Any], rkey: str) -> ReplyResult | None:
        """Our reply under `rkey` if it exists (None: it does not). Raises SourceError when the
        PDS cannot tell."""
        response = self._xrpc("GET", "com.atproto.repo.getRecord", params={
            "repo": session.get("did"), "collection": "app.bsky.feed.post", "rkey": rkey})
        if response.status_code in (400, 404):
            try:
                error = (response.json() or {}).get("error")
            except ValueError:
                error = None
            if response.status_code == 404 or error == "RecordNotFound":
                return None
        raise_for_status("bluesky", response)
        uri = (response.json() or {}).get("uri") or f"at://{session.get('did')}/app.bsky.feed.post/{rkey}"
        return ReplyResult("sent", uri, _web_url(session.get("handle") or self.handle, uri))

    def find_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult | None:
        """Our reply with this dedupe key, looked up under its deterministic record key."""
        return self._reply_record(self._current_session(), reply_rkey(idempotency_key))

# --- yorisoi doctor -------------------------------------------------------------------------
def doctor(env: Mapping[str, str], session: requests.Session) -> list[Any]:
    """`yorisoi doctor` for Bluesky: the app password (`com.atproto.server.createSession`, the
    one way to test it; it opens a session and changes no data)."""
    from connector.doctor import call, fail, ok, unreachable

    handle, password = env.get("BLUESKY_HANDLE"), env.get("BLUESKY_APP_PASSWORD")
    if not (handle or password):
        return []
    if not (handle and password):
        return [fail("bluesky.session", "BLUESKY_HANDLE と BLUESKY_APP_PASSWORD の両方が必要です",
                     "Bluesky needs both BLUESKY_HANDLE and BLUESKY_APP_PASSWORD")]
    url = (env.get("BLUESKY_SERVICE") or DEFAULT_SERVICE).rstrip("/") + "/xrpc/com.atproto.server.createSession"
    response, error = call(session, "POST", url, json={"identifier": handle, "password": password})
    if response is None:
        return [unreachable("bluesky.session", url, error)]
    if response.status_code == 200:
        body = response.json() or {}
        return [ok("bluesky.session", f"{body.get('handle')}（{body.get('did')}）としてセッションを開けます",
                   f"session opened as {body.get('handle')} ({body.get('did')})")]
    if response.status_code in (400, 401):
        return [fail("bluesky.session", f"BLUESKY_HANDLE / BLUESKY_APP_PASSWORD が拒否されました（{response.status_code}）",
                     f"BLUESKY_HANDLE / BLUESKY_APP_PASSWORD were refused ({response.status_code})")]
    return [fail("bluesky.session", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]
