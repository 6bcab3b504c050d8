"""A batch's storm writes are kept in memory and written at its end (connector/db/storms.py
`StormWrites`, issue 17): grouping in batches must leave exactly the rows that grouping post by
post leaves — memberships, indexed bands, storm sizes and jobs, spike alerts, waiting echoes."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, Table, create_engine, insert, select

from benchmarks.pipeline_throughput import synthetic_posts
from benchmarks.storm import BARE_ECHOES, generate
from connector.config import Settings
from connector.db.schema import (
    SCHEMA_VERSION,
    metadata,
    posts,
    schema_version,
    storm_alerts,
    storm_bands,
    storm_echo_waits,
    storm_members,
    storms,
)
from connector.db.storms import (
    _BAND_PAIRS,
    _INDEXED_POSTS,
    _INDEXED_POSTS_OF,
    _SQLITE_BAND_POSTS,
    StormRepository,
    StormWrites,
    _sqlite_band_posts,
)
from connector.services import Services
from connector.store import Store
from tests import pg

FIXED = datetime(2026, 11, 21, tzinfo=timezone.utc)  # velocity (risk) depends on the post's age


def _stream() -> list[dict[str, Any]]:
    """Near-duplicate storms of one brand, bare echoes (some before their parent, so they wait),
    and the demo feed's two brands again and again (negative enough for spike alerts)."""
    rng = random.Random(17)
    generated = generate(220, 5)

    def as_post(key: str, at: datetime, text: str, author: str, **refs: str) -> dict[str, Any]:
        return {"platform": "x", "id": key[2:], "created_at": at.isoformat(), "lang": "ja", "text": text,
                "author": {"id": author, "followers": rng.randint(0, 30_000)}, **refs}

    stream = [as_post(key, at, text, f"a{i}") for i, (key, at, text, _) in enumerate(generated)]
    parents = [(key, at) for key, at, _, truth in generated if truth is not None]
    for n in range(60):
        parent, at = rng.choice(parents)
        ref = ({"quote_of": parent[2:]} if rng.random() < 0.3
               else {"in_reply_to": parent[2:], "conversation_id": parent[2:]})
        text = rng.choice([*BARE_ECHOES, "ソラモバイル最悪、私も繋がらない？"])
        echo = as_post(f"x:echo{n}", at + timedelta(seconds=rng.uniform(5, 900)), text, f"e{n}", **ref)
        position = next(i for i, p in enumerate(stream) if p["id"] == parent[2:])
        if rng.random() < 0.3:
            stream.insert(rng.randint(max(0, position - 100), position), echo)
        else:
            stream.insert(rng.randint(position + 1, min(len(stream), position + 100)), echo)
    return stream + synthetic_posts(160)


def _storm_rows(svc: Services) -> dict[str, list[tuple[Any, ...]]]:
    with svc.store.engine.connect() as conn:
        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return sorted((tuple(r) for r in conn.execute(select(*columns)).all()), key=repr)
        return {
            "members": rows(*storm_members.c),
            "bands": rows(*storm_bands.c),
            # job_due_at is the wall clock when the job fell due; that it did is compared
            "storms": rows(*(c for c in storms.c if c.name != "job_due_at"), storms.c.job_due_at.is_(None)),
            "alerts": rows(*storm_alerts.c),
            "waits": rows(*storm_echo_waits.c),
            "posts": rows(posts.c.key, posts.c.brand, posts.c.reasons),
        }


def test_batches_group_exactly_as_post_by_post(backend: str, db_env: dict[str, str], tmp_path: Any) -> None:
    stream = _stream()
    found = {}
    for how in ("one", "many"):  # each on a database of its own
        env = {**db_env, "YORISOI_DATA_DIR": str(tmp_path / how), "YORISOI_STORM_MIN_POSTS": "3",
               "YORISOI_SPIKE_MIN_COUNT": "5"}
        batch = 1 if how == "one" else 120
        if backend == "postgresql" and how == "many":
            with pg.fresh_database() as url:
                found[how] = _ingest({**env, "YORISOI_DATABASE": url}, stream, batch)
        else:
            if backend == "sqlite":
                env["YORISOI_DATABASE"] = f"sqlite:///{tmp_path / how}.sqlite3"
            found[how] = _ingest(env, stream, batch)
    one, many = found["one"], found["many"]
    # Enough happened to compare: storms founded, problem jobs due, alerts, echoes counted in.
    assert len(one["storms"]) >= 10 and sum(1 for s in one["storms"] if s[-1] is False) >= 3
    assert len(one["alerts"]) >= 2 and any("echo" in str(p[2]) for p in one["posts"])
    for table in one:
        assert many[table] == one[table], table


def _ingest(env: dict[str, str], stream: list[dict[str, Any]], batch: int) -> dict[str, list[tuple[Any, ...]]]:
    svc = Services.build(Settings.from_env(env))
    try:
        svc.pipeline.clock = lambda: FIXED
        for i in range(0, len(stream), batch):
            if batch == 1:
                svc.pipeline.ingest_raw(stream[i], "test")
            else:
                svc.pipeline.ingest_many(stream[i:i + batch], "test")
        return _storm_rows(svc)
    finally:
        svc.close()


def _as_stored(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """A SQLite table's values as stored, in insertion order: quote() shows each value's storage
    class too (a time as TEXT in SQLAlchemy's format, a band key as a BLOB)."""
    with engine.connect() as conn:
        columns = ", ".join(f"quote({c.name})" for c in table.c)
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {columns} FROM {table.name} ORDER BY rowid").all()]


def test_sqlite_flush_stores_what_sqlalchemy_stores(tmp_path: Any) -> None:
    """On SQLite `StormWrites.flush` hands the driver plain tuples (issue 17): the stored values
    must be byte for byte those of SQLAlchemy's INSERT through the columns' types."""
    jst = timezone(timedelta(hours=9))
    members = [
        dict(post_key="x:1", storm_id=None, brand="ソラモバイル", created_at=datetime(2026, 11, 21, 9, 0, tzinfo=jst),
             negative=True, resembles=None, similarity=None, reason=None, role="echo", risk_score=0.25, linked=False),
        dict(post_key="x:2", storm_id=7, brand="ソラモバイル",
             created_at=datetime(2026, 11, 21, 0, 1, 2, 345678, tzinfo=timezone.utc), negative=False,
             resembles="x:1", similarity=0.8123, reason="近い / near", role="voice", risk_score=1, linked=True),
    ]
    bands = {"x:1": ((b"\x00" * 17, b"\xff\x00\x01" * 5 + b"\x00\x1f"), "ソラモバイル", members[0]["created_at"], None),
             "x:2": ((b"\x10" * 16 + b"\x01",), "ソラモバイル", members[1]["created_at"], 7)}
    stored = {}
    for how in ("sqlalchemy", "flush"):
        engine = create_engine(f"sqlite:///{tmp_path / how}.sqlite3")  # no foreign keys: no posts needed
        metadata.create_all(engine, tables=[storm_members, storm_bands, storms])
        with engine.begin() as conn:
            if how == "flush":
                writes = StormWrites(conn, FIXED - timedelta(days=1), FIXED)
                writes.members = {m["post_key"]: dict(m) for m in members}
                writes.bands = dict(bands)
                writes.flush()
            else:
                conn.execute(insert(storm_members), members)
                conn.execute(insert(storm_bands), [dict(post_key=key, band=band, brand=brand, created_at=at, storm_id=i)
                                                   for key, (keys, brand, at, i) in bands.items() for band in keys])
        stored[how] = {table.name: _as_stored(engine, table) for table in (storm_members, storm_bands)}
        with engine.begin() as conn:  # a batch's storms' indexed posts: each post once, at its earliest band row
            conn.execute(insert(storm_bands).values(post_key="x:2", band=b"\x02" * 17, brand="ソラモバイル",
                                                    created_at=FIXED - timedelta(hours=1), storm_id=7))
            writes = StormWrites(conn, FIXED - timedelta(days=1), FIXED)
            writes.prefetch([7])
            assert writes.indexed[7] == {r.post_key: r.created_at for r in conn.execute(
                _INDEXED_POSTS, {"b_storm": 7, "b_since": FIXED - timedelta(days=1)})} == {
                "x:2": FIXED - timedelta(hours=1)}
            conn.rollback()
        with engine.connect() as conn:  # the band look-up through the driver reads what SQLAlchemy reads
            day = (FIXED - timedelta(days=1), FIXED + timedelta(days=1))
            for since, until in (day, (members[1]["created_at"], FIXED), (FIXED, members[1]["created_at"]),
                                 (FIXED - timedelta(days=1), members[0]["created_at"] - timedelta(microseconds=1))):
                asked = [b"\x00" * 17, b"\x10" * 16 + b"\x01", b"\x01" * 17]
                grouped = _sqlite_band_posts(conn, "ソラモバイル", asked, since, until)
                assert (sorted((k, b) for b, keys in grouped.items() for k in keys) ==
                        sorted(tuple(r) for r in conn.execute(_BAND_PAIRS, {"b_brand": "ソラモバイル", "b_bands": asked,
                                                                            "b_since": since, "b_until": until})))
                assert all(keys for keys in grouped.values())  # a band is listed only with a post
            found = _sqlite_band_posts(conn, "ソラモバイル", asked, *day)
            assert sum(map(len, found.values())) == 2
            assert all(type(b) is bytes and all(type(k) is str for k in keys) for b, keys in found.items())  # dict keys
            assert _sqlite_band_posts(conn, "other", asked, *day) == {}
        engine.dispose()
    assert stored["flush"] == stored["sqlalchemy"]
    assert stored["flush"]["storm_bands"][0][3] == "'2026-11-21 00:00:00.000000'"  # the post's time, in UTC


def test_band_lookup_reads_the_index_alone_after_the_migration(tmp_path: Any) -> None:
    """Migration 10 rebuilds ix_storm_bands_lookup with post_key, so the batch look-up is an
    index-only read (issue 17)."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    store = Store(url)
    with store.engine.begin() as conn:  # a version-9 database: the index without post_key
        conn.exec_driver_sql("DROP INDEX ix_storm_bands_lookup")
        conn.exec_driver_sql("CREATE INDEX ix_storm_bands_lookup ON storm_bands (brand, band, created_at)")
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=9, applied_at=FIXED))
    store.engine.dispose()
    upgraded = Store(url)
    try:
        with upgraded.engine.connect() as conn:
            assert conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())
                                ).scalar() == SCHEMA_VERSION
            assert [r[2] for r in conn.exec_driver_sql("PRAGMA index_info(ix_storm_bands_lookup)")] == [
                "brand", "band", "created_at", "post_key"]
            assert [r[2] for r in conn.exec_driver_sql("PRAGMA index_info(ix_storm_bands_storm)")] == [
                "storm_id", "created_at", "post_key"]
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + _SQLITE_BAND_POSTS.format("?, ?"),
                                        ("b", b"x", b"y", "2026-11-20", "2026-11-21")).all()
            assert "COVERING INDEX ix_storm_bands_lookup" in str(plan)
            indexed_posts_of = _INDEXED_POSTS_OF.params(b_ids=[1], b_since=FIXED).compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {indexed_posts_of}", (1, "2026-11-20")).all()
            assert "COVERING INDEX ix_storm_bands_storm" in str(plan) and "TEMP B-TREE" not in str(plan)
    finally:
        upgraded.engine.dispose()


def test_a_founding_knows_its_indexed_posts_without_asking(tmp_path: Any) -> None:
    """A storm founded by a batch's post on a stored one: its indexed posts (what the
    representatives cap counts) are the first post's, from the UPDATE's RETURNING (issue 17),
    as `_INDEXED_POSTS` reads them — none when that post's band rows are older than the batch's times."""
    engine = create_engine(f"sqlite:///{tmp_path}/found.sqlite3")  # no foreign keys: no posts needed
    metadata.create_all(engine, tables=[storm_members, storm_bands, storms])
    repo = StormRepository(engine)
    assert engine.dialect.update_returning
    for first_at, expected in ((FIXED - timedelta(minutes=5), {"x:1": FIXED - timedelta(minutes=5)}),
                               (FIXED - timedelta(days=2), {})):
        with engine.begin() as conn:
            conn.execute(insert(storm_members).values(post_key="x:1", storm_id=None, brand="b", created_at=first_at,
                                                      negative=False, linked=False))
            conn.execute(insert(storm_bands), [dict(post_key="x:1", band=bytes([i]) * 17, brand="b",
                                                    created_at=first_at, storm_id=None) for i in range(3)])
            writes = StormWrites(conn, FIXED - timedelta(days=1), FIXED)
            storm_id = repo.storm_add_member(
                post_key="x:2", brand="b", created_at=FIXED, negative=False, resembles="x:1", similarity=0.9,
                reason=None, role="echo", risk_score=0.0, join_storm=None, found_single=True, min_posts=3,
                due_at=FIXED, bands=[b"\x09" * 17], represent_since=FIXED - timedelta(hours=1), conn=writes)
            assert storm_id is not None
            assert writes.indexed[storm_id] == {**expected, "x:2": FIXED}
            writes.flush()
            assert {r.post_key: r.created_at for r in conn.execute(
                _INDEXED_POSTS, {"b_storm": storm_id, "b_since": writes.since})} == {**expected, "x:2": FIXED}
            conn.rollback()
    engine.dispose()


def _weeks_back(posts_: list[dict[str, Any]], weeks: int) -> list[dict[str, Any]]:
    """The posts again under new ids, `weeks` weeks earlier: the same clock hours on the same
    weekdays, which the spike check's baseline counts."""
    return [p | {"id": f"w{weeks}-{p['id']}",
                 "created_at": (datetime.fromisoformat(p["created_at"].replace("Z", "+00:00"))
                                - timedelta(weeks=weeks)).isoformat()} for p in posts_]


def test_batches_count_baselines_exactly_as_post_by_post(backend: str, db_env: dict[str, str],
                                                          tmp_path: Any) -> None:
    """The spike check's baselines (past weeks' counts), which a PostgreSQL batch reads in one
    query at its start (`prefetch_negative_counts`, issue 17): with past weeks that hold
    negative posts, and batches spanning weeks with echoes counted in during the batch, the
    alerts (baselines, p-values) and every storm row are as post by post."""
    recent = synthetic_posts(180)
    stream = _weeks_back(recent, 2) + _weeks_back(recent, 1) + _stream()
    found = {}
    for how, batch in (("one", 1), ("many", 150), ("wide", 400)):
        env = {**db_env, "YORISOI_DATA_DIR": str(tmp_path / how), "YORISOI_STORM_MIN_POSTS": "3",
               "YORISOI_SPIKE_MIN_COUNT": "5"}
        if backend == "postgresql":
            with pg.fresh_database() as url:
                found[how] = _ingest({**env, "YORISOI_DATABASE": url}, stream, batch)
        else:
            env["YORISOI_DATABASE"] = f"sqlite:///{tmp_path / how}.sqlite3"
            found[how] = _ingest(env, stream, batch)
    one = found["one"]
    assert any(alert[5] > 0 for alert in one["alerts"])  # a baseline counted past weeks' posts
    for how in ("many", "wide"):
        for table in one:
            assert found[how][table] == one[table], (how, table)


def test_grouped_band_lookup_gives_back_any_post_key_exactly(tmp_path: Any) -> None:
    """The SQLite look-up reads a band's posts as a JSON array (issue 17): every key, whatever
    its characters, must come back as the TEXT stored, and each band with its posts only."""
    engine = create_engine(f"sqlite:///{tmp_path}/keys.sqlite3")
    metadata.create_all(engine, tables=[storm_bands])
    odd = ["x:\"quoted\"", "x:back\\slash", "x:tab\tnew\nline\x01", "x:絵文字😀", "x:\u2028sep", "x:/slash"]
    band = b"\x05" * 17
    with engine.begin() as conn:
        conn.execute(insert(storm_bands), [dict(post_key=key, band=band, brand="b", created_at=FIXED, storm_id=None)
                                           for key in odd])
        found = _sqlite_band_posts(conn, "b", [band, b"\x06" * 17], FIXED, FIXED)
    engine.dispose()
    assert list(found) == [band] and sorted(found[band]) == sorted(odd)


def test_band_hits_list_only_posts_with_a_member_row(backend: str, db_env: dict[str, str]) -> None:
    """A band row whose post has no member row is no candidate (the per-post query's inner
    join): on both backends, whichever way the band look-up reads (grouped on SQLite, pairs and
    one array of keys on PostgreSQL)."""
    svc = Services.build(Settings.from_env(db_env))
    try:
        svc.pipeline.ingest_many(synthetic_posts(3), "test")
        with svc.store.engine.begin() as conn:
            stored = conn.execute(select(storm_bands)).mappings().first()
            assert stored is not None
            conn.execute(insert(storm_bands).values(**(dict(stored) | {"post_key": "x:orphan"})))
        by_band, members = svc.store.storms.storm_band_hits(
            None, stored["brand"], [stored["band"]], stored["created_at"], stored["created_at"])
        assert stored["post_key"] in members and "x:orphan" not in members
        assert by_band == {stored["band"]: [stored["post_key"]]}
    finally:
        svc.close()
