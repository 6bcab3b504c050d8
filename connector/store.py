"""The only place that speaks SQL.

SQLAlchemy Core (not the ORM) so that one set of tables and statements runs on the embedded
SQLite default and, for scale-out, on PostgreSQL. Every state change is one transaction, and
the outbox is written in the same transaction as the post it delivers, so a crash can never
leave a qualifying post without its outbox row (or a half-stored post).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table,
    Text, TypeDecorator, UniqueConstraint, create_engine, event, func, insert, select, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from connector.models import Analysis, Decision, Post, TicketRef

SCHEMA_VERSION = 2


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are always stored and returned as aware UTC datetimes.

    SQLite has no time zone type and would hand back naive values; PostgreSQL stores
    timestamptz. This makes both behave the same for the code above.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)

authors = Table(
    "authors", metadata,
    Column("key", String(300), primary_key=True),  # "<platform>:<author id>"
    Column("platform", String(16), nullable=False),
    Column("author_id", String(256), nullable=False),
    Column("handle", Text), Column("name", Text), Column("bio", Text), Column("location", Text),
    Column("followers", Integer), Column("following", Integer),
    Column("created_at", UTCDateTime), Column("avatar_url", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

posts = Table(
    "posts", metadata,
    Column("key", String(300), primary_key=True),  # "<platform>:<post id>"
    Column("platform", String(16), nullable=False),
    Column("post_id", String(256), nullable=False),
    Column("url", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lang", String(16)),
    Column("text", Text, nullable=False),
    Column("author_key", String(300), ForeignKey("authors.key"), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("in_reply_to", String(256)),
    Column("conversation_id", String(256)),
    Column("repost_of", String(256)),
    Column("qualified", Boolean, nullable=False),
    Column("brand", Text),
    Column("reasons", JSON, nullable=False),
    Column("source", String(64), nullable=False),  # how it reached us: replay, webhook, demo…
    Column("ingested_at", UTCDateTime, nullable=False),
    Index("ix_posts_conversation", "platform", "conversation_id"),
    Index("ix_posts_author", "author_key", "created_at"),
    Index("ix_posts_ingested", "ingested_at"),
)

analyses = Table(
    "analyses", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("sentiment", String(16), nullable=False),
    Column("sentiment_score", Float, nullable=False),
    Column("intent", String(16), nullable=False),
    Column("expectation_type", String(16), nullable=False),
    Column("expectation_content", String(16), nullable=False),
    Column("quality_axis", String(16), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("risk_score", Float, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("detail", JSON, nullable=False),  # Analysis.to_dict(): every label with evidence
    Column("version", String(32), nullable=False),
    Column("analysed_at", UTCDateTime, nullable=False),
)

# One row per qualifying post: what must reach the helpdesk. `ticket_post_key` is the post whose
# ticket this row creates (itself) or comments on (an earlier post of the same conversation).
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_key", String(300), ForeignKey("posts.key"), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # create | comment
    Column("ticket_post_key", String(300), nullable=False),
    Column("status", String(16), nullable=False),  # pending | sending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(200)),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_ticket_post", "ticket_post_key"),
)

# Our record of the tickets we created, in whichever helpdesk is configured.
tickets = Table(
    "tickets", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("helpdesk", String(32), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("url", Text),
    Column("external_id", String(400), nullable=False),
    Column("subject", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("helpdesk", "ticket_id", name="uq_tickets_helpdesk_ticket"),
)

# The built-in `local` helpdesk: tickets kept in the same database, standing in for Zendesk or
# Freshdesk. It is deliberately written through its own transactions, apart from the outbox,
# so that it fails and recovers like a remote helpdesk would.
local_tickets = Table(
    "local_tickets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("external_id", String(400), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("requester_external_id", String(400), nullable=False),
    Column("requester_name", Text, nullable=False),
    Column("post_url", Text),
    Column("fields", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

local_comments = Table(
    "local_comments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("local_tickets.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("author", Text, nullable=False),
    Column("dedupe_key", String(400), unique=True),  # replays of the same comment are ignored
    Column("created_at", UTCDateTime, nullable=False),
)


# An agent's correction of one analysis label (version 2). The learner trains on the latest
# correction of each post; the analysis row itself keeps what the analysis said.
corrections = Table(
    "corrections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_key", String(300), ForeignKey("posts.key"), nullable=False),
    Column("label", String(32), nullable=False),       # sentiment, intent, … (ANALYSIS_LABELS)
    Column("old_value", String(32)),                   # what the analysis said (None: no analysis)
    Column("new_value", String(32), nullable=False),
    Column("agent", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_corrections_label", "label", "post_key", "id"),
)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    post_key: str
    kind: str
    ticket_post_key: str
    attempts: int  # including the current one


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the worker writes; busy_timeout waits for the writer
    # instead of failing at once; NORMAL is durable across process crashes in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A small pool: opening a SQLite connection and setting its pragmas costs more than
        # a whole post's insert. Each pooled connection is used by one thread at a time.
        engine = create_engine(url, poolclass=QueuePool, pool_size=5, max_overflow=10,
                               connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support in both dialects."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.migrate()

    # --- schema -----------------------------------------------------------------------
    def migrate(self) -> None:
        """Create a fresh schema, or bring an older one up to SCHEMA_VERSION."""
        with self.engine.begin() as conn:
            if not self.engine.dialect.has_table(conn, "schema_version"):
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))
                return
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
                conn.execute(insert(schema_version).values(version=version, applied_at=utcnow()))

    # --- ingest -----------------------------------------------------------------------
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
                    source: str, ticket_post_key: str | None = None) -> bool:
        """Store a post with its decision, analysis and outbox row in one transaction.

        Returns False (and writes nothing) when the post was already stored. For a qualifying
        post an outbox row is added: `create`, or `comment` on `ticket_post_key`'s ticket.
        """
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                self._insert_post(conn, post, decision, analysis, source, ticket_post_key, now)
        except _AlreadyStored:
            return False
        return True

    @staticmethod
    def _insert_post(conn: Connection, post: Post, decision: Decision, analysis: Analysis | None,
                     source: str, ticket_post_key: str | None, now: datetime) -> None:
        author = post.author
        author_key = f"{post.platform}:{author.id}"
        profile = dict(handle=author.handle, name=author.name, bio=author.bio, location=author.location,
                       followers=author.followers, following=author.following,
                       created_at=author.created_at, avatar_url=author.avatar_url, updated_at=now)
        stmt = _insert(conn, authors).values(key=author_key, platform=post.platform, author_id=author.id, **profile)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_=profile))
        inserted = conn.execute(_insert(conn, posts).values(
            key=post.key, platform=post.platform, post_id=post.id, url=post.url,
            created_at=post.created_at, lang=post.lang, text=post.text, author_key=author_key,
            metrics=post.metrics.model_dump(), in_reply_to=post.in_reply_to,
            conversation_id=post.conversation_id, repost_of=post.repost_of,
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
            conn.execute(insert(outbox).values(
                post_key=post.key, kind="comment" if ticket_post_key else "create",
                ticket_post_key=ticket_post_key or post.key, status="pending", attempts=0,
                next_attempt_at=now, created_at=now, updated_at=now,
            ))

    def load_post(self, key: str) -> tuple[Post, Decision, Analysis | None] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(posts, authors.c.author_id, authors.c.handle, authors.c.name.label("author_name"),
                       authors.c.bio, authors.c.location, authors.c.followers, authors.c.following,
                       authors.c.created_at.label("author_created_at"), authors.c.avatar_url,
                       analyses.c.detail)
                .join(authors, authors.c.key == posts.c.author_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .where(posts.c.key == key)
            ).mappings().first()
        if row is None:
            return None
        post = Post.model_validate({
            "platform": row["platform"], "id": row["post_id"], "url": row["url"],
            "created_at": row["created_at"], "lang": row["lang"], "text": row["text"],
            "author": {"id": row["author_id"], "handle": row["handle"], "name": row["author_name"],
                       "bio": row["bio"], "location": row["location"], "followers": row["followers"],
                       "following": row["following"], "created_at": row["author_created_at"],
                       "avatar_url": row["avatar_url"]},
            "metrics": row["metrics"], "in_reply_to": row["in_reply_to"],
            "conversation_id": row["conversation_id"], "repost_of": row["repost_of"],
        })
        decision = Decision(bool(row["qualified"]), row["brand"], tuple(row["reasons"]))
        analysis = Analysis.from_dict(row["detail"]) if row["detail"] else None
        return post, decision, analysis

    # --- outbox -----------------------------------------------------------------------
    def claim_due(self, limit: int, lease: timedelta, worker: str | None = None,
                  now: datetime | None = None) -> list[OutboxItem]:
        """Claim up to `limit` due rows for this worker, oldest first.

        A row is due when pending and its retry time has come, or when it is still `sending`
        but its lease ran out (its worker died mid-call). Each claim is a guarded UPDATE that
        only one worker can win, so two workers never deliver the same row at once.
        """
        now = now or utcnow()
        worker = worker or worker_id()
        due = ((outbox.c.status == "pending") & (outbox.c.next_attempt_at <= now)) | \
              ((outbox.c.status == "sending") & (outbox.c.lease_until < now))
        claimed: list[OutboxItem] = []
        with self.engine.connect() as conn:
            candidates = conn.execute(
                select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)).scalars().all()
        for row_id in candidates:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(outbox).where(outbox.c.id == row_id).where(due)
                    .values(status="sending", attempts=outbox.c.attempts + 1, claimed_by=worker,
                            lease_until=now + lease, updated_at=now)
                    .returning(outbox.c.id, outbox.c.post_key, outbox.c.kind,
                               outbox.c.ticket_post_key, outbox.c.attempts))
                row = result.first()
            if row is not None:
                claimed.append(OutboxItem(row.id, row.post_key, row.kind, row.ticket_post_key, row.attempts))
        return claimed

    def release_claims(self, ids: Sequence[int]) -> None:
        """Give back rows this worker claimed but did not try (a pass stopped early); the
        attempt they were charged is refunded, since nothing was sent."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id.in_(list(ids))).where(outbox.c.status == "sending")
                         .values(status="pending", attempts=outbox.c.attempts - 1, claimed_by=None,
                                 lease_until=None, updated_at=utcnow()))

    def release_dead_claims(self) -> int:
        """Hand back rows claimed by processes of this host that no longer run.

        Lets a restarted connector resume at once after a crash instead of waiting for the
        lease to expire; rows of live processes and of other hosts are left to their lease.
        """
        host = socket.gethostname()
        released = 0
        with self.engine.begin() as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.claimed_by)
                                .where(outbox.c.status == "sending")).all()
            for row in rows:
                owner_host, _, pid = (row.claimed_by or "").rpartition(":")
                if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(update(outbox).where(outbox.c.id == row.id)
                                 .where(outbox.c.status == "sending")
                                 .values(status="pending", lease_until=None, updated_at=utcnow()))
                    released += 1
        return released

    def ticket_for(self, post_key: str) -> TicketRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets.c.helpdesk, tickets.c.ticket_id, tickets.c.url)
                               .where(tickets.c.post_key == post_key)).first()
        return TicketRef(row.helpdesk, row.ticket_id, row.url) if row else None

    def mark_created(self, item: OutboxItem, ref: TicketRef, *, external_id: str, subject: str,
                     priority: str, tags: Sequence[str]) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(_insert(conn, tickets).values(
                post_key=item.post_key, helpdesk=ref.helpdesk, ticket_id=ref.ticket_id, url=ref.url,
                external_id=external_id, subject=subject, priority=priority, tags=list(tags),
                created_at=now,
            ).on_conflict_do_nothing(index_elements=["post_key"]))
            self._finish(conn, item, now)

    def mark_commented(self, item: OutboxItem) -> None:
        with self.engine.begin() as conn:
            self._finish(conn, item, utcnow())

    @staticmethod
    def _finish(conn: Connection, item: OutboxItem, now: datetime) -> None:
        conn.execute(update(outbox).where(outbox.c.id == item.id).values(
            status="done", done_at=now, updated_at=now, claimed_by=None, lease_until=None, last_error=None))

    def mark_retry(self, item: OutboxItem, error: str, next_attempt_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == item.id).values(
                status="pending", next_attempt_at=next_attempt_at, last_error=error[:2000],
                claimed_by=None, lease_until=None, updated_at=utcnow()))

    def mark_failed(self, item: OutboxItem, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == item.id).values(
                status="failed", last_error=error[:2000], claimed_by=None, lease_until=None,
                updated_at=utcnow()))

    def retry_failed(self, outbox_id: int | None = None) -> int:
        """Put failed rows (all, or one) back in the queue, e.g. after an admin fixed a field."""
        stmt = update(outbox).where(outbox.c.status == "failed")
        if outbox_id is not None:
            stmt = stmt.where(outbox.c.id == outbox_id)
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(status="pending", next_attempt_at=utcnow(),
                                            updated_at=utcnow())).rowcount

    def next_due_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(outbox.c.next_attempt_at))
                                .where(outbox.c.status == "pending")).scalar()

    def outbox_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
        return {status: count for status, count in rows}

    def outbox_rows(self, statuses: Sequence[str] = ("pending", "sending", "failed"),
                    limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.status.in_(list(statuses)))
                                .order_by(outbox.c.id).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    # --- corrections (agents fixing labels; the learner's training data) ---------------
    def add_correction(self, post_key: str, label: str, new_value: str, agent: str, *,
                       old_value: str | None = None, at: datetime | None = None) -> int:
        """Record that `agent` set `label` of a stored post to `new_value`; returns its id.

        `old_value` defaults to what the stored analysis says. Raises KeyError for an unknown
        post and ValueError for an unknown label or value (see labels.VALUE_NAMES)."""
        from connector.labels import VALUE_NAMES

        if label not in VALUE_NAMES:
            raise ValueError(f"unknown label {label!r}; one of: {', '.join(VALUE_NAMES)}")
        if new_value not in VALUE_NAMES[label]:
            raise ValueError(f"{label} cannot be {new_value!r}; one of: {', '.join(VALUE_NAMES[label])}")
        if not agent or not agent.strip():
            raise ValueError("agent is required")
        with self.engine.begin() as conn:
            if conn.execute(select(posts.c.key).where(posts.c.key == post_key)).first() is None:
                raise KeyError(post_key)
            if old_value is None:
                detail = conn.execute(select(analyses.c.detail)
                                      .where(analyses.c.post_key == post_key)).scalar()
                old_value = ((detail or {}).get(label) or {}).get("value")
            return conn.execute(insert(corrections).values(
                post_key=post_key, label=label, old_value=old_value, new_value=new_value,
                agent=agent.strip()[:200], created_at=at or utcnow())).inserted_primary_key[0]

    def list_corrections(self, label: str | None = None, post_key: str | None = None,
                         limit: int | None = None) -> list[dict[str, Any]]:
        """Corrections, oldest first."""
        stmt = select(corrections).order_by(corrections.c.id)
        if label is not None:
            stmt = stmt.where(corrections.c.label == label)
        if post_key is not None:
            stmt = stmt.where(corrections.c.post_key == post_key)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def corrected_examples(self, label: str = "sentiment") -> list[tuple[str, str, str, str | None]]:
        """(post key, text, corrected value, post language) for every post whose `label` an
        agent corrected, with the latest correction winning, oldest post first."""
        latest = (select(func.max(corrections.c.id)).where(corrections.c.label == label)
                  .group_by(corrections.c.post_key).scalar_subquery())
        stmt = (select(posts.c.key, posts.c.text, corrections.c.new_value, posts.c.lang)
                .join(posts, posts.c.key == corrections.c.post_key)
                .where(corrections.c.id.in_(latest)).order_by(posts.c.created_at, posts.c.key))
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(stmt).all()]

    # --- reads for the dashboard and CLI ----------------------------------------------
    def list_tickets(self, helpdesk: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Tickets we created, newest first, with their post, author and analysis."""
        follow_ups = (select(func.count()).select_from(outbox)
                      .where(outbox.c.ticket_post_key == tickets.c.post_key)
                      .where(outbox.c.kind == "comment").where(outbox.c.status == "done")
                      .scalar_subquery())
        stmt = (select(tickets, posts.c.url.label("post_url"), posts.c.platform, posts.c.text,
                       posts.c.brand, posts.c.created_at.label("posted_at"),
                       authors.c.handle, authors.c.name.label("author_name"), authors.c.followers,
                       analyses.c.detail, follow_ups.label("follow_ups"))
                .join(posts, posts.c.key == tickets.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .order_by(tickets.c.created_at.desc(), tickets.c.post_key.desc()))
        if helpdesk:
            stmt = stmt.where(tickets.c.helpdesk == helpdesk)
        if limit:
            stmt = stmt.limit(limit)
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
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(posts)).scalar() or 0
            qualified = conn.execute(select(func.count()).select_from(posts)
                                     .where(posts.c.qualified == True)).scalar() or 0  # noqa: E712
            ticket_count = conn.execute(select(func.count()).select_from(tickets)).scalar() or 0
        return {"posts": total, "qualified": qualified, "tickets": ticket_count}


class _AlreadyStored(Exception):
    """Raised inside a transaction to roll it back when the post is a duplicate."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _add_corrections(conn: Connection) -> None:
    """Version 2: agents' corrections of analysis labels (the learner's training data)."""
    corrections.create(conn, checkfirst=True)


#: version → function(conn) that upgrades the previous version. Version 1 is the initial schema
#: created by `metadata.create_all`; later versions append here, and a fresh database gets every
#: table from `metadata` at once.
MIGRATIONS: dict[int, Any] = {2: _add_corrections}

