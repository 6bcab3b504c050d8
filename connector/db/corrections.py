"""Agents' corrections of analysis labels: the learner's training data."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from connector.db.engine import new_id, utcnow
from connector.db.schema import analyses, corrections, posts


class CorrectionRepository:
    """Agents' corrections of analysis labels: the learner's training data."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_correction(self, post_key: str, label: str, new_value: str, agent: str, *,
                       old_value: str | None = None, at: datetime | None = None,
                       token_id: int | None = None) -> int:
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
            return new_id(conn.execute(insert(corrections).values(
                post_key=post_key, label=label, old_value=old_value, new_value=new_value,
                agent=agent.strip()[:200], token_id=token_id, created_at=at or utcnow())))

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
