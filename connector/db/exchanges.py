"""Replies the team sent back to the network from the helpdesk."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from connector.db.counts import record_first_reply
from connector.db.engine import dialect_insert, utcnow
from connector.db.schema import analyses, authors, exchanges, outbox, post_compliance, post_topics, posts, tickets


@dataclass(frozen=True, slots=True)
class AnsweredPost:
    """A customer's post the team answered, with the first reply it got: a candidate similar case."""

    post_key: str
    text: str
    url: str | None
    created_at: datetime
    author_key: str
    author_name: str | None
    author_handle: str | None
    labels: dict[str, str | None]
    topics: tuple[str, ...]
    reply_text: str
    reply_agent: str
    reply_status: str
    reply_at: datetime
    reply_url: str | None
    helpdesk: str
    ticket_id: str


class ExchangeRepository:
    """Replies the team sent back to the network from the helpdesk."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
            result = conn.execute(dialect_insert(conn, exchanges).values(
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
        sent_at = utcnow() if status not in ("failed", "unknown") else None
        with self.engine.begin() as conn:
            conn.execute(update(exchanges).where(exchanges.c.id == exchange_id).values(
                status=status, network_id=network_id, url=url, error=error and error[:2000],
                sent_at=sent_at))
            if sent_at is not None:
                record_first_reply(conn, exchange_id, sent_at)

    def list_exchanges(self, ticket_post_key: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(exchanges).where(exchanges.c.ticket_post_key == ticket_post_key)
                                .order_by(exchanges.c.created_at, exchanges.c.id)).mappings().all()
        return [dict(r) for r in rows]

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

    def post_topics(self, post_key: str) -> tuple[str, ...]:
        """The complaint topics stored with one post at ingest (none for other posts)."""
        with self.engine.connect() as conn:
            return tuple(sorted(conn.execute(select(post_topics.c.topic)
                                             .where(post_topics.c.post_key == post_key)).scalars()))

    def answered_posts(self, brand: str, *, exclude_post_key: str | None = None,
                       limit: int = 500) -> list[AnsweredPost]:
        """The brand's most recently answered ticket posts (not failed replies), each once with
        the first reply it got, newest answer first: the pool similar cases are ranked from."""
        stmt = (select(exchanges.c.ticket_post_key, exchanges.c.text.label("reply_text"), exchanges.c.agent,
                       exchanges.c.status, exchanges.c.created_at.label("replied"), exchanges.c.sent_at,
                       exchanges.c.url.label("reply_url"), exchanges.c.helpdesk, exchanges.c.ticket_id,
                       exchanges.c.id, posts.c.text, posts.c.url, posts.c.created_at, posts.c.author_key,
                       authors.c.name, authors.c.handle, analyses.c.sentiment, analyses.c.intent,
                       analyses.c.expectation_type, analyses.c.expectation_content, analyses.c.quality_axis)
                .join(posts, posts.c.key == exchanges.c.ticket_post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .outerjoin(analyses, analyses.c.post_key == posts.c.key)
                # A post its author deleted (purged: only a marker is left) is no example to follow.
                .outerjoin(post_compliance, post_compliance.c.post_key == posts.c.key)
                .where(post_compliance.c.purged_at.is_(None))
                .where(posts.c.brand == brand).where(exchanges.c.status != "failed")
                .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc()).limit(limit * 3))
        if exclude_post_key is not None:
            stmt = stmt.where(exchanges.c.ticket_post_key != exclude_post_key)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            first: dict[str, Any] = {}
            for row in rows:  # newest first: the last one seen per post is its first reply
                first[row["ticket_post_key"]] = row
            keys = list(first)[:limit]
            topics: dict[str, list[str]] = {}
            for chunk in range(0, len(keys), 500):
                for key, topic in conn.execute(select(post_topics.c.post_key, post_topics.c.topic)
                                               .where(post_topics.c.post_key.in_(keys[chunk:chunk + 500]))):
                    topics.setdefault(key, []).append(topic)
        return [_answered(first[key], topics.get(key, ())) for key in keys]


def _answered(row: Any, topics: Sequence[str]) -> AnsweredPost:
    return AnsweredPost(
        post_key=row["ticket_post_key"], text=row["text"], url=row["url"], created_at=row["created_at"],
        author_key=row["author_key"], author_name=row["name"], author_handle=row["handle"],
        labels={name: row[name] for name in ("sentiment", "intent", "expectation_type", "expectation_content",
                                             "quality_axis")},
        topics=tuple(sorted(topics)), reply_text=row["reply_text"], reply_agent=row["agent"],
        reply_status=row["status"], reply_at=row["sent_at"] or row["replied"], reply_url=row["reply_url"],
        helpdesk=row["helpdesk"], ticket_id=row["ticket_id"])
