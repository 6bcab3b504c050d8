"""Delivery latency: the worker wakes on commit (not at the idle poll), and urgent posts
go one by one in their own lane, never behind a storm's bulk job."""
from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import select

from connector.db.schema import local_tickets
from connector.helpdesks.base import BulkCreateResult, TicketDraft
from connector.pipeline import PRIORITY_LANE
from tests.conftest import post_dict


def tickets(svc) -> list[str]:
    with svc.store.engine.connect() as conn:
        return list(conn.execute(select(local_tickets.c.external_id)).scalars().all())


def wait_for(condition, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_an_ingest_wakes_the_worker_at_once(app_factory):
    # An idle poll of a minute: only the wake-on-commit can deliver within a second.
    svc = app_factory(YORISOI_DELIVERY_INTERVAL="60").extensions["yorisoi"]
    svc.start_worker()
    time.sleep(0.2)  # the worker's first pass is over; it now sleeps for 60 s
    outcome = svc.pipeline.ingest_raw(post_dict(text="ソラモバイル使ってます、でも最近遅い"), source="x")
    assert outcome.status == "queued"
    assert wait_for(lambda: len(tickets(svc)) == 1, timeout=5) < 1.5
    # A batch (webhook, replay) wakes it too.
    svc.pipeline.ingest_many([post_dict(text="ソラモバイル、つながりにくい"), post_dict(text="ソラSIMどうなの")], source="x")
    assert wait_for(lambda: len(tickets(svc)) == 3, timeout=5) < 1.5


class SlowBulkHelpdesk:
    """The local helpdesk plus a bulk capability whose jobs take until `release` is set."""

    bulk_threshold = 5
    bulk_max_drafts = 100

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.release = threading.Event()
        self.bulk_started = threading.Event()
        self.bulk_sizes: list[int] = []
        self.one_by_one: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_ticket(self, draft: TicketDraft):
        self.one_by_one.append(draft.external_id)
        return self.inner.create_ticket(draft)

    def create_tickets_many(self, drafts: list[TicketDraft]) -> BulkCreateResult:
        self.bulk_sizes.append(len(drafts))
        self.bulk_started.set()
        self.release.wait(30)
        return BulkCreateResult(refs={i: self.inner.create_ticket(d) for i, d in enumerate(drafts)})


def test_an_urgent_post_never_waits_behind_a_bulk_backlog(app_factory):
    svc = app_factory(YORISOI_DELIVERY_INTERVAL="60").extensions["yorisoi"]
    slow = SlowBulkHelpdesk(svc.helpdesk)
    svc.pipeline.helpdesk = slow
    echoes = [post_dict(text="ソラモバイル使ってます", author={"id": f"echo{i}"}) for i in range(200)]
    svc.pipeline.ingest_many(echoes, source="x")
    svc.start_worker()
    try:
        assert slow.bulk_started.wait(10)  # the 200 echoes are in a bulk job that does not end yet
        urgent = post_dict(text="ソラモバイル解約する。最悪。消費者センターに相談します", author={"id": "angry"})
        outcome = svc.pipeline.ingest_raw(urgent, source="x")
        loaded = svc.store.posts.load_post(outcome.key)
        assert loaded is not None and loaded[2].priority.value in PRIORITY_LANE
        # Delivered one by one while the bulk job is still running.
        assert wait_for(lambda: any(outcome.key in e for e in slow.one_by_one), timeout=5) < 2.0
        wait_for(lambda: len(tickets(svc)) == 1, timeout=2)
        assert not slow.release.is_set()
    finally:
        slow.release.set()
    wait_for(lambda: len(tickets(svc)) == 201, timeout=20)
    assert sum(slow.bulk_sizes) + len(slow.one_by_one) == 201  # each once; the urgent one never in bulk


def test_bulk_jobs_leave_priority_posts_to_the_lane(app_factory):
    svc = app_factory().extensions["yorisoi"]
    slow = SlowBulkHelpdesk(svc.helpdesk)
    slow.release.set()
    svc.pipeline.helpdesk = slow
    posts = [post_dict(text="ソラモバイル使ってます", author={"id": f"n{i}"}) for i in range(10)]
    posts.append(post_dict(text="ソラモバイル解約する。最悪。消費者センターに相談します", author={"id": "urgent"}))
    outcomes = svc.pipeline.ingest_many(posts, source="x")
    report = svc.pipeline.deliver()
    assert report.created == 11
    assert slow.bulk_sizes == [10]
    assert len(slow.one_by_one) == 1 and outcomes[-1].key in slow.one_by_one[0]


def test_urgent_posts_by_the_bulk_threshold_go_in_bulk_jobs_too(app_factory):
    """One by one, three Zendesk calls each, a storm of urgent posts spent the request budget
    and paused every delivery; from the bulk threshold (5 here) on they go in bulk jobs. Below
    it (the test above) an urgent post goes alone."""
    svc = app_factory().extensions["yorisoi"]
    slow = SlowBulkHelpdesk(svc.helpdesk)
    slow.release.set()
    svc.pipeline.helpdesk = slow
    angry = "ソラモバイル解約する。最悪。消費者センターに相談します"
    posts = [post_dict(text=angry, author={"id": f"u{i}"}) for i in range(6)]
    posts += [post_dict(text="ソラモバイル使ってます", author={"id": f"n{i}"}) for i in range(4)]
    outcomes = svc.pipeline.ingest_many(posts, source="x")
    for outcome in outcomes[:6]:
        loaded = svc.store.posts.load_post(outcome.key or "")
        assert loaded is not None and loaded[2] is not None and loaded[2].priority.value in PRIORITY_LANE
    report = svc.pipeline.deliver()
    assert report.created == 10
    assert slow.bulk_sizes == [10] and slow.one_by_one == []


def test_an_ingest_in_another_instance_wakes_this_worker(backend, db_env, app_factory):
    """PostgreSQL: the instance that stores a post (here one without a worker, like `yorisoi
    poll`) NOTIFYs; the other instance's worker LISTENs and delivers at once, not at its next
    idle poll (a minute here). SQLite serves one instance: no listener, no notification."""
    serving = app_factory(**db_env, YORISOI_DELIVERY_INTERVAL="60").extensions["yorisoi"]
    polling = app_factory(**db_env).extensions["yorisoi"]  # another process's connector, same database
    worker = serving.start_worker()
    if backend == "sqlite":
        assert worker.listener is None and svc_notify_hooks(polling) == []
        return
    assert svc_notify_hooks(polling) == [polling.store.outbox.notify_new_work]
    time.sleep(1.0)  # the worker's first pass is over and its listener is connected
    outcome = polling.pipeline.ingest_raw(post_dict(text="ソラモバイル、昨日から圏外のまま"), source="x")
    assert outcome.status == "queued"
    assert wait_for(lambda: len(tickets(serving)) == 1, timeout=10) < 2.0
    # The listener survives its connection being cut (a database restart, a failover).
    from sqlalchemy import text
    with serving.store.engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"))
    time.sleep(2.5)  # reconnected after its first back-off (1 s)
    polling.pipeline.ingest_raw(post_dict(text="ソラモバイル、また圏外"), source="x")
    assert wait_for(lambda: len(tickets(serving)) == 2, timeout=10) < 2.0


def svc_notify_hooks(svc) -> list:
    return [hook for hook in svc.pipeline.on_commit if getattr(hook, "__name__", "") == "notify_new_work"]


class StreamingBulkHelpdesk:
    """The local helpdesk plus a streaming bulk capability (`more` / `on_result`, as Zendesk's)
    that asks for more drafts once, after `between()` (the test ingests posts there), and notes
    whether the other passes were told to leave new tickets to it meanwhile."""

    bulk_threshold = 20
    bulk_max_drafts = 1000

    def __init__(self, inner: Any, pipeline: Any, between: Any) -> None:
        self.inner, self.pipeline, self.between = inner, pipeline, between
        self.name = inner.name
        self.fed: list[int] = []
        self.streaming_seen: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_tickets_many(self, drafts: list[TicketDraft], *, more: Any = None, on_result: Any = None
                            ) -> BulkCreateResult:
        drafts = list(drafts)
        self.fed.append(len(drafts))
        self.streaming_seen.append(self.pipeline.bulk_streaming)
        self.between()
        extra = more()
        self.fed.append(len(extra))
        self.streaming_seen.append(self.pipeline.bulk_streaming)
        for index, draft in enumerate(drafts + extra):
            on_result(index, self.inner.create_ticket(draft))
        return BulkCreateResult()


def _storm_run(app_factory, first: int, then: int) -> StreamingBulkHelpdesk:
    svc = app_factory().extensions["yorisoi"]
    posts = [post_dict(text="ソラモバイル使ってます", author={"id": f"s{i}"}) for i in range(first + then)]
    svc.pipeline.ingest_many(posts[:first], source="x")
    bulk = StreamingBulkHelpdesk(svc.helpdesk, svc.pipeline,
                                 lambda: svc.pipeline.ingest_many(posts[first:], source="x"))
    svc.pipeline.helpdesk = bulk
    svc.pipeline.deliver_bulk()
    return bulk


def test_a_storm_keeps_feeding_its_bulk_run_below_the_threshold(app_factory):
    """40 posts start the run; 5 more come while its jobs run — under the threshold of 20, but
    the posts keep coming faster than one by one keeps up (45 in the last 10 s ≥ 3/s): they
    join the running jobs instead of waiting for a backlog of 20 to build (issue 17)."""
    bulk = _storm_run(app_factory, first=40, then=5)
    assert bulk.fed == [40, 5]
    assert bulk.streaming_seen == [True, True]  # meanwhile the main pass leaves new tickets to it
    assert bulk.pipeline.bulk_streaming is False  # and takes them again once the run is over


def test_a_burst_that_is_over_leaves_its_stragglers_to_one_by_one(app_factory):
    """20 posts (the threshold) and then 2: 22 in 10 s is under 3/s — one by one keeps up with
    that and answers faster than a job, so the run takes no more and the pass may have them."""
    bulk = _storm_run(app_factory, first=20, then=2)
    assert bulk.fed == [20, 0]
    assert bulk.streaming_seen == [True, False]
