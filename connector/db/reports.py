"""The listening dashboard's summary tables and `yorisoi report`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import Date, Table, Text, case, cast, func, literal, select
from sqlalchemy.engine import Engine

from connector.db.counts import rebuild_reports
from connector.db.schema import (
    LABEL_COLUMNS,
    analyses,
    authors,
    corrections,
    outbox,
    post_topics,
    posts,
    report_daily,
    report_daily_label,
    report_reasons,
    report_response_hist,
    report_response_weekly,
    report_topic_monthly,
    storm_members,
    ticket_facts,
    ticket_status,
    tickets,
)
from connector.db.ticket_status import CLOSED_STATUSES
from connector.latency_bins import bin_of


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """What every dashboard page and `yorisoi report` narrow down by (all optional but days).

    `labels` maps a label column (LABEL_COLUMNS) to the values allowed; values of one label
    are alternatives (OR), different labels must all hold (AND).
    """

    since: str  # first day, 'YYYY-MM-DD' (Japan), inclusive
    until: str  # last day, inclusive
    brands: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    labels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def where(self, table: Table, *, labels: bool = True) -> list[Any]:
        clauses: list[Any] = [table.c.day >= self.since, table.c.day <= self.until]
        if self.brands:
            clauses.append(table.c.brand.in_(list(self.brands)))
        if self.platforms:
            clauses.append(table.c.platform.in_(list(self.platforms)))
        if labels:
            for name, values in self.labels:
                clauses.append(table.c[name].in_(list(values)))
        return clauses


def _whole_months(since: str, until: str) -> list[str]:
    """The calendar months ('YYYY-MM') lying entirely within [since, until] (days 'YYYY-MM-DD')."""
    from datetime import date as _date
    first, last = _date.fromisoformat(since), _date.fromisoformat(until)
    month = _date(first.year, first.month, 1)
    if month < first:
        month = _date(month.year + month.month // 12, month.month % 12 + 1, 1)
    months: list[str] = []
    while True:
        end = _date.fromisoformat(_month_end(month.isoformat()[:7]))
        if end > last:
            return months
        months.append(month.isoformat()[:7])
        month = end + timedelta(days=1)


def _month_end(month: str) -> str:
    from datetime import date as _date
    year, mon = int(month[:4]), int(month[5:7])
    following = _date(year + mon // 12, mon % 12 + 1, 1)
    return (following - timedelta(days=1)).isoformat()


def _day_before(day: str) -> str:
    from datetime import date as _date
    return (_date.fromisoformat(day) - timedelta(days=1)).isoformat()


def _day_after(day: str) -> str:
    from datetime import date as _date
    return (_date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _aware_ts(moment: datetime) -> float:
    from datetime import timezone as _tz
    return (moment if moment.tzinfo else moment.replace(tzinfo=_tz.utc)).timestamp()


def _monday_of(day: str) -> str:
    from datetime import date as _date
    d = _date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


def _ints(joined: str | None) -> list[int]:
    return list(map(int, joined.split(","))) if joined else []



class ReportRepository:
    """The listening dashboard's summary tables and `yorisoi report`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def report_volumes(self, f: ReportFilter, column: str) -> list[tuple[str, str, int]]:
        """(day, value of `column`, posts) for the days and filters of `f`."""
        if not f.labels:  # the small one-label-at-a-time table answers it
            t = report_daily_label
            stmt = (select(t.c.day, t.c.value, func.sum(t.c.n)).where(t.c.label == column)
                    .where(*f.where(t, labels=False)).group_by(t.c.day, t.c.value))
        else:
            col = report_daily.c[column]
            stmt = (select(report_daily.c.day, col, func.sum(report_daily.c.n))
                    .where(*f.where(report_daily)).group_by(report_daily.c.day, col))
            if column in LABEL_COLUMNS:  # dropped posts are not analysed: no label to count
                stmt = stmt.where(report_daily.c.qualified == 1)
        with self.engine.connect() as conn:
            return [(day, str(value), int(n)) for day, value, n in conn.execute(stmt)]

    def report_latest_day(self) -> str | None:
        """The newest day with a post ('YYYY-MM-DD'); the day is the key's first column: cheap."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(report_daily.c.day))).scalar()

    def report_facets(self, f: ReportFilter) -> dict[str, list[str]]:
        """Brands and platforms seen in the date range, for the filter menus."""
        t = report_daily_label
        where = [t.c.label == "platform", t.c.day >= f.since, t.c.day <= f.until]
        with self.engine.connect() as conn:
            brands = conn.execute(select(t.c.brand).where(*where).distinct()).scalars().all()
            platforms = conn.execute(select(t.c.platform).where(*where).distinct()).scalars().all()
        return {"brands": sorted(b for b in brands if b), "platforms": sorted(platforms)}

    def report_reasons(self, f: ReportFilter) -> list[tuple[bool, str, int]]:
        """(qualified, reason, posts): which rule kept or dropped how many posts.

        Label filters do not apply: dropped posts are never analysed."""
        stmt = (select(report_reasons.c.qualified, report_reasons.c.reason, func.sum(report_reasons.c.n))
                .where(*f.where(report_reasons, labels=False))
                .group_by(report_reasons.c.qualified, report_reasons.c.reason))
        with self.engine.connect() as conn:
            return [(bool(q), reason, int(n)) for q, reason, n in conn.execute(stmt)]

    def report_topics(self, f: ReportFilter, limit: int) -> list[tuple[str, int]]:
        """The most frequent complaint topics: (topic, posts), most posts first."""
        months = [] if f.labels else _whole_months(f.since, f.until)
        if not months:
            parts = [select(post_topics.c.topic, func.count().label("n")).where(*f.where(post_topics))
                     .group_by(post_topics.c.topic)]
        else:
            m = report_topic_monthly
            monthly = select(m.c.topic, func.sum(m.c.n).label("n")).where(m.c.month.in_(months))
            if f.brands:
                monthly = monthly.where(m.c.brand.in_(list(f.brands)))
            if f.platforms:
                monthly = monthly.where(m.c.platform.in_(list(f.platforms)))
            parts = [monthly.group_by(m.c.topic)]
            first_day, last_day = f"{months[0]}-01", _month_end(months[-1])
            for since, until in ((f.since, _day_before(first_day)), (_day_after(last_day), f.until)):
                if since <= until:
                    edge = ReportFilter(since, until, f.brands, f.platforms)
                    parts.append(select(post_topics.c.topic, func.count().label("n"))
                                 .where(*edge.where(post_topics)).group_by(post_topics.c.topic))
        union = parts[0].union_all(*parts[1:]).subquery() if len(parts) > 1 else parts[0].subquery()
        total = func.sum(union.c.n).label("total")
        stmt = select(union.c.topic, total).group_by(union.c.topic).order_by(total.desc(), union.c.topic).limit(limit)
        with self.engine.connect() as conn:
            return [(topic, int(count)) for topic, count in conn.execute(stmt)]

    def report_topic_examples(self, f: ReportFilter, topic: str, limit: int) -> list[dict[str, Any]]:
        stmt = (select(posts.c.key, posts.c.text, posts.c.url, posts.c.created_at)
                .join(posts, posts.c.key == post_topics.c.post_key)
                .where(post_topics.c.topic == topic).where(*f.where(post_topics))
                .order_by(post_topics.c.day.desc()).limit(limit))  # the (topic, day) index order: no sort
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def report_open_tickets(self, f: ReportFilter, limit: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Tickets open in the helpdesk (not solved or closed), highest public risk first, and
        how many there are per risk level. A ticket whose helpdesk status is not known (the
        `local` helpdesk, or not synced yet) counts as open while it has no public reply."""
        # Two disjoint parts, each walking an index, instead of one OR that reads every ticket
        # of the range: tickets with a helpdesk status that is not closed (ticket_status is
        # only the synced ones), and tickets without a status and without a public reply
        # (ix_ticket_facts_open: answered = 0, highest risk first, a few percent of tickets).
        # (The first as IN over ticket_status: as a join, SQLite started from every ticket of
        # the range and looked each up in ticket_status.)
        status = ticket_status.c.status
        synced_open = select(ticket_status.c.post_key).where(status.not_in(CLOSED_STATUSES))
        facts_no_status = ticket_facts.outerjoin(ticket_status, ticket_status.c.post_key == ticket_facts.c.post_key)
        parts = ((ticket_facts, [ticket_facts.c.post_key.in_(synced_open), *f.where(ticket_facts)]),
                 (facts_no_status, [status.is_(None), ticket_facts.c.answered == 0, *f.where(ticket_facts)]))
        by_risk: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        order = (ticket_facts.c.risk_score.desc(), ticket_facts.c.posted_at.desc(), ticket_facts.c.post_key)
        with self.engine.connect() as conn:
            for joined, where in parts:
                for risk, n in conn.execute(select(ticket_facts.c.risk, func.count()).select_from(joined)
                                            .where(*where).group_by(ticket_facts.c.risk)).all():
                    by_risk[str(risk)] = by_risk.get(str(risk), 0) + int(n)
                stmt = (select(ticket_facts, posts.c.text, posts.c.url.label("post_url"), authors.c.handle,
                               authors.c.followers, tickets.c.helpdesk, tickets.c.ticket_id,
                               tickets.c.url.label("ticket_url"))
                        .select_from(joined.join(posts, posts.c.key == ticket_facts.c.post_key)
                                     .join(authors, authors.c.key == posts.c.author_key)
                                     .join(tickets, tickets.c.post_key == ticket_facts.c.post_key))
                        .where(*where).order_by(*order).limit(limit))
                rows += [dict(r) for r in conn.execute(stmt).mappings().all()]
        rows.sort(key=lambda r: (-r["risk_score"], -_aware_ts(r["posted_at"]), r["post_key"]))
        return by_risk, rows[:limit]

    def report_response_times(self, f: ReportFilter) -> list[tuple[str, str, list[int], list[int]]]:
        """(day, priority, post→ticket seconds, post→first reply seconds) per day and priority.

        The database joins each group's values into one string (SQLite's group_concat,
        PostgreSQL's string_agg) over the covering index ix_ticket_facts_times_by (labels too), so a year
        (~500k tickets) comes back as ~1,500 rows instead of 500k row objects."""
        t = ticket_facts
        if self.engine.dialect.name == "postgresql":
            def joined(col: Any) -> Any:
                return func.string_agg(cast(col, Text), ",")
        else:
            def joined(col: Any) -> Any:
                return func.group_concat(col, ",")
        stmt = (select(t.c.day, t.c.priority, joined(t.c.ticket_seconds), joined(t.c.reply_seconds))
                .where(*f.where(t)).group_by(t.c.day, t.c.priority))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [(day, priority, _ints(tickets_joined), _ints(replies_joined))
                for day, priority, tickets_joined, replies_joined in rows]

    def response_histograms(self, f: ReportFilter, *, weekly: bool = False) -> list[tuple[str, str, str, int, int]]:
        """(bucket, priority, kind, bin, tickets): the response-time histograms of the range
        (connector.latency_bins), kind 'ticket' (post → ticket) or 'reply' (post → first
        reply). The bucket is the day, or with `weekly` the Monday starting its week.

        Without filters, whole weeks come from report_response_weekly and other days from the
        per-day histograms (report_response_hist, which brand and source filters read), summed
        by the database; label filters are not kept there, so then the tickets' own durations
        are read and put into the same bins."""
        if f.labels:
            from collections import Counter
            bumps: Counter[tuple[str, str, str, int]] = Counter()
            monday = _monday_of if weekly else (lambda day: day)
            for day, priority, ticket_values, reply_values in self.report_response_times(f):
                bucket = monday(day)
                for seconds in ticket_values:
                    bumps[(bucket, priority, "ticket", bin_of(seconds))] += 1
                for seconds in reply_values:
                    bumps[(bucket, priority, "reply", bin_of(seconds))] += 1
            return [(*key, n) for key, n in bumps.items()]
        if not weekly or f.brands or f.platforms:
            return self._daily_histograms(f, weekly)
        # Whole weeks from the weekly table, the partial weeks at either end from the days.
        from datetime import date as _date
        first, last = _date.fromisoformat(f.since), _date.fromisoformat(f.until)
        first_monday = first + timedelta(days=(7 - first.weekday()) % 7)
        last_monday = last - timedelta(days=(last.weekday() + 1) % 7 + 6)  # of the last whole week
        if first_monday > last_monday:
            return self._daily_histograms(f, weekly)
        w = report_response_weekly
        stmt = (select(w.c.week, w.c.priority, w.c.kind, w.c.bin, w.c.n)
                .where(w.c.week >= first_monday.isoformat(), w.c.week <= last_monday.isoformat(), w.c.n > 0))
        with self.engine.connect() as conn:
            rows = [(str(b), priority, kind, int(bin_), int(n)) for b, priority, kind, bin_, n in conn.execute(stmt)]
        for since, until in ((first, first_monday - timedelta(days=1)), (last_monday + timedelta(days=7), last)):
            if since <= until:
                rows += self._daily_histograms(ReportFilter(since.isoformat(), until.isoformat()), weekly)
        return rows

    def _daily_histograms(self, f: ReportFilter, weekly: bool) -> list[tuple[str, str, str, int, int]]:
        h = report_response_hist
        bucket = self._week_start(h.c.day) if weekly else h.c.day
        total = func.sum(h.c.n)
        stmt = (select(bucket, h.c.priority, h.c.kind, h.c.bin, total).where(*f.where(h, labels=False))
                .group_by(bucket, h.c.priority, h.c.kind, h.c.bin).having(total > 0))
        with self.engine.connect() as conn:
            return [(str(b), priority, kind, int(bin_), int(n)) for b, priority, kind, bin_, n in conn.execute(stmt)]

    def _week_start(self, day: Any) -> Any:
        """The Monday ('YYYY-MM-DD') starting the week of a 'YYYY-MM-DD' column, in SQL."""
        if self.engine.dialect.name == "postgresql":
            return func.to_char(func.date_trunc("week", cast(day, Date)), literal("YYYY-MM-DD"))
        # SQLite: six days back, then forward to the next Monday (or that very day if it is one).
        return func.date(day, literal("-6 days"), literal("weekday 1"))

    def replies_within(self, f: ReportFilter, targets: dict[str, int]) -> dict[str, int]:
        """Per priority: tickets of the range whose first public reply came within the
        priority's target (seconds; priorities not in `targets` count none). Exact, from
        ticket_facts, for a week or so (the SLA table of the weekly report)."""
        t = ticket_facts
        if not targets:
            return {}
        target = case(*((t.c.priority == p, seconds) for p, seconds in targets.items()), else_=-1)
        stmt = (select(t.c.priority, func.count()).where(*f.where(t)).where(t.c.reply_seconds.is_not(None))
                .where(t.c.reply_seconds <= target).group_by(t.c.priority))
        with self.engine.connect() as conn:
            return {str(p): int(n) for p, n in conn.execute(stmt).all()}

    def report_decisions(self, f: ReportFilter, since: datetime, until: datetime, *,
                         qualified: bool | None, limit: int) -> list[dict[str, Any]]:
        """The newest posts posted in [since, until) (only kept or only dropped ones), with why."""
        stmt = (select(posts.c.key, posts.c.platform, posts.c.text, posts.c.url, posts.c.created_at,
                       posts.c.qualified, posts.c.brand, posts.c.reasons, posts.c.source, authors.c.handle,
                       authors.c.name.label("author_name"))
                .join(authors, authors.c.key == posts.c.author_key)
                .where(posts.c.created_at >= since).where(posts.c.created_at < until)
                .order_by(posts.c.created_at.desc()).limit(limit))  # walks ix_posts_created back: no sort
        if qualified is not None:
            stmt = stmt.where(posts.c.qualified == qualified)
        if f.brands:
            stmt = stmt.where(posts.c.brand.in_(list(f.brands)))
        if f.platforms:
            stmt = stmt.where(posts.c.platform.in_(list(f.platforms)))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def report_outbox(self, f: ReportFilter, since: datetime, until: datetime,
                      limit: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Deliveries not done yet (pending, sending, failed) for posts posted in [since, until):
        counts per status and rows (failing first, then the oldest)."""
        where = [posts.c.created_at >= since, posts.c.created_at < until]
        if f.brands:
            where.append(posts.c.brand.in_(list(f.brands)))
        if f.platforms:
            where.append(posts.c.platform.in_(list(f.platforms)))
        waiting = outbox.c.status.in_(["pending", "sending", "failed"])
        failing_first = (outbox.c.status != "failed")
        stmt = (select(outbox, posts.c.text, posts.c.brand, posts.c.platform, posts.c.created_at.label("posted_at"))
                .join(posts, posts.c.key == outbox.c.post_key).where(waiting, *where)
                .order_by(failing_first, outbox.c.id).limit(limit))
        with self.engine.connect() as conn:
            counts = conn.execute(select(outbox.c.status, func.count()).join(posts, posts.c.key == outbox.c.post_key)
                                  .where(waiting, *where).group_by(outbox.c.status)).all()
            rows = [dict(r) for r in conn.execute(stmt).mappings().all()]
        return {status: int(n) for status, n in counts}, rows

    # --- 「いま対応が必要なもの」 and the weekly report -------------------------------------
    def backlog_rows(self, limit: int) -> list[dict[str, Any]]:
        """Tickets without a public reply yet: the `limit` oldest and the `limit` riskiest (the
        page sorts them by SLA state then risk; both orders walk an index)."""
        base = (select(ticket_facts.c.post_key, ticket_facts.c.priority, ticket_facts.c.risk,
                       ticket_facts.c.risk_score, ticket_facts.c.posted_at, ticket_facts.c.brand,
                       ticket_facts.c.platform, posts.c.text, posts.c.url.label("post_url"), authors.c.handle,
                       authors.c.followers, tickets.c.helpdesk, tickets.c.ticket_id,
                       tickets.c.url.label("ticket_url"))
                .join(posts, posts.c.key == ticket_facts.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(tickets, tickets.c.post_key == ticket_facts.c.post_key)
                .where(ticket_facts.c.answered == 0))
        rows: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for order in ((ticket_facts.c.posted_at,), (ticket_facts.c.risk_score.desc(), ticket_facts.c.posted_at)):
                for r in conn.execute(base.order_by(*order).limit(limit)).mappings().all():
                    rows.setdefault(r["post_key"], dict(r))
        return list(rows.values())

    def backlog_counts(self, cutoffs: dict[str, datetime]) -> dict[str, tuple[int, int]]:
        """Per priority: (open tickets, open tickets posted before the priority's SLA cutoff)."""
        out: dict[str, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            totals: dict[str, int] = {str(p): int(n) for p, n in conn.execute(select(ticket_facts.c.priority, func.count()).where(ticket_facts.c.answered == 0)
                                       .group_by(ticket_facts.c.priority)).all()}
            for priority, cutoff in cutoffs.items():
                breached = conn.execute(select(func.count()).where(ticket_facts.c.answered == 0)
                                        .where(ticket_facts.c.priority == priority)
                                        .where(ticket_facts.c.posted_at < cutoff)).scalar() or 0
                out[priority] = (int(totals.get(priority, 0)), int(breached))
        return out

    def alert_posts(self, since: datetime, min_followers: int, limit: int) -> list[dict[str, Any]]:
        """Qualified posts since `since` that are critical or high risk, or by a voice with at
        least `min_followers`, newest first, with their ticket when there is one."""
        stmt = (select(posts.c.key, posts.c.text, posts.c.url, posts.c.created_at, posts.c.platform, posts.c.brand,
                       authors.c.handle, authors.c.followers, analyses.c.risk, analyses.c.risk_score,
                       analyses.c.priority, analyses.c.detail, tickets.c.helpdesk, tickets.c.ticket_id,
                       tickets.c.url.label("ticket_url"), ticket_facts.c.answered)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(analyses, analyses.c.post_key == posts.c.key)
                .outerjoin(tickets, tickets.c.post_key == posts.c.key)
                .outerjoin(ticket_facts, ticket_facts.c.post_key == posts.c.key)
                .where(posts.c.created_at >= since).where(posts.c.qualified == True)  # noqa: E712
                .where((analyses.c.risk.in_(["critical", "high"])) | (authors.c.followers >= min_followers))
                .order_by(posts.c.created_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def storm_growth(self, storm_ids: Sequence[int], since: datetime) -> dict[int, int]:
        """Members posted since `since`, per storm."""
        if not storm_ids:
            return {}
        stmt = (select(storm_members.c.storm_id, func.count()).where(storm_members.c.storm_id.in_(list(storm_ids)))
                .where(storm_members.c.created_at >= since).group_by(storm_members.c.storm_id))
        with self.engine.connect() as conn:
            return {int(i): int(n) for i, n in conn.execute(stmt).all()}

    def ticket_outcomes(self, f: ReportFilter) -> dict[str, Any]:
        """Tickets of the range: per priority the seconds to the first public reply (None:
        none yet) and how many are still open."""
        t = ticket_facts
        stmt = select(t.c.priority, t.c.reply_seconds, t.c.posted_at).where(*f.where(t))
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for priority, seconds, posted_at in conn.execute(stmt):
                out.setdefault(priority, []).append((seconds, posted_at))
        return out

    def corrections_between(self, since: datetime, until: datetime) -> list[tuple[str, str | None, str, int]]:
        """(label, old value, new value, corrections) made by agents in [since, until)."""
        stmt = (select(corrections.c.label, corrections.c.old_value, corrections.c.new_value, func.count())
                .where(corrections.c.created_at >= since).where(corrections.c.created_at < until)
                .group_by(corrections.c.label, corrections.c.old_value, corrections.c.new_value)
                .order_by(func.count().desc()))
        with self.engine.connect() as conn:
            return [(label, old, new, int(n)) for label, old, new, n in conn.execute(stmt).all()]

    def rebuild_reports(self, topics_of: Callable[[dict[str, Any]], Sequence[str]] | None = None) -> int:
        """Recount every report table from the stored posts (after an upgrade, or to add topics
        to posts stored before topics existed). Returns the number of posts counted."""
        with self.engine.begin() as conn:
            return rebuild_reports(conn, topics_of)
