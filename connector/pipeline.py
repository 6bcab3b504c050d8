"""The one path a post travels: validate → qualify → analyse → record (+ outbox) → deliver.

Crash-safe by construction. `ingest` writes the post, its decision, its analysis and its
outbox row in one transaction; `deliver` marks an outbox row `sending` (a committed claim)
before it calls the helpdesk and `done` after, and a row that was ever attempted is looked
up in the helpdesk by external id before it is sent again. So a crash or an error between
any two steps neither loses the post nor makes a second ticket.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from pydantic import ValidationError

from connector.analysis import DEFAULT_CONFIDENCE, LabelModel, SentimentModel, analyse
from connector.db import Conflict, utcnow, worker_id
from connector.db.outbox import BULK_CLAIM_SUFFIX, OutboxItem
from connector.db.posts import PostRecord, Promotion
from connector.helpdesks.base import (
    Helpdesk,
    HelpdeskError,
    TicketClosed,
    TicketDraft,
    streams_bulk,
    supports_bulk,
)
from connector.helpdesks.deadline import within
from connector.models import Analysis, CountedEchoes, Decision, Post, TicketRef
from connector.ports import PipelineStorage
from connector.qualify import Qualifier, echo_decision, echo_refs, echo_waiting_reason, may_echo
from connector.ticket_format import follow_up_comment, ticket_draft
from connector.topics import complaint_topics
from connector.watch import WatchConfig

log = logging.getLogger(__name__)

#: How long a claimed outbox row stays reserved for its worker before another may take it.
DELIVERY_LEASE = timedelta(seconds=120)
#: Helpdesk calls for a claimed row end this long before its lease (recording the result and
#: the database's own lock timeout fit in it).
LEASE_MARGIN_SECONDS = 30.0
#: Retry delays when the helpdesk gives no Retry-After: 2, 4, 8 … seconds, at most 10 minutes.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0
#: Lease of rows handed to a helpdesk bulk job. A job may still run in the helpdesk after we
#: crash or stop polling, so its rows are not looked up (and maybe re-sent) before this
#: horizon: Zendesk runs queued jobs within minutes and keeps their status for an hour.
BULK_LEASE = timedelta(hours=1)
#: Rows one delivery pass claims. Small, so that several instances (or worker threads) share
#: a backlog instead of one claiming all of it; each claim is one short transaction.
DELIVERY_BATCH = 10
#: Posts of these priorities are delivered one by one, ahead of everything else and outside
#: bulk jobs, so an urgent post does not wait behind a storm's echoes. Only `urgent`: a storm's
#: complaints are mostly `high`, and those are what bulk jobs are for. Unless the urgent posts
#: are a storm themselves (the helpdesk's bulk threshold of them waiting): one by one, three
#: calls each, they spent Zendesk's request budget and every delivery paused until the next
#: minute (2,000 posts took 4 minutes instead of 10 s); bulk jobs then take them too.
PRIORITY_LANE = ("urgent",)
#: How long one streaming bulk run keeps taking newly due rows into its jobs before it lets the
#: worker's pass go on (retries, follow-up comments, storm tickets); then a new run starts.
BULK_SESSION_SECONDS = 30.0
#: The same for the delivery worker's bulk lane, which has a thread of its own (the other duties
#: never wait for it): a run ends only when the storm does, or after this long. Each end costs a
#: gap — the run's last jobs are waited for before a new run takes the rows that came meanwhile —
#: which with 30 s sessions put ~10 s on the posts of every half minute of a storm (issue 17).
BULK_STREAM_MAX_SECONDS = 600.0
#: A streaming run keeps taking new posts while they come at least this fast (posts per second,
#: counted over BULK_STREAM_WINDOW seconds), even when the backlog is below the threshold: the
#: run keeps the backlog small, so the threshold alone would end it at once, one by one would
#: fall behind, the backlog would grow back to the threshold, and so on — each turn adding a
#: backlog's wait (issue 17 storm: p50 20 s). Slower than that, one by one keeps up (~2 posts/s
#: on one thread, 3 calls of ~0.15 s each) and answers in under a second.
BULK_STREAM_MIN_RATE = 3.0
BULK_STREAM_WINDOW = 10.0
#: Posts stored per transaction by `ingest_lines` (replay files, the demo feed).
INGEST_BATCH = 200


class PostRejected(ValueError):
    """A post that does not fit the normalized shape; `field` names the bad field."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


def parse_post(raw: Any) -> Post:
    """Validate one normalized post (a dict, or JSON text). Raises PostRejected."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PostRejected(None, f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PostRejected(None, f"a post must be a JSON object, not {type(raw).__name__}")
    try:
        return Post.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"]
        if len(exc.errors()) > 1:
            message += f" (and {len(exc.errors()) - 1} more problem(s))"
        raise PostRejected(where, message) from None


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one incoming post."""

    key: str | None
    status: str  # queued | follow_up | dropped | duplicate | rejected
    reasons: tuple[str, ...] = ()
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"post": self.key, "status": self.status, "reasons": list(self.reasons)}
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class DeliveryReport:
    created: int = 0
    commented: int = 0
    retried: int = 0
    failed: int = 0
    stopped: str | None = None  # why a pass stopped early (auth error, rate limit)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: "DeliveryReport") -> None:
        self.created += other.created
        self.commented += other.commented
        self.retried += other.retried
        self.failed += other.failed
        self.stopped = other.stopped or self.stopped
        self.errors.extend(other.errors)


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return max(0.0, retry_after)
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS ** max(1, attempts))


class StormHooks(Protocol):
    """What the pipeline asks of public storms (connector/storms.py `Storms`)."""

    def fingerprints(self, items: Sequence[tuple[Post, Decision, Analysis | None]]) -> Mapping[str, Any]: ...
    def observe_batch(self, conn: Any, items: Sequence[tuple[Post, Decision, Analysis | None]],
                      fingerprints: Mapping[str, Any] | None = None) -> CountedEchoes: ...
    def echo_parent(self, post: Post, batch: Mapping[str, tuple[str, int | None]] | None = None) -> EchoParent | None: ...
    def voice_reason(self, post: Post, analysis: Analysis) -> str | None: ...
    def shape(self, post_key: str, draft: TicketDraft) -> TicketDraft: ...
    def deliver(self, helpdesk: Any) -> StormErrors: ...


class EchoParent(Protocol):
    """The storm member a bare reply or quote answers (connector/storms.py `EchoParent`)."""

    @property
    def how(self) -> str: ...
    @property
    def parent_key(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def storm_id(self) -> int | None: ...


class StormErrors(Protocol):
    @property
    def errors(self) -> list[dict[str, Any]]: ...


class Pipeline:
    def __init__(self, store: PipelineStorage, watch: WatchConfig, helpdesk: Helpdesk,
                 clock: Callable[[], datetime] = utcnow, model: SentimentModel | LabelModel | None = None,
                 storms: StormHooks | None = None, confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.store = store
        self.model = model  # the label model (shipped or YORISOI_MODEL_DIR), or None: lexicon and rules
        self.confidence = confidence  # below it a model's label is 「要確認 / please check」
        self.watch = watch
        self.qualifier = Qualifier(watch)
        self.helpdesk = helpdesk
        self.clock = clock
        # Public storms (connector/storms.py): given by Services; None in bare tests.
        self.storms = storms
        #: Called after an ingest committed something to deliver (the delivery worker's wake-up),
        #: so a qualifying post reaches the helpdesk at once instead of at the next idle poll.
        self.on_commit: list[Callable[[], None]] = []
        #: True while a streaming bulk run (the bulk lane) takes new posts: the other passes then
        #: leave never-attempted creates to it, whatever the backlog (see BULK_STREAM_MIN_RATE).
        self.bulk_streaming = False

    def _committed(self, outcomes: Iterable["IngestOutcome"], *, promoted: bool = False) -> None:
        """Wake the delivery workers when the commit left them work: a post of its own, or an
        echo stored earlier that qualified in it (`promoted`)."""
        if promoted or any(o.status in ("queued", "follow_up") for o in outcomes):
            for wake in self.on_commit:
                try:
                    wake()
                except Exception:  # a wake-up is a hint; the idle poll still finds the row
                    log.exception("delivery wake-up failed")

    # Set by a 429 Retry-After: the helpdesk refuses every call until then, so no pass calls it
    # before (each further call would only be refused and count against us). Kept in the store,
    # so that every connector instance sharing the database holds back, not only this one.
    @property
    def paused_until(self) -> datetime | None:
        return self.store.outbox.delivery_paused_until(self.helpdesk.name)

    def pause(self, seconds: float, reason: str) -> None:
        self.store.outbox.pause_delivery(self.helpdesk.name, self.clock() + timedelta(seconds=seconds), reason)

    # --- ingest -----------------------------------------------------------------------
    def ingest_raw(self, raw: Any, source: str) -> IngestOutcome:
        try:
            post = parse_post(raw)
        except PostRejected as exc:
            return IngestOutcome(None, "rejected", error=exc.as_dict())
        return self.ingest(post, source)

    def ingest(self, post: Post, source: str) -> IngestOutcome:
        if self.store.posts.post_exists(post.key):
            return IngestOutcome(post.key, "duplicate", ("already stored",))
        thread = self.store.posts.find_thread_ticket(post)
        decision = self.qualifier.decide(post, *(thread or (None, None)))
        analysis = (analyse(post, self.watch.priority, now=self.clock(), model=self.model, confidence=self.confidence)
                    if decision.qualified else None)
        if may_echo(post, decision) and self.storms is not None:
            decision, analysis = self._echo(post, decision, {})
        ticket_post_key = thread[0] if (thread and decision.qualified) else None
        counted = CountedEchoes()
        group = self._grouping([(post, decision, analysis)] if not ticket_post_key else [], counted)
        if not self.store.posts.record_post(post, decision, analysis, source=source, ticket_post_key=ticket_post_key,
                                            topics=self._topics(post, decision, analysis), then=group):
            return IngestOutcome(post.key, "duplicate", ("already stored",))  # lost a race: fine
        reasons = counted.get(post.key, decision.reasons)
        if not decision.qualified and post.key not in counted.voices:
            self._committed([], promoted=bool(counted.voices))
            return IngestOutcome(post.key, "dropped", reasons)
        outcome = IngestOutcome(post.key, "follow_up" if ticket_post_key else "queued", reasons)
        self._committed([outcome])
        return outcome

    def ingest_many(self, raws: Iterable[Any], source: str) -> list[IngestOutcome]:
        """Ingest a batch (a webhook call, a chunk of a replay file) in one transaction.

        The same decisions as `ingest` post by post, with fewer round-trips: one query finds
        the posts already stored, the thread lookup runs only for posts that reply to
        something (and sees the batch's own earlier posts), and everything is written in one
        transaction — so a failure (database locked, disk full) stores none of the batch and
        the caller can answer "not done". If another instance stored one of the posts in the
        meantime, the batch falls back to `ingest` one by one (which skips that one).
        """
        outcomes: list[IngestOutcome | None] = []
        parsed: list[tuple[int, Post]] = []
        for raw in raws:
            try:
                post = raw if isinstance(raw, Post) else parse_post(raw)
            except PostRejected as exc:
                outcomes.append(IngestOutcome(None, "rejected", error=exc.as_dict()))
                continue
            parsed.append((len(outcomes), post))
            outcomes.append(None)
        stored = self.store.posts.existing_keys(list(dict.fromkeys(post.key for _, post in parsed)))
        seen: set[str] = set()
        # Qualifying posts of this batch, as find_thread_ticket would find them once stored:
        # (author key, post key) and (author key, platform, conversation id) → (ticket post, brand)
        by_key: dict[tuple[str, str], tuple[str, str | None]] = {}
        by_conversation: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        # Posts of this batch that will be storm members once grouped (key → brand, storm id if
        # known): a bare reply to one of them is its echo, as if the parent were stored already.
        members: dict[str, tuple[str, int | None]] = {}
        records: list[PostRecord] = []
        for index, post in parsed:
            if post.key in stored or post.key in seen:
                outcomes[index] = IngestOutcome(post.key, "duplicate", ("already stored",))
                continue
            seen.add(post.key)
            author_key = f"{post.platform}:{post.author.id}"
            refs = [r for r in (post.in_reply_to, post.conversation_id) if r]
            thread = None
            if refs:
                thread = self.store.posts.find_thread_ticket(post)  # earlier, stored posts come first
                for ref in refs if thread is None else ():
                    thread = by_key.get((author_key, f"{post.platform}:{ref}")) or \
                        by_conversation.get((author_key, post.platform, ref))
                    if thread:
                        break
            decision = self.qualifier.decide(post, *(thread or (None, None)))
            analysis = (analyse(post, self.watch.priority, now=self.clock(), model=self.model, confidence=self.confidence)
                        if decision.qualified else None)
            if may_echo(post, decision) and self.storms is not None:
                decision, analysis = self._echo(post, decision, members)
            ticket_post_key = thread[0] if (thread and decision.qualified) else None
            records.append(PostRecord(post, decision, analysis, ticket_post_key,
                                      self._topics(post, decision, analysis)))
            if decision.brand is not None and not ticket_post_key and (decision.qualified or decision.echo_of):
                members[post.key] = (decision.brand, None)
            if decision.qualified:
                target = (ticket_post_key or post.key, decision.brand)  # as the stored row would answer
                by_key.setdefault((author_key, post.key), target)
                if post.conversation_id:
                    by_conversation.setdefault((author_key, post.platform, post.conversation_id), target)
            status = ("follow_up" if ticket_post_key else "queued") if decision.qualified else "dropped"
            outcomes[index] = IngestOutcome(post.key, status, decision.reasons)
        counted = CountedEchoes()
        group = self._grouping([(r.post, r.decision, r.analysis) for r in records if not r.ticket_post_key], counted)
        try:
            self.store.posts.record_posts(records, source=source, then=group)
        except Conflict:
            # Another instance stored one of them meanwhile: nothing of the batch was written.
            log.info("a post of the batch was stored meanwhile by another instance; ingesting one by one")
            redo = {record.post.key: self.ingest(record.post, source) for record in records}
            return [redo.get(o.key or "", o) if o.status != "duplicate" else o
                    for o in outcomes if o is not None]
        done = [o if o is None or o.key is None or o.key not in counted else
                IngestOutcome(o.key, "queued" if o.key in counted.voices else o.status, counted[o.key], o.error)
                for o in outcomes]
        final = [o for o in done if o is not None]
        self._committed(final, promoted=bool(counted.voices))
        return final

    def _echo(self, post: Post, decision: Decision,
              members: Mapping[str, tuple[str, int | None]]) -> tuple[Decision, Analysis | None]:
        """A post that names no brand but replies to or quotes another: a storm's echo when
        that post is a storm member (a ticket of its own only for a voice), else an echo
        candidate that the storm grouping keeps waiting for its parent. Analysed either way:
        its labels decide whether its author is a voice, and count in the storm's sentiment."""
        assert self.storms is not None
        parent = self.storms.echo_parent(post, members)
        excluded = self.qualifier.echo_exclusions(post, parent.brand if parent is not None else None)
        if excluded:
            return Decision(False, None, decision.reasons + tuple(excluded)), None
        analysis = analyse(post, self.watch.priority, now=self.clock(), model=self.model, confidence=self.confidence)
        if parent is None:
            refs = echo_refs(post)
            return Decision(False, None, decision.reasons + tuple(echo_waiting_reason(how, key) for how, key in refs),
                            echo_of=refs[0][1]), analysis
        voice = self.storms.voice_reason(post, analysis)
        return echo_decision(decision, parent.brand, parent.storm_id, parent.how, parent.parent_key, voice), analysis

    def _topics(self, post: Post, decision: Decision, analysis: Analysis | None) -> list[str]:
        # An echo without a ticket is analysed only to weigh it in its storm; its topics (if
        # any: 「私も」 has none) are not what customers complain about in their own words.
        return complaint_topics(post, analysis, self.watch) if decision.qualified else []

    def _grouping(self, items: list[tuple[Post, Decision, Analysis | None]],
                  counted: CountedEchoes) -> Callable[[Any], list[Promotion]] | None:
        """The storm grouping of these posts, to run inside the transaction that stores them:
        a post is stored with its place in a storm or not at all, so a failure there (a lock,
        a full disk) is the ingest's failure — "not done", and the resend groups it. `counted`
        receives the final reasons of the echoes counted in (by post key) and the voices among
        them that qualify now; the grouping returns those as `Promotion`s for the store."""
        storms = self.storms
        chosen = [item for item in items if item[1].qualified or item[1].echo_of is not None]
        if storms is None or not chosen:
            return None

        # Pure work first, outside the transaction: under the brand lock it made instances
        # ingesting the same brand take turns (issue 17).
        fingerprints = storms.fingerprints(chosen)

        def group(conn: Any) -> list[Promotion]:
            counted.clear()  # a transaction tried again starts over
            found = storms.observe_batch(conn, chosen, fingerprints)
            counted.update(found)
            counted.voices.update(found.voices)
            return self._promotions(conn, counted)
        return group

    def _promotions(self, conn: Any, counted: CountedEchoes) -> list[Promotion]:
        """The voices counted into a storm that were stored without a ticket (they waited for
        their parent): each qualifies now, as it would have had its parent come first. A
        waiting echo was stored without a brand (its decision names none)."""
        if not counted.voices:
            return []
        loaded = self.store.posts.load_posts(list(counted.voices), conn=conn)
        promoted = []
        for key, (brand, before) in counted.voices.items():
            found = loaded.get(key)
            if found is None or found[1].qualified:
                continue
            post, _, analysis = found
            after = Decision(True, brand, counted[key])
            promoted.append(Promotion(post, Decision(False, None, before), after, analysis,
                                      self._topics(post, after, analysis)))
        for key in set(counted.voices) - {p.post.key for p in promoted}:
            del counted.voices[key]
        return promoted

    # --- deliver ----------------------------------------------------------------------
    def deliver(self, limit: int = DELIVERY_BATCH, *, bulk: bool = True) -> DeliveryReport:
        """One pass over the due outbox rows. Safe to run in several workers at once.

        `bulk=False`: leave bulk jobs to another thread (`deliver_bulk`, the delivery worker's
        bulk lane) — this pass then also leaves it the new tickets bulk is wanted for."""
        report = DeliveryReport()
        now = self.clock()
        if self._paused(now, report):
            return report
        # The priority lane first: urgent posts one by one, before any bulk job.
        self._deliver_priority_lane(limit, now, report)
        if report.stopped:
            return report
        if self.storms is not None:
            self._deliver_storms(self.storms, report)
        bulk_now = self._bulk_wanted(now)
        if bulk_now and bulk:
            self._deliver_bulk(report)
            if report.stopped:
                return report
        # While bulk is wanted and another thread runs it, new tickets wait for it; while the
        # helpdesk prefers bulk (an endpoint budget nearly spent), they wait for the next bulk
        # run instead of spending the rest of that budget one by one.
        skip_fresh = (bulk_now or self.bulk_streaming) and (not bulk or self._prefers_bulk())
        self._deliver_claimed(self.store.outbox.claim_due(limit, DELIVERY_LEASE, now=now,
                                                          skip_fresh_creates=skip_fresh), report)
        return report

    def deliver_bulk(self) -> DeliveryReport:
        """Only bulk jobs, when wanted (the delivery worker's bulk lane runs it in its own
        thread, so one-by-one rows and urgent posts never wait for a job)."""
        report = DeliveryReport()
        now = self.clock()
        if not self._paused(now, report) and self._bulk_wanted(now):
            self._deliver_bulk(report, session_seconds=BULK_STREAM_MAX_SECONDS)
        return report

    def _prefers_bulk(self) -> bool:
        prefers = getattr(self.helpdesk, "prefers_bulk", None)
        return bool(prefers()) if callable(prefers) else False

    def _bulk_wanted(self, now: datetime) -> bool:
        """New tickets go through bulk jobs: the backlog reached the helpdesk's threshold, or
        the helpdesk prefers bulk now (Zendesk: its Update Ticket budget is nearly spent)."""
        return supports_bulk(self.helpdesk) and (self._prefers_bulk() or self._fresh_creates_reach_threshold(now))

    def _fresh_creates_reach_threshold(self, now: datetime, priorities: Sequence[str] | None = None) -> bool:
        """As many never-attempted tickets wait (of these priorities) as the helpdesk's bulk
        threshold: one by one would be slower than a bulk job."""
        threshold: int = self.helpdesk.bulk_threshold  # type: ignore[attr-defined]
        return self.store.outbox.count_due("create", fresh_only=True, now=now, priorities=priorities) >= threshold

    def deliver_priority(self, limit: int = DELIVERY_BATCH) -> DeliveryReport:
        """Only the priority lane (urgent posts), one by one. The delivery worker runs it
        in its own thread, so such a post is sent while a bulk job for a storm is still running."""
        report = DeliveryReport()
        now = self.clock()
        if not self._paused(now, report):
            self._deliver_priority_lane(limit, now, report)
        return report

    def _paused(self, now: datetime, report: DeliveryReport) -> bool:
        """The helpdesk asked us to wait (429 Retry-After): the report says until when."""
        paused_until = self.paused_until
        if paused_until is not None and now < paused_until:
            report.stopped = f"helpdesk asked us to wait until {paused_until.isoformat()}"
            return True
        return False

    def _deliver_priority_lane(self, limit: int, now: datetime, report: DeliveryReport) -> None:
        self._deliver_claimed(self.store.outbox.claim_due(limit, DELIVERY_LEASE, now=now, priorities=PRIORITY_LANE,
                                                          skip_fresh_creates=self._urgent_in_bulk(now)), report)

    def _urgent_in_bulk(self, now: datetime) -> bool:
        """So many urgent posts wait for their ticket (the helpdesk's bulk threshold) that bulk
        jobs take them too: see PRIORITY_LANE."""
        return supports_bulk(self.helpdesk) and self._fresh_creates_reach_threshold(now, PRIORITY_LANE)

    def _deliver_claimed(self, claimed: list[OutboxItem], report: DeliveryReport) -> None:
        claimed_at = time.monotonic()
        for index, item in enumerate(claimed):
            try:
                # Every helpdesk call for this row ends before its lease does (a trickled
                # answer would otherwise outlive it and another worker send the row again).
                budget = DELIVERY_LEASE.total_seconds() - LEASE_MARGIN_SECONDS - (time.monotonic() - claimed_at)
                if budget <= 0:
                    self.store.outbox.release_claims([rest.id for rest in claimed[index:]])
                    break
                with within(budget):
                    self._deliver_one(item, report)
            except HelpdeskError as exc:
                self._record_helpdesk_error(item, exc, report)
                if exc.stop_delivery or exc.retry_after is not None:
                    # Every further call would fail the same way (bad credentials) or be
                    # refused (rate limit): hand the rest of the claimed rows back untouched.
                    report.stopped = exc.message
                    if exc.retry_after is not None:
                        self.pause(exc.retry_after, exc.message)
                    self.store.outbox.release_claims([rest.id for rest in claimed[index + 1:]])
                    break
            except Exception as exc:  # an unknown outcome: the next attempt looks up first
                log.exception("delivery of %s failed unexpectedly", item.post_key)
                self.store.outbox.mark_retry(item, f"unexpected error: {exc}", self._retry_at(item.attempts, None))
                report.retried += 1
                report.errors.append({"post": item.post_key, "stage": "deliver", "message": str(exc)})

    def _deliver_one(self, item: OutboxItem, report: DeliveryReport) -> None:
        loaded = self.store.posts.load_post(item.post_key)
        if loaded is None:  # cannot happen with foreign keys; never crash the worker on it
            self.store.outbox.mark_failed(item, "post is missing from the store")
            report.failed += 1
            return
        post, decision, analysis = loaded
        if item.kind == "create":
            if analysis is None:
                analysis = analyse(post, self.watch.priority, now=self.clock(), model=self.model, confidence=self.confidence)
            draft = ticket_draft(post, decision, analysis)
            if self.storms is not None:
                draft = self.storms.shape(item.post_key, draft)
            ref = self.store.outbox.ticket_for(item.post_key)
            if ref is None and item.attempts > 1:
                # An earlier attempt may have reached the helpdesk before we crashed or timed
                # out: look before sending again, so a retry never makes a second ticket.
                ref = self.helpdesk.find_ticket(draft.external_id)
                if ref is not None:
                    # It may have stopped between opening the ticket and adding the note.
                    self._ensure_note(ref, draft)
            if ref is None:
                ref = self.helpdesk.create_ticket(draft)
                if item.attempts > 1:
                    ref = self._reconciled(draft.external_id, ref)
            if not self.store.outbox.mark_created(item, ref, external_id=draft.external_id, subject=draft.subject,
                                                  priority=draft.priority, tags=draft.tags):
                log.warning("outbox row %s: lease lost while creating ticket %s; another worker owns it", item.id,
                            ref.ticket_id)
            report.created += 1
            log.debug("ticket %s created for %s", ref.ticket_id, item.post_key)
            return
        parent_key, parent = self.store.outbox.conversation_ticket(item.ticket_post_key)
        if parent is None:
            # The conversation's ticket is not created yet (or failed): wait for it.
            self.store.outbox.mark_retry(item, f"waiting for the ticket of {item.ticket_post_key}",
                                  self._retry_at(item.attempts, None))
            report.retried += 1
            return
        comment = follow_up_comment(post, analysis)
        try:
            if not (item.attempts > 1 and self.helpdesk.has_comment(parent, comment.dedupe_key)):
                self.helpdesk.add_comment(parent, comment)
        except TicketClosed:
            create_followup = getattr(self.helpdesk, "create_followup", None)
            if create_followup is None:
                raise
            self._open_followup(item, parent_key, parent, create_followup, report)
            return
        if not self.store.outbox.mark_commented(item):
            log.warning("outbox row %s: lease lost while commenting; another worker owns it", item.id)
        report.commented += 1

    def _open_followup(self, item: OutboxItem, parent_key: str, closed: TicketRef,
                       create_followup: Callable[[TicketRef, TicketDraft], TicketRef], report: DeliveryReport) -> None:
        """The conversation's ticket is closed for good: this post gets its own follow-up
        ticket, recorded as its ticket, and the conversation goes on there."""
        loaded = self.store.posts.load_post(item.post_key)
        assert loaded is not None  # _deliver_one loaded it a moment ago
        post, decision, analysis = loaded
        if analysis is None:
            analysis = analyse(post, self.watch.priority, now=self.clock(), model=self.model, confidence=self.confidence)
        draft = ticket_draft(post, decision, analysis)
        ref = self.helpdesk.find_ticket(draft.external_id) if item.attempts > 1 else None
        if ref is None:
            ref = create_followup(closed, draft)
        self.store.outbox.mark_created(item, ref, external_id=draft.external_id, subject=draft.subject,
                                       priority=draft.priority, tags=draft.tags)
        self.store.outbox.record_followup(parent_key, item.post_key)
        report.created += 1
        log.info("ticket %s is closed: follow-up ticket %s opened for %s", closed.ticket_id, ref.ticket_id,
                 item.post_key)

    def _reconciled(self, external_id: str, ref: TicketRef) -> TicketRef:
        """After a resend: if the earlier attempt's ticket landed after all (processed later
        than any lookup could see), the helpdesk keeps the oldest and closes the others as
        duplicates; the kept one is the ticket we record."""
        reconcile = getattr(self.helpdesk, "reconcile_duplicates", None)
        if reconcile is None:
            return ref
        try:
            kept = reconcile(external_id)
        except HelpdeskError as exc:  # the ticket exists: record it; a later lookup reconciles
            log.warning("could not check %s for duplicate tickets: %s", external_id, exc.message)
            return ref
        return kept or ref

    def _ensure_note(self, ref: TicketRef, draft: TicketDraft) -> None:
        """Add the analysis note unless the ticket already has it (exactly once)."""
        if not self.helpdesk.has_comment(ref, draft.note_key):
            self.helpdesk.add_comment(ref, draft.note_comment())

    def _deliver_bulk(self, report: DeliveryReport, session_seconds: float = BULK_SESSION_SECONDS) -> None:
        """Open many never-attempted tickets through the helpdesk's bulk capability.

        Same proof as one by one: the rows are claimed (committed) before anything is sent,
        with a lease as long as a bulk job may run (BULK_LEASE) and a claim that a restart
        does not hand back early; a row whose outcome stays unknown is retried no sooner than
        that horizon and then, having attempts > 1, goes the one-by-one way: lookup first.

        A helpdesk that streams (`more` / `on_result`, Zendesk) is fed rows that become due
        while its jobs run, for up to `session_seconds`, and each row is recorded as soon
        as its own jobs end — so a storm's posts do not wait for the whole backlog's last job.
        Once started, such a run goes on taking new posts while they keep coming at
        BULK_STREAM_MIN_RATE or faster, below the threshold too (`bulk_streaming`).
        """
        helpdesk: Any = self.helpdesk
        items: list[OutboxItem] = []
        drafts: list[TicketDraft] = []
        recorded: set[int] = set()
        session_ends = time.monotonic() + session_seconds
        fed: list[tuple[float, int]] = []  # (monotonic time, rows claimed) of this run's claims

        def claim(limit: int) -> list[TicketDraft]:
            now = self.clock()
            claimed = self.store.outbox.claim_due(limit, BULK_LEASE, worker=worker_id() + BULK_CLAIM_SUFFIX,
                                                  now=now, kind="create", fresh_only=True,
                                                  skip_priorities=None if self._urgent_in_bulk(now) else PRIORITY_LANE)
            new: list[TicketDraft] = []
            stored = self.store.posts.load_posts([item.post_key for item in claimed]) if claimed else {}
            for item in claimed:
                loaded = stored.get(item.post_key)
                if loaded is None:
                    self.store.outbox.mark_failed(item, "post is missing from the store")
                    report.failed += 1
                    continue
                post, decision, analysis = loaded
                if analysis is None:
                    analysis = analyse(post, self.watch.priority, now=self.clock(), confidence=self.confidence)
                draft = ticket_draft(post, decision, analysis)
                new.append(self.storms.shape(item.post_key, draft) if self.storms is not None else draft)
                items.append(item)
            drafts.extend(new)
            if claimed:
                fed.append((time.monotonic(), len(claimed)))
            return new

        created: list[tuple[OutboxItem, TicketRef, str, str, str, Sequence[str]]] = []

        def flush() -> None:
            """Record the tickets made since the last flush in one transaction (a row whose
            record is lost in a crash is looked up after its lease: it is never sent twice)."""
            self.store.outbox.mark_created_many(created)
            report.created += len(created)
            created.clear()

        def still_storming() -> bool:
            """Posts came at BULK_STREAM_MIN_RATE or faster over the last window (the run's
            first window counts from its start, whose claim reached the threshold)."""
            horizon = time.monotonic() - BULK_STREAM_WINDOW
            while fed and fed[0][0] < horizon:
                fed.pop(0)
            return sum(n for _, n in fed) >= BULK_STREAM_MIN_RATE * BULK_STREAM_WINDOW

        def more() -> list[TicketDraft]:
            flush()
            now = self.clock()
            if time.monotonic() > session_ends or self._paused(now, DeliveryReport()) or \
                    not (streaming and still_storming()) and not self._bulk_wanted(now):
                # Let the worker's other duties (retries, comments, storms) have a turn; and
                # once the storm is over, new posts go one by one again (faster alone).
                self.bulk_streaming = False
                return []
            self.bulk_streaming = streaming
            return claim(helpdesk.bulk_max_drafts)

        def record(index: int, outcome: TicketRef | HelpdeskError) -> None:
            if index in recorded:
                return
            recorded.add(index)
            item, draft = items[index], drafts[index]
            if isinstance(outcome, HelpdeskError):
                self._record_helpdesk_error(item, outcome, report)
            else:
                created.append((item, outcome, draft.external_id, draft.subject, draft.priority, draft.tags))
                if len(created) >= 100:
                    flush()

        first = claim(helpdesk.bulk_max_drafts)
        if not first:
            return
        streaming = streams_bulk(helpdesk)
        if streaming:
            self.bulk_streaming = True
            try:
                result = helpdesk.create_tickets_many(first, more=more, on_result=record)
            finally:
                self.bulk_streaming = False
        else:
            result = helpdesk.create_tickets_many(first)
        for index, ref in result.refs.items():
            record(index, ref)
        for index, error in result.errors.items():
            record(index, error)
        flush()
        # Never sent (refused before it ran): hand back untouched, attempt refunded.
        self.store.outbox.release_claims([items[i].id for i in result.unsent if i not in recorded])
        if result.stopped is not None:
            report.stopped = result.stopped.message
            if result.stopped.retry_after is not None:
                self.pause(result.stopped.retry_after, result.stopped.message)

    def _deliver_storms(self, storms: StormHooks, report: DeliveryReport) -> None:
        """Storm problem tickets, incident links and spike alerts (connector/storms.py)."""
        try:
            storm_report = storms.deliver(self.helpdesk)
        except Exception as exc:  # never let storms stop the delivery of tickets
            log.exception("storm delivery failed")
            report.errors.append({"stage": "storms", "message": str(exc)})
            return
        report.errors.extend(storm_report.errors)

    def _record_helpdesk_error(self, item: OutboxItem, exc: HelpdeskError, report: DeliveryReport) -> None:
        detail = exc.message
        if exc.field_errors:
            detail += " — " + "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items())
        report.errors.append({"post": item.post_key, "stage": "deliver", "message": detail,
                              "retryable": exc.retryable})
        if exc.retryable or exc.stop_delivery:
            retry_at = self._retry_at(item.attempts, exc.retry_after)
            if exc.settle is not None:
                # Outcome unknown and the helpdesk may still be working on the call: a lookup
                # sooner would miss a ticket still in flight and the resend make a second one.
                retry_at = max(retry_at, self.clock() + timedelta(seconds=exc.settle))
            self.store.outbox.mark_retry(item, detail, retry_at)
            report.retried += 1
        else:
            self.store.outbox.mark_failed(item, detail)
            report.failed += 1
        log.warning("delivery of %s: %s", item.post_key, detail)

    def _retry_at(self, attempts: int, retry_after: float | None) -> datetime:
        return self.clock() + timedelta(seconds=backoff_seconds(attempts, retry_after))

    def seconds_until_due(self) -> float | None:
        """Seconds until the next outbox row may be tried (None: nothing is waiting)."""
        next_due = self.store.outbox.next_due_at()
        if next_due is None:
            return None
        paused_until = self.paused_until
        if paused_until is not None:
            next_due = max(next_due, paused_until)
        return (next_due - self.clock()).total_seconds()

    def drain(self, max_wait: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
        """Deliver until nothing is due, waiting up to `max_wait` seconds for retries."""
        total = DeliveryReport()
        deadline = time.monotonic() + max_wait
        while True:
            report = self.deliver()
            total.add(report)
            if report.created or report.commented:
                continue
            wait = self.seconds_until_due()
            if wait is None:
                return total
            if wait <= 0 and not (report.retried or report.failed):
                continue
            if time.monotonic() + max(wait, 0) > deadline:
                return total
            sleep(max(wait, 0.05))

    # --- batches (replay files, the demo feed) -----------------------------------------
    def ingest_lines(self, lines: Iterable[str], source: str,
                     batch_size: int = INGEST_BATCH) -> tuple[int, list[IngestOutcome]]:
        read = 0
        outcomes: list[IngestOutcome] = []
        batch: list[tuple[int, str]] = []

        def flush() -> None:
            for (number, _line), outcome in zip(batch, self.ingest_many([line for _, line in batch], source)):
                if outcome.error is not None:
                    outcome = IngestOutcome(outcome.key, outcome.status, outcome.reasons, {"line": number, **outcome.error})
                outcomes.append(outcome)
            batch.clear()

        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            read += 1
            batch.append((number, line))
            if len(batch) >= batch_size:
                flush()
        flush()
        return read, outcomes


def replay_summary(read: int, outcomes: list[IngestOutcome], delivery: DeliveryReport,
                   pending: int) -> dict[str, Any]:
    """The `yorisoi replay --json` object."""
    def count(*statuses: str) -> int:
        return sum(1 for o in outcomes if o.status in statuses)

    errors = [o.error for o in outcomes if o.error] + delivery.errors
    return {
        "read": read,
        "qualified": count("queued", "follow_up"),
        "tickets_created": delivery.created,
        "comments_added": delivery.commented,
        "duplicates_skipped": count("duplicate"),
        "rejected": count("rejected"),
        "dropped": count("dropped"),
        "pending": pending,
        "errors": errors,
    }
