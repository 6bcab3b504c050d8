"""Platform compliance: checking stored posts and purging gone ones."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Engine

from connector.db.engine import dialect_insert, utcnow
from connector.db.schema import (
    analyses,
    authors,
    outbox,
    post_compliance,
    post_topics,
    posts,
    report_topic_monthly,
    tickets,
)
from connector.db.ticket_search import index_ticket


class ComplianceRepository:
    """Platform compliance: checking stored posts and purging gone ones."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
                stmt = dialect_insert(conn, post_compliance).values(post_key=key, platform=platform, state="live",
                                                             checked_at=now)
                conn.execute(stmt.on_conflict_do_update(index_elements=["post_key"],
                                                        set_={"state": "live", "checked_at": now}))

    def purge_post(self, key: str, *, reason: str, marker: str, url: str | None = None) -> bool:
        """Remove a gone post's text and (when no live post of the author remains) the author's
        profile; keep the row, its decision and its ticket link. Returns False if already purged.

        Everything that repeats the post's words goes: the text, the analysis evidence (tokens
        of the text), the ticket subject's excerpt, and the post's topics (nouns of the text) in
        `post_topics` and their counts in `report_topic_monthly`, all in one transaction, so the
        topics page and its CSV no longer show them. Labels (negative, complaint…) stay for the
        counts on the dashboard.
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
            _purge_topics(conn, key)
            conn.execute(update(tickets).where(tickets.c.post_key == key).values(
                subject=(f"[{row.brand}] " if row.brand else "") + marker))
            index_ticket(conn, key)  # the search must not find the purged words either
            stmt = dialect_insert(conn, post_compliance).values(post_key=key, platform=row.platform, state="gone",
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


def _purge_topics(conn: Connection, key: str) -> None:
    """Remove the post's topics and take them out of the monthly topic counts (the same
    (month, brand, platform, topic) rows `count_posts` bumped for it)."""
    rows = conn.execute(select(post_topics.c.topic, post_topics.c.day, post_topics.c.brand, post_topics.c.platform)
                        .where(post_topics.c.post_key == key)).all()
    if not rows:
        return
    m = report_topic_monthly
    for topic, day, brand, platform in rows:
        where = ((m.c.month == day[:7]) & (m.c.brand == brand) & (m.c.platform == platform) & (m.c.topic == topic))
        conn.execute(update(m).where(where).values(n=m.c.n - 1))
        conn.execute(delete(m).where(where).where(m.c.n <= 0))
    conn.execute(delete(post_topics).where(post_topics.c.post_key == key))
