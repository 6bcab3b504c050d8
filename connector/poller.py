"""The poller: every configured source's units on their own schedules, each with its own
back-off, so one failing network (or one failing feed) never stops the others.

One poll of one unit: load its cursor → `source.poll` → for every post (oldest first) keep
the module's extras and `pipeline.ingest` it (qualification, analysis, outbox: nothing is
bypassed) → save the new cursor → record health. The cursor is saved only after the posts are
stored, so a crash in between makes the next poll fetch them again, and `ingest` skips what is
already stored: a restart neither skips nor repeats a post.

Back-off: 429 waits as long as the network says (Retry-After / rate-limit reset); 5xx and
network errors wait 30 s, 60 s, 120 s … up to 1 h; an error that needs an admin (401/403, bad
configuration) waits 1 h. Platform compliance runs when it has not run for RECHECK_AFTER.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from connector.compliance import RECHECK_AFTER, ComplianceReport, run_compliance
from connector.db import Conflict, Unavailable, utcnow
from connector.ports import SourceState
from connector.sources import polling_sources
from connector.sources.base import PollingSource, SourceError
from connector.streaming import stream_covers

log = logging.getLogger(__name__)

BACKOFF_START = 30.0
BACKOFF_MAX = 3600.0
ADMIN_WAIT = 3600.0
#: A unit with more pages waiting is polled again this soon.
CATCH_UP_SECONDS = 5.0
#: A unit its stream covers is looked at again this soon (polling resumes if the stream drops).
STREAM_RECHECK = 30.0


@dataclass
class UnitReport:
    unit: str
    platform: str
    fetched: int = 0
    queued: int = 0
    follow_ups: int = 0
    dropped: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    failed: int = 0  # posts that could not be ingested (a bug, a validation error): logged, skipped
    error: str | None = None
    note: str | None = None
    next_poll_at: datetime | None = None
    backing_off: bool = False
    polled: bool = True  # False: not due (interval not passed, or backing off)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["next_poll_at"] = self.next_poll_at.isoformat() if self.next_poll_at else None
        return data


@dataclass
class PollReport:
    units: list[UnitReport] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)
    compliance: ComplianceReport | None = None
    status: Any = None  # ticket_status.SyncReport when the helpdesk status sweep ran

    def total(self, name: str) -> int:
        return sum(getattr(u, name) for u in self.units)


def backoff_seconds(failures: int, error: SourceError | None) -> float:
    if error is not None and error.retry_after is not None:
        return max(1.0, error.retry_after)
    if error is not None and not error.retryable:
        return ADMIN_WAIT
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, failures - 1))


class Poller:
    def __init__(self, services: Any, clock: Callable[[], datetime] = utcnow) -> None:
        self.svc = services
        self.store = services.store
        self.state: SourceState = services.store.sources
        self.pipeline = services.pipeline
        self.clock = clock
        self.sources: list[PollingSource] = polling_sources(services.sources)

    def schedule(self) -> list[tuple[PollingSource, str]]:
        return [(source, unit) for source in self.sources for unit in source.units()]

    def _due(self, unit: str, now: datetime, ignore_interval: bool) -> tuple[bool, datetime | None]:
        health = self.state.unit_health(unit)
        if not health or health["next_poll_at"] is None:
            return True, None
        if ignore_interval and not health["failures"]:
            return True, None
        return health["next_poll_at"] <= now, health["next_poll_at"]

    def poll_unit(self, source: PollingSource, unit: str) -> UnitReport:
        report = UnitReport(unit, source.platform)
        cursor_key = f"cursor:{unit}"
        try:
            result = source.poll(unit, self.state.get_state(cursor_key))
        except Exception as exc:  # one unit's failure never stops the others
            return self._failed(report, source, unit, exc)
        ordered = sorted(result.posts, key=lambda p: p.post.created_at)
        for polled in ordered:
            report.fetched += 1
            try:
                self.state.save_post_extras(polled.post.key, source.platform, polled.extras, ref=polled.ref)
                outcome = self.pipeline.ingest(polled.post, source=source.platform)
            except (Conflict, Unavailable):
                # The database, not the post: stop the unit without moving its cursor, so the
                # next poll fetches these posts again (`_poll_isolated` records the failure).
                raise
            except Exception:  # noqa: BLE001 - one post (a bug, a validation error) never stops the unit
                log.exception("poll of %s: post %s could not be ingested; skipped", unit, polled.post.key)
                report.failed += 1
                continue
            if outcome.status == "queued":
                report.queued += 1
            elif outcome.status == "follow_up":
                report.follow_ups += 1
            elif outcome.status == "dropped":
                report.dropped += 1
            elif outcome.status == "duplicate":
                report.duplicates += 1
            else:
                report.rejected += 1
            if outcome.status in ("queued", "follow_up", "dropped"):
                # Just fetched, so it exists now: compliance asks again after RECHECK_AFTER.
                self.store.compliance.mark_live([polled.post.key], source.platform)
        self.state.set_state(cursor_key, result.cursor)
        report.skipped = result.skipped
        report.note = result.note
        wait = source.interval
        adaptive = getattr(source, "next_interval", None)
        if callable(adaptive):  # X: tighter while a brand is active, looser when quiet
            try:
                wait = adaptive(unit, qualifying=report.queued + report.follow_ups, storm=self._spike_on())
            except Exception:  # noqa: BLE001 - the interval is a tuning; the base interval is safe
                log.exception("adaptive interval of %s failed; using %s s", unit, source.interval)
        if not result.done:
            wait = min(wait, CATCH_UP_SECONDS)
        report.next_poll_at = self.clock() + timedelta(seconds=wait)
        self.state.record_poll(unit, source.platform, ok=True, next_poll_at=report.next_poll_at,
                               count=report.fetched, note=result.note)
        return report

    def _spike_on(self) -> bool:
        """Whether a spike alert is open on any watched brand (a storm is under way)."""
        watch = getattr(self.svc, "watch", None)
        return any(self.store.storms.active_alert(brand.name) for brand in (watch.brands if watch else []))

    def _failed(self, report: UnitReport, source: PollingSource, unit: str, exc: Exception) -> UnitReport:
        """Record a failed poll of `unit` (the cursor is not moved) and back it off."""
        error = exc if isinstance(exc, SourceError) else None
        if error is None:
            log.exception("poll of %s failed unexpectedly", unit)
        message = error.message if error else f"unexpected error: {type(exc).__name__}: {exc}"
        failures = (self.state.unit_health(unit) or {}).get("failures", 0) + 1
        wait = backoff_seconds(failures, error if error else SourceError(message, retryable=True))
        report.error = message
        report.next_poll_at = self.clock() + timedelta(seconds=wait)
        self.state.set_next_poll(unit, source.platform, report.next_poll_at, error=message)
        log.warning("poll of %s failed (%s); next try in %.0f s", unit, message, wait)
        return report

    def _poll_isolated(self, source: PollingSource, unit: str) -> UnitReport:
        """`poll_unit`, but whatever goes wrong inside it (a post the pipeline cannot take, a
        bug, the database) fails this unit alone: the other units and the compliance step run.
        The cursor is saved only after the posts are stored, so the unit retries them."""
        try:
            return self.poll_unit(source, unit)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            report = UnitReport(unit, source.platform)
            try:
                return self._failed(report, source, unit, exc)
            except Exception:  # noqa: BLE001 - recording failed too (database down): still go on
                log.exception("could not record the failure of %s", unit)
                report.error = f"unexpected error: {type(exc).__name__}: {exc}"
                return report

    def run_once(self, *, ignore_interval: bool = True, compliance: bool | None = None) -> PollReport:
        """Poll every due unit once. `ignore_interval`: poll even units whose interval has not
        passed (`yorisoi poll --once` from cron), but never one that is backing off."""
        report = PollReport()
        now = self.clock()
        try:
            schedule = self.schedule()
        except Exception:  # noqa: BLE001 - a source that cannot list its units never stops compliance
            log.exception("could not list the units to poll")
            schedule = []
        for source, unit in schedule:
            try:
                self._poll_due_unit(source, unit, now, ignore_interval, report)
            except Exception as exc:  # noqa: BLE001 - the lock or health read failed (database): next unit
                log.exception("poll of %s could not start", unit)
                report.units.append(UnitReport(unit, source.platform, polled=False,
                                               error=f"unexpected error: {type(exc).__name__}: {exc}"))
        # Compliance (X's 24-hour deletion rule) keeps its own schedule whatever the units did.
        try:
            if compliance or (compliance is None and self.compliance_due()):
                with self.state.exclusive("compliance") as mine:
                    if mine and (compliance or self.compliance_due()):
                        report.compliance = self.run_compliance()
        except Exception:  # noqa: BLE001 - the next pass tries again (compliance:last_run not moved)
            log.exception("compliance step failed")
        from connector.ticket_status import sweep_due, sync_status
        if sweep_due(self.store, self.svc.helpdesk, self.clock):
            with self.state.exclusive("helpdesk_status") as mine:
                if mine and sweep_due(self.store, self.svc.helpdesk, self.clock):
                    report.status = sync_status(self.store, self.svc.helpdesk, clock=self.clock)
        for source in self.sources:
            line = source.usage()
            if line:
                report.usage.append(line)
        return report

    def _poll_due_unit(self, source: PollingSource, unit: str, now: datetime, ignore_interval: bool,
                       report: PollReport) -> None:
        # Several `yorisoi poll`/`serve --poll` instances may share a PostgreSQL database:
        # each unit is polled by one of them at a time (an advisory lock), and whether it
        # is due is read after taking the lock, so a unit another instance has just polled
        # is not polled again (its cursor and next_poll_at were saved before it let go).
        with self.state.exclusive(f"poll:{unit}") as mine:
            if not mine:
                report.units.append(UnitReport(unit, source.platform, polled=False,
                                               note="being polled by another instance"))
                return
            stream_for = getattr(source, "stream_for", None)
            stream = stream_for(unit) if callable(stream_for) else None
            if stream and not ignore_interval and stream_covers(self.state, stream, now):
                # Its stream delivers this network now; polling resumes when it is down.
                report.units.append(UnitReport(unit, source.platform, polled=False,
                                               note=f"streamed ({stream} connected)"))
                return
            due, next_at = self._due(unit, now, ignore_interval)
            if not due:
                health = self.state.unit_health(unit) or {}
                report.units.append(UnitReport(unit, source.platform, next_poll_at=next_at,
                                               error=health.get("last_error"),
                                               backing_off=bool(health.get("failures")), polled=False))
                return
            report.units.append(self._poll_isolated(source, unit))

    def compliance_due(self) -> bool:
        last = self.state.get_state("compliance:last_run")
        if not last:
            return True
        return datetime.fromisoformat(last) <= self.clock() - RECHECK_AFTER

    def run_compliance(self, recheck_after: timedelta = RECHECK_AFTER) -> ComplianceReport:
        result = run_compliance(self.store, self.svc.sources, self.svc.helpdesk, clock=self.clock,
                                recheck_after=recheck_after)
        self.state.set_state("compliance:last_run", self.clock().isoformat())
        return result

    def seconds_until_next(self) -> float:
        now = self.clock()
        waits = []
        for source, unit in self.schedule():
            stream_for = getattr(source, "stream_for", None)
            stream = stream_for(unit) if callable(stream_for) else None
            if stream and stream_covers(self.state, stream, now):
                waits.append(STREAM_RECHECK)  # streamed: look again soon in case it drops
                continue
            health = self.state.unit_health(unit)
            if not health or health["next_poll_at"] is None:
                return 0.0
            waits.append((health["next_poll_at"] - now).total_seconds())
        return max(0.0, min(waits)) if waits else 60.0


class PollerThread(threading.Thread):
    """Runs the poller until stopped (`yorisoi poll`, or in-process with `yorisoi serve --poll`)."""

    def __init__(self, poller: Poller, on_pass: Callable[[PollReport], None] | None = None,
                 wake_delivery: Callable[[], None] | None = None) -> None:
        super().__init__(name="yorisoi-poller", daemon=True)
        self.poller = poller
        self.on_pass = on_pass
        self.wake_delivery = wake_delivery
        self._stop_event = threading.Event()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                report = self.poller.run_once(ignore_interval=False)
                if self.on_pass and any(u.fetched or u.error for u in report.units):
                    self.on_pass(report)
                if self.wake_delivery and report.total("queued") + report.total("follow_ups"):
                    self.wake_delivery()
                wait = min(60.0, max(1.0, self.poller.seconds_until_next()))
            except Exception:  # the poller must outlive a bad pass (database locked, bug)
                log.exception("poll pass failed; retrying in 30 s")
                wait = 30.0
            self._stop_event.wait(wait)
