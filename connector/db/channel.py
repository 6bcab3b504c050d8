"""Zendesk Channel framework installations and their pulls."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine

from connector.db.engine import dialect_insert, utcnow
from connector.db.posts import post_from_row
from connector.db.schema import (
    analyses, authors, channel_external_ids, channel_instances, outbox, posts,
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
            post, decision, analysis = post_from_row(row)
            result.append({"post": post, "decision": decision, "analysis": analysis, "kind": row["kind"],
                           "ticket_post_key": row["ticket_post_key"], "ingested_at": row["ingested_at"]})
        return result

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
