"""The tables: every one the connector keeps, on SQLite and PostgreSQL alike.

New tables need no numbered migration (`migrations.migrate` runs `create_all`, which adds missing
tables to existing databases too); changes to existing tables go into `migrations.MIGRATIONS`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

SCHEMA_VERSION = 12  # 2: the dashboard's report tables (backfilled) and the posts-by-time index
#                   3: corrections.token_id
#                   4: channel_feed filled from the qualifying posts already stored
#                   5: users.session_generation
#                   6: agent_tokens.origin
#                   7: report_response_hist/_weekly (backfilled from ticket_facts), ix_tickets_created,
#                      ix_ticket_facts_backlog
#                   8: the tickets search's trigram index (FTS5 ticket_search / pg_trgm), backfilled
#                   9: ix_ticket_facts_times_by (replaces ix_ticket_facts_times), ix_response_hist_brand
#                  10: ix_storm_bands_lookup and ix_storm_bands_storm cover post_key
#                  11: storm_bands without its foreign keys
#                  12: posts.quote_of


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
    Column("quote_of", String(256)),  # the post it quotes: a storm echo's parent, like in_reply_to
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
    # The tickets page, newest first a page at a time (priority inside: its filter reads no row).
    Index("ix_tickets_created", "created_at", "post_key", "priority"),
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

# The Channel framework's feed: one row per qualifying post, numbered in COMMIT order, so a pull
# cursor ("everything after seq N") can never skip a post (issue 16 #2). The row is written as the
# last statement of the ingest transaction. SQLite has one writer at a time and the number is
# taken inside its write transaction, so numbers are committed in order. On PostgreSQL a sequence
# value is taken before commit: transaction A could take 10, B take 11 and commit first, a pull
# read 11 and move past 10 before A commits. The ingest transaction therefore takes
# `LOCK TABLE channel_feed IN SHARE ROW EXCLUSIVE MODE` (conflicts with itself, not with readers)
# right before the insert and keeps it only for the insert and the commit: numbers become visible
# in order. We chose the lock over per-instance delivery state because the lock is held for one
# insert and a commit, the cursor stays a single signed number Zendesk keeps for us, and nothing
# per instance grows without bound.
channel_feed = Table(
    "channel_feed", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("post_key", String(300), ForeignKey("posts.key"), nullable=False, unique=True),
    sqlite_autoincrement=True,  # never reuse a number (plain rowid could after a delete)
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


# The helpdesk's own view of each ticket we created (issue 15, "status comes back"): its status
# (new | open | pending | hold | solved | closed) and when it changed, and the first public
# agent reply wherever it was written (helpdesk, network, Yorisoi). Filled by the helpdesks'
# status webhooks and the catch-up sweeps (connector/ticket_status.py).
ticket_status = Table(
    "ticket_status", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("helpdesk", String(32), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_changed_at", UTCDateTime, nullable=False),
    Column("first_public_reply_at", UTCDateTime),
    Column("via", String(16), nullable=False),  # webhook | sweep
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_ticket_status_ticket", "helpdesk", "ticket_id"),
)

# Which ticket a conversation continues in after its ticket was closed: Zendesk refuses
# comments on closed tickets, so the follow-up post opens a follow-up ticket
# (`via_followup_source_id`) and later posts of the conversation go there.
ticket_followups = Table(
    "ticket_followups", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),  # the closed ticket's post
    Column("followup_post_key", String(300), ForeignKey("posts.key"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Deletion compliance inside the helpdesk: whether a purged post's words were also removed
# from the helpdesk's copy (redacted comments, rewritten description / notes).
helpdesk_redactions = Table(
    "helpdesk_redactions", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("state", String(16), nullable=False),  # redacted | failed | impossible
    Column("detail", Text),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
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
    Column("agent", String(200), nullable=False),      # the token's agent, never a name from the request
    Column("token_id", Integer),                       # the agent token that made it (None: CLI, before v3)
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
    # How the token was made: `cli` (yorisoi token create), `signin` (the extension's sign-in
    # with a dashboard account) or `sso` (sign-in through the reverse proxy's SSO header).
    # NULL on tokens made before schema 6: those came from the CLI.
    Column("origin", String(16)),
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
    # Covering the response-time query: day range → priority and both latencies, no table reads —
    # with brand, source and labels in it too, so a year filtered by labels (which the
    # histograms do not keep) reads this index only, not 467k rows of the table (issue 19).
    Index("ix_ticket_facts_times_by", "day", "priority", "ticket_seconds", "reply_seconds", "brand", "platform",
          *LABEL_COLUMNS),
    Index("ix_ticket_facts_open", "answered", "risk_score"),
    # The home page's backlog, oldest first: walked in order and stopped at the limit, instead
    # of joining every unanswered ticket's post, author and ticket before sorting them.
    Index("ix_ticket_facts_backlog", "answered", "posted_at"),
)

# Response times as histograms (connector.latency_bins): per day, brand, source and priority,
# how many tickets took a duration of each bin, for kind 'ticket' (post → ticket created) and
# 'reply' (post → first public reply). Written in the transaction that writes ticket_facts, so a
# year's percentiles merge a few hundred thousand small rows' sums instead of sorting every
# ticket's durations. Label filters are not kept here (they read ticket_facts).
report_response_hist = Table(
    "report_response_hist", metadata,
    Column("day", String(10), primary_key=True),
    Column("priority", String(16), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("brand", String(200), primary_key=True),
    Column("platform", String(16), primary_key=True),
    Column("bin", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    # A brand and/or source over a year: seek to their rows (an eighth of them for one brand
    # and one source) instead of filtering every day's rows of the range; covering.
    Index("ix_response_hist_brand", "brand", "platform", "day", "priority", "kind", "bin", "n"),
)

# The same for whole weeks (Monday to Sunday, Japan) over every brand and source: a range of
# more than 92 days is shown per week, and a year of per-day rows barely compresses (a day's
# few hundred tickets fill as many bins), so an unfiltered year reads ~50 weeks' rows instead.
report_response_weekly = Table(
    "report_response_weekly", metadata,
    Column("week", String(10), primary_key=True),  # the Monday, 'YYYY-MM-DD'
    Column("priority", String(16), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("bin", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Supervisors who may open the dashboard (admin-created with `yorisoi user create`).
users = Table(
    "users", metadata,
    Column("name", String(100), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
    # Bumped by "sign out everywhere" and by a password reset: a session cookie carries the
    # generation it was issued under and is refused once it differs (None counts as 0).
    Column("session_generation", Integer),
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

# The storm index (connector/storms.py): the MinHash band keys of each post that represents its
# storm (or stands alone), written in the post's ingest transaction, so that every instance
# sharing the database finds the same candidates. `storm_id` follows the post's membership.
# No foreign keys (schema 11): a post has 32 band rows, and checking posts.key and storms.id for
# each one was half of the band insert, which runs under the brand lock (issue 17). The rows
# come only from the post's storm_members row, written in the same transaction and itself
# checked against posts and storms; neither posts nor storms are ever deleted.
storm_bands = Table(
    "storm_bands", metadata,
    Column("post_key", String(300), primary_key=True),
    Column("band", LargeBinary(32), primary_key=True),
    Column("brand", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),  # the post's time
    Column("storm_id", Integer),
    # Both end with post_key, so a batch's reads are answered from the index alone, without a
    # table read per row: the band look-up (`storm_band_hits`, ~25,000 rows in
    # pipeline_throughput; half its time on SQLite) and its storms' indexed posts (`prefetch`).
    Index("ix_storm_bands_lookup", "brand", "band", "created_at", "post_key"),
    Index("ix_storm_bands_storm", "storm_id", "created_at", "post_key"),
)

# The team's public statements on a storm (an outage notice, the official post), written on the
# dashboard's storm page; the agent sidebar shows the newest beside tickets of the storm so
# every reply says the same thing. Kept, not overwritten: the history is what was said when.
storm_statements = Table(
    "storm_statements", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("storm_id", Integer, ForeignKey("storms.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("url", Text),  # where it was published (the brand's post, a status page); http(s) only
    Column("author", String(100), nullable=False),  # the supervisor's dashboard account
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_storm_statements_storm", "storm_id", "created_at"),
)

# Posts that name no brand but reply to or quote a post that was not (yet) a storm member
# (「私も！」 arriving before its parent, or before the parent's storm formed): when that parent
# joins a storm within the window, the waiting echoes are counted in with it, in the same
# transaction, and their rows removed. Written in the echo's own ingest transaction.
storm_echo_waits = Table(
    "storm_echo_waits", metadata,
    Column("post_key", String(300), ForeignKey("posts.key"), primary_key=True),
    Column("parent_key", String(300), primary_key=True),  # "<platform>:<post id>", maybe not stored yet
    Column("how", String(8), nullable=False),  # reply | quote
    Column("created_at", UTCDateTime, nullable=False),  # the echo's time
    Column("negative", Boolean, nullable=False),
    Column("risk_score", Float),
    Column("voice", Text),  # why its author is a voice (high reach, a question), or null
    Index("ix_storm_echo_waits_parent", "parent_key", "created_at"),
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
