"""X (API v2): recent search and mentions → posts, profiles, replies, deletion checks.

Facts this module relies on (docs.x.com, read from xdevplatform/docs; see
../shared/reference/social-apis.md §1):
- Reads use the app-only Bearer token (`X_BEARER_TOKEN`). Replies need user context: we use an
  OAuth 2.0 user access token (Authorization Code + PKCE, scopes `tweet.read users.read
  tweet.write offline.access`) in `X_USER_ACCESS_TOKEN`; it lives 2 hours, so with
  `X_USER_REFRESH_TOKEN` + `X_CLIENT_ID` (and `X_CLIENT_SECRET` for confidential clients) it is
  refreshed at `POST /2/oauth2/token` and the rotated pair is kept in the store
  (fundamentals/authentication/oauth-2-0/authorization-code.mdx). OAuth 1.0a is not used.
- `GET /2/tweets/search/recent`: query ≤ 512 chars (self-serve), `since_id` + `next_token`
  (keep the same since_id while paging; the first page's `meta.newest_id` is the next since_id).
- Since 2026-02-23 `POST /2/tweets` with `reply` works only where the author @mentioned our
  account or quoted our post; elsewhere we hand the agent the web intent link instead.
- Pay-per-use: $0.005 per post read, $0.010 per user read, $0.001 per owned read (mentions of
  our own account). `X_DAILY_READ_BUDGET` (USD per UTC day) is enforced before each call.
- Deleted posts come back from `GET /2/tweets?ids=` in `errors[]` with type
  `…/resource-not-found`; protected ones with `…/not-authorized-for-resource`.
"""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import requests
from pydantic import ValidationError

from connector.envvars import EnvVar
from connector.models import Author, Post
from connector.ports import SourceState
from connector.sources.base import PolledPost, PollResult, ReplyRefused, ReplyResult, ReplyUnknown, SourceError
from connector.sources.hints import x_intent_url
from connector.sources.http import new_session, parse_time, raise_for_status, request
from connector.sources.platform import PlatformInfo
from connector.watch import WatchConfig

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.x.com"
MAX_QUERY_CHARS = 512
#: USD per resource (x-api/getting-started/pricing.mdx). Counted conservatively: we cannot see
#: X's same-day dedup, and whether includes.users is billed is unverified, so we count it.
PRICE = {"post_read": 0.005, "user_read": 0.010, "owned_read": 0.001}
DEFAULT_BUDGET_USD = 1.0

INFO = PlatformInfo(
    name="x", display_ja="X", display_en="X",
    reply_limit=280, reply_count="x-weighted",
    profile_url="https://x.com/{handle}",
    replies=True, reply_intent=True, compliance=True, poll_interval=300.0,
    env=(
        EnvVar("X_BEARER_TOKEN", "(unset: X not polled)", "App-only Bearer token for reading X (recent search, mentions, deletion checks). Setting it turns X polling on.", True, __name__),
        EnvVar("X_USER_ID", "(unset: no mentions)", "Numeric id of the brand's X account: its mentions are read too, and its own posts excluded.", False, __name__),
        EnvVar("X_API_URL", DEFAULT_API_URL, "Base URL of the X API (a test double in tests).", False, __name__),
        EnvVar("X_USER_ACCESS_TOKEN", "(unset: replies prepared as links)", "OAuth 2.0 user access token of the brand's account (scopes tweet.read users.read tweet.write offline.access) for replies through the API.", True, __name__),
        EnvVar("X_USER_REFRESH_TOKEN", "(unset)", "Refresh token for X_USER_ACCESS_TOKEN; the rotated pair is kept in the database.", True, __name__),
        EnvVar("X_CLIENT_ID", "(unset)", "OAuth 2.0 client id used to refresh the user token.", False, __name__),
        EnvVar("X_CLIENT_SECRET", "(unset: public client)", "OAuth 2.0 client secret, for confidential clients.", True, __name__),
        EnvVar("X_DAILY_READ_BUDGET", str(DEFAULT_BUDGET_USD), "US dollars of X reads per UTC day ($0.005 per post, $0.010 per user); polling stops at the budget.", False, __name__),
        EnvVar("X_STREAM", "on", "`off`: no filtered stream, X is polled only. On: the watch file's queries become filtered-stream rules where the plan offers it (a plan without it answers 403 and X stays polled; the fallback while the stream is down either way).", False, __name__),
        EnvVar("X_PLAN", "pay-per-use", "The X API plan, for the filtered stream's limits: `pay-per-use` or `pro` (1,000 rules), `enterprise` (25,000 rules, backfill after a reconnect), `basic` or `free` (no filtered stream: polling only).", False, __name__),
        EnvVar("X_POLL_BOUNDS", "60,900", "Shortest and longest X poll interval in seconds (`min,max`): polling tightens towards the shortest while a brand is active (qualifying posts, a spike) and relaxes towards the longest when quiet, never faster than the daily read budget allows.", False, __name__),
    ),
)
#: Pages per unit per poll; the rest waits (with its next_token) for the next poll.
MAX_PAGES = 5
#: Field vocabulary. X's API v2 spec 2.159 (2026-02-27, `latest-openapi.json` in
#: xdevplatform/xdk; ../shared/specs/x/) names the request parameter `tweet.fields`, the
#: expansion `referenced_tweets.id` and the answer fields `referenced_tweets`, `retweet_count`,
#: `note_tweet`, `includes.tweets`; the newer production spec 2.167 (2026-07-21, `openapi.json`)
#: renames them `post.fields`, `referenced_posts`, `repost_count`, `note_post`, `includes.posts`.
#: X serves both today (the older as an undocumented alias). Requests are pinned to 2.159's
#: names, the ones every served API version accepts; answers are read in either naming
#: (`_pick`), and `yorisoi doctor` reports which one the live API answered (`answer_naming`).
REQUEST_NAMING = "2.159"
FIELDS_PARAM = "tweet.fields"
TWEET_FIELDS = ("created_at,lang,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,"
                "entities,public_metrics,note_tweet")
USER_FIELDS = "description,location,public_metrics,created_at,profile_image_url,protected,verified"
EXPANSIONS = "author_id,referenced_tweets.id,referenced_tweets.id.author_id"
GONE_TYPES = {
    "https://api.x.com/2/problems/resource-not-found": "deleted",
    "https://api.twitter.com/2/problems/resource-not-found": "deleted",
    "https://api.x.com/2/problems/not-authorized-for-resource": "protected",
    "https://api.twitter.com/2/problems/not-authorized-for-resource": "protected",
}


#: X API v2 answers post text with exactly `&`, `<` and `>` HTML-escaped (nothing else: a
#: literal `&quot;` or `&#39;` in a post is the author's own text).
_X_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
_X_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def unescape_text(text: str) -> str:
    """Post text as the author wrote it, from X's escaped form.

    One pass, so `&amp;lt;` (the author typed `&lt;`) becomes `&lt;`, not `<`; the exact
    inverse of X's escaping of `&`, `<`, `>`. Not a general HTML decode.
    """
    return _X_ENTITY.sub(lambda m: _X_ENTITIES[m.group(0)], text)


#: 2.159 answer field → its 2.167 name (see REQUEST_NAMING).
NEWER_NAMES = {"referenced_tweets": "referenced_posts", "retweet_count": "repost_count",
               "note_tweet": "note_post", "tweets": "posts", "edit_history_tweet_ids": "edit_history_post_ids",
               "tweet_count": "post_count"}


def _pick(obj: Mapping[str, Any], name: str) -> Any:
    """`obj[name]` under 2.159's name, else under 2.167's (X answers either)."""
    value = obj.get(name)
    return value if value is not None else obj.get(NEWER_NAMES.get(name, name))


def answer_naming(body: Any) -> str | None:
    """Which spec's naming an answer uses: "2.167" (`repost_count`, `referenced_posts`, …),
    "2.159" (`retweet_count`, `referenced_tweets`, …), or None when it shows neither."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in NEWER_NAMES:
                    found.add("2.159")
                elif key in NEWER_NAMES.values():
                    found.add("2.167")
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(body)
    if found == {"2.159", "2.167"}:
        return "mixed"
    return found.pop() if found else None


def _term(word: str) -> str:
    """A search term: exact phrase in quotes unless it is one plain token (or a #tag/@user)."""
    word = word.strip()
    if re.fullmatch(r"[#＃@＠]?\w+", word):
        return word.replace("＃", "#").replace("＠", "@")
    return '"' + word.replace('"', "") + '"'


def build_queries(watch: WatchConfig, limit: int = MAX_QUERY_CHARS) -> list[str]:
    """Recent-search queries from the watch file, each ≤ `limit` characters.

    Per brand: `(term OR term …) (lang:ja OR lang:en) -is:retweet -"exclude word" -from:own`.
    A brand whose terms do not fit is split into several queries with the same suffix; if even
    one term does not fit with the exclusions, the exclusions are dropped (qualification drops
    those posts anyway: the exclusions only save reads).
    """
    queries: list[str] = []
    for brand in watch.brands:
        terms = [_term(t) for t in (*brand.keywords, *brand.hashtags, *brand.mentions)]
        langs = [l.split("-")[0] for l in brand.languages]
        lang = ""
        if len(langs) == 1:
            lang = f" lang:{langs[0]}"
        elif langs:
            lang = " (" + " OR ".join(f"lang:{l}" for l in langs) + ")"
        excludes = [f"-{_term(w)}" for w in brand.exclude_words]
        excludes += [f"-from:{a.lstrip('@＠')}" for a in brand.exclude_accounts
                     if ":" not in a and re.fullmatch(r"@?\w{1,15}", a)]
        suffix_full = lang + " -is:retweet" + "".join(" " + e for e in excludes)
        suffix = suffix_full
        if max(len(t) for t in terms) + 2 + len(suffix) > limit:
            suffix = lang + " -is:retweet"
        group: list[str] = []
        for term in terms:
            candidate = group + [term]
            if group and len("(" + " OR ".join(candidate) + ")" + suffix) > limit:
                queries.append("(" + " OR ".join(group) + ")" + suffix)
                group = [term]
            else:
                group = candidate
        if group:
            queries.append("(" + " OR ".join(group) + ")" + suffix)
    return queries



def adaptive_interval(previous: float, *, low: float, high: float, qualifying: int, storm: bool,
                      cost_per_poll: float, budget_left: float, seconds_left: float) -> float:
    """The next X poll interval (pure).

    - a spike (storm) on a watched brand: the shortest interval at once;
    - qualifying posts in the last poll: half the previous interval (down to `low`);
    - a quiet poll: one and a half times the previous (up to `high`);
    - never faster than the budget: the polls left today at this interval, each costing
      `cost_per_poll` (all units together), must fit in `budget_left`.
    """
    if storm:
        wanted = low
    elif qualifying > 0:
        wanted = previous / 2
    else:
        wanted = previous * 1.5
    if cost_per_poll > 0:
        floor = seconds_left * cost_per_poll / budget_left if budget_left > 0 else high
        wanted = max(wanted, floor)
    return round(min(high, max(low, wanted)), 1)


class XSource:
    platform = "x"

    def __init__(self, *, state: SourceState, watch: WatchConfig, bearer_token: str, api_url: str = DEFAULT_API_URL,
                 user_token: str | None = None, refresh_token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, user_id: str | None = None,
                 budget_usd: float = DEFAULT_BUDGET_USD, interval: float = 300.0,
                 session: requests.Session | None = None, clock: Any = None,
                 stream_plan: Any = None, poll_bounds: tuple[float, float] | None = None) -> None:
        self.state = state
        self.watch = watch
        self._bearer = bearer_token
        self.api_url = api_url.rstrip("/")
        self._user_token = user_token
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self.user_id = user_id
        self.budget_usd = budget_usd
        self.interval = interval
        self.session = session or new_session()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.queries = build_queries(watch)
        #: The filtered stream's plan (connector/sources/x_stream.py); None: polling only.
        self.stream_plan = stream_plan if stream_plan is not None and stream_plan.offered else None
        low, high = poll_bounds or (min(60.0, interval), max(900.0, interval))
        self.poll_bounds = (min(low, interval), max(high, interval))

    def __repr__(self) -> str:  # no tokens
        return f"XSource(api_url={self.api_url!r}, queries={len(self.queries)}, budget_usd={self.budget_usd})"

    # --- budget -----------------------------------------------------------------------
    def _day(self) -> str:
        return self._clock().astimezone(timezone.utc).strftime("%Y-%m-%d")

    def spent_today(self) -> float:
        usage = self.state.usage_today("x", self._day())
        return sum(PRICE.get(kind, 0.0) * units for kind, units in usage.items())

    def _charge(self, kind: str, units: int) -> None:
        self.state.add_usage("x", self._day(), kind, units)

    def _affordable(self, per_item: float, wanted: int, minimum: int) -> int:
        """How many results we can afford to ask for now (0: the budget is spent)."""
        left = self.budget_usd - self.spent_today()
        count = int(left // per_item) if per_item else wanted
        count = min(wanted, count)
        return count if count >= minimum else 0

    def usage(self) -> str:
        usage = self.state.usage_today("x", self._day())
        parts = ", ".join(f"{kind} {units}" for kind, units in sorted(usage.items())) or "no reads"
        return (f"X spend today (UTC {self._day()}): ${self.spent_today():.3f} of ${self.budget_usd:.2f} "
                f"daily read budget ({parts})")

    # --- streaming --------------------------------------------------------------------
    def streams(self, pipeline: Any = None) -> list[Any]:
        if self.stream_plan is None or not self.queries:
            return []
        from connector.sources.x_stream import XFilteredStream
        return [XFilteredStream(self, self.stream_plan)]

    def set_streamed_queries(self, queries: list[str]) -> None:
        """The queries the stream's rules cover now (the others stay polled)."""
        self.state.set_state("x:stream:covered", list(queries))

    def set_stream_refused(self, refused: bool) -> None:
        """Whether X said the plan has no filtered stream (for `yorisoi doctor` and health)."""
        self.state.set_state("x:stream:refused", bool(refused))

    def stream_for(self, unit: str) -> str | None:
        """The stream that covers a search unit while connected: only queries that are rules
        now (mentions stay polled: owned reads cost a fifth, and they mark replies allowed)."""
        if self.stream_plan is None or unit == "x:mentions" or unit not in self.units():
            return None
        covered = self.state.get_state("x:stream:covered") or []
        query = self.queries[self.units().index(unit)]
        from connector.sources.x_stream import STREAM_NAME
        return STREAM_NAME if query in covered else None

    # --- adaptive polling interval -----------------------------------------------------
    def next_interval(self, unit: str, *, qualifying: int, storm: bool) -> float:
        """Seconds until `unit` is polled again: tighter while the brand is active, looser when
        quiet, within X_POLL_BOUNDS and what the day's remaining read budget can pay for."""
        key = f"x:interval:{unit}"
        previous = float(self.state.get_state(key) or self.interval)
        now = self._clock()
        from connector.sources.x_stream import seconds_to_utc_midnight
        # The last poll's cost stands for the next one's (a busy unit costs more per poll).
        per_poll = self.state.get_state(f"x:poll_cost:{unit}")
        if per_poll is None:
            per_poll = (PRICE["post_read"] + PRICE["user_read"]) * 10  # one first page
        wait = adaptive_interval(previous, low=self.poll_bounds[0], high=self.poll_bounds[1], qualifying=qualifying,
                                 storm=storm, cost_per_poll=float(per_poll) * len(self.units()),
                                 budget_left=self.budget_usd - self.spent_today(),
                                 seconds_left=seconds_to_utc_midnight(now))
        self.state.set_state(key, wait)
        return wait

    # --- polling ----------------------------------------------------------------------
    def units(self) -> list[str]:
        units = [f"x:search:{hashlib.sha1(q.encode()).hexdigest()[:10]}" for q in self.queries]
        if self.user_id:
            units.append("x:mentions")
        return units

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        response = request(self.session, "x", "GET", self.api_url + path, params=dict(params),
                           headers={"Authorization": f"Bearer {self._bearer}"})
        raise_for_status("x", response)
        return response.json()

    def poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        before = self.spent_today()
        result = self._poll(unit, cursor)
        # What one poll of this unit costs, for the adaptive interval's budget bound.
        self.state.set_state(f"x:poll_cost:{unit}", round(self.spent_today() - before, 4))
        return result

    def _poll(self, unit: str, cursor: dict[str, Any] | None) -> PollResult:
        cursor = dict(cursor or {})
        if unit == "x:mentions":
            path, page_param, kind, per_item = f"/2/users/{self.user_id}/mentions", "pagination_token", "owned_read", PRICE["owned_read"]
            base: dict[str, Any] = {}
            minimum = 5
        else:
            query = self.queries[[u for u in self.units()].index(unit)] if unit in self.units() else None
            if query is None:
                raise SourceError(f"x: unknown poll unit {unit} (the watch file changed?)", retryable=False)
            path, page_param, kind, per_item = "/2/tweets/search/recent", "next_token", "post_read", PRICE["post_read"] + PRICE["user_read"]
            base = {"query": query, "sort_order": "recency"}
            minimum = 10
        base.update({FIELDS_PARAM: TWEET_FIELDS, "user.fields": USER_FIELDS, "expansions": EXPANSIONS})
        since_id = cursor.get("since_id")
        token = cursor.get("next_token")
        sweep_newest = cursor.get("sweep_newest")
        collected: list[PolledPost] = []
        skipped = 0
        for _page in range(MAX_PAGES):
            count = self._affordable(per_item, 100, minimum)
            if not count:
                note = f"daily read budget reached (${self.budget_usd:.2f}); resumes tomorrow (UTC)"
                return PollResult(collected, {"since_id": since_id, "next_token": token, "sweep_newest": sweep_newest},
                                  done=True, note=note, skipped=skipped)
            params = dict(base, max_results=count)
            if since_id:
                params["since_id"] = since_id
            if token:
                params[page_param] = token
            body = self._get(path, params)
            data = body.get("data") or []
            users = (body.get("includes") or {}).get("users") or []
            self._charge(kind, len(data))
            if kind == "post_read":
                self._charge("user_read", len(users))
            meta = body.get("meta") or {}
            if not token and meta.get("newest_id"):
                sweep_newest = meta["newest_id"]  # the first page of this sweep
            posts, bad = self._normalise(body, mentioned=(unit == "x:mentions"))
            collected.extend(posts)
            skipped += bad
            token = meta.get("next_token")
            if not token:
                return PollResult(collected, {"since_id": sweep_newest or since_id}, done=True, skipped=skipped)
        return PollResult(collected, {"since_id": since_id, "next_token": token, "sweep_newest": sweep_newest},
                          done=False, note="more pages waiting", skipped=skipped)

    def _normalise(self, body: dict[str, Any], mentioned: bool = False) -> tuple[list[PolledPost], int]:
        includes = body.get("includes") or {}
        users = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, dict)}
        included_tweets = {t.get("id"): t for t in _pick(includes, "tweets") or [] if isinstance(t, dict)}
        result: list[PolledPost] = []
        skipped = 0
        for tweet in body.get("data") or []:
            try:
                result.append(self._to_post(tweet, users, included_tweets, mentioned))
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                skipped += 1
                log.warning("x: post %s skipped: %s", tweet.get("id") if isinstance(tweet, dict) else "?",
                            str(exc).splitlines()[0])
        return result, skipped

    def _to_post(self, tweet: dict[str, Any], users: dict[str, Any], included: dict[str, Any],
                 mentioned: bool) -> PolledPost:
        user = users.get(tweet.get("author_id")) or {"id": tweet["author_id"]}
        metrics = user.get("public_metrics") or {}
        author = Author(id=str(user["id"]), handle=user.get("username"), name=user.get("name"),
                        bio=user.get("description"), location=user.get("location"),
                        followers=metrics.get("followers_count"), following=metrics.get("following_count"),
                        created_at=parse_time(user.get("created_at")), avatar_url=user.get("profile_image_url"))
        refs = {r.get("type"): r.get("id") for r in _pick(tweet, "referenced_tweets") or [] if isinstance(r, dict)}
        text = unescape_text(((_pick(tweet, "note_tweet") or {}).get("text")) or tweet.get("text") or "")
        tm = tweet.get("public_metrics") or {}
        handle = user.get("username")
        post = Post(
            platform="x", id=str(tweet["id"]),
            url=f"https://x.com/{handle}/status/{tweet['id']}" if handle else f"https://x.com/i/web/status/{tweet['id']}",
            created_at=parse_time(tweet.get("created_at")) or self._clock(), lang=tweet.get("lang"),
            text=text, author=author,
            metrics={"replies": tm.get("reply_count", 0), "reposts": _pick(tm, "retweet_count") or 0,
                     "likes": tm.get("like_count", 0), "quotes": tm.get("quote_count", 0)},
            in_reply_to=refs.get("replied_to"), conversation_id=tweet.get("conversation_id"),
            repost_of=refs.get("retweeted"),
            # `referenced_tweets` type "quoted" (`referenced_posts` in spec 2.167; both specs
            # enumerate retweeted/quoted/replied_to): a quote of a storm's post is an echo of it.
            quote_of=refs.get("quoted"),
        )
        return PolledPost(post, {"reply_allowed": mentioned or self._summoned(tweet, refs, included)})

    def _summoned(self, tweet: dict[str, Any], refs: dict[str, Any], included: dict[str, Any]) -> bool:
        """Whether the author @mentioned our account or quoted our post (API reply allowed)."""
        if not self.user_id:
            return False
        mentions = ((tweet.get("entities") or {}).get("mentions")) or []
        if any(isinstance(m, dict) and str(m.get("id")) == self.user_id for m in mentions):
            return True
        quoted = included.get(refs.get("quoted")) if refs.get("quoted") else None
        return bool(quoted and str(quoted.get("author_id")) == self.user_id)

    # --- profile and compliance ------------------------------------------------------
    def fetch_profile(self, author_id: str) -> Author | None:
        if not self._affordable(PRICE["user_read"], 1, 1):
            raise SourceError("x: daily read budget reached; profile not fetched", retryable=True)
        body = self._get(f"/2/users/{author_id}", {"user.fields": USER_FIELDS})
        self._charge("user_read", 1)
        user = body.get("data")
        if not user:
            return None
        metrics = user.get("public_metrics") or {}
        return Author(id=str(user["id"]), handle=user.get("username"), name=user.get("name"),
                      bio=user.get("description"), location=user.get("location"),
                      followers=metrics.get("followers_count"), following=metrics.get("following_count"),
                      created_at=parse_time(user.get("created_at")), avatar_url=user.get("profile_image_url"))

    def check_exists(self, posts: Sequence[Post]) -> dict[str, str]:
        """`GET /2/tweets?ids=` in batches of 100. Compliance reads are counted in the spend but
        not stopped by the budget: X's policy requires them (developer-terms/policy.mdx)."""
        gone: dict[str, str] = {}
        ids = [p.id for p in posts]
        for start in range(0, len(ids), 100):
            batch = ids[start:start + 100]
            body = self._get("/2/tweets", {"ids": ",".join(batch)})
            self._charge("post_read", len(body.get("data") or []))
            for error in body.get("errors") or []:
                if not isinstance(error, dict):
                    continue
                post_id = str(error.get("resource_id") or error.get("value") or "")
                reason = GONE_TYPES.get(str(error.get("type")))
                if post_id in batch and reason and error.get("resource_type", "tweet") in ("tweet", "post"):
                    gone[post_id] = reason
        return gone

    @staticmethod
    def gone_url(post_id: str) -> str:
        """A link that does not name the (possibly now private) account."""
        return f"https://x.com/i/web/status/{post_id}"

    # --- replies ----------------------------------------------------------------------
    def _user_credentials(self) -> tuple[str | None, str | None]:
        saved = self.state.get_state("token:x") or {}
        return saved.get("access_token") or self._user_token, saved.get("refresh_token") or self._refresh_token

    def _refresh(self) -> str | None:
        _access, refresh = self._user_credentials()
        if not (refresh and self._client_id):
            return None
        auth = (self._client_id, self._client_secret) if self._client_secret else None
        response = request(self.session, "x", "POST", self.api_url + "/2/oauth2/token", auth=auth, data={
            "grant_type": "refresh_token", "refresh_token": refresh, "client_id": self._client_id})
        if response.status_code != 200:
            log.warning("x: refreshing the user token failed (%s)", response.status_code)
            return None
        body = response.json()
        # Refresh tokens rotate: keep the new pair, or the next refresh fails.
        self.state.set_state("token:x", {"access_token": body.get("access_token"),
                                         "refresh_token": body.get("refresh_token") or refresh})
        return body.get("access_token")

    def post_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult:
        intent = x_intent_url(post.id, text)
        allowed = bool(self.state.post_extras(post.key).get("reply_allowed"))
        access, _refresh = self._user_credentials()
        if not allowed or not access:
            # Not summoned (or no user token configured): the agent posts it by hand.
            return ReplyResult("prepared", None, intent)
        body = {"text": text, "reply": {"in_reply_to_tweet_id": post.id}}
        # X has no idempotency key: the exchange row recorded before this call is the guard,
        # and an unanswered call is an unknown outcome (`find_reply` looks before a resend).
        for attempt in range(2):
            try:
                response = request(self.session, "x", "POST", self.api_url + "/2/tweets", json=body,
                                   headers={"Authorization": f"Bearer {access}"})
            except SourceError as exc:
                if exc.maybe_sent:
                    raise ReplyUnknown(exc.message) from None
                raise ReplyRefused(exc.message, retryable=True) from None
            if response.status_code == 401 and attempt == 0:
                access = self._refresh()
                if access:
                    continue
            break
        if response.status_code in (200, 201):
            tweet = (response.json() or {}).get("data") or {}
            return ReplyResult("sent", str(tweet.get("id")), f"https://x.com/i/web/status/{tweet.get('id')}")
        if response.status_code == 403:
            # The platform refused the reply (not summoned after all, reply settings): hand
            # the agent the prepared link instead of failing.
            log.info("x: API reply to %s refused (403); prepared link offered", post.id)
            return ReplyResult("prepared", None, intent)
        try:
            raise_for_status("x", response)
        except SourceError as exc:
            raise ReplyRefused(exc.message, retryable=exc.retryable) from None
        raise ReplyRefused(f"x: unexpected status {response.status_code}", retryable=True)

    def find_reply(self, post: Post, text: str, idempotency_key: str) -> ReplyResult | None:
        """The brand's reply to `post` with this text, searched in the post's conversation
        (`conversation_id:… from:<brand id>`), or None. Raises SourceError when it cannot
        tell (no brand account id configured, search failing)."""
        if not self.user_id:
            raise SourceError("x: X_USER_ID is not set: cannot look for the brand's reply", retryable=False)
        conversation = post.conversation_id or post.id
        body = self._get("/2/tweets/search/recent", {
            "query": f"conversation_id:{conversation} from:{self.user_id}", "max_results": 100,
            "tweet.fields": "author_id,conversation_id,referenced_tweets,created_at"})
        self._charge("owned_read", len(body.get("data") or []))  # the brand's own posts
        wanted = " ".join(text.split())
        for tweet in body.get("data") or []:
            replied_to = {r.get("id") for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"}
            if post.id in replied_to and str(tweet.get("author_id")) == self.user_id \
                    and " ".join(str(tweet.get("text", "")).split()) == wanted:
                return ReplyResult("sent", str(tweet["id"]), f"https://x.com/i/web/status/{tweet['id']}")
        return None

# --- yorisoi doctor -------------------------------------------------------------------------
def doctor(env: Mapping[str, str], session: requests.Session) -> list[Any]:
    """`yorisoi doctor` for X, read-only: the Bearer token, which field naming the live API
    answers in (`repost_count` … of spec 2.167, or `retweet_count` … of 2.159: see
    REQUEST_NAMING), and the user token for replies. The sample is the brand's latest mentions
    (5 owned reads, $0.005) with X_USER_ID, else one recent search page (10 posts, $0.05)."""
    from connector.doctor import fail, get, ok, unreachable, warn

    bearer = env.get("X_BEARER_TOKEN")
    if not bearer:
        return []
    api = (env.get("X_API_URL") or DEFAULT_API_URL).rstrip("/")
    user_id = (env.get("X_USER_ID") or "").strip()
    fields = {FIELDS_PARAM: "public_metrics,referenced_tweets", "expansions": "referenced_tweets.id"}
    if user_id:
        url, params = f"{api}/2/users/{user_id}/mentions", dict(fields, max_results=5)
    else:
        url, params = f"{api}/2/tweets/search/recent", dict(fields, query="lang:ja -is:retweet", max_results=10)
    response, error = get(session, url, params=params, headers={"Authorization": f"Bearer {bearer}"})
    if response is None:
        return [unreachable("x.token", url, error)]
    if response.status_code in (401, 403):
        return [fail("x.token", f"X_BEARER_TOKEN が拒否されました（{response.status_code}）",
                     f"X_BEARER_TOKEN was refused ({response.status_code})")]
    if response.status_code != 200:
        return [fail("x.token", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")]
    checks = [ok("x.token", "X_BEARER_TOKEN で読み取れます", "X_BEARER_TOKEN can read")]
    naming = answer_naming(response.json())
    if naming == "2.167":
        checks.append(ok("x.naming", "X は新しい名前（repost_count, referenced_posts: 仕様 2.167）で返しました。両方読めます",
                         "X answered in the newer naming (repost_count, referenced_posts: spec 2.167); both are read"))
    elif naming == "2.159":
        checks.append(ok("x.naming", "X は従来の名前（retweet_count, referenced_tweets: 仕様 2.159）で返しました。両方読めます",
                         "X answered in the older naming (retweet_count, referenced_tweets: spec 2.159); both are read"))
    elif naming == "mixed":
        checks.append(warn("x.naming", "X の回答に新旧の名前が混在しています（両方読めます）",
                           "X answered with both namings mixed (both are read)"))
    else:
        checks.append(warn("x.naming", "サンプルに投稿がなく、X の名前の版を判定できません",
                           "no post in the sample: cannot tell which field naming X answers in"))
    checks.append(_doctor_stream(env, session, api, bearer))
    user_token = env.get("X_USER_ACCESS_TOKEN")
    if user_token:
        url = f"{api}/2/users/me"
        response, error = get(session, url, headers={"Authorization": f"Bearer {user_token}"})
        refreshable = bool(env.get("X_USER_REFRESH_TOKEN") and env.get("X_CLIENT_ID"))
        if response is None:
            checks.append(unreachable("x.user_token", url, error))
        elif response.status_code == 200:
            who = ((response.json() or {}).get("data") or {}).get("username")
            checks.append(ok("x.user_token", f"返信用トークン: @{who}", f"reply token: @{who}"))
        elif response.status_code == 401 and refreshable:
            checks.append(warn("x.user_token", "X_USER_ACCESS_TOKEN は期限切れです（送信時に X_USER_REFRESH_TOKEN で更新されます）",
                               "X_USER_ACCESS_TOKEN has expired (it is refreshed with X_USER_REFRESH_TOKEN when a reply is sent)"))
        else:
            checks.append(fail("x.user_token", f"X_USER_ACCESS_TOKEN が拒否されました（{response.status_code}）",
                               f"X_USER_ACCESS_TOKEN was refused ({response.status_code})"))
    return checks


def _doctor_stream(env: Mapping[str, str], session: requests.Session, api: str, bearer: str) -> Any:
    """Whether the plan offers the filtered stream: `GET /2/tweets/search/stream/rules` (reading
    rules reads no post: not billed). A 403 client-forbidden means polling only."""
    from connector.doctor import fail, get, ok, unreachable, warn
    from connector.sources.x_stream import CLIENT_FORBIDDEN, PLANS, TAG_PREFIX
    if (env.get("X_STREAM") or "on").strip().lower() == "off":
        return ok("x.stream", "X_STREAM=off: X は検索のポーリングのみです", "X_STREAM=off: X is polled by search only")
    plan = PLANS.get((env.get("X_PLAN") or "pay-per-use").strip().lower())
    if plan is not None and not plan.offered:
        return ok("x.stream", f"X_PLAN={plan.name}: filtered stream のないプランです。検索のポーリングで取得します",
                  f"X_PLAN={plan.name}: a plan without the filtered stream; X is polled by search")
    url = f"{api}/2/tweets/search/stream/rules"
    response, error = get(session, url, headers={"Authorization": f"Bearer {bearer}"})
    if response is None:
        return unreachable("x.stream", url, error)
    body: Any = {}
    try:
        body = response.json() or {}
    except ValueError:
        pass
    if response.status_code == 403 and isinstance(body, dict) and (
            body.get("type") in CLIENT_FORBIDDEN or body.get("reason") == "client-not-enrolled"):
        return warn("x.stream", "この X のプランには filtered stream がありません（403 client-forbidden）。"
                    "検索のポーリングで取得します（X_PLAN=basic で確認を省けます）",
                    "this X plan does not offer the filtered stream (403 client-forbidden); X is polled by "
                    "search instead (X_PLAN=basic skips this check)")
    if response.status_code != 200:
        return fail("x.stream", f"{url} が {response.status_code} を返しました", f"{url} answered {response.status_code}")
    rules = [r for r in body.get("data") or [] if isinstance(r, dict)]
    ours = sum(1 for r in rules if str(r.get("tag") or "").startswith(TAG_PREFIX))
    return ok("x.stream", f"filtered stream を利用できます（ルール {len(rules)} 件、うち Yorisoi {ours} 件）",
              f"the filtered stream is available ({len(rules)} rules, {ours} of them Yorisoi's)")
