"""The tickets search by trigram index (issue 19): the same tickets as the LIKE scan it replaced,
for hostile text too (LIKE's % _ \\, FTS5 syntax such as AND, *, NEAR(, double quotes), for
queries shorter than a trigram, on SQLite (FTS5) and PostgreSQL (pg_trgm); a purge takes the
words out of the index; migration 8 builds the index of tickets stored before it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

from connector.db import schema as s
from connector.db.store import Store
from connector.db.ticket_search import fts_phrase, like_pattern
from tests.conftest import post_dict

BASE = "ソラモバイル、駅で全然繋がらない。最悪"
HOSTILE = ("100%_ 返金して", 'テスト "引用" です', "AND OR NOT * NEAR( ^ : col:記号", "バックスラッシュ \\ と %",
           "ＡＢＣ ü Ü full", "abcXYZ 通信速度", "{subject} : 波括弧", "いつもの")
NEEDLES = ("100%_", "%", "_", "0%", '"', '"引用"', "AND", "and", "*", "NEAR(", "NEAR", "^", ":", "col:", "\\", "\\ と",
           "{subject}", "繋がらない", "通信", "繋", "ü", "Ü", "abc", "ABC", "ＡＢＣ", "ａｂｃ", "xyz", "ソラ", "a",
           "いつもの", "存在しない言葉", "tanaka", "hostile_3", "HOSTILE")
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _seed(svc) -> None:
    for n, extra in enumerate(HOSTILE):
        posted = NOW - timedelta(hours=n + 1)
        result = svc.pipeline.ingest_raw(post_dict(id=f"s{n}", text=f"{BASE} {extra}",
                                                   created_at=posted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                   author={"id": f"au{n}", "handle": f"hostile_{n}"}), "test")
        assert result.status == "queued", (extra, result)
    svc.pipeline.drain(max_wait=1)


def _folded(value: str, backend: str) -> str:
    # SQLite's LIKE folds ASCII letters only (https://sqlite.org/lang_expr.html#like);
    # PostgreSQL's LIKE is case-sensitive.
    return value.translate({c: c + 32 for c in range(65, 91)}) if backend == "sqlite" else value


def _expected(store, needle: str, backend: str) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.tickets.c.post_key, s.tickets.c.created_at, s.tickets.c.subject, s.posts.c.text,
                                   s.authors.c.handle)
                            .join(s.posts, s.posts.c.key == s.tickets.c.post_key)
                            .join(s.authors, s.authors.c.key == s.posts.c.author_key)).all()
    rows.sort(key=lambda r: (r.created_at, r.post_key), reverse=True)
    n = _folded(needle, backend)
    return [r.post_key for r in rows
            if any(n in _folded(v or "", backend) for v in (r.subject, r.text, r.handle))]


def _search(store, needle: str, **kw) -> tuple[int, list[str]]:
    total, rows = store.outbox.search_tickets(text=needle, **{"limit": 100, **kw})
    return total, [r["post_key"] for r in rows]


@pytest.fixture
def searched(app_factory, db_env, backend):
    app = app_factory(**db_env)
    svc = app.extensions["yorisoi"]
    _seed(svc)
    return svc, backend


def test_search_finds_exactly_what_the_like_scan_finds_for_hostile_text(searched):
    svc, backend = searched
    store = svc.store
    assert len(store.outbox.list_tickets()) == len(HOSTILE)
    with store.engine.connect() as conn:
        if backend == "sqlite":  # every ticket is in the index, from the insert's transaction
            assert conn.execute(text("SELECT count(*) FROM ticket_search")).scalar() == len(HOSTILE)
        else:
            assert conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%_trgm'")).scalar() == 3
    for needle in NEEDLES:
        expected = _expected(store, needle, backend)
        assert _search(store, needle) == (len(expected), expected), needle
    assert _search(store, "存在しない言葉") == (0, [])
    assert len(_expected(store, "100%_", backend)) == 1 and len(_expected(store, "%", backend)) == 2
    assert len(_expected(store, "hostile_3", backend)) == 1  # by the author's handle


def test_the_count_stops_at_the_cap_and_pages_still_walk_every_match(searched):
    svc, backend = searched
    everything = _expected(svc.store, "ソラ", backend)
    assert len(everything) == len(HOSTILE)
    for needle in ("ソラ", "繋がらない"):  # shorter than a trigram, and through the index
        total, first = _search(svc.store, needle, limit=3, count_cap=4)
        assert total == 5 and first == everything[:3]  # 5 = "more than 4"
        assert _search(svc.store, needle, offset=3, limit=3, count_cap=4)[1] == everything[3:6]


def test_purge_takes_the_words_out_of_the_search(searched):
    svc, backend = searched
    store = svc.store
    [key] = _expected(store, "100%_", backend)
    assert store.compliance.purge_post(key, reason="deleted", marker="[削除された投稿]")
    assert _search(store, "100%_") == (0, [])
    assert _search(store, "返金") == (0, [])
    assert _search(store, "削除された投稿") == (1, [key])
    if backend == "sqlite":
        with store.engine.connect() as conn:
            indexed = conn.execute(text("SELECT group_concat(subject || text, '|') FROM ticket_search")).scalar()
        assert "100%_" not in indexed and "返金" not in indexed


def test_migration_8_indexes_the_tickets_stored_before_it(searched):
    svc, backend = searched
    store = svc.store
    url = str(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:  # as a version-7 database had it: no index
        if backend == "sqlite":
            conn.execute(text("DROP TABLE ticket_search"))
        else:
            for name in ("ix_posts_text_trgm", "ix_tickets_subject_trgm", "ix_authors_handle_trgm"):
                conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(update(s.schema_version).values(version=7))
    reopened = Store(url)
    try:
        with reopened.engine.connect() as conn:
            assert conn.execute(select(s.schema_version.c.version).order_by(s.schema_version.c.version.desc())
                                ).scalar() == s.SCHEMA_VERSION
            if backend == "sqlite":
                assert conn.execute(text("SELECT count(*) FROM ticket_search")).scalar() == len(HOSTILE)
        for needle in ("100%_", "NEAR(", "繋", "hostile_3"):
            expected = _expected(reopened, needle, backend)
            assert _search(reopened, needle) == (len(expected), expected), needle
    finally:
        reopened.engine.dispose()


def test_backfill_in_batches_resumes_and_indexes_each_ticket_once(searched):
    svc, backend = searched
    if backend != "sqlite":
        pytest.skip("PostgreSQL's GIN indexes need no backfill")
    from connector.db.ticket_search import backfill_search_index
    with svc.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM ticket_search WHERE rowid > (SELECT min(rowid) + 2 FROM ticket_search)"))
        assert backfill_search_index(conn, batch=2) == len(HOSTILE) - 3
        assert backfill_search_index(conn, batch=2) == 0
        assert conn.execute(text("SELECT count(*), count(DISTINCT rowid) FROM ticket_search")).one() == (
            len(HOSTILE), len(HOSTILE))


def test_query_quoting_is_literal():
    assert like_pattern("100%_\\") == "%100\\%\\_\\\\%"
    assert fts_phrase('a "b" NEAR(') == '"a ""b"" NEAR("'



def test_tickets_page_says_more_than_the_cap_and_keeps_paging(app, monkeypatch):
    """Past the cap the page says "N 件以上" and still links to the next page; without a search
    or filter the total stays exact."""
    from connector.web import dashboard
    from tests.test_today import _sign_in
    svc = app.extensions["yorisoi"]
    _seed(svc)
    monkeypatch.setattr(dashboard, "TICKETS_COUNT_CAP", 3)
    monkeypatch.setattr(dashboard, "TICKETS_PER_PAGE", 2)
    client = app.test_client()
    _sign_in(app, client)
    first = client.get("/tickets?q=ソラ&lang=ja").get_data(as_text=True)
    assert "3 件以上中 1〜2 件目" in first and 'rel="next"' in first and "1 / 2+" in first
    third = client.get("/tickets?q=ソラ&page=3&lang=ja").get_data(as_text=True)
    assert "3 件以上中 5〜6 件目" in third and 'rel="next"' in third
    last = client.get("/tickets?q=ソラ&page=4&lang=en").get_data(as_text=True)
    assert "more than 3 tickets; showing 7–8" in last
    every = client.get("/tickets?lang=ja").get_data(as_text=True)
    assert f"{len(HOSTILE)} 件中 1〜2 件目" in every and "以上" not in every.split('id="ticket-count"')[1][:40]


def test_response_time_filters_read_covering_indexes_after_migration_9(tmp_path):
    """A year of /response-times filtered by brand+source, or by labels, reads an index only
    (issue 19: 546/606 ms p95 at 1M posts when they read every row); migration 9 swaps the
    narrower ticket_facts index of a version-8 database for the covering one."""
    url = f"sqlite:///{tmp_path}/m.sqlite3"
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_ticket_facts_times_by"))
        conn.execute(text("DROP INDEX ix_response_hist_brand"))
        conn.execute(text("CREATE INDEX ix_ticket_facts_times ON ticket_facts (day, priority, ticket_seconds, "
                          "reply_seconds)"))
        conn.execute(update(s.schema_version).values(version=8))
    store.engine.dispose()
    store = Store(url)
    plans = []
    with store.engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
        assert {"ix_ticket_facts_times_by", "ix_response_hist_brand"} <= names and "ix_ticket_facts_times" not in names
        for sql in ("SELECT day, priority, group_concat(ticket_seconds), group_concat(reply_seconds) FROM ticket_facts "
                    "WHERE day >= '2025-12-08' AND day <= '2026-12-07' AND sentiment IN ('negative') "
                    "AND intent IN ('complaint') GROUP BY day, priority",
                    "SELECT day, priority, kind, bin, sum(n) FROM report_response_hist WHERE day >= '2025-12-08' "
                    "AND day <= '2026-12-07' AND brand IN ('ソラモバイル') AND platform IN ('x') "
                    "GROUP BY day, priority, kind, bin"):
            plans.append(" ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql))))
    store.engine.dispose()
    assert "COVERING INDEX ix_ticket_facts_times_by" in plans[0], plans[0]
    assert "COVERING INDEX ix_response_hist_brand (brand=? AND platform=?" in plans[1], plans[1]


def test_postgresql_without_rights_for_pg_trgm_searches_by_scan_and_says_so(caplog):
    """A role that may not CREATE EXTENSION: the schema is still created, a warning names the
    fix, the search gives the same tickets (by scan); once an admin creates the extension, the
    next start builds the indexes."""
    from tests import pg
    if pg.unavailable():
        pytest.skip(pg.unavailable())
    import uuid

    import psycopg
    role = f"yorisoi_limited_{uuid.uuid4().hex[:8]}"
    with pg.fresh_database() as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
            conn.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{role}"')
        base, _, rest = admin_url.partition("://")
        limited_url = f"{base}://{role}@{rest.split('@', 1)[1]}"
        try:
            with caplog.at_level("WARNING", logger="connector.db.ticket_search"):
                store = Store(limited_url)
            assert "pg_trgm is not available" in caplog.text and "CREATE EXTENSION pg_trgm" in caplog.text
            assert store.outbox.search_tickets(text="100%_") == (0, [])
            store.engine.dispose()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pg_trgm")
            store = Store(limited_url)
            with store.engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%_trgm'")).scalar() == 3
            store.engine.dispose()
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP OWNED BY "{role}" CASCADE')
            with psycopg.connect(pg.ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_outbox_counts_equal_a_group_by_of_every_row(searched):
    """/healthz and /tickets count 'done' as all rows minus the waiting ones (issue 19)."""
    from sqlalchemy import func
    svc, _ = searched
    store = svc.store
    with store.engine.begin() as conn:
        keys = list(conn.execute(select(s.outbox.c.id).order_by(s.outbox.c.id)).scalars())
        for status, ids in (("pending", keys[:2]), ("failed", keys[2:3]), ("sending", keys[3:4])):
            conn.execute(update(s.outbox).where(s.outbox.c.id.in_(ids)).values(status=status))
        grouped = dict(conn.execute(select(s.outbox.c.status, func.count()).group_by(s.outbox.c.status)).all())
    assert grouped == {"pending": 2, "failed": 1, "sending": 1, "done": len(HOSTILE) - 4}
    assert store.outbox.outbox_counts() == grouped
    assert store.outbox.outbox_counts(("pending", "failed")) == {"pending": 2, "failed": 1}
    with store.engine.begin() as conn:
        conn.execute(update(s.outbox).values(status="pending"))
    assert store.outbox.outbox_counts() == {"pending": len(HOSTILE)}  # no "done": 0
