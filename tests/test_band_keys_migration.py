"""Schema 11 drops storm_bands' foreign keys (checking them was half of the band insert under the
brand lock, issue 17): a database of schema 10 keeps every band row and index, loses the keys."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, Index, MetaData, Table, inspect, select, text

from benchmarks.pipeline_throughput import synthetic_posts
from connector.config import Settings
from connector.db import schema as s
from connector.services import Services
from connector.store import Store
from tests.conftest import database_url


def _schema_10_bands() -> Table:
    """storm_bands as schema 10 created it: with its keys to posts and storms."""
    old = s.storm_bands
    return Table(old.name, MetaData(),
                 *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in old.columns),
                 ForeignKeyConstraint(["post_key"], [s.posts.c.key]), ForeignKeyConstraint(["storm_id"], [s.storms.c.id]),
                 *(Index(ix.name, *(c.name for c in ix.columns)) for ix in old.indexes))


def _bands(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(*s.storm_bands.c)).all())


def test_schema_10_bands_lose_their_keys_and_keep_their_rows(db_env: dict[str, str]) -> None:
    svc = Services.build(Settings.from_env({**db_env, "YORISOI_STORM_MIN_POSTS": "3"}))
    try:
        svc.pipeline.ingest_many(synthetic_posts(40), "test")
        store = svc.store
        expected = _bands(store)
        assert expected
        assert not inspect(store.engine).get_foreign_keys("storm_bands")  # a fresh schema has none
        with store.engine.begin() as conn:  # back to schema 10
            s.storm_bands.drop(conn)
            _schema_10_bands().create(conn)
            columns = ", ".join(c.name for c in s.storm_bands.columns)
            conn.execute(s.storm_bands.insert(), [dict(zip(columns.split(", "), r)) for r in expected])
            conn.execute(s.schema_version.delete())
            conn.execute(s.schema_version.insert().values(version=10, applied_at=datetime.now(timezone.utc)))
        assert len(inspect(store.engine).get_foreign_keys("storm_bands")) == 2
    finally:
        svc.close()
    upgraded = Store(database_url(db_env))
    try:
        found = inspect(upgraded.engine)
        assert found.get_foreign_keys("storm_bands") == []
        assert {ix["name"] for ix in found.get_indexes("storm_bands")} == {ix.name for ix in s.storm_bands.indexes}
        assert _bands(upgraded) == expected
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT max(version) FROM schema_version")).scalar() == s.SCHEMA_VERSION
    finally:
        upgraded.engine.dispose()
