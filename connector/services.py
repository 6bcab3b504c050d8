"""The connector's long-lived parts, built once per app: settings, store, watch rules,
helpdesk, pipeline and the background delivery worker."""
from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from flask import current_app

from connector.analysis.labeller import LabelModel, default_model, load_model_folder
from connector.analysis.model import ModelError, SentimentModel
from connector.config import ConfigError, Settings
from connector.db import Store
from connector.helpdesks import Helpdesk, make_helpdesk
from connector.helpdesks.base import supports_bulk
from connector.pipeline import Pipeline
from connector.replies import ReplyOutcome, send_reply
from connector.sources import Source, make_sources
from connector.storms import Storms, StormSettings
from connector.watch import WatchConfig, load_watch

log = logging.getLogger(__name__)

#: Allocations between two young-generation collections once warmed up (Python's default: 700).
#: Ingest allocates a great many short-lived objects, few of them in cycles: collected 1,000
#: times per 2,000 posts, the collector was ~3 % of ingest's CPU (issue 17).
WARM_GC_THRESHOLD = 10_000

#: Shortest time between two passes of a delivery thread, however often it is woken: in a
#: storm every ingest (20 a second) wakes every thread, and a pass is several queries; woken
#: sooner, a thread waits out the rest, so the wake-ups of a burst are one pass.
MIN_PASS_SECONDS = 0.25


def _pause_between_passes(started: float, halt: threading.Event) -> None:
    spare = MIN_PASS_SECONDS - (time.monotonic() - started)
    if spare > 0:
        halt.wait(spare)


@dataclass
class Services:
    settings: Settings
    store: Store
    watch: WatchConfig
    helpdesk: Helpdesk
    pipeline: Pipeline
    sources: dict[str, Source]
    worker: "DeliveryWorker | None" = field(default=None)

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        watch = load_watch(settings.watch_path)  # fails at start-up on a bad file
        model = load_model(settings)  # fails at start-up on a bad model folder
        store = Store(settings.database_url)
        helpdesk = make_helpdesk(settings, store)
        # Storms follow the pipeline's clock (tests move it), read when called, not now.
        storms = make_storms(settings, store, watch, clock=lambda: pipeline.clock())
        pipeline = Pipeline(store, watch, helpdesk, model=model, storms=storms, confidence=settings.confidence)
        if store.outbox.can_notify:
            # PostgreSQL: every ingest that queued something wakes the delivery workers of every
            # instance (LISTEN/NOTIFY), also when this process runs no worker (`yorisoi poll`).
            pipeline.on_commit.append(store.outbox.notify_new_work)
        return cls(settings, store, watch, helpdesk, pipeline, make_sources(settings, store, watch))

    def warm_up(self) -> None:
        """Before a long run (serve, poll, replay): load now what the first post would load
        (nagisa's model, the lexicons, the label model's look-up indexes) by analysing a
        sample, then take everything loaded so far out of the garbage collector's passes.
        ~670,000 objects live as long as the process; every full collection walked them all.
        https://docs.python.org/3/library/gc.html#gc.freeze"""
        from connector.analysis import analyse_text

        analyse_text("起動時の確認です。繋がらないと困ります。", model=self.pipeline.model,
                     priority_table=self.watch.priority)
        gc.collect()
        gc.freeze()
        gc.set_threshold(WARM_GC_THRESHOLD, *gc.get_threshold()[1:])

    def reply(self, *, ticket_id: str, agent: str, text: str, dedupe_key: str) -> ReplyOutcome:
        """An agent's public reply from the configured helpdesk, back to the network."""
        return send_reply(self.store, self.sources, helpdesk=self.helpdesk.name, ticket_id=ticket_id,
                          agent=agent, text=text, dedupe_key=dedupe_key, signature=self.settings.reply_signature)

    def start_worker(self) -> "DeliveryWorker":
        if self.worker is None:
            self.store.outbox.release_dead_claims()
            self.worker = DeliveryWorker(self.pipeline, self.settings.delivery_interval)
            # Wake on commit: an ingest in this process (webhook, poller, stream) wakes the
            # worker at once; on PostgreSQL an ingest in another process does too, through
            # LISTEN/NOTIFY (DeliveryWorker's listener). The idle poll is the safety net.
            self.pipeline.on_commit.append(self.worker.wake)
            self.worker.start()
        return self.worker

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def close(self) -> None:
        if self.worker is not None:
            if self.worker.wake in self.pipeline.on_commit:
                self.pipeline.on_commit.remove(self.worker.wake)
            self.worker.stop()
            self.worker = None
        self.store.engine.dispose()


def load_model(settings: Settings) -> SentimentModel | LabelModel | None:
    """The model named by YORISOI_MODEL_DIR, else the shipped label model, loaded once;
    None (lexicon and rules alone) for YORISOI_MODEL_DIR=lexicon or a package without one."""
    folder = settings.model_dir
    try:
        if folder is not None and str(folder).strip().lower() == "lexicon":
            return None
        model = default_model() if folder is None else load_model_folder(folder)
    except ModelError as exc:
        raise ConfigError(f"YORISOI_MODEL_DIR: {exc}") from None
    if model is not None:
        log.info("model %s loaded from %s (%s examples)", model.name, folder or "the package",
                 model.meta.get("training_size"))
    return model


def make_storms(settings: Settings, store: Store, watch: WatchConfig, clock: Callable[[], datetime]) -> Storms:
    """Storm grouping and spike alerts (connector/storms.py), from YORISOI_STORM_* / SPIKE_*."""
    words = {b.name: (b.name, *b.keywords, *b.hashtags, *b.mentions) for b in watch.brands}
    return Storms(store.storms, StormSettings.from_env(settings.env), words, clock=clock)


def services() -> Services:
    return current_app.extensions["yorisoi"]


class DeliveryWorker(threading.Thread):
    """Delivers the outbox in the background while the web app serves.

    It sleeps until the next retry is due, the idle interval passes, or `wake()` is called by
    an ingest (the pipeline's on-commit hook), so a post becomes a ticket within a second. On
    PostgreSQL a third thread LISTENs for the NOTIFY another instance's ingest sends
    (connector/db/outbox.py), so a post stored by `yorisoi poll` on one host wakes the worker
    of `yorisoi serve` on another at once.

    A second thread, the priority lane, delivers only urgent posts one by one: while a bulk
    job for a storm's 200 echoes runs, an urgent post still goes out. A third, the bulk lane
    (helpdesks with bulk jobs), runs those jobs, so the main thread's one-by-one work (retries,
    follow-up comments) does not wait for them either.
    """

    def __init__(self, pipeline: Pipeline, interval: float) -> None:
        super().__init__(name="yorisoi-delivery", daemon=True)
        self.pipeline = pipeline
        self.interval = interval
        self._wake = threading.Event()
        self._halt = threading.Event()  # not `_stop`: a method of threading.Thread that join() calls
        self.lane = PriorityLane(pipeline, interval, self._halt)
        # Bulk jobs in a thread of their own: a job runs for seconds in the helpdesk, and
        # follow-up comments, retries and (at a low rate) new tickets go one by one meanwhile.
        self.bulk = BulkLane(pipeline, interval, self._halt) if supports_bulk(pipeline.helpdesk) else None
        outbox = pipeline.store.outbox
        self.listener = threading.Thread(target=outbox.listen_for_work, args=(self.wake, self._halt),
                                         name="yorisoi-delivery-listen", daemon=True) \
            if getattr(outbox, "can_notify", False) else None

    def start(self) -> None:
        super().start()
        self.lane.start()
        if self.bulk is not None:
            self.bulk.start()
        if self.listener is not None:
            self.listener.start()

    def wake(self) -> None:
        self._wake.set()
        self.lane.wake()
        if self.bulk is not None:
            self.bulk.wake()

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self.wake()
        self.join(timeout)
        if self.lane.is_alive():
            self.lane.join(timeout)
        if self.bulk is not None and self.bulk.is_alive():
            self.bulk.join(timeout)
        if self.listener is not None and self.listener.is_alive():
            self.listener.join(timeout)

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            self._wake.clear()
            try:
                report = self.pipeline.deliver(bulk=self.bulk is None)
                if report.created or report.commented:
                    continue  # more may be waiting
                due_in = self.pipeline.seconds_until_due()
                wait = self.interval if due_in is None else min(self.interval, max(0.05, due_in))
            except Exception:  # the worker must outlive a bad pass (database locked, bug)
                log.exception("delivery pass failed; retrying in %.0f s", self.interval)
                wait = self.interval
            self._wake.wait(wait)
            _pause_between_passes(started, self._halt)


class _Lane(threading.Thread):
    """One more thread of the delivery worker: a kind of pass (`pass_once`) run until stopped,
    again at once while it makes progress, otherwise on a wake or every `interval` seconds."""

    kind = ""

    def __init__(self, pipeline: Pipeline, interval: float, stop: threading.Event) -> None:
        super().__init__(name=f"yorisoi-delivery-{self.kind}", daemon=True)
        self.pipeline = pipeline
        self.interval = interval
        self._halt = stop  # not `_stop`: threading.Thread has a method of that name
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def pass_once(self) -> bool:
        """One pass; True when more may be waiting."""
        raise NotImplementedError

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            self._wake.clear()
            try:
                if self.pass_once():
                    continue
            except Exception:  # never let a bad pass end the lane
                log.exception("%s delivery pass failed", self.kind)
            self._wake.wait(self.interval)
            _pause_between_passes(started, self._halt)


class BulkLane(_Lane):
    """The delivery worker's third thread: the helpdesk's bulk jobs, when the backlog (or the
    helpdesk's own budget) calls for them (Pipeline.deliver_bulk)."""

    kind = "bulk"

    def pass_once(self) -> bool:
        report = self.pipeline.deliver_bulk()
        return bool(report.created and not report.stopped)


class PriorityLane(_Lane):
    """The delivery worker's second thread: urgent posts only, one by one."""

    kind = "priority"

    def pass_once(self) -> bool:
        report = self.pipeline.deliver_priority()
        return bool(report.created or report.commented)
