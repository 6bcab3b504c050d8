"""X filtered stream: the watch file's search queries as stream rules, posts as they are published.

Facts (X API v2 spec 2.159 `latest-openapi.json` and 2.167 `openapi.json` in ../shared/specs/x/;
docs.x.com x-api/posts/filtered-stream/introduction, …/integrate/handling-disconnections,
x-api/fundamentals/recovery-and-redundancy; ../shared/reference/social-apis.md §1):
- Rules: `GET /2/tweets/search/stream/rules` lists them (`data[]` of `{id, value, tag}`, paged by
  `meta.next_token`); `POST /2/tweets/search/stream/rules` takes exactly one of
  `{"add": [{"value", "tag"}]}` or `{"delete": {"ids": […]}}`. Rules belong to the app, not to
  us alone, so ours carry the tag prefix `yorisoi:` and only those are ever deleted.
- Stream: `GET /2/tweets/search/stream` (app-only Bearer), the same `tweet.fields`/`expansions`
  as search, answered as a long-lived HTTP response of newline-delimited JSON, one
  `{data, includes, matching_rules}` per line, and a bare `\\r\\n` keep-alive every ~20 s. A
  silence of STALL_SECONDS (30 s: one and a half keep-alives) is a stalled connection.
- In-stream errors are lines `{"errors": [{"type": …/operational-disconnect, …}]}`: the server
  is about to close the connection; we reconnect.
- Plans (pricing.mdx, changelog 2026-02-06): pay-per-use and Pro allow 1,000 rules of up to
  1,024 characters and one connection; Enterprise 25,000 rules of 2,048 characters and
  `backfill_minutes` (0–5, "Backfill is available with Enterprise access",
  x-api/fundamentals/recovery-and-redundancy). Basic and the legacy Free tier have no filtered
  stream. A plan without it answers 403 with the `…/problems/client-forbidden` problem
  (`reason: client-not-enrolled`): we fall back to polling and say so in the stream's health.
- A second connection of the same app is refused with 429 and a ConnectionException problem
  (`connection_issue: TooManyConnections`): another process holds the stream; we wait.
- Each streamed post is billed as a post read (and its included author as a user read), like a
  search result: it is charged to X_DAILY_READ_BUDGET, and the stream pauses at the budget.

After a reconnect the posts missed while disconnected come from `backfill_minutes` (Enterprise,
gaps up to 5 min) or else from one recent-search catch-up per rule from the last post id seen
(`since_id`), the same paging and budget as the poller. Duplicates (backfill overlap, catch-up
and stream both) are skipped by the store: one post, one ticket.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator

from connector.sources.base import SourceError
from connector.sources.http import raise_for_status, request, retry_after
from connector.sources.ws import TICK_SECONDS, StreamBatch

if TYPE_CHECKING:
    from connector.sources.x import XSource

log = logging.getLogger(__name__)

STREAM_NAME = "x:filtered-stream"
#: Tag prefix of the rules we own: rules of other tools on the same app are never touched.
TAG_PREFIX = "yorisoi:"
#: X sends a keep-alive every ~20 s: nothing for this long is a stalled connection.
STALL_SECONDS = 30.0
#: After a plan refusal (403 client-forbidden) the stream is tried again this rarely.
PLAN_RETRY_SECONDS = 3600.0
#: A TooManyConnections refusal waits at least this long (X counts connection attempts too).
TOO_MANY_WAIT = 60.0
CLIENT_FORBIDDEN = ("https://api.twitter.com/2/problems/client-forbidden",
                    "https://api.x.com/2/problems/client-forbidden")
MAX_BACKFILL_MINUTES = 5


@dataclass(frozen=True)
class StreamPlan:
    """What an X plan allows for the filtered stream."""

    name: str
    offered: bool
    rules: int
    rule_chars: int
    backfill: bool


PLANS = {
    "pay-per-use": StreamPlan("pay-per-use", True, 1000, 1024, False),
    "pro": StreamPlan("pro", True, 1000, 1024, False),
    "enterprise": StreamPlan("enterprise", True, 25000, 2048, True),
    "basic": StreamPlan("basic", False, 0, 0, False),
    "free": StreamPlan("free", False, 0, 0, False),
}


def rule_tag(value: str) -> str:
    return TAG_PREFIX + hashlib.sha1(value.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class RulePlan:
    """What a rule sync does: rules to add, ids to delete, and which queries the stream covers."""

    add: list[dict[str, str]]
    delete: list[str]
    covered: list[str]
    left_out: list[str]  # queries beyond the plan's rule budget (they stay polled)


def plan_rules(wanted: list[str], existing: list[dict[str, Any]], plan: StreamPlan) -> RulePlan:
    """Pure: the rules to add and delete so that ours are exactly `wanted` (within the plan).

    `existing` is every rule of the app; only those tagged `yorisoi:` are ours. Other tools'
    rules count against the plan's rule budget, so fewer of ours may fit: the queries left out
    are polled as before. A wanted value that another tool already has as a rule is covered by
    it (X refuses duplicate values)."""
    ours = {r["value"]: str(r["id"]) for r in existing if str(r.get("tag") or "").startswith(TAG_PREFIX)}
    foreign = {r["value"] for r in existing if not str(r.get("tag") or "").startswith(TAG_PREFIX)}
    room = max(0, plan.rules - len(foreign))
    fitting = [q for q in wanted if len(q) <= plan.rule_chars]
    kept: list[str] = []
    for query in fitting:
        if query in foreign:
            kept.append(query)  # covered by a rule we do not own; costs nothing of ours
        elif len([q for q in kept if q not in foreign]) < room:
            kept.append(query)
    delete = [rid for value, rid in ours.items() if value not in kept]
    add = [{"value": q, "tag": rule_tag(q)} for q in kept if q not in ours and q not in foreign]
    return RulePlan(add=add, delete=delete, covered=kept, left_out=[q for q in wanted if q not in kept])


def backfill_minutes(last_at: str | None, now: datetime, plan: StreamPlan) -> int:
    """Minutes of backfill to ask for on reconnect (0: none, catch up by search instead)."""
    if not plan.backfill or not last_at:
        return 0
    gap = (now - datetime.fromisoformat(last_at)).total_seconds()
    if gap < 0 or gap > MAX_BACKFILL_MINUTES * 60:
        return 0
    return min(MAX_BACKFILL_MINUTES, max(1, math.ceil(gap / 60)))


def _newer(a: str | None, b: str | None) -> str | None:
    """The newer of two X post ids (snowflakes: numeric order is time order)."""
    if not a or not b:
        return a or b
    return a if int(a) >= int(b) else b


def seconds_to_utc_midnight(now: datetime) -> float:
    tomorrow = (now.astimezone(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (tomorrow - now).total_seconds())


class XFilteredStream:
    """The X filtered stream as the stream supervisor runs it (connector/streaming.py)."""

    platform = "x"
    name = STREAM_NAME

    def __init__(self, source: "XSource", plan: StreamPlan, *, stall_seconds: float = STALL_SECONDS) -> None:
        self.source = source
        self.plan = plan
        self.stall_seconds = stall_seconds
        self.too_many_wait = TOO_MANY_WAIT

    def __repr__(self) -> str:
        return f"XFilteredStream(plan={self.plan.name!r}, rules={len(self.source.queries)})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.source._bearer}"}

    # --- rules --------------------------------------------------------------------------
    def list_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"max_results": 1000}
            if token:
                params["pagination_token"] = token
            response = request(self.source.session, "x", "GET", self.source.api_url + "/2/tweets/search/stream/rules",
                               params=params, headers=self._headers())
            self._refused(response)
            raise_for_status("x", response)
            body = response.json() or {}
            rules.extend(r for r in body.get("data") or [] if isinstance(r, dict) and "value" in r)
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return rules

    def sync_rules(self) -> RulePlan:
        """Make our rules exactly the watch file's queries: delete stale ones, add missing ones.
        Idempotent: a second sync with the same watch file changes nothing."""
        plan = plan_rules(self.source.queries, self.list_rules(), self.plan)
        url = self.source.api_url + "/2/tweets/search/stream/rules"
        if plan.delete:
            response = request(self.source.session, "x", "POST", url, json={"delete": {"ids": plan.delete}},
                               headers=self._headers())
            raise_for_status("x", response)
        if plan.add:
            response = request(self.source.session, "x", "POST", url, json={"add": plan.add}, headers=self._headers())
            raise_for_status("x", response)
            for error in (response.json() or {}).get("errors") or []:
                # A duplicate (another process added it meanwhile) is fine; an invalid rule is
                # the watch file's: say which, the others still stream.
                if isinstance(error, dict) and "duplicate" not in str(error.get("type")):
                    log.warning("x: stream rule refused: %s", str(error.get("title") or error)[:200])
        if plan.left_out:
            log.warning("x: %d search queries do not fit the %s plan's %d stream rules; they stay polled",
                        len(plan.left_out), self.plan.name, self.plan.rules)
        self.source.set_streamed_queries(plan.covered)
        return plan

    # --- refusals -----------------------------------------------------------------------
    def _refused(self, response: Any) -> None:
        """Turn the plan refusal and TooManyConnections into SourceErrors that say what to do."""
        if response.status_code == 403:
            try:
                body = response.json() or {}
            except ValueError:
                body = {}
            if body.get("type") in CLIENT_FORBIDDEN or body.get("reason") == "client-not-enrolled":
                self.source.set_stream_refused(True)
                raise SourceError(
                    "x: this X plan does not offer the filtered stream (403 client-forbidden); "
                    f"polling recent search instead, the stream is tried again in {PLAN_RETRY_SECONDS / 60:.0f} min",
                    retryable=False, retry_after=PLAN_RETRY_SECONDS, status=403)
        if response.status_code == 429:
            try:
                issue = (response.json() or {}).get("connection_issue")
            except ValueError:
                issue = None
            wait = max(self.too_many_wait, retry_after(response) or 0.0)
            what = ("another connection of this X app holds the stream (TooManyConnections)"
                    if issue == "TooManyConnections" else "rate limited (429)")
            raise SourceError(f"x: {what}; polling meanwhile, trying again in {wait:.0f} s", retryable=True,
                              retry_after=wait, status=429)

    # --- the stream ---------------------------------------------------------------------
    def events(self, cursor: dict[str, Any] | None, stop: threading.Event) -> Iterator[StreamBatch]:
        from connector.sources.x import EXPANSIONS, FIELDS_PARAM, PRICE, TWEET_FIELDS, USER_FIELDS
        cursor = dict(cursor or {})
        last_id: str | None = cursor.get("last_id")
        clock = self.source._clock
        if not self.source._affordable(PRICE["post_read"], 1, 1):
            raise SourceError(f"x: daily read budget reached (${self.source.budget_usd:.2f}); the stream resumes "
                              "tomorrow (UTC)", retryable=True, retry_after=seconds_to_utc_midnight(clock()))
        rules = self.sync_rules()
        if not last_id:
            # Never streamed a post yet: catch up from the newest post the poller has seen, so
            # the hand-over from polling to streaming leaves no gap.
            for unit, query in zip(self.source.units(), self.source.queries):
                if query in rules.covered:
                    last_id = _newer(last_id, (self.source.state.get_state(f"cursor:{unit}") or {}).get("since_id"))
        if not rules.covered:
            raise SourceError("x: no stream rule fits the plan (the watch file's queries are polled)",
                              retryable=False, retry_after=PLAN_RETRY_SECONDS)
        params: dict[str, Any] = {FIELDS_PARAM: TWEET_FIELDS, "user.fields": USER_FIELDS, "expansions": EXPANSIONS}
        backfill = backfill_minutes(cursor.get("at"), clock(), self.plan) if last_id else 0
        if backfill:
            params["backfill_minutes"] = backfill
        response = request(self.source.session, "x", "GET", self.source.api_url + "/2/tweets/search/stream",
                           params=params, headers=self._headers(), stream=True, timeout=(10.0, None))
        try:
            self._refused(response)
            raise_for_status("x", response)
            self.source.set_stream_refused(False)
            lines: queue.Queue[Any] = queue.Queue()
            reader = threading.Thread(target=_read_lines, args=(response, lines), daemon=True,
                                      name="yorisoi-x-stream-reader")
            reader.start()
            yield StreamBatch(connected=True)
            if last_id and not backfill:
                # Connected first, then caught up: a post published in between comes both
                # ways and the store keeps it once.
                for batch in self._catch_up(last_id, rules.covered):
                    last_id = _newer(last_id, (batch.cursor or {}).get("last_id"))
                    yield batch
            heard = time.monotonic()
            while not stop.is_set():
                try:
                    line = lines.get(timeout=TICK_SECONDS)
                except queue.Empty:
                    if time.monotonic() - heard > self.stall_seconds:
                        raise SourceError(f"x: stream stalled (no keep-alive for {self.stall_seconds:.0f} s)",
                                          retryable=True) from None
                    yield StreamBatch()  # a quiet tick: still connected
                    continue
                if isinstance(line, BaseException):
                    raise SourceError(f"x: stream connection lost ({type(line).__name__})", retryable=True)
                if line is None:
                    raise SourceError("x: the stream closed the connection", retryable=True)
                heard = time.monotonic()
                if not line.strip():
                    continue  # keep-alive
                batch = self.parse(line)
                if batch is None:
                    continue
                new_id = (batch.cursor or {}).get("last_id")
                if new_id:
                    # Out of order (backfill, catch-up overlap): the cursor never moves back.
                    last_id = _newer(last_id, new_id)
                    batch.cursor = {"last_id": last_id, "at": clock().isoformat()}
                yield batch
                if batch.posts and self.source.spent_today() >= self.source.budget_usd:
                    raise SourceError(f"x: daily read budget reached (${self.source.budget_usd:.2f}) while "
                                      "streaming; the stream resumes tomorrow (UTC)", retryable=True,
                                      retry_after=seconds_to_utc_midnight(clock()))
        finally:
            _abort(response)

    def _catch_up(self, since_id: str, covered: list[str]) -> Iterator[StreamBatch]:
        """Recent search from the last post seen, one sweep per rule (the poller's paging and
        budget; its own poll cursors are left alone)."""
        by_query = dict(zip(self.source.queries, self.source.units()))
        for query in covered:
            unit = by_query.get(query)
            if unit is None:
                continue
            poll_cursor: dict[str, Any] = {"since_id": since_id}
            while True:
                result = self.source.poll(unit, poll_cursor)
                newest = None
                for polled in result.posts:
                    newest = _newer(newest, polled.post.id)
                yield StreamBatch(posts=result.posts,
                                  cursor={"last_id": _newer(since_id, newest)} if newest else None)
                if result.done or not result.cursor.get("next_token"):
                    break
                poll_cursor = result.cursor

    def parse(self, line: str) -> StreamBatch | None:
        """One line → a batch. Malformed lines are logged and skipped; an operational
        disconnect raises (the server closes the connection next)."""
        try:
            body = json.loads(line)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("x stream: malformed line skipped (%s): %.200r", exc, line)
            return None
        data = body.get("data")
        if not isinstance(data, dict):
            errors = body.get("errors") or []
            for error in errors if isinstance(errors, list) else []:
                if isinstance(error, dict) and "disconnect" in str(error.get("type", "")) + str(error.get("title", "")):
                    raise SourceError(f"x: the stream was disconnected by X ({error.get('disconnect_type') or error.get('title')})",
                                      retryable=True)
            log.warning("x stream: line without a post skipped: %.200r", line)
            return StreamBatch(events=1)
        users = (body.get("includes") or {}).get("users") or []
        self.source._charge("post_read", 1)
        self.source._charge("user_read", len(users) if isinstance(users, list) else 0)
        posts, _bad = self.source._normalise({"data": [data], "includes": body.get("includes") or {}})
        post_id = str(data.get("id") or "")
        cursor = {"last_id": post_id} if post_id.isdigit() else None
        return StreamBatch(events=1, posts=posts, cursor=cursor)


def _read_lines(response: Any, lines: "queue.Queue[Any]") -> None:
    """Reader thread: the response body split into lines as bytes arrive (`read1` returns
    what has come, so a keep-alive is seen at once); None at the end, an exception on error."""
    buffer = b""
    try:
        while True:
            chunk = response.raw.read1(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                lines.put(line.decode("utf-8", "replace").rstrip("\r"))
        lines.put(None)
    except Exception as exc:  # noqa: BLE001 - handed to the stream loop, which reconnects
        lines.put(exc)


def _abort(response: Any) -> None:
    """Close the stream's connection so the reader thread's blocking read returns.

    `response.close()` alone would wait for the reader: closing a BufferedReader takes the lock
    the blocked `read1` holds (a stalled stream sends nothing, so that could be forever). The
    socket is shut down first; urllib3 has already handed it from the connection to the
    response (`HTTPConnection.sock` is None by then), so it is found under http.client's
    response: `_fp` (http.client.HTTPResponse) → `fp` (BufferedReader) → `raw` (SocketIO) → `_sock`."""
    buffered = getattr(getattr(response.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response.close()
