"""Small persisted state of the source modules: cursors, health, usage, post extras."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ContextManager

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from connector.db.engine import advisory_lock, dialect_insert, utcnow
from connector.db.schema import source_health, source_post_extras, source_state, source_usage


class SourceStateRepository:
    """Small persisted state of the source modules: cursors, health, usage, post extras."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_state(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(source_state.c.value).where(source_state.c.key == key)).scalar()

    def set_state(self, key: str, value: Any) -> None:
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, source_state).values(key=key, value=value, updated_at=utcnow())
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
            stmt = dialect_insert(conn, source_health).values(unit=unit, **values)
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
            stmt = dialect_insert(conn, source_usage).values(platform=platform, day=day, kind=kind, units=units,
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

    def exclusive(self, name: str) -> ContextManager[bool]:
        """Try to become the one instance doing `name` (see `engine.advisory_lock`): yields
        False when another instance holds it; always True on SQLite (one instance)."""
        return advisory_lock(self.engine, name)
