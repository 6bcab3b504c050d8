"""The summary counts of a batch ingest are written on PostgreSQL as one unnest statement per
report table, and the Channel feed's numbers as one (issue 17: psycopg's executemany sent a
statement per row, under the brand lock). They must leave exactly the rows SQLite's
executemany leaves: the same counts (new rows and rows bumped by later batches), the same
topics, the feed numbered in the same order."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from benchmarks.pipeline_throughput import synthetic_posts
from connector.config import Settings
from connector.db import schema as s
from connector.services import Services
from tests import pg

TABLES = (s.report_daily, s.report_daily_label, s.report_reasons, s.report_topic_monthly, s.post_topics)


def _rows(env: dict[str, str]) -> dict[str, Any]:
    svc = Services.build(Settings.from_env(env))
    try:
        posts = synthetic_posts(240)
        for i in range(0, len(posts), 80):  # later batches bump the rows the first one made
            svc.pipeline.ingest_many(posts[i:i + 80], "test")
        with svc.store.engine.connect() as conn:
            found: dict[str, Any] = {t.name: sorted(tuple(r) for r in conn.execute(select(*t.c)).all()) for t in TABLES}
            found["channel_feed"] = list(conn.execute(select(s.channel_feed.c.post_key).order_by(s.channel_feed.c.seq))
                                         .scalars())
        return found
    finally:
        svc.close()


@pytest.mark.skipif(pg.unavailable() is not None, reason=str(pg.unavailable()))
def test_postgresql_counts_equal_sqlite(env: dict[str, str], tmp_path: Any) -> None:
    lite = _rows({**env, "YORISOI_DATABASE": f"sqlite:///{tmp_path}/lite.sqlite3"})
    with pg.fresh_database() as url:
        found = _rows({**env, "YORISOI_DATABASE": url})
    assert all(lite[name] for name in lite)  # every table has rows to compare
    assert any(row[-1] > 1 for row in lite["report_daily"])  # and bumped ones
    for name in lite:
        assert found[name] == lite[name], name
