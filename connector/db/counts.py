"""The dashboard's summary tables, kept in step with the rows they count.

Every function here takes the caller's `conn` and joins its transaction: a post and its
counts (or a ticket and its facts) are written together or not at all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import Table, TextClause, func, insert, literal_column, select, update
from sqlalchemy.engine import Connection, Dialect

from connector.db.engine import dialect_insert, unnest_insert_statement
from connector.db.schema import (
    LABEL_COLUMNS,
    analyses,
    authors,
    exchanges,
    post_topics,
    posts,
    report_daily,
    report_daily_label,
    report_reasons,
    report_response_hist,
    report_response_weekly,
    report_topic_monthly,
    ticket_facts,
    ticket_status,
    tickets,
)
from connector.latency_bins import bin_of
from connector.models import Analysis, Decision, Post
from connector.report_time import report_day

_BATCH_STATEMENTS: dict[str, dict[str, Any]] = {}


def label_values(analysis: Analysis | None) -> dict[str, str]:
    if analysis is None:
        return {name: "" for name in LABEL_COLUMNS}
    return {name: getattr(analysis, name).value for name in LABEL_COLUMNS}


def one_label_values(qualified: bool, platform: str, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(label, value) rows of report_daily_label for one post: every post counts under
    'qualified' and 'platform'; only analysed (qualified) posts under the analysis labels."""
    pairs = [("qualified", str(int(qualified))), ("platform", platform)]
    if qualified:
        pairs += [(name, value) for name, value in labels.items() if value]
    return pairs


#: An author's profile columns: what a later post of the same author refreshes.
AUTHOR_PROFILE = ("handle", "name", "bio", "location", "followers", "following", "created_at", "avatar_url",
                  "updated_at")


def batch_statements(conn: Connection) -> dict[str, Any]:
    """Upserts for batches, built once per dialect and run with many parameter sets each."""
    dialect = conn.dialect.name
    if dialect not in _BATCH_STATEMENTS:
        built: dict[str, Any] = {}
        stmt = dialect_insert(conn, authors)
        built["authors"] = stmt.on_conflict_do_update(index_elements=["key"], set_={
            name: stmt.excluded[name] for name in AUTHOR_PROFILE})
        built["authors_new"] = dialect_insert(conn, authors).on_conflict_do_nothing(index_elements=["key"])
        for table in (report_daily, report_daily_label, report_reasons, report_topic_monthly, report_response_hist,
                      report_response_weekly):
            if dialect == "postgresql":
                built[table.name] = _unnest_bump(table, conn.dialect)
                continue
            stmt = dialect_insert(conn, table)
            keys = [c.name for c in table.primary_key.columns]
            built[table.name] = stmt.on_conflict_do_update(index_elements=keys, set_={"n": table.c.n + stmt.excluded.n})
        built["post_topics"] = dialect_insert(conn, post_topics).on_conflict_do_nothing(index_elements=["post_key", "topic"])
        _BATCH_STATEMENTS[dialect] = built
    return _BATCH_STATEMENTS[dialect]


def _unnest_bump(table: Table, dialect: Dialect) -> TextClause:
    """PostgreSQL: a report table's bumps in ONE statement (`unnest_insert_statement`): psycopg's
    executemany sends one pipelined upsert per row, and the bumps run at the end of the ingest
    transaction, under the brand lock (issue 17). unnest keeps the rows' (key) order, so two
    transactions still lock overlapping rows in one order."""
    quote = dialect.identifier_preparer.quote
    keys = ", ".join(quote(c.name) for c in table.primary_key.columns)
    return unnest_insert_statement(table, tuple(c.name for c in table.columns), dialect,
                                   f"ON CONFLICT ({keys}) DO UPDATE SET n = {table.name}.n + EXCLUDED.n")


def add_counts(conn: Connection, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add each row's `n` to a report table's row of the same key (inserted when missing).
    The rows' keys must be distinct (one statement cannot update a row twice)."""
    stmt = batch_statements(conn)[table]
    if isinstance(stmt, TextClause):
        conn.execute(stmt, {name: [row[name] for row in rows] for name in rows[0]})
    else:
        conn.execute(stmt, list(rows))


Entry = tuple[Post, Decision, Analysis | None, Sequence[str]]  # a post, its decision, analysis and topics


def count_posts(conn: Connection, entries: Sequence[Entry], *, removed: Sequence[Entry] = ()) -> None:
    """Add posts to the dashboard's summary tables (and their topics to post_topics).
    `removed`: posts counted earlier as they no longer are (a stored echo that qualifies now),
    taken out in the same statements, so the rows of both are locked once and in one key order."""
    counts = post_counts(entries, removed=removed)
    write_topics(conn, counts)
    write_counts(conn, counts)


@dataclass(frozen=True, slots=True)
class PostCounts:
    """What posts add to the summary tables: `topics`, the post_topics rows (new posts' own
    rows), and `bumps`, per report table what to add to each row (by key, summed)."""

    topics: list[dict[str, Any]]
    bumps: dict[str, Counter[tuple[tuple[str, Any], ...]]]

    def plus(self, other: PostCounts) -> PostCounts:
        bumps = {name: Counter(counter) for name, counter in self.bumps.items()}
        for name, counter in other.bumps.items():
            bumps.setdefault(name, Counter()).update(counter)  # update: keeps what sums to ≤ 0
        return PostCounts(self.topics + other.topics, bumps)


def post_counts(entries: Sequence[Entry], *, removed: Sequence[Entry] = ()) -> PostCounts:
    """The rows posts add (and `removed` ones take out), worked out without the database: an
    ingest does it before its transaction, so none of it runs while the transaction holds
    the brand lock (issue 17)."""
    bumps: dict[str, Counter[tuple[tuple[str, Any], ...]]] = {name: Counter() for name in
                                 ("report_daily", "report_daily_label", "report_reasons", "report_topic_monthly")}
    topic_rows: list[dict[str, Any]] = []
    signed = [(entry, 1) for entry in entries] + [(entry, -1) for entry in removed]
    for (post, decision, analysis, topics), sign in signed:
        where = dict(day=report_day(post.created_at), brand=decision.brand or "", platform=post.platform)
        labels = label_values(analysis)
        bumps["report_daily"][_frozen({**where, "qualified": int(decision.qualified), **labels})] += sign
        for label, value in one_label_values(decision.qualified, post.platform, labels):
            bumps["report_daily_label"][_frozen({**where, "label": label, "value": value})] += sign
        for reason in dict.fromkeys(decision.reasons):
            bumps["report_reasons"][_frozen({**where, "qualified": int(decision.qualified), "reason": reason[:400]})] += sign
        for topic in dict.fromkeys(t[:100] for t in topics):
            if sign > 0:  # a post's topics are stored once it qualifies, never before
                topic_rows.append(dict(post_key=post.key, topic=topic, **where, **labels))
            bumps["report_topic_monthly"][_frozen({"month": where["day"][:7], "brand": where["brand"],
                                                   "platform": where["platform"], "topic": topic})] += sign
    return PostCounts(topic_rows, bumps)


def write_topics(conn: Connection, counts: PostCounts) -> None:
    """The post_topics rows: rows of new (or newly qualifying) posts only, which no other
    transaction writes, so a batch's may go before the grouping's locks."""
    if counts.topics:
        conn.execute(batch_statements(conn)["post_topics"], counts.topics)


def write_counts(conn: Connection, counts: PostCounts) -> None:
    """The report tables' bumps: hot rows (a brand's day), row-locked until commit, so written
    last in the transaction (see `PostRepository.record_posts`)."""
    for name, counter in counts.bumps.items():
        # In key order: two transactions bumping overlapping rows lock them in the same order.
        # A row whose bumps cancel out (a post counted again as it is now) needs no write.
        rows = [{**dict(key), "n": n} for key, n in sorted(counter.items(), key=_order) if n]
        if rows:
            add_counts(conn, name, rows)


def _order(item: tuple[tuple[tuple[str, Any], ...], int]) -> tuple[str, ...]:
    return tuple(str(value) for _, value in item[0])


def _frozen(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(values.items())


def record_ticket_facts_many(conn: Connection, post_keys: Sequence[str], ticket_created_at: datetime) -> None:
    """The facts of tickets just made (one, or a bulk job's), with one query per step instead
    of one per ticket: the posts, their first replies, and one insert whose
    RETURNING says which facts are new — only those count in the bins, as one by one."""
    keys = list(dict.fromkeys(post_keys))
    if not keys:
        return
    rows = {row["key"]: row for row in conn.execute(
        select(posts.c.key, posts.c.created_at, posts.c.brand, posts.c.platform, analyses.c.sentiment,
               analyses.c.intent, analyses.c.expectation_type, analyses.c.expectation_content,
               analyses.c.quality_axis, analyses.c.priority, analyses.c.risk, analyses.c.risk_score)
        .outerjoin(analyses, analyses.c.post_key == posts.c.key)
        .where(posts.c.key.in_(keys))).mappings()}
    if not rows:
        return
    first_replies = dict(conn.execute(select(exchanges.c.ticket_post_key, func.min(exchanges.c.sent_at))
                                      .where(exchanges.c.ticket_post_key.in_(list(rows)))
                                      .group_by(exchanges.c.ticket_post_key)).all())
    facts = [ticket_fact(key, rows[key], ticket_created_at, first_replies.get(key)) for key in keys if key in rows]
    inserted = set(conn.execute(dialect_insert(conn, ticket_facts).values(facts)
                                .on_conflict_do_nothing(index_elements=["post_key"])
                                .returning(ticket_facts.c.post_key)).scalars())
    new = [fact for fact in facts if fact["post_key"] in inserted]
    if new:  # a second delivery of the same ticket changes nothing, its bins neither
        count_response_times(conn, new)


def count_response_times(conn: Connection, facts: Sequence[Mapping[Any, Any]]) -> None:
    """Add tickets (ticket_facts rows) to report_response_hist: their post → ticket bin and,
    when answered, their post → first reply bin; one upsert per distinct row."""

    bumps: Counter[tuple[str, str, str, str, str, int]] = Counter()
    weekly: Counter[tuple[str, str, str, int]] = Counter()
    for fact in facts:
        where = (fact["day"], fact["priority"], fact["brand"], fact["platform"])
        for kind, seconds in (("ticket", fact["ticket_seconds"]), ("reply", fact["reply_seconds"])):
            if seconds is not None:
                bumps[(*where[:2], kind, *where[2:], bin_of(seconds))] += 1
                weekly[(monday_of(fact["day"]), fact["priority"], kind, bin_of(seconds))] += 1
    if bumps:
        add_counts(conn, "report_response_hist",
                   [dict(day=day, priority=priority, kind=kind, brand=brand, platform=platform, bin=b, n=n)
                    for (day, priority, kind, brand, platform, b), n in bumps.items()])
        add_counts(conn, "report_response_weekly",
                   [dict(week=week, priority=priority, kind=kind, bin=b, n=n)
                    for (week, priority, kind, b), n in weekly.items()])


def monday_of(day: str) -> str:
    """The Monday starting the week of a day ('YYYY-MM-DD' both)."""
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


def _move_reply(conn: Connection, fact: Any, old_seconds: int | None, new_seconds: int) -> None:
    """A ticket's first reply time became `new_seconds` (was `old_seconds`, None: no reply)."""
    where = dict(day=fact["day"], priority=fact["priority"], kind="reply", brand=fact["brand"],
                 platform=fact["platform"])
    week = dict(week=monday_of(fact["day"]), priority=fact["priority"], kind="reply")
    if old_seconds is not None:
        for table, key in ((report_response_hist, where), (report_response_weekly, week)):
            conn.execute(update(table).where(*(table.c[k] == v for k, v in key.items()))
                         .where(table.c.bin == bin_of(old_seconds)).values(n=table.c.n - 1))
    add_counts(conn, "report_response_hist", [{**where, "bin": bin_of(new_seconds), "n": 1}])
    add_counts(conn, "report_response_weekly", [{**week, "bin": bin_of(new_seconds), "n": 1}])


def ticket_fact(post_key: str, row: Any, ticket_created_at: datetime, first_reply: datetime | None) -> dict[str, Any]:
    posted_at = row["created_at"]
    return dict(
        post_key=post_key, day=report_day(posted_at), brand=row["brand"] or "", platform=row["platform"],
        **{name: row[name] or "" for name in LABEL_COLUMNS},
        priority=row["priority"] or "normal", risk=row["risk"] or "low", risk_score=row["risk_score"] or 0.0,
        posted_at=posted_at, ticket_seconds=round((ticket_created_at - posted_at).total_seconds()),
        reply_seconds=round((first_reply - posted_at).total_seconds()) if first_reply else None,
        answered=int(first_reply is not None),
    )


_HIST_KEY = (ticket_facts.c.day, ticket_facts.c.priority, ticket_facts.c.brand, ticket_facts.c.platform)


def record_first_reply(conn: Connection, exchange_id: int, sent_at: datetime) -> None:
    ticket_post_key = conn.execute(select(exchanges.c.ticket_post_key).where(exchanges.c.id == exchange_id)).scalar()
    fact = conn.execute(select(ticket_facts.c.posted_at, *_HIST_KEY).where(ticket_facts.c.post_key == ticket_post_key)
                        .where(ticket_facts.c.reply_seconds.is_(None))).mappings().first()
    if fact is None:  # no ticket (yet), or an earlier reply already counted
        return
    seconds = round((sent_at - fact["posted_at"]).total_seconds())
    changed = conn.execute(update(ticket_facts).where(ticket_facts.c.post_key == ticket_post_key)
                           .where(ticket_facts.c.reply_seconds.is_(None))
                           .values(reply_seconds=seconds, answered=1)).rowcount
    if changed:
        _move_reply(conn, fact, None, seconds)


def record_public_reply(conn: Connection, post_key: str, replied_at: datetime) -> None:
    """A public agent reply the helpdesk reported (written in the helpdesk, or anywhere it
    saw): the ticket's first reply time becomes the earliest of all its public replies."""
    fact = conn.execute(select(ticket_facts.c.posted_at, ticket_facts.c.reply_seconds, *_HIST_KEY)
                        .where(ticket_facts.c.post_key == post_key)).mappings().first()
    if fact is None:
        return
    seconds = max(0, round((replied_at - fact["posted_at"]).total_seconds()))
    old = fact["reply_seconds"]
    if old is not None and old <= seconds:
        return
    changed = conn.execute(update(ticket_facts).where(ticket_facts.c.post_key == post_key)
                           .where((ticket_facts.c.reply_seconds.is_(None)) | (ticket_facts.c.reply_seconds > seconds))
                           .values(reply_seconds=seconds, answered=1)).rowcount
    if changed:
        _move_reply(conn, fact, old, seconds)


def rebuild_reports(conn: Connection, topics_of: Callable[[dict[str, Any]], Sequence[str]] | None) -> int:

    for table in ((report_daily, report_daily_label, report_reasons, ticket_facts, report_response_hist,
                   report_response_weekly)
                  + ((post_topics,) if topics_of else ())):
        conn.execute(table.delete())
    daily: Counter[tuple[Any, ...]] = Counter()
    one_label: Counter[tuple[Any, ...]] = Counter()
    reasons: Counter[tuple[Any, ...]] = Counter()
    counted = 0
    stmt = (select(posts.c.key, posts.c.created_at, posts.c.platform, posts.c.brand, posts.c.qualified,
                   posts.c.reasons, posts.c.text, posts.c.lang,
                   *(analyses.c[name] for name in LABEL_COLUMNS), analyses.c.detail)
            .outerjoin(analyses, analyses.c.post_key == posts.c.key))
    for row in conn.execute(stmt).mappings():
        counted += 1
        where = (report_day(row["created_at"]), row["brand"] or "", row["platform"])
        labels = tuple(row[name] or "" for name in LABEL_COLUMNS)
        qualified = int(bool(row["qualified"]))
        daily[(*where, qualified, *labels)] += 1
        for label, value in one_label_values(bool(qualified), row["platform"], dict(zip(LABEL_COLUMNS, labels))):
            one_label[(label, *where, value)] += 1
        for reason in dict.fromkeys(row["reasons"] or []):
            reasons[(*where, qualified, reason[:400])] += 1
        if topics_of is not None:
            for topic in dict.fromkeys(t[:100] for t in topics_of(dict(row))):
                conn.execute(insert(post_topics).values(
                    post_key=row["key"], topic=topic, day=where[0], brand=where[1], platform=where[2],
                    **dict(zip(LABEL_COLUMNS, labels))))
    # Monthly topic counts from post_topics (new or kept), whichever way it was filled.
    conn.execute(report_topic_monthly.delete())
    conn.execute(insert(report_topic_monthly).from_select(
        ["month", "brand", "platform", "topic", "n"],
        select(_month_of(post_topics.c.day), post_topics.c.brand, post_topics.c.platform, post_topics.c.topic,
               func.count()).group_by(_month_of(post_topics.c.day), post_topics.c.brand,
                                      post_topics.c.platform, post_topics.c.topic)))
    keys = ("day", "brand", "platform", "qualified", *LABEL_COLUMNS)
    if daily:
        conn.execute(insert(report_daily), [{**dict(zip(keys, k)), "n": n} for k, n in daily.items()])
    if one_label:
        conn.execute(insert(report_daily_label), [{**dict(zip(("label", "day", "brand", "platform", "value"), k)),
                                                   "n": n} for k, n in one_label.items()])
    if reasons:
        conn.execute(insert(report_reasons), [{**dict(zip(("day", "brand", "platform", "qualified", "reason"), k)),
                                                "n": n} for k, n in reasons.items()])
    first_replies = (select(exchanges.c.ticket_post_key, func.min(exchanges.c.sent_at).label("first_reply"))
                     .group_by(exchanges.c.ticket_post_key).subquery())
    ticket_rows = conn.execute(
        select(tickets.c.post_key, tickets.c.created_at.label("ticket_created_at"), posts.c.created_at,
               posts.c.brand, posts.c.platform, *(analyses.c[name] for name in LABEL_COLUMNS),
               analyses.c.priority, analyses.c.risk, analyses.c.risk_score, first_replies.c.first_reply)
        .join(posts, posts.c.key == tickets.c.post_key)
        .outerjoin(analyses, analyses.c.post_key == tickets.c.post_key)
        .outerjoin(first_replies, first_replies.c.ticket_post_key == tickets.c.post_key)).mappings().all()
    helpdesk_replies = dict(conn.execute(select(ticket_status.c.post_key, ticket_status.c.first_public_reply_at)
                                         .where(ticket_status.c.first_public_reply_at.is_not(None))).all())
    if ticket_rows:
        facts = [ticket_fact(r["post_key"], r, r["ticket_created_at"],
                             min((t for t in (r["first_reply"], helpdesk_replies.get(r["post_key"])) if t is not None),
                                 default=None))
                 for r in ticket_rows]
        conn.execute(insert(ticket_facts), facts)
        count_response_times(conn, facts)
    return counted


def _month_of(day: Any) -> Any:
    """'YYYY-MM' of a 'YYYY-MM-DD' column. The positions are literals, not bound parameters:
    PostgreSQL sees `substr(day, $1, $2)` in SELECT and `substr(day, $3, $4)` in GROUP BY as
    different expressions and refuses the query."""
    return func.substr(day, literal_column("1"), literal_column("7"))


def backfill_response_hist(conn: Connection, batch: int = 50_000) -> int:
    """Fill report_response_hist from ticket_facts (a database from before the histograms):
    read in primary-key order a batch at a time, so a year of tickets never sits in memory."""
    conn.execute(report_response_hist.delete())
    conn.execute(report_response_weekly.delete())
    counted = 0
    after = ""
    columns = (ticket_facts.c.post_key, ticket_facts.c.ticket_seconds, ticket_facts.c.reply_seconds, *_HIST_KEY)
    while True:
        rows = conn.execute(select(*columns).where(ticket_facts.c.post_key > after)
                            .order_by(ticket_facts.c.post_key).limit(batch)).mappings().all()
        if not rows:
            return counted
        count_response_times(conn, rows)
        counted += len(rows)
        after = rows[-1]["post_key"]
