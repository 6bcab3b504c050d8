"""The only place that speaks SQL.

SQLAlchemy Core (not the ORM) so that one set of tables and statements runs on the embedded
SQLite default and, for scale-out, on PostgreSQL. Every state change is one transaction, and
the outbox is written in the same transaction as the post it delivers, so a crash can never
leave a qualifying post without its outbox row (or a half-stored post).
"""
from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table,
    Text, TypeDecorator, UniqueConstraint, and_, cast, create_engine, event, func, insert, or_, select, text, update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool

from connector.models import Analysis, Decision, Post, TicketRef
from connector.report_time import report_day

SCHEMA_VERSION = 2  # 2: the dashboard's report tables (backfilled) and the posts-by-time index


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

# Replies the team sent back to the network from the helpdesk: the sidebar's history, and the
# guard that a helpdesk webhook delivered twice never posts twice (`dedupe_key` is unique).
exchanges = Table(
    "exchanges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(400), nullable=False, unique=True),
    Column("ticket_post_key", String(300), ForeignKey("posts.key"), nullable=False),
    Column("reply_to_key", String(300), ForeignKey("posts.key"), nullable=False),
    Column("helpdesk", String(32), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("agent", Text, nullable=False),
    Column("text", Text, nullable=False),  # as sent: signed with the agent's name
    Column("status", String(16), nullable=False),  # sending | sent | prepared | recorded | failed
    Column("network_id", String(256)),
    Column("url", Text),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_exchanges_ticket_post", "ticket_post_key", "created_at"),
)


# Zendesk Channel framework ("Any Channel") installations: one row per integration instance an
# admin created through our admin UI. Zendesk keeps the signed `metadata` we issued; this row is
# what the metadata points at, so destroying an instance here stops its pulls and channelbacks
# even though Zendesk (or a thief) still holds a validly signed metadata string.
channel_instances = Table(
    "channel_instances", metadata,
    Column("id", String(64), primary_key=True),
    Column("subdomain", String(255), nullable=False),
    Column("brand", Text, nullable=False),  # the watched brand (watch file `name`) it receives
    Column("name", Text, nullable=False),  # the display name the admin gave it in Zendesk
    Column("signature", Text, nullable=False),  # team signature for channelback replies ("" = none)
    Column("locale", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # active | destroyed
    Column("backfill_from", UTCDateTime, nullable=False),  # the first pull starts here
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("destroyed_at", UTCDateTime),
    Column("last_pull_at", UTCDateTime),
)

# External ids too long for Zendesk's 255 ASCII characters are sent as a hash; this maps the
# hash back to the post for clickthrough and channelback (short ids are decoded from the text).
channel_external_ids = Table(
    "channel_external_ids", metadata,
    Column("external_id", String(255), primary_key=True),
    Column("post_key", String(300), ForeignKey("posts.key"), nullable=False),
)

# --- sources (connector/sources/, connector/poller.py, connector/compliance.py) ---------------
# New tables need no numbered migration: `migrate` runs `create_all`, which adds missing tables
# to existing databases too.

# Small persisted state of the source modules, by key: `cursor:<unit>` (where a poll unit
# resumes), `session:bluesky:<handle>` and `token:x` (rotated credentials: kept here so a
# restarted poller does not log in again; never logged), `compliance:last_run`.
source_state = Table(
    "source_state", metadata,
    Column("key", String(400), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Per poll unit: when it last ran, whether it worked, and when it may run again (back-off).
source_health = Table(
    "source_health", metadata,
    Column("unit", String(400), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("last_polled_at", UTCDateTime),
    Column("last_ok_at", UTCDateTime),
    Column("failures", Integer, nullable=False, default=0),  # consecutive
    Column("last_error", Text),
    Column("next_poll_at", UTCDateTime),
    Column("last_count", Integer, nullable=False, default=0),  # posts in the last good poll
    Column("note", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Paid or limited calls per UTC day: X reads by kind (the daily read budget), Bluesky
# createSession calls. `units` is a count of resources (posts, users) or calls.
source_usage = Table(
    "source_usage", metadata,
    Column("platform", String(16), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC (X bills per UTC day)
    Column("kind", String(32), primary_key=True),
    Column("units", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# What a source module keeps about a post beyond the normalized Post (Bluesky uri/cid and
# reply root, X reply_allowed, Mastodon instance and local id). Only sources/ reads `data`.
source_post_extras = Table(
    "source_post_extras", metadata,
    Column("post_key", String(300), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("ref", String(400)),  # network-local reference (e.g. "mstdn.jp:1100…")
    Column("data", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_source_extras_ref", "platform", "ref"),
)

# Platform compliance: when each stored post was last checked, and whether it is gone.
post_compliance = Table(
    "post_compliance", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # live | gone
    Column("reason", Text),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("purged_at", UTCDateTime),
    Column("noted_at", UTCDateTime),  # internal note added to the ticket
    Index("ix_post_compliance_due", "platform", "state", "checked_at"),
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


# --- scale-out (several connector instances on one PostgreSQL database) ----------------------
# A helpdesk's "wait until" after a 429 Retry-After. Kept in the database, not only in the
# process that got the 429: the rate limit is the account's, so every instance must hold back,
# or each would spend its own 429s (and Zendesk counts those against the account too).
delivery_pauses = Table(
    "delivery_pauses", metadata,
    Column("helpdesk", String(32), primary_key=True),
    Column("paused_until", UTCDateTime, nullable=False),
    Column("reason", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- the agent sidebar's API (connector/web/api.py, connector/agents.py) ---------------------
# Per-agent bearer tokens. Only the SHA-256 of a token is kept: a token is 32 random bytes from
# the OS's CSPRNG, so there is nothing to brute-force and a slow password hash (bcrypt, argon2)
# would only add latency to every sidebar request; a plain digest also lets us look a token up
# by its hash through the unique index instead of comparing it against every row.
agent_tokens = Table(
    "agent_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex of the token
    Column("agent", Text, nullable=False),  # the agent's name as customers see it (佐藤)
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
)

# --- the listening dashboard's report tables ---------------------------------------------
# Kept up to date in the same transaction as the row they count (a post, a ticket, a reply),
# so a page over a year of posts (1M+) reads a few thousand summary rows instead of joining
# posts × analyses. `day` is the post's calendar day in Japan (connector.report_time), as
# 'YYYY-MM-DD'; a missing brand or label is '' (NULL would break the composite keys).
LABEL_COLUMNS = ("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis")

report_daily = Table(
    "report_daily", metadata,
    Column("day", String(10), primary_key=True),
    Column("brand", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("qualified", Integer, primary_key=True),
    *(Column(name, String(16), primary_key=True) for name in LABEL_COLUMNS),
    Column("n", Integer, nullable=False),
)

# The same counts one label at a time (label = 'qualified', 'platform' or a LABEL_COLUMNS name):
# what the overview reads when no label filter is set. report_daily has a row per combination
# of all labels, which over a year is close to one row per few posts; this has ~30 per day and
# brand and source, so a year's overview stays a few thousand rows per chart.
report_daily_label = Table(
    "report_daily_label", metadata,
    Column("label", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("brand", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("value", String(16), primary_key=True),
    Column("n", Integer, nullable=False),
)

# Why posts were kept or dropped, per day: the qualification log's counts per rule.
report_reasons = Table(
    "report_reasons", metadata,
    Column("day", String(10), primary_key=True),
    Column("brand", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("qualified", Integer, primary_key=True),
    Column("reason", String(400), primary_key=True),
    Column("n", Integer, nullable=False),
)

# Complaint topics (nouns/noun phrases of negative or complaint posts), one row per post and
# topic, with the post's filter columns copied so counting never joins the posts table.
post_topics = Table(
    "post_topics", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("topic", String(100), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("brand", String(200), nullable=False),
    Column("platform", String(16), nullable=False),
    *(Column(name, String(16), nullable=False) for name in LABEL_COLUMNS),
    Index("ix_post_topics_day", "day", "topic"),
    Index("ix_post_topics_topic", "topic", "day"),
)

# Topic counts per calendar month (Japan), for ranges of months: a year's top topics read ~12
# months of these plus the partial months at both ends from post_topics, instead of every
# topic row of the year. Used when no label filter is set (it has no label columns).
report_topic_monthly = Table(
    "report_topic_monthly", metadata,
    Column("month", String(7), primary_key=True),  # 'YYYY-MM'
    Column("brand", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("topic", String(100), primary_key=True),
    Column("n", Integer, nullable=False),
)

# One row per ticket we created: response times measured from the moment of the post, and
# whether a public reply went out yet (the public-risk leaderboard lists the unanswered ones).
ticket_facts = Table(
    "ticket_facts", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("brand", String(200), nullable=False),
    Column("platform", String(16), nullable=False),
    *(Column(name, String(16), nullable=False) for name in LABEL_COLUMNS),
    Column("priority", String(16), nullable=False),
    Column("risk", String(16), nullable=False),
    Column("risk_score", Float, nullable=False),
    Column("posted_at", UTCDateTime, nullable=False),
    Column("ticket_seconds", Integer, nullable=False),  # ticket created − post created
    Column("reply_seconds", Integer),  # first public reply sent − post created; NULL: none yet
    Column("answered", Integer, nullable=False),
    # Covering the response-time query: day range → priority and both latencies, no table reads.
    Index("ix_ticket_facts_times", "day", "priority", "ticket_seconds", "reply_seconds"),
    Index("ix_ticket_facts_open", "answered", "risk_score"),
)

# Supervisors who may open the dashboard (admin-created with `yorisoi user create`).
users = Table(
    "users", metadata,
    Column("name", String(100), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)


# Public storms (炎上, connector/storms.py): every qualifying post's place in a storm cluster
# with the post it resembles and how much (the explanation), the clusters with their problem
# ticket and its delivery job (claimed like an outbox row), and the spike alerts per brand.
storm_members = Table(
    "storm_members", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("storm_id", Integer, ForeignKey("storms.id")),  # null: a post that no other resembles (yet)
    Column("brand", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),  # the post's time
    Column("negative", Boolean, nullable=False),
    Column("resembles", String(300)),  # the post it was found similar to
    Column("similarity", Float),
    Column("reason", Text),  # e.g. "near-duplicate of x:1 (0.82)", "reply to x:1"
    Column("role", String(16)),  # echo | voice (high reach or a question: answered personally)
    Column("risk_score", Float),
    Column("linked", Boolean, nullable=False, default=False),  # incident linked to the problem
    Index("ix_storm_members_storm", "storm_id"),
    Index("ix_storm_members_brand_time", "brand", "negative", "created_at"),
)

storms = Table(
    "storms", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("brand", String(200), nullable=False),
    Column("first_post_key", String(300), ForeignKey("posts.key"), nullable=False, unique=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_post_at", UTCDateTime, nullable=False),
    Column("size", Integer, nullable=False),
    Column("topic", Text),
    # The problem ticket and its delivery job (pending | sending | done | failed).
    Column("problem_helpdesk", String(32)),
    Column("problem_ticket_id", String(64)),
    Column("problem_url", Text),
    Column("reported_size", Integer, nullable=False, default=0),  # the count the ticket shows
    Column("job_status", String(16)),  # null until the storm reaches the ticket threshold
    Column("job_due_at", UTCDateTime),
    Column("job_attempts", Integer, nullable=False, default=0),
    Column("job_claimed_by", String(200)),
    Column("job_lease_until", UTCDateTime),
    Column("last_update_at", UTCDateTime),
    Column("last_error", Text),
    Index("ix_storms_job", "job_status", "job_due_at"),
)

storm_alerts = Table(
    "storm_alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("brand", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("count", Integer, nullable=False),  # negative posts in the window when it fired
    Column("baseline", Float, nullable=False),  # expected count in the window
    Column("p_value", Float, nullable=False),
    Column("peak", Integer, nullable=False),
    Column("ticket_id", String(64)),
    Column("ticket_url", Text),
    # Delivery of the alert (ticket + webhook) and of its end follow-up: pending | sending | done | failed.
    Column("start_status", String(16), nullable=False),
    Column("end_status", String(16)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
)

#: The qualification log lists the newest posts of a date range (walking back from its end).
ix_posts_created = Index("ix_posts_created", posts.c.created_at)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class PostRecord:
    """One new post of a batch for `Store.record_posts`."""

    post: Post
    decision: Decision
    analysis: Analysis | None
    ticket_post_key: str | None = None
    topics: Sequence[str] = ()


@dataclass(frozen=True)
class OutboxItem:
    id: int
    post_key: str
    kind: str
    ticket_post_key: str
    attempts: int  # including the current one


#: How long a statement waits for a lock another connection holds (SQLite's busy timeout,
#: PostgreSQL's lock_timeout) before it fails with a clear "database is locked" error: the
#: webhook then answers 503 and the sender retries, instead of hanging forever.
LOCK_TIMEOUT_SECONDS = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the worker writes; busy_timeout waits for the writer
    # instead of failing at once; NORMAL is durable across process crashes in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    # Set per connection (not in the URL) so that tests can lower it; autocommit is off, so
    # the SET is committed at once to survive the pool's rollback-on-return.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_SECONDS * 1000)}")
    cursor.close()
    dbapi_connection.commit()


def driver_url(url: str) -> str:
    """The SQLAlchemy URL for a YORISOI_DATABASE value.

    `postgresql://` (and Heroku-style `postgres://`) mean psycopg 3: SQLAlchemy's default for a
    bare `postgresql://` is psycopg2, an older driver we do not ship. An explicit
    `postgresql+<driver>://` is left alone.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = driver_url(url)
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A small pool: opening a SQLite connection and setting its pragmas costs more than
        # a whole post's insert. Each pooled connection is used by one thread at a time.
        engine = create_engine(url, poolclass=QueuePool, pool_size=5, max_overflow=10,
                               connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {make_url(url).render_as_string(hide_password=True)}: "
                         "use sqlite:///path or postgresql://user@host/db")
    # pre_ping: a restarted PostgreSQL (failover, maintenance) must not fail the next webhook.
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "connect", _postgres_session)
    return engine


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from a name (a poll unit, …)."""
    return int.from_bytes(hashlib.sha256(f"yorisoi:{name}".encode("utf-8")).digest()[:8], "big", signed=True)


#: Advisory lock key held while the schema is created or migrated: instances started together
#: must not all run CREATE TABLE at once.
MIGRATE_LOCK = advisory_key("migrate")


def _insert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support in both dialects."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)


#: Suffix of `claimed_by` for rows handed to a helpdesk bulk job (see release_dead_claims).
BULK_CLAIM_SUFFIX = "#bulk"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name  # "sqlite" | "postgresql"
        self.migrate()

    def __repr__(self) -> str:  # the URL may carry a password
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- schema -----------------------------------------------------------------------
    def migrate(self) -> None:
        """Create a fresh schema, or bring an older one up to SCHEMA_VERSION.

        New tables need no numbered migration: `create_all` adds whatever table is missing,
        on fresh and existing databases alike. Changes to existing tables (a new column, an
        index) go into MIGRATIONS with the next version number.
        """
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Serialises instances that start at the same time; released at commit.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
            if not self.engine.dialect.has_table(conn, "schema_version"):
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))
                return
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            metadata.create_all(conn)  # checkfirst: only the tables that are missing
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
                    source: str, ticket_post_key: str | None = None, topics: Sequence[str] = ()) -> bool:
        """Store a post with its decision, analysis and outbox row in one transaction.

        Returns False (and writes nothing) when the post was already stored. For a qualifying
        post an outbox row is added: `create`, or `comment` on `ticket_post_key`'s ticket.
        The dashboard's counts (and the post's complaint `topics`) are added in the same
        transaction, so they never disagree with the posts stored.
        """
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                self._insert_post(conn, post, decision, analysis, source, ticket_post_key, now)
                _count_post(conn, post, decision, analysis, topics)
        except _AlreadyStored:
            return False
        return True

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these post keys are stored already (one query for a batch)."""
        if not keys:
            return set()
        with self.engine.connect() as conn:
            return set(conn.execute(select(posts.c.key).where(posts.c.key.in_(list(keys)))).scalars().all())

    def record_posts(self, batch: Sequence["PostRecord"], *, source: str) -> None:
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
        with self.engine.begin() as conn:
            statements = _batch_statements(conn)
            author_rows: dict[str, dict[str, Any]] = {}
            for record in batch:
                author = record.post.author
                author_rows[f"{record.post.platform}:{author.id}"] = dict(
                    key=f"{record.post.platform}:{author.id}", platform=record.post.platform, author_id=author.id,
                    handle=author.handle, name=author.name, bio=author.bio, location=author.location,
                    followers=author.followers, following=author.following, created_at=author.created_at,
                    avatar_url=author.avatar_url, updated_at=now)
            conn.execute(statements["authors"], list(author_rows.values()))
            conn.execute(insert(posts), [dict(
                key=r.post.key, platform=r.post.platform, post_id=r.post.id, url=r.post.url,
                created_at=r.post.created_at, lang=r.post.lang, text=r.post.text,
                author_key=f"{r.post.platform}:{r.post.author.id}", metrics=r.post.metrics.model_dump(),
                in_reply_to=r.post.in_reply_to, conversation_id=r.post.conversation_id, repost_of=r.post.repost_of,
                qualified=r.decision.qualified, brand=r.decision.brand, reasons=list(r.decision.reasons),
                source=source, ingested_at=now) for r in batch])
            analysed = [r for r in batch if r.analysis is not None]
            if analysed:
                conn.execute(insert(analyses), [dict(
                    post_key=r.post.key, sentiment=r.analysis.sentiment.value,
                    sentiment_score=r.analysis.sentiment.score, intent=r.analysis.intent.value,
                    expectation_type=r.analysis.expectation_type.value,
                    expectation_content=r.analysis.expectation_content.value,
                    quality_axis=r.analysis.quality_axis.value, risk=r.analysis.risk.value,
                    risk_score=r.analysis.risk.score, priority=r.analysis.priority.value,
                    detail=r.analysis.to_dict(), version=r.analysis.version, analysed_at=now)
                    for r in analysed])  # type: ignore[union-attr]
            qualified = [r for r in batch if r.decision.qualified]
            if qualified:
                conn.execute(insert(outbox), [dict(
                    post_key=r.post.key, kind="comment" if r.ticket_post_key else "create",
                    ticket_post_key=r.ticket_post_key or r.post.key, status="pending", attempts=0,
                    next_attempt_at=now, created_at=now, updated_at=now) for r in qualified])
            _count_posts(conn, [(r.post, r.decision, r.analysis, r.topics) for r in batch])

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
        return _post_from_row(row)

    # --- Zendesk Channel framework ----------------------------------------------------
    def save_channel_instance(self, *, instance_id: str, subdomain: str, brand: str, name: str,
                              signature: str, locale: str, backfill_from: datetime) -> dict[str, Any]:
        """Create an instance, or update the brand/name/signature of an active one (re-edit).

        A destroyed instance is never revived: Zendesk destroyed it, a new one gets a new id."""
        now = utcnow()
        values = dict(subdomain=subdomain, brand=brand, name=name, signature=signature, locale=locale,
                      updated_at=now)
        with self.engine.begin() as conn:
            conn.execute(_insert(conn, channel_instances).values(
                id=instance_id, status="active", backfill_from=backfill_from, created_at=now, **values,
            ).on_conflict_do_update(index_elements=["id"], set_=values,
                                    where=channel_instances.c.status == "active"))
        row = self.channel_instance(instance_id)
        assert row is not None
        return row

    def channel_instance(self, instance_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(channel_instances).where(channel_instances.c.id == instance_id)
                               ).mappings().first()
        return dict(row) if row else None

    def destroy_channel_instance(self, instance_id: str) -> bool:
        now = utcnow()
        with self.engine.begin() as conn:
            return conn.execute(update(channel_instances).where(channel_instances.c.id == instance_id)
                                .where(channel_instances.c.status == "active")
                                .values(status="destroyed", destroyed_at=now, updated_at=now)).rowcount == 1

    def touch_channel_pull(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(channel_instances).where(channel_instances.c.id == instance_id)
                         .values(last_pull_at=utcnow()))

    def channel_posts(self, brand: str, *, after: tuple[datetime, str] | None, since: datetime,
                      until: datetime, limit: int) -> list[dict[str, Any]]:
        """Qualifying, analysed posts of `brand`'s tickets in ingest order, after a cursor.

        Keyset paging on (ingested_at, key): unique and totally ordered, so posts stored in the
        same instant are neither repeated nor skipped across pulls. The brand is the ticket
        post's (a follow-up belongs to its conversation's instance). `until` keeps the newest
        seconds back: a transaction that took its timestamp earlier but commits later would
        otherwise land behind a cursor that has already moved past it.
        """
        root = posts.alias("root")
        stmt = (select(posts, authors.c.author_id, authors.c.handle, authors.c.name.label("author_name"),
                       authors.c.bio, authors.c.location, authors.c.followers, authors.c.following,
                       authors.c.created_at.label("author_created_at"), authors.c.avatar_url,
                       analyses.c.detail, outbox.c.kind, outbox.c.ticket_post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(analyses, analyses.c.post_key == posts.c.key)
                .join(outbox, outbox.c.post_key == posts.c.key)
                .join(root, root.c.key == outbox.c.ticket_post_key)
                .where(posts.c.qualified == True)  # noqa: E712
                .where(root.c.brand == brand)
                .where(posts.c.ingested_at <= until)
                .order_by(posts.c.ingested_at, posts.c.key)
                .limit(limit))
        if after is None:
            stmt = stmt.where(posts.c.ingested_at >= since)
        else:
            at, key = after
            stmt = stmt.where(or_(posts.c.ingested_at > at, and_(posts.c.ingested_at == at, posts.c.key > key)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        result = []
        for row in rows:
            post, decision, analysis = _post_from_row(row)
            result.append({"post": post, "decision": decision, "analysis": analysis, "kind": row["kind"],
                           "ticket_post_key": row["ticket_post_key"], "ingested_at": row["ingested_at"]})
        return result

    def remember_external_ids(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        with self.engine.begin() as conn:
            for external_id, post_key in pairs:
                conn.execute(_insert(conn, channel_external_ids).values(
                    external_id=external_id, post_key=post_key).on_conflict_do_nothing(index_elements=["external_id"]))

    def post_key_for_external_id(self, external_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(channel_external_ids.c.post_key)
                                .where(channel_external_ids.c.external_id == external_id)).scalar()

    def ticket_post_key_of(self, post_key: str) -> str | None:
        """The post whose ticket `post_key` belongs to (itself for a ticket post)."""
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.ticket_post_key).where(outbox.c.post_key == post_key)).scalar()


    # --- outbox -----------------------------------------------------------------------
    def claim_due(self, limit: int, lease: timedelta, worker: str | None = None,
                  now: datetime | None = None, *, kind: str | None = None,
                  fresh_only: bool = False) -> list[OutboxItem]:
        """Claim up to `limit` due rows for this worker, oldest first.

        A row is due when pending and its retry time has come, or when it is still `sending`
        but its lease ran out (its worker died mid-call). Each claim is a guarded UPDATE that
        only one worker can win, so two workers never deliver the same row at once.
        `kind` and `fresh_only` (never attempted) narrow the rows, for bulk delivery.
        """
        now = now or utcnow()
        worker = worker or worker_id()
        due = self._due(now, kind, fresh_only)
        candidates = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
        values = dict(status="sending", attempts=outbox.c.attempts + 1, claimed_by=worker,
                      lease_until=now + lease, updated_at=now)
        returning = (outbox.c.id, outbox.c.post_key, outbox.c.kind, outbox.c.ticket_post_key, outbox.c.attempts)
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Several instances claim at once: SKIP LOCKED makes each lock rows no other
                # transaction is claiming right now instead of queueing behind them. Two
                # statements, not `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`: PostgreSQL
                # may run such a subquery more than once and claim more than `limit` rows.
                ids = conn.execute(candidates.with_for_update(skip_locked=True)).scalars().all()
                rows = conn.execute(update(outbox).where(outbox.c.id.in_(ids)).where(due)
                                    .values(**values).returning(*returning)).all() if ids else []
            else:
                # SQLite: one guarded UPDATE takes the write lock at once (a read first and a
                # write later could fail on the lock upgrade); one writer at a time wins a row.
                rows = conn.execute(update(outbox).where(outbox.c.id.in_(candidates.scalar_subquery()))
                                    .where(due).values(**values).returning(*returning)).all()
        return [OutboxItem(r.id, r.post_key, r.kind, r.ticket_post_key, r.attempts)
                for r in sorted(rows, key=lambda r: r.id)]

    @staticmethod
    def _due(now: datetime, kind: str | None = None, fresh_only: bool = False) -> Any:
        due = ((outbox.c.status == "pending") & (outbox.c.next_attempt_at <= now)) | \
              ((outbox.c.status == "sending") & (outbox.c.lease_until < now))
        if kind is not None:
            due = due & (outbox.c.kind == kind)
        if fresh_only:
            due = due & (outbox.c.attempts == 0)
        return due

    def count_due(self, kind: str | None = None, fresh_only: bool = False, now: datetime | None = None) -> int:
        """How many rows are due now (the backlog that decides bulk delivery)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)
                                .where(self._due(now or utcnow(), kind, fresh_only))).scalar() or 0

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
                if (row.claimed_by or "").endswith(BULK_CLAIM_SUFFIX):
                    # Part of a helpdesk bulk job that may still run there after our crash:
                    # only its lease (the job horizon) may hand it back, or a lookup could
                    # miss a ticket the job is about to create and we would send it twice.
                    continue
                owner_host, _, pid = (row.claimed_by or "").rpartition(":")
                if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(update(outbox).where(outbox.c.id == row.id)
                                 .where(outbox.c.status == "sending")
                                 .values(status="pending", lease_until=None, updated_at=utcnow()))
                    released += 1
        return released

    # --- scale-out: shared pause, one poller per unit ----------------------------------
    def pause_delivery(self, helpdesk: str, until: datetime, reason: str | None = None) -> None:
        """Hold every instance's deliveries to `helpdesk` back until `until` (never shortens
        a longer pause another instance recorded)."""
        now = utcnow()
        with self.engine.begin() as conn:
            stmt = _insert(conn, delivery_pauses).values(helpdesk=helpdesk, paused_until=until,
                                                         reason=(reason or "")[:2000], updated_at=now)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["helpdesk"],
                set_={"paused_until": until, "reason": (reason or "")[:2000], "updated_at": now},
                where=delivery_pauses.c.paused_until < until))

    def delivery_paused_until(self, helpdesk: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(delivery_pauses.c.paused_until)
                                .where(delivery_pauses.c.helpdesk == helpdesk)).scalar()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to become the one instance doing `name` (polling a source unit, compliance).

        PostgreSQL: a session advisory lock on a connection held for the duration; it is
        released at the end, or by the server when the process dies (its session ends), so a
        crashed instance never blocks the others. Yields False when another instance holds it.
        SQLite: always True — a SQLite database is served by one instance (see README).
        """
        if self.dialect != "postgresql":
            yield True
            return
        key = advisory_key(name)
        with self.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()

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
            _record_ticket_facts(conn, item.post_key, now)
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

    def outbox_counts(self, statuses: Sequence[str] | None = None) -> dict[str, int]:
        stmt = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        if statuses is not None:  # e.g. only the waiting ones: read from ix_outbox_due, not every row
            stmt = stmt.where(outbox.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return {status: count for status, count in rows}

    def outbox_rows(self, statuses: Sequence[str] = ("pending", "sending", "failed"),
                    limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.status.in_(list(statuses)))
                                .order_by(outbox.c.id).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    # --- replies ----------------------------------------------------------------------
    def post_key_for_ticket(self, helpdesk: str, ticket_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(tickets.c.post_key).where(tickets.c.helpdesk == helpdesk)
                                .where(tickets.c.ticket_id == str(ticket_id))).scalar()

    def latest_customer_post(self, ticket_post_key: str) -> str:
        """The newest post of the ticket's conversation by the customer: a reply answers it."""
        with self.engine.connect() as conn:
            key = conn.execute(
                select(posts.c.key).join(outbox, outbox.c.post_key == posts.c.key)
                .where(outbox.c.ticket_post_key == ticket_post_key)
                .order_by(posts.c.created_at.desc(), outbox.c.id.desc()).limit(1)).scalar()
        return key or ticket_post_key

    def exchange(self, dedupe_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(exchanges).where(exchanges.c.dedupe_key == dedupe_key)).mappings().first()
        return dict(row) if row else None

    def begin_exchange(self, *, dedupe_key: str, ticket_post_key: str, reply_to_key: str, helpdesk: str,
                       ticket_id: str, agent: str, text: str) -> tuple[dict[str, Any], bool]:
        """Record a reply as `sending` before it goes out. Returns (row, created); an existing
        row with the same dedupe key is returned as it is, so a retried webhook cannot post twice."""
        with self.engine.begin() as conn:
            result = conn.execute(_insert(conn, exchanges).values(
                dedupe_key=dedupe_key, ticket_post_key=ticket_post_key, reply_to_key=reply_to_key,
                helpdesk=helpdesk, ticket_id=str(ticket_id), agent=agent, text=text, status="sending",
                created_at=utcnow()).on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(exchanges.c.id))
            # RETURNING, not rowcount: with PostgreSQL's implicit RETURNING of the new id,
            # SQLAlchemy reports rowcount -1 for this insert.
            created = result.first() is not None
        row = self.exchange(dedupe_key)
        assert row is not None
        return row, created

    def finish_exchange(self, exchange_id: int, *, status: str, network_id: str | None = None,
                        url: str | None = None, error: str | None = None) -> None:
        sent_at = utcnow() if status != "failed" else None
        with self.engine.begin() as conn:
            conn.execute(update(exchanges).where(exchanges.c.id == exchange_id).values(
                status=status, network_id=network_id, url=url, error=error and error[:2000],
                sent_at=sent_at))
            if sent_at is not None:
                _record_first_reply(conn, exchange_id, sent_at)

    def list_exchanges(self, ticket_post_key: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(exchanges).where(exchanges.c.ticket_post_key == ticket_post_key)
                                .order_by(exchanges.c.created_at, exchanges.c.id)).mappings().all()
        return [dict(r) for r in rows]

    # --- agent tokens (the sidebar's API) ------------------------------------------------
    def add_agent_token(self, agent: str, token_hash: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(insert(agent_tokens).values(
                token_hash=token_hash, agent=agent, created_at=utcnow())).inserted_primary_key[0]

    def agent_token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(agent_tokens).where(agent_tokens.c.token_hash == token_hash)).mappings().first()
        return dict(row) if row else None

    def list_agent_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(agent_tokens.c.id, agent_tokens.c.agent, agent_tokens.c.created_at,
                                       agent_tokens.c.revoked_at, agent_tokens.c.last_used_at)
                                .order_by(agent_tokens.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_agent_token(self, token_id: int) -> bool:
        """Revoke a token; False when there is no such token or it was revoked already."""
        with self.engine.begin() as conn:
            return conn.execute(update(agent_tokens).where(agent_tokens.c.id == token_id)
                                .where(agent_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=utcnow())).rowcount == 1

    def touch_agent_token(self, token_id: int, at: datetime, *, not_since: datetime) -> None:
        """Set last_used_at, but only when the stored one is older than `not_since`: one write
        per token per minute or so, not one per sidebar request."""
        with self.engine.begin() as conn:
            conn.execute(update(agent_tokens).where(agent_tokens.c.id == token_id)
                         .where((agent_tokens.c.last_used_at.is_(None)) | (agent_tokens.c.last_used_at < not_since))
                         .values(last_used_at=at))

    # --- reads for the agent sidebar -------------------------------------------------------
    def ticket_row(self, post_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.post_key == post_key)).mappings().first()
        return dict(row) if row else None

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

    def author_tickets(self, author_key: str, *, exclude_post_key: str | None = None,
                       limit: int = 50) -> list[dict[str, Any]]:
        """Tickets whose post is by this author, newest first."""
        stmt = (select(tickets, posts.c.url.label("post_url"), posts.c.created_at.label("posted_at"),
                       analyses.c.sentiment, analyses.c.intent)
                .join(posts, posts.c.key == tickets.c.post_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                .where(posts.c.author_key == author_key)
                .order_by(tickets.c.created_at.desc(), tickets.c.post_key.desc()).limit(limit))
        if exclude_post_key is not None:
            stmt = stmt.where(tickets.c.post_key != exclude_post_key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def author_exchanges(self, author_key: str, limit: int = 50) -> list[dict[str, Any]]:
        """The team's replies in any conversation this author opened, newest first."""
        stmt = (select(exchanges).join(posts, posts.c.key == exchanges.c.ticket_post_key)
                .where(posts.c.author_key == author_key)
                .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def recent_exchanges(self, since: datetime, limit: int = 200) -> list[dict[str, Any]]:
        """The whole team's recent replies (not failed), newest first: the draft check compares
        a draft against them so nobody pastes the same answer to everyone."""
        stmt = (select(exchanges.c.id, exchanges.c.agent, exchanges.c.text, exchanges.c.created_at,
                       exchanges.c.helpdesk, exchanges.c.ticket_id, exchanges.c.ticket_post_key)
                .where(exchanges.c.created_at >= since).where(exchanges.c.status != "failed")
                .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings().all()]
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

    # --- sources: state, health, usage, extras ----------------------------------------------
    def get_state(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(source_state.c.value).where(source_state.c.key == key)).scalar()

    def set_state(self, key: str, value: Any) -> None:
        with self.engine.begin() as conn:
            stmt = _insert(conn, source_state).values(key=key, value=value, updated_at=utcnow())
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"],
                                                    set_={"value": value, "updated_at": utcnow()}))

    def delete_state(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(source_state.delete().where(source_state.c.key == key))

    def source_health_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(source_health).order_by(source_health.c.unit)).mappings().all()
        return [dict(r) for r in rows]

    def unit_health(self, unit: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(source_health).where(source_health.c.unit == unit)).mappings().first()
        return dict(row) if row else None

    def record_poll(self, unit: str, platform: str, *, ok: bool, next_poll_at: datetime,
                    count: int = 0, error: str | None = None, note: str | None = None) -> int:
        """Record one poll of a unit; returns its consecutive failure count."""
        now = utcnow()
        with self.engine.begin() as conn:
            failures = conn.execute(select(source_health.c.failures)
                                    .where(source_health.c.unit == unit)).scalar() or 0
            failures = 0 if ok else failures + 1
            values: dict[str, Any] = dict(platform=platform, last_polled_at=now, failures=failures,
                                          next_poll_at=next_poll_at, note=note, updated_at=now,
                                          last_error=None if ok else (error or "")[:2000])
            if ok:
                values.update(last_ok_at=now, last_count=count)
            stmt = _insert(conn, source_health).values(unit=unit, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["unit"], set_=values))
        return failures

    def set_next_poll(self, unit: str, platform: str, next_poll_at: datetime, *, error: str | None = None) -> int:
        """A failed poll: push the unit's next poll back; returns its consecutive failures."""
        return self.record_poll(unit, platform, ok=False, next_poll_at=next_poll_at, error=error)

    def usage_today(self, platform: str, day: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(source_usage.c.kind, source_usage.c.units)
                                .where(source_usage.c.platform == platform)
                                .where(source_usage.c.day == day)).all()
        return {kind: units for kind, units in rows}

    def add_usage(self, platform: str, day: str, kind: str, units: int) -> None:
        if units <= 0:
            return
        with self.engine.begin() as conn:
            stmt = _insert(conn, source_usage).values(platform=platform, day=day, kind=kind, units=units,
                                                      updated_at=utcnow())
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["platform", "day", "kind"],
                set_={"units": source_usage.c.units + units, "updated_at": utcnow()}))

    def save_post_extras(self, post_key: str, platform: str, data: dict[str, Any], ref: str | None = None) -> None:
        """Keep (or merge into) a source module's extras for a post."""
        now = utcnow()
        with self.engine.begin() as conn:
            old = conn.execute(select(source_post_extras.c.data, source_post_extras.c.ref)
                               .where(source_post_extras.c.post_key == post_key)).first()
            if old is None:
                conn.execute(insert(source_post_extras).values(post_key=post_key, platform=platform, ref=ref,
                                                               data=data, updated_at=now))
            else:
                conn.execute(update(source_post_extras).where(source_post_extras.c.post_key == post_key)
                             .values(data={**(old.data or {}), **data}, ref=old.ref or ref, updated_at=now))

    def post_extras(self, post_key: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            data = conn.execute(select(source_post_extras.c.data)
                                .where(source_post_extras.c.post_key == post_key)).scalar()
        return dict(data or {})

    def post_key_by_ref(self, platform: str, ref: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(source_post_extras.c.post_key)
                                .where(source_post_extras.c.platform == platform)
                                .where(source_post_extras.c.ref == ref).limit(1)).scalar()

    def post_row(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(posts).where(posts.c.key == key)).mappings().first()
        return dict(row) if row else None

    # --- platform compliance --------------------------------------------------------------
    def posts_due_for_compliance(self, platform: str, checked_before: datetime, limit: int) -> list[str]:
        """Stored posts of `platform` not known to be gone whose last check is older than
        `checked_before` (never-checked first, then the longest unchecked)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(posts.c.key).outerjoin(post_compliance, post_compliance.c.post_key == posts.c.key)
                .where(posts.c.platform == platform)
                .where((post_compliance.c.post_key.is_(None)) | (
                    (post_compliance.c.state == "live") & (post_compliance.c.checked_at < checked_before)))
                .order_by(post_compliance.c.checked_at.is_not(None), post_compliance.c.checked_at, posts.c.key)
                .limit(limit)).scalars().all()
        return list(rows)

    def mark_live(self, keys: Sequence[str], platform: str) -> None:
        if not keys:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            for key in keys:
                stmt = _insert(conn, post_compliance).values(post_key=key, platform=platform, state="live",
                                                             checked_at=now)
                conn.execute(stmt.on_conflict_do_update(index_elements=["post_key"],
                                                        set_={"state": "live", "checked_at": now}))

    def purge_post(self, key: str, *, reason: str, marker: str, url: str | None = None) -> bool:
        """Remove a gone post's text and (when no live post of the author remains) the author's
        profile; keep the row, its decision and its ticket link. Returns False if already purged.

        Everything that repeats the post's words goes: the text, the analysis evidence (tokens
        of the text) and the ticket subject's excerpt. Labels (negative, complaint…) stay for
        the counts on the dashboard.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            state = conn.execute(select(post_compliance.c.state, post_compliance.c.purged_at)
                                 .where(post_compliance.c.post_key == key)).first()
            if state is not None and state.purged_at is not None:
                return False
            row = conn.execute(select(posts.c.platform, posts.c.author_key, posts.c.brand)
                               .where(posts.c.key == key)).first()
            if row is None:
                return False
            values: dict[str, Any] = {"text": marker}
            if url is not None:
                values["url"] = url
            conn.execute(update(posts).where(posts.c.key == key).values(**values))
            detail = conn.execute(select(analyses.c.detail).where(analyses.c.post_key == key)).scalar()
            if detail:
                scrubbed = {name: ({**value, "evidence": []} if isinstance(value, dict) else value)
                            for name, value in detail.items()}
                conn.execute(update(analyses).where(analyses.c.post_key == key).values(detail=scrubbed))
            conn.execute(update(tickets).where(tickets.c.post_key == key).values(
                subject=(f"[{row.brand}] " if row.brand else "") + marker))
            stmt = _insert(conn, post_compliance).values(post_key=key, platform=row.platform, state="gone",
                                                         reason=reason, checked_at=now, purged_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=["post_key"], set_={
                "state": "gone", "reason": reason, "checked_at": now, "purged_at": now}))
            # The profile came with the author's posts: it may stay while one of them is live.
            live_left = conn.execute(
                select(func.count()).select_from(posts)
                .outerjoin(post_compliance, post_compliance.c.post_key == posts.c.key)
                .where(posts.c.author_key == row.author_key)
                .where((post_compliance.c.state.is_(None)) | (post_compliance.c.state != "gone"))).scalar()
            if not live_left:
                conn.execute(update(authors).where(authors.c.key == row.author_key).values(
                    handle=None, name=None, bio=None, location=None, followers=None, following=None,
                    created_at=None, avatar_url=None, updated_at=now))
        return True

    def gone_posts_without_note(self, limit: int = 500) -> list[dict[str, Any]]:
        """Purged posts whose ticket has not got its internal note yet (the ticket may have
        been created after the purge, or the helpdesk failed last time)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(post_compliance.c.post_key, post_compliance.c.platform, post_compliance.c.reason,
                       outbox.c.ticket_post_key)
                .join(outbox, outbox.c.post_key == post_compliance.c.post_key)
                .where(post_compliance.c.state == "gone").where(post_compliance.c.noted_at.is_(None))
                .order_by(post_compliance.c.purged_at).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def mark_noted(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(post_compliance).where(post_compliance.c.post_key == key)
                         .values(noted_at=utcnow()))

    def compliance_state(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(post_compliance).where(post_compliance.c.post_key == key)).mappings().first()
        return dict(row) if row else None

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(posts)).scalar() or 0
            qualified = conn.execute(select(func.count()).select_from(posts)
                                     .where(posts.c.qualified == True)).scalar() or 0  # noqa: E712
            ticket_count = conn.execute(select(func.count()).select_from(tickets)).scalar() or 0
        return {"posts": total, "qualified": qualified, "tickets": ticket_count}

    # --- the listening dashboard and `yorisoi report` -------------------------------------
    # Each returns plain rows; connector/reports.py turns them into tables, charts and CSV.
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
        """Tickets without a public reply yet, highest public risk first, and how many there are
        per risk level."""
        where = [ticket_facts.c.answered == 0, *f.where(ticket_facts)]
        stmt = (select(ticket_facts, posts.c.text, posts.c.url.label("post_url"), authors.c.handle,
                       authors.c.followers, tickets.c.helpdesk, tickets.c.ticket_id,
                       tickets.c.url.label("ticket_url"))
                .join(posts, posts.c.key == ticket_facts.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(tickets, tickets.c.post_key == ticket_facts.c.post_key)
                .where(*where)
                .order_by(ticket_facts.c.risk_score.desc(), ticket_facts.c.posted_at.desc(),
                          ticket_facts.c.post_key).limit(limit))
        with self.engine.connect() as conn:
            by_risk = conn.execute(select(ticket_facts.c.risk, func.count()).where(*where)
                                   .group_by(ticket_facts.c.risk)).all()
            rows = [dict(r) for r in conn.execute(stmt).mappings().all()]
        return {risk: int(n) for risk, n in by_risk}, rows

    def report_response_times(self, f: ReportFilter) -> list[tuple[str, str, list[int], list[int]]]:
        """(day, priority, post→ticket seconds, post→first reply seconds) per day and priority.

        The database joins each group's values into one string (SQLite's group_concat,
        PostgreSQL's string_agg) over the covering index ix_ticket_facts_times, so a year
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

    def rebuild_reports(self, topics_of: Callable[[dict[str, Any]], Sequence[str]] | None = None) -> int:
        """Recount every report table from the stored posts (after an upgrade, or to add topics
        to posts stored before topics existed). Returns the number of posts counted."""
        with self.engine.begin() as conn:
            return _rebuild_reports(conn, topics_of)

    # --- dashboard accounts --------------------------------------------------------------
    def create_user(self, name: str, password_hash: str, *, replace: bool = False) -> bool:
        """Add a supervisor; with `replace`, set a new password for an existing one. Returns
        False when the name exists and `replace` is not set."""
        now = utcnow()
        with self.engine.begin() as conn:
            stmt = _insert(conn, users).values(name=name, password_hash=password_hash, created_at=now)
            if replace:
                stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"password_hash": password_hash})
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
            # RETURNING, not rowcount (-1 on PostgreSQL with an implicit RETURNING of the id).
            return conn.execute(stmt.returning(users.c.name)).first() is not None

    def user_password_hash(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.password_hash).where(users.c.name == name)).scalar()

    def record_login(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.name == name).values(last_login_at=utcnow()))

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(users.c.name, users.c.created_at, users.c.last_login_at)
                                                  .order_by(users.c.name)).mappings().all()]


    # --- public storms (connector/storms.py) -------------------------------------------
    def storm_recent_members(self, brand: str, since: datetime) -> list[dict[str, Any]]:
        """Qualified posts of a brand since a time, with their storm, to warm the index."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(storm_members.c.post_key, storm_members.c.storm_id,
                                       storm_members.c.created_at, posts.c.text)
                                .join(posts, posts.c.key == storm_members.c.post_key)
                                .where(storm_members.c.brand == brand)
                                .where(storm_members.c.created_at >= since)
                                .order_by(storm_members.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def storm_of(self, post_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storm_members).where(storm_members.c.post_key == post_key)).mappings().first()
        return dict(row) if row else None

    def storm_add_member(self, *, post_key: str, brand: str, created_at: datetime, negative: bool,
                         resembles: str | None, similarity: float | None, reason: str | None, role: str,
                         risk_score: float, join_storm: int | None, found_single: bool,
                         min_posts: int, due_at: datetime, throttle: timedelta = timedelta(0)) -> int | None:
        """Record one post's assignment, in one transaction; returns its storm id (or None).

        `join_storm`: the storm of the post it resembles; when that post was alone
        (`found_single`), a new storm is opened with it as the first post. When the storm
        reaches `min_posts`, its problem-ticket job becomes due; later growth makes it due again.
        """
        with self.engine.begin() as conn:
            storm_id = join_storm
            if storm_id is None and found_single and resembles is not None:
                first = conn.execute(select(storm_members.c.created_at).where(storm_members.c.post_key == resembles)).scalar()
                storm_id = conn.execute(insert(storms).values(
                    brand=brand, first_post_key=resembles, started_at=first or created_at,
                    last_post_at=created_at, size=1, reported_size=0, job_attempts=0)).inserted_primary_key[0]
                conn.execute(update(storm_members).where(storm_members.c.post_key == resembles)
                             .values(storm_id=storm_id))
            conn.execute(insert(storm_members).values(
                post_key=post_key, storm_id=storm_id, brand=brand, created_at=created_at, negative=negative,
                resembles=resembles, similarity=similarity, reason=reason, role=role, risk_score=risk_score,
                linked=False))
            if storm_id is not None:
                conn.execute(update(storms).where(storms.c.id == storm_id).values(
                    size=storms.c.size + 1,
                    last_post_at=func.max(storms.c.last_post_at, created_at) if conn.dialect.name == "sqlite"
                    else func.greatest(storms.c.last_post_at, created_at)))
                row = conn.execute(select(storms.c.size, storms.c.job_status, storms.c.last_update_at)
                                   .where(storms.c.id == storm_id)).first()
                if row.size >= min_posts and row.job_status in (None, "done"):
                    due = due_at if row.last_update_at is None else max(due_at, row.last_update_at + throttle)
                    conn.execute(update(storms).where(storms.c.id == storm_id).values(
                        job_status="pending", job_due_at=due))
        return storm_id

    def storm(self, storm_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storms).where(storms.c.id == storm_id)).mappings().first()
        return dict(row) if row else None

    def storm_members_of(self, storm_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Members, oldest first, with their text, author and ticket, for the problem ticket."""
        with self.engine.connect() as conn:
            stmt = (select(storm_members, posts.c.text, posts.c.url, authors.c.handle, authors.c.name,
                           authors.c.followers, analyses.c.intent, analyses.c.risk,
                           tickets.c.ticket_id, tickets.c.helpdesk, tickets.c.url.label("ticket_url"))
                    .join(posts, posts.c.key == storm_members.c.post_key)
                    .join(authors, authors.c.key == posts.c.author_key)
                    .outerjoin(analyses, analyses.c.post_key == storm_members.c.post_key)
                    .outerjoin(tickets, tickets.c.post_key == storm_members.c.post_key)
                    .where(storm_members.c.storm_id == storm_id)
                    .order_by(storm_members.c.created_at, storm_members.c.post_key))
            if limit is not None:
                stmt = stmt.limit(limit)
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def storm_replies(self, storm_id: int, limit: int = 5) -> list[dict[str, Any]]:
        """The team's newest replies to any post of a storm: how others were answered."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(exchanges.c.agent, exchanges.c.text, exchanges.c.status, exchanges.c.created_at,
                       exchanges.c.ticket_post_key, exchanges.c.helpdesk, exchanges.c.ticket_id)
                .join(storm_members, storm_members.c.post_key == exchanges.c.ticket_post_key)
                .where(storm_members.c.storm_id == storm_id).where(exchanges.c.status != "failed")
                .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def storm_top_words(self, storm_id: int, limit: int = 5) -> list[str]:
        """The complaint topics (nouns, stored at ingest) most members share."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(post_topics.c.topic, func.count().label("n"))
                                .join(storm_members, storm_members.c.post_key == post_topics.c.post_key)
                                .where(storm_members.c.storm_id == storm_id)
                                .group_by(post_topics.c.topic).order_by(func.count().desc(), post_topics.c.topic)
                                .limit(limit)).all()
        return [r.topic for r in rows]

    def claim_storm_jobs(self, now: datetime, lease: timedelta, limit: int = 20) -> list[dict[str, Any]]:
        """Claim due problem-ticket jobs (a guarded UPDATE per storm, like `claim_due`)."""
        due = (((storms.c.job_status == "pending") & (storms.c.job_due_at <= now)) |
               ((storms.c.job_status == "sending") & (storms.c.job_lease_until < now)))
        claimed = []
        with self.engine.connect() as conn:
            ids = conn.execute(select(storms.c.id).where(due).order_by(storms.c.job_due_at).limit(limit)).scalars().all()
        for storm_id in ids:
            with self.engine.begin() as conn:
                row = conn.execute(update(storms).where(storms.c.id == storm_id).where(due).values(
                    job_status="sending", job_attempts=storms.c.job_attempts + 1, job_claimed_by=worker_id(),
                    job_lease_until=now + lease).returning(storms.c.id)).first()
            if row is not None:
                claimed.append(self.storm(storm_id))
        return [c for c in claimed if c]

    def storm_problem_created(self, storm_id: int, ref: TicketRef) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                problem_helpdesk=ref.helpdesk, problem_ticket_id=ref.ticket_id, problem_url=ref.url))

    def storm_mark_linked(self, post_keys: Sequence[str]) -> None:
        if post_keys:
            with self.engine.begin() as conn:
                conn.execute(update(storm_members).where(storm_members.c.post_key.in_(list(post_keys)))
                             .values(linked=True))

    def storm_job_done(self, storm_id: int, reported_size: int, topic: str | None, now: datetime) -> None:
        """Finish a job; if the storm grew meanwhile it stays due, at the throttled time."""
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                job_status="done", job_claimed_by=None, job_lease_until=None, job_attempts=0,
                reported_size=reported_size, topic=topic, last_update_at=now, last_error=None))

    def storm_job_retry(self, storm_id: int, error: str, due_at: datetime, *, failed: bool = False) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                job_status="failed" if failed else "pending", job_due_at=due_at, job_claimed_by=None,
                job_lease_until=None, last_error=error[:2000]))

    def storms_needing_update(self, now: datetime) -> list[int]:
        """Storms whose ticket shows an older count than their size (job done, growth since)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(storms.c.id).where(storms.c.job_status == "done")
                                     .where(storms.c.size > storms.c.reported_size)).scalars().all())

    def storm_schedule(self, storm_id: int, due_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).where(storms.c.job_status == "done")
                         .values(job_status="pending", job_due_at=due_at))

    def list_storms(self, min_size: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(storms).where(storms.c.size >= min_size)
                                .order_by(storms.c.last_post_at.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def storm_timeline(self, storm_id: int) -> list[tuple[datetime, str]]:
        with self.engine.connect() as conn:
            return [(r.created_at, r.post_key) for r in conn.execute(
                select(storm_members.c.created_at, storm_members.c.post_key)
                .where(storm_members.c.storm_id == storm_id).order_by(storm_members.c.created_at)).all()]

    # spike alerts
    def count_negative(self, brand: str, since: datetime, until: datetime) -> int:
        """Negative qualified posts of a brand with since < created_at <= until."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(storm_members)
                                .where(storm_members.c.brand == brand).where(storm_members.c.negative.is_(True))
                                .where(storm_members.c.created_at > since)
                                .where(storm_members.c.created_at <= until)).scalar() or 0

    def active_alert(self, brand: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storm_alerts).where(storm_alerts.c.brand == brand)
                               .where(storm_alerts.c.ended_at.is_(None))).mappings().first()
        return dict(row) if row else None

    def open_alert(self, *, brand: str, started_at: datetime, count: int, baseline: float, p_value: float) -> int | None:
        """Open an alert unless one is active for the brand (one alert per spike)."""
        with self.engine.begin() as conn:
            if conn.execute(select(storm_alerts.c.id).where(storm_alerts.c.brand == brand)
                            .where(storm_alerts.c.ended_at.is_(None))).first() is not None:
                return None
            return conn.execute(insert(storm_alerts).values(
                brand=brand, started_at=started_at, count=count, baseline=baseline, p_value=p_value, peak=count,
                start_status="pending", attempts=0)).inserted_primary_key[0]

    def alert_peak(self, alert_id: int, count: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id)
                         .where(storm_alerts.c.peak < count).values(peak=count))

    def close_alert(self, alert_id: int, ended_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id)
                         .where(storm_alerts.c.ended_at.is_(None)).values(ended_at=ended_at, end_status="pending"))

    def claim_alert_jobs(self, now: datetime, lease: timedelta) -> list[tuple[str, dict[str, Any]]]:
        """Claim alerts whose start or end notice is due: ('start'|'end', alert)."""
        out = []
        for stage, col in (("start", storm_alerts.c.start_status), ("end", storm_alerts.c.end_status)):
            due = (col == "pending") | ((col == "sending") & (storm_alerts.c.lease_until < now))
            if stage == "end":
                due = due & (storm_alerts.c.start_status == "done")
            with self.engine.connect() as conn:
                ids = conn.execute(select(storm_alerts.c.id).where(due)).scalars().all()
            for alert_id in ids:
                with self.engine.begin() as conn:
                    row = conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).where(due)
                                       .values({col: "sending", "attempts": storm_alerts.c.attempts + 1,
                                                "lease_until": now + lease})
                                       .returning(*storm_alerts.c)).mappings().first()
                if row is not None:
                    out.append((stage, dict(row)))
        return out

    def alert_job_done(self, alert_id: int, stage: str, *, ticket: TicketRef | None = None) -> None:
        values: dict[str, Any] = {f"{stage}_status": "done", "lease_until": None, "attempts": 0, "last_error": None}
        if ticket is not None:
            values.update(ticket_id=ticket.ticket_id, ticket_url=ticket.url)
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).values(**values))

    def alert_job_retry(self, alert_id: int, stage: str, error: str, *, failed: bool = False) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).values(
                {f"{stage}_status": "failed" if failed else "pending", "lease_until": None, "last_error": error[:2000]}))

    def alert_ticket(self, alert_id: int) -> TicketRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storm_alerts.c.ticket_id, storm_alerts.c.ticket_url)
                               .where(storm_alerts.c.id == alert_id)).first()
        return TicketRef("", row.ticket_id, row.ticket_url) if row and row.ticket_id else None

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(storm_alerts).order_by(storm_alerts.c.started_at.desc())
                                                  .limit(limit)).mappings().all()]


def _post_from_row(row: Any) -> tuple[Post, Decision, Analysis | None]:
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
    })
    decision = Decision(bool(row["qualified"]), row["brand"], tuple(row["reasons"]))
    analysis = Analysis.from_dict(row["detail"]) if row["detail"] else None
    return post, decision, analysis


# --- report tables: kept in step with the rows they count ----------------------------------
def _whole_months(since: str, until: str) -> list[str]:
    """The calendar months ('YYYY-MM') lying entirely within [since, until] (days 'YYYY-MM-DD')."""
    from datetime import date as _date
    first, last = _date.fromisoformat(since), _date.fromisoformat(until)
    month = _date(first.year, first.month, 1)
    if month < first:
        month = _date(month.year + month.month // 12, month.month % 12 + 1, 1)
    months = []
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


def _ints(joined: str | None) -> list[int]:
    return list(map(int, joined.split(","))) if joined else []


def _label_values(analysis: Analysis | None) -> dict[str, str]:
    if analysis is None:
        return {name: "" for name in LABEL_COLUMNS}
    return {name: getattr(analysis, name).value for name in LABEL_COLUMNS}


def _one_label_values(qualified: bool, platform: str, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(label, value) rows of report_daily_label for one post: every post counts under
    'qualified' and 'platform'; only analysed (qualified) posts under the analysis labels."""
    pairs = [("qualified", str(int(qualified))), ("platform", platform)]
    if qualified:
        pairs += [(name, value) for name, value in labels.items() if value]
    return pairs


def _bump(conn: Connection, table: Table, key: dict[str, Any], by: int = 1) -> None:
    """Add `by` to the count of one summary row, creating it at `by`."""
    stmt = _insert(conn, table).values(**key, n=by)
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_={"n": table.c.n + by}))


_BATCH_STATEMENTS: dict[str, dict[str, Any]] = {}


def _batch_statements(conn: Connection) -> dict[str, Any]:
    """Upserts for batches, built once per dialect and run with many parameter sets each."""
    dialect = conn.dialect.name
    if dialect not in _BATCH_STATEMENTS:
        built: dict[str, Any] = {}
        stmt = _insert(conn, authors)
        built["authors"] = stmt.on_conflict_do_update(index_elements=["key"], set_={
            name: stmt.excluded[name] for name in ("handle", "name", "bio", "location", "followers", "following",
                                                   "created_at", "avatar_url", "updated_at")})
        for table in (report_daily, report_daily_label, report_reasons, report_topic_monthly):
            stmt = _insert(conn, table)
            keys = [c.name for c in table.primary_key.columns]
            built[table.name] = stmt.on_conflict_do_update(index_elements=keys, set_={"n": table.c.n + stmt.excluded.n})
        built["post_topics"] = _insert(conn, post_topics).on_conflict_do_nothing(index_elements=["post_key", "topic"])
        _BATCH_STATEMENTS[dialect] = built
    return _BATCH_STATEMENTS[dialect]


def _count_post(conn: Connection, post: Post, decision: Decision, analysis: Analysis | None,
                topics: Sequence[str]) -> None:
    _count_posts(conn, [(post, decision, analysis, topics)])


def _count_posts(conn: Connection, entries: Sequence[tuple[Post, Decision, Analysis | None, Sequence[str]]]) -> None:
    """Add posts to the dashboard's summary tables: the bumps of a whole batch are summed per
    row first, then each table gets one executemany (one upsert per distinct row)."""
    from collections import Counter

    bumps: dict[str, Counter] = {name: Counter() for name in
                                 ("report_daily", "report_daily_label", "report_reasons", "report_topic_monthly")}
    topic_rows: list[dict[str, Any]] = []
    for post, decision, analysis, topics in entries:
        where = dict(day=report_day(post.created_at), brand=decision.brand or "", platform=post.platform)
        labels = _label_values(analysis)
        bumps["report_daily"][_frozen({**where, "qualified": int(decision.qualified), **labels})] += 1
        for label, value in _one_label_values(decision.qualified, post.platform, labels):
            bumps["report_daily_label"][_frozen({**where, "label": label, "value": value})] += 1
        for reason in dict.fromkeys(decision.reasons):
            bumps["report_reasons"][_frozen({**where, "qualified": int(decision.qualified), "reason": reason[:400]})] += 1
        for topic in dict.fromkeys(t[:100] for t in topics):
            topic_rows.append(dict(post_key=post.key, topic=topic, **where, **labels))
            bumps["report_topic_monthly"][_frozen({"month": where["day"][:7], "brand": where["brand"],
                                                   "platform": where["platform"], "topic": topic})] += 1
    statements = _batch_statements(conn)
    if topic_rows:
        conn.execute(statements["post_topics"], topic_rows)
    for name, counter in bumps.items():
        if counter:
            conn.execute(statements[name], [{**dict(key), "n": n} for key, n in counter.items()])


def _frozen(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(values.items())


def _record_ticket_facts(conn: Connection, post_key: str, ticket_created_at: datetime) -> None:
    row = conn.execute(select(posts.c.created_at, posts.c.brand, posts.c.platform, analyses.c.sentiment,
                              analyses.c.intent, analyses.c.expectation_type, analyses.c.expectation_content,
                              analyses.c.quality_axis, analyses.c.priority, analyses.c.risk, analyses.c.risk_score)
                       .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                       .where(posts.c.key == post_key)).mappings().first()
    if row is None:
        return
    first_reply = conn.execute(select(func.min(exchanges.c.sent_at))
                               .where(exchanges.c.ticket_post_key == post_key)).scalar()
    conn.execute(_insert(conn, ticket_facts).values(**_ticket_fact(post_key, row, ticket_created_at, first_reply))
                 .on_conflict_do_nothing(index_elements=["post_key"]))


def _ticket_fact(post_key: str, row: Any, ticket_created_at: datetime, first_reply: datetime | None) -> dict[str, Any]:
    posted_at = row["created_at"]
    return dict(
        post_key=post_key, day=report_day(posted_at), brand=row["brand"] or "", platform=row["platform"],
        **{name: row[name] or "" for name in LABEL_COLUMNS},
        priority=row["priority"] or "normal", risk=row["risk"] or "low", risk_score=row["risk_score"] or 0.0,
        posted_at=posted_at, ticket_seconds=round((ticket_created_at - posted_at).total_seconds()),
        reply_seconds=round((first_reply - posted_at).total_seconds()) if first_reply else None,
        answered=int(first_reply is not None),
    )


def _record_first_reply(conn: Connection, exchange_id: int, sent_at: datetime) -> None:
    ticket_post_key = conn.execute(select(exchanges.c.ticket_post_key).where(exchanges.c.id == exchange_id)).scalar()
    posted_at = conn.execute(select(ticket_facts.c.posted_at).where(ticket_facts.c.post_key == ticket_post_key)
                             .where(ticket_facts.c.reply_seconds.is_(None))).scalar()
    if posted_at is None:  # no ticket (yet), or an earlier reply already counted
        return
    conn.execute(update(ticket_facts).where(ticket_facts.c.post_key == ticket_post_key)
                 .where(ticket_facts.c.reply_seconds.is_(None))
                 .values(reply_seconds=round((sent_at - posted_at).total_seconds()), answered=1))


def _rebuild_reports(conn: Connection, topics_of: Callable[[dict[str, Any]], Sequence[str]] | None) -> int:
    from collections import Counter

    for table in (report_daily, report_daily_label, report_reasons, ticket_facts) + ((post_topics,) if topics_of else ()):
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
        for label, value in _one_label_values(bool(qualified), row["platform"], dict(zip(LABEL_COLUMNS, labels))):
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
    if ticket_rows:
        conn.execute(insert(ticket_facts), [_ticket_fact(r["post_key"], r, r["ticket_created_at"], r["first_reply"])
                                            for r in ticket_rows])
    return counted


def _month_of(day: Any) -> Any:
    """'YYYY-MM' of a 'YYYY-MM-DD' column. The positions are literals, not bound parameters:
    PostgreSQL sees `substr(day, $1, $2)` in SELECT and `substr(day, $3, $4)` in GROUP BY as
    different expressions and refuses the query."""
    from sqlalchemy import literal_column
    return func.substr(day, literal_column("1"), literal_column("7"))


def _migrate_2_reports(conn: Connection) -> None:
    """The dashboard's report tables are new (create_all made them); fill them from the posts
    already stored, and index posts by created_at for the qualification log.
    Complaint topics of older posts need nagisa: `yorisoi report --rebuild` adds them."""
    ix_posts_created.create(conn, checkfirst=True)
    _rebuild_reports(conn, None)


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


#: version → function(conn) that upgrades the previous version. Version 1 is the initial schema
#: created by `metadata.create_all`; later versions append here.
MIGRATIONS: dict[int, Any] = {2: _migrate_2_reports}

