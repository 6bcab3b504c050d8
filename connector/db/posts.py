"""Posts, their authors and analyses: ingest and the reads around a post."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from connector.db.counts import (
    AUTHOR_PROFILE,
    Entry,
    batch_statements,
    count_posts,
    post_counts,
    write_counts,
    write_topics,
)
from connector.db.engine import dialect_insert, unnest_insert, utcnow
from connector.db.schema import analyses, authors, channel_feed, outbox, posts, report_daily_label, tickets
from connector.models import Analysis, Decision, Post


@dataclass(frozen=True, slots=True)
class PostRecord:
    """One new post of a batch for `Store.record_posts`."""

    post: Post
    decision: Decision
    analysis: Analysis | None
    ticket_post_key: str | None = None
    topics: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Promotion:
    """A post stored without a ticket that qualifies now, in the transaction that found out:
    an echo by a voice whose parent joined a storm only after it was stored (issue 17). Its
    counts move from `before` to `after`; `topics` are its complaint topics as it qualifies."""

    post: Post
    before: Decision
    after: Decision
    analysis: Analysis | None
    topics: Sequence[str] = ()


#: What `record_post(s)`'s `then` (the storm grouping) may hand back: posts it made qualify.
Then = Callable[[Connection], Sequence[Promotion] | None]


@dataclass(frozen=True, slots=True)
class PostRow:
    """A stored post as its row (the sidebar's view; `load_post` gives the domain objects)."""

    key: str  # "<platform>:<post id>"
    platform: str
    post_id: str
    url: str | None
    created_at: datetime
    lang: str | None
    text: str
    author_key: str
    metrics: dict[str, Any]
    in_reply_to: str | None
    conversation_id: str | None
    repost_of: str | None
    quote_of: str | None
    qualified: bool
    brand: str | None
    reasons: list[str]
    source: str  # how it reached us: replay, webhook, demo…
    ingested_at: datetime


def post_from_row(row: Any) -> tuple[Post, Decision, Analysis | None]:
    """A stored post (joined with its author and analysis) as domain objects."""
    post = Post.model_validate({
        "platform": row["platform"], "id": row["post_id"], "url": row["url"],
        "created_at": row["created_at"], "lang": row["lang"], "text": row["text"],
        "author": {"id": row["author_id"], "handle": row["handle"], "name": row["author_name"],
                   "bio": row["bio"], "location": row["location"], "followers": row["followers"],
                   "following": row["following"], "created_at": row["author_created_at"],
                   "avatar_url": row["avatar_url"]},
        "metrics": row["metrics"], "in_reply_to": row["in_reply_to"],
        "conversation_id": row["conversation_id"], "repost_of": row["repost_of"],
        "quote_of": row["quote_of"],
    })
    decision = Decision(bool(row["qualified"]), row["brand"], tuple(row["reasons"]))
    analysis = Analysis.from_dict(row["detail"]) if row["detail"] else None
    return post, decision, analysis


#: PostgreSQL: the tail of the batch's author upsert (`unnest_insert`): as `batch_statements`'
#: "authors", a stored author's profile refreshed.
_AUTHORS_REFRESH_PG = "ON CONFLICT (key) DO UPDATE SET " + ", ".join(
    f"{name} = EXCLUDED.{name}" for name in AUTHOR_PROFILE)

_FEED_PG = text("INSERT INTO channel_feed (post_key) SELECT k FROM unnest(CAST(:keys AS varchar[])) WITH ORDINALITY "
                "AS u(k, i) ORDER BY i")


def append_to_feed(conn: Connection, keys: Sequence[str]) -> None:
    """Number qualifying posts for the Channel framework feed in commit order. Call it as the
    LAST statement of the ingest transaction: on PostgreSQL it takes a table lock that
    serialises numbering with commit (see `schema.channel_feed`), held only until the commit
    that follows."""
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE channel_feed IN SHARE ROW EXCLUSIVE MODE"))
        # One statement, not psycopg's one pipelined INSERT per key: this runs under the brand
        # lock (issue 17). The keys are numbered in the array's order, as one by one.
        conn.execute(_FEED_PG, {"keys": list(keys)})
        return
    conn.execute(insert(channel_feed), [{"post_key": key} for key in keys])


def _outbox_row(post_key: str, ticket_post_key: str | None, now: datetime) -> dict[str, Any]:
    """A qualifying post's outbox row: `create` its ticket, or `comment` on `ticket_post_key`'s."""
    return dict(post_key=post_key, kind="comment" if ticket_post_key else "create",
                ticket_post_key=ticket_post_key or post_key, status="pending", attempts=0,
                next_attempt_at=now, created_at=now, updated_at=now)


def _counted_after(promoted: Sequence[Promotion]) -> list[Entry]:
    return [(p.post, p.after, p.analysis, p.topics) for p in promoted]


def _counted_before(promoted: Sequence[Promotion]) -> list[Entry]:
    return [(p.post, p.before, p.analysis, ()) for p in promoted]


class _AlreadyStored(Exception):
    """Raised inside a transaction to roll it back when the post is a duplicate."""



class PostRepository:
    """Posts, their authors and analyses: ingest and the reads around a post."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def post_exists(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(posts.c.key).where(posts.c.key == key)).first() is not None

    def find_thread_ticket(self, post: Post) -> tuple[str, str | None] | None:
        """The ticketed post (key, brand) this post continues, if any.

        A follow-up is a later post by the same author whose `in_reply_to` or
        `conversation_id` points at a post of that conversation which has (or will have) a
        ticket. Other people's replies in the thread are separate customers.
        """
        refs = {r for r in (post.in_reply_to, post.conversation_id) if r}
        if not refs:
            return None
        author_key = f"{post.platform}:{post.author.id}"
        candidates = [f"{post.platform}:{r}" for r in refs]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(outbox.c.ticket_post_key, posts.c.brand)
                .join(posts, posts.c.key == outbox.c.post_key)
                .where(posts.c.author_key == author_key)
                .where((posts.c.key.in_(candidates)) | (
                    (posts.c.platform == post.platform) & posts.c.conversation_id.in_(list(refs))))
                .order_by(outbox.c.id)
                .limit(1)
            ).first()
        return (row.ticket_post_key, row.brand) if row else None

    def record_post(self, post: Post, decision: Decision, analysis: Analysis | None, *,
                    source: str, ticket_post_key: str | None = None, topics: Sequence[str] = (),
                    then: Then | None = None) -> bool:
        """Store a post with its decision, analysis and outbox row in one transaction.

        Returns False (and writes nothing) when the post was already stored. For a qualifying
        post an outbox row is added: `create`, or `comment` on `ticket_post_key`'s ticket.
        The dashboard's counts (and the post's complaint `topics`) are added in the same
        transaction, so they never disagree with the posts stored. `then(conn)` runs in the
        same transaction (the storm grouping): its failure stores nothing, and the posts it
        makes qualify (`Promotion`) get their outbox rows and counts here.
        """
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                self._insert_post(conn, post, decision, analysis, source, ticket_post_key, now)
                promoted = list(then(conn) or ()) if then is not None else []
                self._promote(conn, promoted, now)
                count_posts(conn, [(post, decision, analysis, topics)] + _counted_after(promoted),
                            removed=_counted_before(promoted))
                append_to_feed(conn, ([post.key] if decision.qualified else []) + [p.post.key for p in promoted])
        except _AlreadyStored:
            return False
        return True

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these post keys are stored already (one query for a batch)."""
        if not keys:
            return set()
        with self.engine.connect() as conn:
            return set(conn.execute(select(posts.c.key).where(posts.c.key.in_(list(keys)))).scalars().all())

    def record_posts(self, batch: Sequence["PostRecord"], *, source: str,
                     then: Then | None = None) -> None:
        """Store a batch of new posts (each with its decision, analysis, outbox row, counts and
        topics) in ONE transaction: all of them or, on any error, none.

        The caller checked that none is stored yet (`existing_keys`); another instance storing
        one meanwhile makes this raise IntegrityError with nothing written, and the caller
        falls back to `record_post` one by one. Statements are built once per table and run
        with many rows each (executemany): building a SQLAlchemy statement per row cost more
        than the SQL itself.
        """
        if not batch:
            return
        now = utcnow()
        counts = post_counts([(r.post, r.decision, r.analysis, r.topics) for r in batch])
        with self.engine.begin() as conn:
            statements = batch_statements(conn)
            author_rows: dict[str, dict[str, Any]] = {}
            for record in batch:
                author = record.post.author
                author_rows[f"{record.post.platform}:{author.id}"] = dict(
                    key=f"{record.post.platform}:{author.id}", platform=record.post.platform, author_id=author.id,
                    handle=author.handle, name=author.name, bio=author.bio, location=author.location,
                    followers=author.followers, following=author.following, created_at=author.created_at,
                    avatar_url=author.avatar_url, updated_at=now)
            # Hot rows last (issue 17): an upsert row-locks until commit, so a profile refresh or a
            # summary-count bump done first would make any other instance writing the same author
            # or brand/day wait for this whole transaction (storm grouping included). Here only
            # the new authors are inserted (DO NOTHING takes no lock on a stored row); profiles
            # and counts are written at the end, each in key order so two batches cannot deadlock.
            # Everything else goes before the grouping, whose brand locks make other instances
            # wait from then until commit: the batch's own new rows, and the counts' pure work
            # (`post_counts`, above).
            ordered = [author_rows[key] for key in sorted(author_rows)]
            conn.execute(statements["authors_new"], ordered)
            conn.execute(insert(posts), [dict(
                key=r.post.key, platform=r.post.platform, post_id=r.post.id, url=r.post.url,
                created_at=r.post.created_at, lang=r.post.lang, text=r.post.text,
                author_key=f"{r.post.platform}:{r.post.author.id}", metrics=r.post.metrics.model_dump(),
                in_reply_to=r.post.in_reply_to, conversation_id=r.post.conversation_id, repost_of=r.post.repost_of,
                quote_of=r.post.quote_of, qualified=r.decision.qualified, brand=r.decision.brand, reasons=list(r.decision.reasons),
                source=source, ingested_at=now) for r in batch])
            analysed = [(r.post.key, r.analysis) for r in batch if r.analysis is not None]
            if analysed:
                conn.execute(insert(analyses), [dict(
                    post_key=key, sentiment=a.sentiment.value,
                    sentiment_score=a.sentiment.score, intent=a.intent.value,
                    expectation_type=a.expectation_type.value,
                    expectation_content=a.expectation_content.value,
                    quality_axis=a.quality_axis.value, risk=a.risk.value,
                    risk_score=a.risk.score, priority=a.priority.value,
                    detail=a.to_dict(), version=a.version, analysed_at=now)
                    for key, a in analysed])
            qualified = [r for r in batch if r.decision.qualified]
            if qualified:
                conn.execute(insert(outbox), [_outbox_row(r.post.key, r.ticket_post_key, now) for r in qualified])
            write_topics(conn, counts)
            # the storm grouping, in this transaction (all or nothing)
            promoted = list(then(conn) or ()) if then is not None else []
            self._promote(conn, promoted, now)
            if conn.dialect.name == "postgresql":
                # One statement, not psycopg's one pipelined upsert per author (issue 17: it runs
                # under the brand lock); unnest keeps the key order the rows are locked in.
                unnest_insert(conn, authors, ordered, _AUTHORS_REFRESH_PG)
            else:
                conn.execute(statements["authors"], ordered)
            if promoted:  # known only now, and rare: their few rows are worked out here
                moved = post_counts(_counted_after(promoted), removed=_counted_before(promoted))
                write_topics(conn, moved)
                counts = counts.plus(moved)
            write_counts(conn, counts)
            append_to_feed(conn, [r.post.key for r in qualified] + [p.post.key for p in promoted])

    @staticmethod
    def _promote(conn: Connection, promoted: Sequence[Promotion], now: datetime) -> None:
        """Posts stored earlier without a ticket that qualify now: the row says so, and an
        outbox row makes their ticket (their counts move with the batch's, `_counted_*`)."""
        for p in promoted:
            conn.execute(update(posts).where(posts.c.key == p.post.key).values(
                qualified=True, brand=p.after.brand, reasons=list(p.after.reasons)))
        if promoted:
            conn.execute(insert(outbox), [_outbox_row(p.post.key, None, now) for p in promoted])

    @staticmethod
    def _insert_post(conn: Connection, post: Post, decision: Decision, analysis: Analysis | None,
                     source: str, ticket_post_key: str | None, now: datetime) -> None:
        author = post.author
        author_key = f"{post.platform}:{author.id}"
        profile = dict(handle=author.handle, name=author.name, bio=author.bio, location=author.location,
                       followers=author.followers, following=author.following,
                       created_at=author.created_at, avatar_url=author.avatar_url, updated_at=now)
        stmt = dialect_insert(conn, authors).values(key=author_key, platform=post.platform, author_id=author.id, **profile)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=profile))
        inserted = conn.execute(dialect_insert(conn, posts).values(
            key=post.key, platform=post.platform, post_id=post.id, url=post.url,
            created_at=post.created_at, lang=post.lang, text=post.text, author_key=author_key,
            metrics=post.metrics.model_dump(), in_reply_to=post.in_reply_to,
            conversation_id=post.conversation_id, repost_of=post.repost_of, quote_of=post.quote_of,
            qualified=decision.qualified, brand=decision.brand, reasons=list(decision.reasons),
            source=source, ingested_at=now,
        ).on_conflict_do_nothing(index_elements=["key"]))
        if inserted.rowcount == 0:
            # Already stored: roll the author refresh back too, nothing changes.
            raise _AlreadyStored(post.key)
        if analysis is not None:
            conn.execute(insert(analyses).values(
                post_key=post.key, sentiment=analysis.sentiment.value,
                sentiment_score=analysis.sentiment.score, intent=analysis.intent.value,
                expectation_type=analysis.expectation_type.value,
                expectation_content=analysis.expectation_content.value,
                quality_axis=analysis.quality_axis.value, risk=analysis.risk.value,
                risk_score=analysis.risk.score, priority=analysis.priority.value,
                detail=analysis.to_dict(), version=analysis.version, analysed_at=now,
            ))
        if decision.qualified:
            conn.execute(insert(outbox).values(**_outbox_row(post.key, ticket_post_key, now)))

    @staticmethod
    def _loading() -> Any:
        return (select(posts, authors.c.author_id, authors.c.handle, authors.c.name.label("author_name"),
                       authors.c.bio, authors.c.location, authors.c.followers, authors.c.following,
                       authors.c.created_at.label("author_created_at"), authors.c.avatar_url,
                       analyses.c.detail)
                .join(authors, authors.c.key == posts.c.author_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key))

    def load_post(self, key: str) -> tuple[Post, Decision, Analysis | None] | None:
        with self.engine.connect() as conn:
            row = conn.execute(self._loading().where(posts.c.key == key)).mappings().first()
        if row is None:
            return None
        return post_from_row(row)

    def load_posts(self, keys: Sequence[str], conn: Connection | None = None,
                   ) -> dict[str, tuple[Post, Decision, Analysis | None]]:
        """`load_post` for many keys in one query (a bulk run's claim; `conn`: inside that
        transaction); missing keys are absent."""
        found: dict[str, tuple[Post, Decision, Analysis | None]] = {}
        with (nullcontext(conn) if conn is not None else self.engine.connect()) as conn:
            for start in range(0, len(keys), 500):  # within any database's bound-parameter limit
                for row in conn.execute(self._loading().where(posts.c.key.in_(list(keys[start:start + 500])))).mappings():
                    found[row["key"]] = post_from_row(row)
        return found

    def post_row(self, key: str) -> PostRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(posts).where(posts.c.key == key)).mappings().first()
        return PostRow(**row) if row else None

    def author_of(self, post_key: str) -> dict[str, Any] | None:
        """The author row of a stored post (profile as last seen)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(authors).join(posts, posts.c.author_key == authors.c.key)
                               .where(posts.c.key == post_key)).mappings().first()
        return dict(row) if row else None

    def author_posts(self, author_key: str, *, brand: str | None = None, exclude_key: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """The author's stored posts (about `brand` when given), newest first, with their
        sentiment and intent and the ticket each one has (if any)."""
        stmt = (select(posts.c.key, posts.c.platform, posts.c.url, posts.c.text, posts.c.created_at,
                       posts.c.brand, posts.c.qualified, analyses.c.sentiment, analyses.c.sentiment_score,
                       analyses.c.intent, tickets.c.helpdesk, tickets.c.ticket_id)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .outerjoin(tickets, tickets.c.post_key == posts.c.key)
                .where(posts.c.author_key == author_key)
                .order_by(posts.c.created_at.desc(), posts.c.key.desc()).limit(limit))
        if brand is not None:
            stmt = stmt.where(posts.c.brand == brand)
        if exclude_key is not None:
            stmt = stmt.where(posts.c.key != exclude_key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def thread_posts(self, ticket_post_key: str) -> list[dict[str, Any]]:
        """Follow-up posts delivered (or waiting) as comments on a ticket, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(posts.c.key, posts.c.text, posts.c.url, posts.c.created_at, outbox.c.status)
                .join(outbox, outbox.c.post_key == posts.c.key)
                .where(outbox.c.ticket_post_key == ticket_post_key).where(outbox.c.kind == "comment")
                .order_by(posts.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def decisions(self, limit: int = 500, qualified: bool | None = None) -> list[dict[str, Any]]:
        stmt = (select(posts.c.key, posts.c.platform, posts.c.text, posts.c.url, posts.c.created_at,
                       posts.c.qualified, posts.c.brand, posts.c.reasons, posts.c.source,
                       authors.c.handle, authors.c.name.label("author_name"))
                .join(authors, authors.c.key == posts.c.author_key)
                .order_by(posts.c.ingested_at.desc(), posts.c.created_at.desc()).limit(limit))
        if qualified is not None:
            stmt = stmt.where(posts.c.qualified == qualified)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def counts(self) -> dict[str, int]:
        """Posts stored, qualified ones, tickets. The posts are counted from report_daily_label
        (its 'qualified' rows, written with each post; posts are never deleted, a compliance
        purge keeps the row): counting a million posts, and the qualified ones without an
        index, read the whole table on every /tickets view."""
        t = report_daily_label
        with self.engine.connect() as conn:
            by_value = {str(value): int(n) for value, n in conn.execute(
                select(t.c.value, func.sum(t.c.n)).where(t.c.label == "qualified").group_by(t.c.value)).all()}
            ticket_count = conn.execute(select(func.count()).select_from(tickets)).scalar() or 0
        return {"posts": sum(by_value.values()), "qualified": by_value.get("1", 0), "tickets": ticket_count}
