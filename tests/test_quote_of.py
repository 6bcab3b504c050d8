"""A stored post keeps what it quotes (schema 12), as it keeps what it replies to: loaded again
(a waiting echo made a voice, a ticket's post, the sidebar), a quote still knows its parent."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import inspect, select, text

from connector.config import Settings
from connector.db import schema as s
from connector.services import Services
from connector.store import Store
from tests.conftest import database_url, post_dict


def test_a_quote_loaded_again_knows_what_it_quotes(db_env: dict[str, str]) -> None:
    svc = Services.build(Settings.from_env(db_env))
    try:
        quote = post_dict(text="ソラモバイル、これうちも同じ。最悪", quote_of="1860000000000099999")
        one_by_one = post_dict(text="ソラモバイルまた繋がらない", quote_of="1860000000000088888")
        svc.pipeline.ingest_many([quote], "test")
        svc.pipeline.ingest_raw(one_by_one, "test")
        for raw in (quote, one_by_one):
            loaded = svc.store.posts.load_post(f"x:{raw['id']}")
            assert loaded is not None
            assert loaded[0].quote_of == raw["quote_of"]
            row = svc.store.posts.post_row(f"x:{raw['id']}")
            assert row is not None and row.quote_of == raw["quote_of"]
        plain = post_dict()
        svc.pipeline.ingest_many([plain], "test")
        loaded = svc.store.posts.load_post(f"x:{plain['id']}")
        assert loaded is not None and loaded[0].quote_of is None
    finally:
        svc.close()


def test_schema_11_gains_quote_of_and_keeps_its_posts(db_env: dict[str, str]) -> None:
    svc = Services.build(Settings.from_env(db_env))
    try:
        svc.pipeline.ingest_many([post_dict(), post_dict(text="ハルカ珈琲の新作おいしい")], "test")
        store = svc.store
        with store.engine.connect() as conn:
            before = sorted(conn.execute(select(s.posts.c.key, s.posts.c.text)).all())
        with store.engine.begin() as conn:  # back to schema 11: posts without the column
            conn.execute(text("ALTER TABLE posts DROP COLUMN quote_of"))
            conn.execute(s.schema_version.delete())
            conn.execute(s.schema_version.insert().values(version=11, applied_at=datetime.now(timezone.utc)))
        assert "quote_of" not in {c["name"] for c in inspect(store.engine).get_columns("posts")}
    finally:
        svc.close()
    upgraded = Store(database_url(db_env))
    try:
        assert "quote_of" in {c["name"] for c in inspect(upgraded.engine).get_columns("posts")}
        with upgraded.engine.connect() as conn:
            assert sorted(conn.execute(select(s.posts.c.key, s.posts.c.text)).all()) == before
            assert set(conn.execute(select(s.posts.c.quote_of)).scalars()) == {None}
            assert conn.execute(text("SELECT max(version) FROM schema_version")).scalar() == s.SCHEMA_VERSION == 12
    finally:
        upgraded.engine.dispose()
