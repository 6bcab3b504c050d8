"""Response times from per-day histograms (issue 19): the fast path gives the exact figures'
counts and, for percentiles, the middle of the bin holding the exact nearest-rank value (so
within the stated bound); the summary table stays equal to a recount from ticket_facts on every
write path, after the migration's backfill, and on PostgreSQL too; filters still apply."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from connector import latency_bins, reports, weekly
from connector.db import schema as s
from connector.db.counts import backfill_response_hist
from connector.db.reports import ReportFilter
from connector.db.store import Store
from connector.helpdesks.base import StatusUpdate
from connector.report_time import report_day
from tests.conftest import post_dict

TEXTS = (("ソラモバイル、駅で全然繋がらない。通信速度が遅すぎる😡 {n}", "x"),
         ("ソラモバイルの料金プランについて質問です。家族割はありますか？ {n}", "mastodon"),
         ("ハルカ珈琲、注文を間違えられたうえに謝罪もなし。二度と行かない {n}", "x"),
         ("ソラモバ、通信速度が遅い。解約しようかな {n}", "bluesky"))
NOW = datetime.now(timezone.utc).replace(microsecond=0)


# --- the bins (pure) ------------------------------------------------------------------------
def test_every_second_falls_in_one_bin_whose_middle_is_within_the_stated_error():
    assert latency_bins.bin_of(0) == latency_bins.bin_of(-5) == 0 and latency_bins.bin_value(0) == 0
    for seconds in [*range(1, 5000), *random.Random(1).sample(range(5000, latency_bins.LAST_EDGE), 3000)]:
        b = latency_bins.bin_of(seconds)
        low, high = latency_bins.bin_range(b)
        assert low <= seconds <= high
        error = abs(latency_bins.bin_value(b) - seconds)
        assert error <= latency_bins.max_error(b)
        if seconds < latency_bins.EXACT_BELOW:
            assert error == 0
        else:
            assert error <= seconds * (latency_bins.RATIO - 1) / 2 + 0.5  # ±2.5 % (whole seconds)
    assert latency_bins.BINS < 400  # a day's histogram stays a few dozen rows


@pytest.mark.parametrize("seed", range(5))
def test_percentile_of_merged_histograms_is_the_exact_values_bin(seed):
    rng = random.Random(seed)
    days = [[int(rng.lognormvariate(math.log(1800), 1.3)) for _ in range(rng.randint(0, 300))] for _ in range(20)]
    merged = latency_bins.merge(_hist(day) for day in days)
    values = sorted(v for day in days for v in day)
    assert latency_bins.count(merged) == len(values)
    for p in (1, 50, 90, 99, 100):
        exact = reports.percentile(values, p)
        got = latency_bins.percentile(merged, p)
        if exact is None:
            assert got is None
            continue
        assert got == latency_bins.bin_value(latency_bins.bin_of(exact))
        assert abs(got - exact) <= max(0.5, exact * (latency_bins.RATIO - 1) / 2 + 0.5)


def _hist(values):
    out: dict[int, int] = {}
    for v in values:
        out[latency_bins.bin_of(v)] = out.get(latency_bins.bin_of(v), 0) + 1
    return out


# --- through the store ------------------------------------------------------------------------
def seed(svc, n_posts: int = 24) -> None:
    """Posts spread over ten days (two of them weeks apart), delivered; two in three answered at
    varied times, some by a public reply the helpdesk reported (which may come earlier)."""
    rng = random.Random(7)
    for n in range(n_posts):
        text, platform = TEXTS[n % len(TEXTS)]
        posted = NOW - timedelta(days=rng.choice((1, 2, 3, 9, 10, 16)), minutes=rng.randint(0, 600))
        assert svc.pipeline.ingest_raw(post_dict(id=f"h{n}", platform=platform, text=text.format(n=n),
                                                 created_at=posted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                 author={"id": f"a{n}"}), "test").status in ("queued", "dropped")
    svc.pipeline.drain(max_wait=1)
    for i, row in enumerate(svc.store.outbox.list_tickets()):
        if i % 3 == 0:
            continue
        svc.reply(ticket_id=row["ticket_id"], agent="佐藤", text="ソラモバイルの佐藤です。確認します。",
                  dedupe_key=f"t:{row['ticket_id']}")
        if i % 4 == 1:  # the helpdesk saw an earlier public reply: the first reply moves earlier
            with svc.store.engine.connect() as conn:
                posted_at = conn.execute(select(s.ticket_facts.c.posted_at)
                                         .where(s.ticket_facts.c.post_key == row["post_key"])).scalar()
            reply_at = posted_at + timedelta(minutes=rng.randint(1, 300))
            svc.store.ticket_status.record(row["helpdesk"], [StatusUpdate(row["ticket_id"], "open", reply_at,
                                                                          reply_at)], via="test")


def hist_rows(store) -> list[tuple]:
    with store.engine.connect() as conn:
        return _nonzero(conn)


def _nonzero(conn) -> list[tuple]:
    """Both histogram tables' rows (the per-day and the weekly), zero counts left out."""
    return [(table.name, *row) for table in (s.report_response_hist, s.report_response_weekly)
            for row in sorted(tuple(r) for r in conn.execute(select(table).where(table.c.n != 0)))]


def exact_facts(store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(s.ticket_facts)).mappings()]


def filters() -> list[ReportFilter]:
    today = report_day(NOW)
    year_ago = report_day(NOW - timedelta(days=364))
    week_ago = report_day(NOW - timedelta(days=6))
    return [ReportFilter(year_ago, today), ReportFilter(week_ago, today),
            ReportFilter(year_ago, today, brands=("ソラモバイル",)), ReportFilter(year_ago, today, platforms=("x",)),
            ReportFilter(year_ago, today, labels=(("sentiment", ("negative",)),)),
            ReportFilter(week_ago, today, platforms=("x", "bluesky"), labels=(("intent", ("complaint", "question")),))]


def expected_summary(facts: list[dict], f: ReportFilter) -> dict[str, tuple[list[int], list[int]]]:
    out: dict[str, tuple[list[int], list[int]]] = {}
    for fact in facts:
        if not f.since <= fact["day"] <= f.until or f.brands and fact["brand"] not in f.brands:
            continue
        if f.platforms and fact["platform"] not in f.platforms:
            continue
        if any(fact[name] not in values for name, values in f.labels):
            continue
        for key in (fact["priority"], "*"):
            tickets, replies = out.setdefault(key, ([], []))
            tickets.append(fact["ticket_seconds"])
            if fact["reply_seconds"] is not None:
                replies.append(fact["reply_seconds"])
    return out


def assert_estimate(minutes: float | None, exact_seconds: float | None) -> None:
    if exact_seconds is None:
        assert minutes is None
        return
    b = latency_bins.bin_of(exact_seconds)
    assert minutes * 60 == pytest.approx(latency_bins.bin_value(b))
    assert abs(minutes * 60 - exact_seconds) <= latency_bins.max_error(b) + 1e-9


@pytest.fixture
def seeded_db(app_factory, db_env):
    app = app_factory(**db_env)
    svc = app.extensions["yorisoi"]
    seed(svc)
    return svc


def test_fast_path_equals_exact_figures_within_the_bin_error_and_filters_apply(seeded_db):
    store = seeded_db.store
    facts = exact_facts(store)
    assert len(facts) >= 10 and any(f["reply_seconds"] for f in facts)
    assert hist_rows(store) == _recount(store)  # every write path kept the table right
    for f in filters():
        expected = expected_summary(facts, f)
        summary = reports.response_times(store, f)[0]
        got = {row[0]: row for row in summary.rows}
        assert set(got) == set(expected), f
        for priority, (ticket_values, reply_values) in expected.items():
            ticket_values.sort()
            reply_values.sort()
            row = got[priority]
            assert row[1] == len(ticket_values) and row[5] == len(reply_values)  # counts are exact
            for i, p in enumerate(reports.PERCENTILES):
                assert_estimate(row[2 + i], reports.percentile(ticket_values, p))
                assert_estimate(row[6 + i], reports.percentile(reply_values, p))
    # The page states how exact it is; the CSV export is the same table.
    assert "±2.5%" in summary.note("en") and "±2.5%" in summary.note("ja")
    assert reports.to_csv(summary, "ja").count("\r\n") == len(summary.rows) + 1


def test_weekly_buckets_and_the_weekly_report_read_the_same_bins(seeded_db):
    store = seeded_db.store
    facts = exact_facts(store)
    long = ReportFilter(report_day(NOW - timedelta(days=200)), report_day(NOW))
    tables = {t.name: t for t in reports.response_times(store, long)}
    assert tables["ticket_percentiles"].columns[0].key == "week"
    for row in tables["reply_percentiles"].rows:
        monday = datetime.fromisoformat(row[0]).date()
        assert monday.weekday() == 0
        values = sorted(f["reply_seconds"] for f in facts if f["priority"] == row[1] and f["reply_seconds"] is not None
                        and monday.isoformat() <= f["day"] <= (monday + timedelta(days=6)).isoformat())
        assert row[2] == len(values)
        for i, p in enumerate(reports.PERCENTILES):
            assert_estimate(row[3 + i], reports.percentile(values, p))
    # Whole weeks from the weekly table and the edges from the days = the days alone.
    for since_days, until_days in ((200, 0), (203, 2), (120, 5)):
        f = ReportFilter(report_day(NOW - timedelta(days=since_days)), report_day(NOW - timedelta(days=until_days)))
        fast = sorted(store.reports.response_histograms(f, weekly=True))
        assert fast == sorted(store.reports._daily_histograms(f, True))
        assert fast == sorted(store.reports.response_histograms(
            ReportFilter(f.since, f.until, labels=(("sentiment", ("negative", "neutral", "positive")),)), weekly=True))
    report = weekly.build(store, {"YORISOI_SLA_MINUTES": "urgent=30,high=60,normal=240,low=1440"})
    sla = next(t for t in report.tables if t.name == "weekly_sla")
    this = ReportFilter(report.this.since.isoformat(), report.this.until.isoformat())
    targets = {"urgent": 1800, "high": 3600, "normal": 14400, "low": 86400}
    for row in (r for r in sla.rows if r[0] == "this"):
        mine = [f for f in facts if f["priority"] == row[1] and this.since <= f["day"] <= this.until]
        replies = sorted(f["reply_seconds"] for f in mine if f["reply_seconds"] is not None)
        assert row[3] == len(mine) and row[4] == len(replies)
        assert row[5] == sum(1 for v in replies if v <= targets[row[1]])  # within the SLA: exact
        assert_estimate(None if row[7] is None else row[7] / 60, reports.percentile(replies, 50))


def test_migration_backfills_an_existing_database(seeded_db):
    store = seeded_db.store
    f = filters()[0]
    before = [t.rows for t in reports.response_times(store, f)]
    expected = hist_rows(store)
    assert expected
    with store.engine.begin() as conn:  # a database of schema 5: no histograms yet
        conn.execute(s.report_response_hist.delete())
        conn.execute(s.report_response_weekly.delete())
        conn.execute(s.schema_version.delete())
        conn.execute(s.schema_version.insert().values(version=5, applied_at=datetime.now(timezone.utc)))
    assert reports.response_times(store, f)[0].rows == []
    upgraded = Store(store.url)
    try:
        assert hist_rows(upgraded) == expected
        assert [t.rows for t in reports.response_times(upgraded, f)] == before
        with upgraded.engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version).order_by(s.schema_version.c.version.desc())
                                ).scalar() == s.SCHEMA_VERSION
    finally:
        upgraded.engine.dispose()


def test_rebuild_recounts_the_histograms(seeded_db):
    store = seeded_db.store
    expected = hist_rows(store)
    store.reports.rebuild_reports()
    assert hist_rows(store) == expected


def test_a_later_public_reply_changes_nothing_and_an_earlier_one_moves_the_bin(seeded_db):
    store = seeded_db.store
    fact = next(f for f in exact_facts(store) if f["reply_seconds"] and f["reply_seconds"] > 120)
    ref = next(r for r in store.outbox.list_tickets() if r["post_key"] == fact["post_key"])
    for seconds in (fact["reply_seconds"] + 60, 30):
        at = fact["posted_at"] + timedelta(seconds=seconds)
        store.ticket_status.record(ref["helpdesk"], [StatusUpdate(ref["ticket_id"], "open", at, at)], via="test")
        assert hist_rows(store) == _recount(store)
    store.reports.rebuild_reports()  # the full recount agrees with the incremental one
    assert hist_rows(store) == _recount(store)
    h = s.report_response_hist
    with store.engine.connect() as conn:
        n = conn.execute(select(h.c.n).where(h.c.day == fact["day"], h.c.priority == fact["priority"],
                                             h.c.kind == "reply", h.c.brand == fact["brand"],
                                             h.c.platform == fact["platform"],
                                             h.c.bin == latency_bins.bin_of(30))).scalar()
    assert n >= 1


def _recount(store) -> list[tuple]:
    """What report_response_hist holds when counted afresh from ticket_facts (rolled back)."""
    with store.engine.connect() as conn:
        tx = conn.begin()
        backfill_response_hist(conn)
        rows = _nonzero(conn)
        tx.rollback()
    return rows



def test_tickets_search_pages_and_filters_equal_a_brute_force_listing(seeded_db):
    """/tickets reads a page of keys first, then the page's rows: the same tickets, order,
    totals and follow-up counts as filtering and sorting every ticket by hand."""
    store = seeded_db.store
    with store.engine.connect() as conn:
        every = [dict(r) for r in conn.execute(
            select(s.tickets.c.post_key, s.tickets.c.created_at, s.tickets.c.priority, s.tickets.c.subject,
                   s.posts.c.platform, s.posts.c.text, s.ticket_facts.c.answered)
            .join(s.posts, s.posts.c.key == s.tickets.c.post_key)
            .outerjoin(s.ticket_facts, s.ticket_facts.c.post_key == s.tickets.c.post_key)).mappings()]
    every.sort(key=lambda r: (r["created_at"], r["post_key"]), reverse=True)
    cases = [dict(), dict(priority=every[0]["priority"]), dict(platform="x"), dict(state="open"),
             dict(state="answered", platform="mastodon"), dict(text="通信速度"), dict(text="100%_")]
    for case in cases:
        expected = [r["post_key"] for r in every
                    if (not case.get("priority") or r["priority"] == case["priority"])
                    and (not case.get("platform") or r["platform"] == case["platform"])
                    and (case.get("state") != "open" or not r["answered"])
                    and (case.get("state") != "answered" or r["answered"] == 1)
                    and (not case.get("text") or case["text"] in r["text"] or case["text"] in r["subject"])]
        got: list[str] = []
        for offset in range(0, len(every) + 5, 5):
            total, rows = store.outbox.search_tickets(**case, offset=offset, limit=5)
            assert total == len(expected), case
            got += [r["post_key"] for r in rows]
            assert all({"text", "post_url", "handle", "follow_ups", "answered"} <= set(r) for r in rows)
        assert got == expected, case
    assert any(r["answered"] for r in every) and any(not r["answered"] for r in every)
