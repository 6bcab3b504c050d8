"""The streaming supervisor: every configured stream (Bluesky Jetstream, Mastodon hashtag
streams, the X filtered stream) in its own thread, next to the poller, in `yorisoi poll` and `yorisoi serve --poll`.

One stream's loop: take the stream's advisory lock (on PostgreSQL exactly one instance holds
each stream; the others retry every LOCK_RETRY seconds, so one takes over within a minute when
the holder dies) → load its cursor → connect → for every batch: store the posts through
`pipeline.ingest` (qualification, analysis, outbox), purge deleted posts (compliance), and only
then save the cursor → on a drop or a stall reconnect with back-off (1 s, 2 s, 4 s … 60 s).
Health (status, connected since, events/min, last event, reconnects, last error) is kept
through SourceState under `stream:<name>`, where `yorisoi poll --status` and the dashboard read it.

While a stream is down the poller polls that network as before (the fallback): a source
whose stream is connected and fresh is not polled (`stream_covers`).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Callable

from connector.compliance import purge_deleted
from connector.db import utcnow
from connector.ports import SourceState
from connector.sources.base import SourceError
from connector.sources.ws import Stream, StreamBatch

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
#: Seconds between tries for a stream another instance holds.
LOCK_RETRY = 30.0
#: A stream whose health was not written for this long is not trusted (its process died).
FRESH_FOR = timedelta(seconds=90)
#: Health is written at most this often while events flow (plus on every status change),
#: and this often while a connected stream is quiet (so it does not look stale).
HEALTH_EVERY = 2.0
HEALTH_QUIET_EVERY = 30.0


def health_key(name: str) -> str:
    return f"stream:{name}"


def stream_covers(state: SourceState, name: str, now: datetime | None = None) -> bool:
    """Whether the stream `name` is connected with fresh health (its network needs no polling)."""
    health = state.get_state(health_key(name)) or {}
    if health.get("status") != "connected" or not health.get("updated_at"):
        return False
    return datetime.fromisoformat(health["updated_at"]) > (now or utcnow()) - FRESH_FOR


class StreamRunner(threading.Thread):
    """Runs one stream until stopped: lock, connect, store, save cursor, reconnect."""

    def __init__(self, stream: Stream, services: Any, *, wake_delivery: Callable[[], None] | None = None,
                 backoff_start: float = BACKOFF_START, backoff_max: float = BACKOFF_MAX,
                 lock_retry: float = LOCK_RETRY) -> None:
        super().__init__(name=f"yorisoi-stream-{stream.name}", daemon=True)
        self.stream = stream
        self.svc = services
        self.state: SourceState = services.store.sources
        self.pipeline = services.pipeline
        self.wake_delivery = wake_delivery
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.lock_retry = lock_retry
        self.stop_event = threading.Event()
        self._times: collections.deque[float] = collections.deque()
        self._written = 0.0
        self._events_written = 0
        #: Whether this instance holds the stream: only the holder writes its shared health.
        self.holder = False
        self.was_connected = False  # the current attempt got as far as connected
        prior = self.state.get_state(health_key(stream.name)) or {}
        self.health: dict[str, Any] = {
            "name": stream.name, "platform": stream.platform, "status": "starting", "connected_since": None,
            "last_event_at": None, "events_per_min": 0, "events": 0, "reconnects": int(prior.get("reconnects") or 0),
            "last_error": None, "posts": 0, "deletes": 0,
        }

    # --- health ---------------------------------------------------------------------------
    def _save_health(self, force: bool = False) -> None:
        now = time.monotonic()
        events = int(self.health["events"])
        every = HEALTH_EVERY if events != self._events_written else HEALTH_QUIET_EVERY
        if not force and now - self._written < every:
            return
        self._events_written = events
        while self._times and self._times[0] < now - 60:
            self._times.popleft()
        self.health["events_per_min"] = len(self._times)
        self.health["updated_at"] = utcnow().isoformat()
        self._written = now
        if not self.holder:
            return  # another instance holds the stream and reports its health
        try:
            self.state.set_state(health_key(self.stream.name), dict(self.health))
        except Exception:  # health is a report; never let it stop the stream
            log.exception("could not save the health of %s", self.stream.name)

    def _status(self, status: str, **fields: Any) -> None:
        self.health.update(status=status, **fields)
        self._save_health(force=True)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            with self.state.exclusive(f"stream:{self.stream.name}") as mine:
                self.holder = mine
                if not mine:
                    self._status("held by another instance", connected_since=None)
                    self.stop_event.wait(self.lock_retry)
                    continue
                self.was_connected = False
                try:
                    self.run_connection()
                    failures = 0
                except Exception as exc:  # a drop, a stall, a refusal, a bug: reconnect
                    # A drop of a working connection starts the back-off afresh (1 s); only
                    # failures to connect at all grow it (2 s, 4 s … BACKOFF_MAX).
                    failures = 1 if self.was_connected else failures + 1
                    error = exc if isinstance(exc, SourceError) else None
                    if error is None:
                        log.exception("stream %s failed unexpectedly", self.stream.name)
                    message = error.message if error else f"unexpected error: {type(exc).__name__}: {exc}"
                    wait = min(self.backoff_max, self.backoff_start * 2 ** (failures - 1))
                    if error is not None and error.retry_after:
                        wait = max(wait, error.retry_after)
                    if error is not None and not error.retryable:
                        # Needs an admin (or a plan): slowly, and no sooner than the source asks.
                        wait = max(self.backoff_max, error.retry_after or 0.0)
                    self.health["reconnects"] = int(self.health["reconnects"]) + 1
                    self._status("reconnecting", connected_since=None, last_error=message,
                                 last_error_at=utcnow().isoformat(),
                                 retry_at=(utcnow() + timedelta(seconds=wait)).isoformat())
                    log.warning("stream %s: %s; reconnecting in %.0f s (polling meanwhile)",
                                self.stream.name, message, wait)
                    self.stop_event.wait(wait)
                finally:
                    if self.stop_event.is_set():
                        self._status("stopped", connected_since=None)
                    self.holder = False

    def run_connection(self) -> None:
        cursor_key = f"cursor:{self.stream.name}"
        cursor = self.state.get_state(cursor_key)
        for batch in self.stream.events(cursor, self.stop_event):
            if batch.connected:
                self.was_connected = True
                self._status("connected", connected_since=utcnow().isoformat(), retry_at=None)
                continue
            self.store_batch(batch)
            if batch.cursor is not None:
                self.state.set_state(cursor_key, batch.cursor)  # after the posts are stored
            self._save_health()

    def store_batch(self, batch: StreamBatch) -> None:
        now = time.monotonic()
        for _ in range(batch.events):
            self._times.append(now)
        self.health["events"] = int(self.health["events"]) + batch.events
        if batch.events:
            self.health["last_event_at"] = utcnow().isoformat()
        queued = False
        platform = self.stream.platform
        for polled in sorted(batch.posts, key=lambda p: p.post.created_at):
            self.state.save_post_extras(polled.post.key, platform, polled.extras, ref=polled.ref)
            outcome = self.pipeline.ingest(polled.post, source=platform)
            if outcome.status in ("queued", "follow_up", "dropped"):
                self.svc.store.compliance.mark_live([polled.post.key], platform)
                self.health["posts"] = int(self.health["posts"]) + 1
            queued = queued or outcome.status in ("queued", "follow_up")
        if batch.deletes:
            purged = purge_deleted(self.svc.store, platform, batch.deletes)
            self.health["deletes"] = int(self.health["deletes"]) + len(purged)
        if queued and self.wake_delivery is not None:
            self.wake_delivery()


class StreamSupervisor:
    """Every configured stream, each in its own StreamRunner."""

    def __init__(self, services: Any, streams: list[Stream] | None = None,
                 wake_delivery: Callable[[], None] | None = None, **runner_options: Any) -> None:
        self.svc = services
        self.streams = streams if streams is not None else configured_streams(services)
        self.runners = [StreamRunner(s, services, wake_delivery=wake_delivery, **runner_options)
                        for s in self.streams]

    def start(self) -> None:
        for runner in self.runners:
            runner.start()

    def stop(self, timeout: float = 10.0) -> None:
        for runner in self.runners:
            runner.stop_event.set()
        for runner in self.runners:
            runner.stop(timeout)


def configured_streams(services: Any) -> list[Stream]:
    """The streams of the configured sources (a source offers them through `streams()`)."""
    found: list[Stream] = []
    for source in services.sources.values():
        make = getattr(source, "streams", None)
        if callable(make):
            found.extend(make(services.pipeline))
    return found


def stream_status(state: SourceState, names: list[str], now: datetime | None = None) -> list[dict[str, Any]]:
    """Health of each stream for `yorisoi poll --status` and the dashboard."""
    now = now or utcnow()
    rows = []
    for name in names:
        health = dict(state.get_state(health_key(name)) or {"name": name, "status": "never started"})
        health.setdefault("name", name)
        if health.get("status") == "connected" and not stream_covers(state, name, now):
            health["status"] = "stale (its process stopped reporting)"
        # While a stream is not connected its network's searches/timelines are polled.
        # (Held by another instance: that instance streams; this one reports nothing to fall back from.)
        health["fallback"] = None if health.get("status") in ("connected", "held by another instance") else "polling"
        rows.append(health)
    return rows
