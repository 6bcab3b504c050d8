"""Zendesk Channel framework installations and their pulls."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from connector.db.engine import dialect_insert, utcnow
from connector.db.posts import post_from_row
from connector.db.schema import (
    analyses,
    authors,
    channel_external_ids,
    channel_feed,
    channel_instances,
    outbox,
    posts,
)


class ChannelRepository:
    """Zendesk Channel framework installations and their pulls."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save_channel_instance(self, *, instance_id: str, subdomain: str, brand: str, name: str,
                              signature: str, locale: str, backfill_from: datetime) -> dict[str, Any]:
        """Create an instance, or update the brand/name/signature of an active one (re-edit).

        A destroyed instance is never revived: Zendesk destroyed it, a new one gets a new id."""
        now = utcnow()
        values = dict(subdomain=subdomain, brand=brand, name=name, signature=signature, locale=locale,
                      updated_at=now)
        with self.engine.begin() as conn:
            conn.execute(dialect_insert(conn, channel_instances).values(
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

    def channel_posts(self, brand: str, *, after: int | None, since: datetime,
                      limit: int) -> list[dict[str, Any]]:
        """Qualifying, analysed posts of `brand`'s tickets in feed order, after a cursor.

        The cursor is the feed number (`channel_feed.seq`), assigned in commit order (see the
        table's comment): a post committed late gets a later number and comes in a later pull,
        however early its `ingested_at` was taken. The first pull (no cursor) starts at
        `since`. The brand is the ticket post's (a follow-up belongs to its conversation's
        instance).
        """
        root = posts.alias("root")
        stmt = (select(posts, authors.c.author_id, authors.c.handle, authors.c.name.label("author_name"),
                       authors.c.bio, authors.c.location, authors.c.followers, authors.c.following,
                       authors.c.created_at.label("author_created_at"), authors.c.avatar_url,
                       analyses.c.detail, outbox.c.kind, outbox.c.ticket_post_key, channel_feed.c.seq)
                .select_from(channel_feed)
                .join(posts, posts.c.key == channel_feed.c.post_key)
                .join(authors, authors.c.key == posts.c.author_key)
                .join(analyses, analyses.c.post_key == posts.c.key)
                .join(outbox, outbox.c.post_key == posts.c.key)
                .join(root, root.c.key == outbox.c.ticket_post_key)
                .where(posts.c.qualified == True)  # noqa: E712
                .where(root.c.brand == brand)
                .order_by(channel_feed.c.seq)
                .limit(limit))
        if after is None:
            stmt = stmt.where(posts.c.ingested_at >= since)
        else:
            stmt = stmt.where(channel_feed.c.seq > after)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        result = []
        for row in rows:
            post, decision, analysis = post_from_row(row)
            result.append({"post": post, "decision": decision, "analysis": analysis, "kind": row["kind"],
                           "ticket_post_key": row["ticket_post_key"], "ingested_at": row["ingested_at"],
                           "seq": row["seq"]})
        return result

    def channel_seq_before(self, at: datetime) -> int:
        """The highest feed number of a post ingested before `at` (0: none): where a cursor of
        the old (ingested_at, key) form resumes."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(channel_feed.c.seq))
                                    .join(posts, posts.c.key == channel_feed.c.post_key)
                                    .where(posts.c.ingested_at < at)).scalar() or 0)

    def remember_external_ids(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        with self.engine.begin() as conn:
            for external_id, post_key in pairs:
                conn.execute(dialect_insert(conn, channel_external_ids).values(
                    external_id=external_id, post_key=post_key).on_conflict_do_nothing(index_elements=["external_id"]))

    def post_key_for_external_id(self, external_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(channel_external_ids.c.post_key)
                                .where(channel_external_ids.c.external_id == external_id)).scalar()
