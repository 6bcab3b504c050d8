"""Public storms (connector/storms.py): clusters, their problem-ticket jobs and spike alerts."""
from __future__ import annotations

import bisect
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import chain, repeat
from typing import Any, Iterator, Sequence, Union, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from connector.db.engine import (
    advisory_xact_lock,
    advisory_xact_locks,
    bind_processors,
    new_id,
    unnest_insert,
    worker_id,
)
from connector.db.schema import (
    analyses,
    authors,
    exchanges,
    post_topics,
    posts,
    storm_alerts,
    storm_bands,
    storm_echo_waits,
    storm_members,
    storm_statements,
    storms,
    tickets,
)
from connector.models import TicketRef

# The statements of ingest's hot path (every qualified post runs most of them), built once with
# bind parameters: building a SQLAlchemy statement and its cache key per call cost more than
# the SQL itself on SQLite (issue 17, cProfile of benchmarks/pipeline_throughput.py).
_STORM_OF = select(storm_members).where(storm_members.c.post_key == bindparam("b_key"))
_INDEXED = (select(func.count(func.distinct(storm_bands.c.post_key)))
            .where(storm_bands.c.storm_id == bindparam("b_storm")).where(storm_bands.c.created_at >= bindparam("b_since")))
_INSERT_MEMBER = insert(storm_members)
_INSERT_BANDS = insert(storm_bands)
# PostgreSQL: a post's 32 band rows in ONE statement (an array parameter unnested server-side).
# psycopg's executemany sends them as 32 pipelined statements, and that was ~40 % of the storm
# grouping that runs under the brand lock (issue 17, cProfile of `delivery_latency.py pg-ingest`).
_INSERT_BANDS_PG = text(
    "INSERT INTO storm_bands (post_key, band, brand, created_at, storm_id) "
    "SELECT :post_key, b, :brand, :created_at, :storm_id FROM unnest(CAST(:bands AS bytea[])) AS b")
# StormWrites: a batch's band rows in one statement, its storms read once (row-locked as the
# per-post UPDATE locked them), a storm's indexed posts and a brand's negative times read once.
_INSERT_BAND_SETS_PG = text(
    "INSERT INTO storm_bands (post_key, band, brand, created_at, storm_id) "
    "SELECT p.k, substring(p.bs FROM i * :width + 1 FOR :width), p.br, p.at, p.sid "
    "FROM unnest(CAST(:keys AS varchar[]), CAST(:sets AS bytea[]), CAST(:brands AS varchar[]), "
    "CAST(:times AS timestamptz[]), CAST(:ids AS integer[])) AS p(k, bs, br, at, sid), "
    "generate_series(0, length(p.bs) / :width - 1) AS i")
# SQLite: a batch's member and band rows through the driver's executemany on plain tuples
# (`_sqlite_insert`), the statement text as SQLAlchemy renders it (all columns, in table order).
_SQLITE_INSERT = {table.name: str(insert(table).compile(dialect=sqlite.dialect()))
                  for table in (storm_members, storm_bands)}
_STORM_COLUMNS = (storms.c.id, storms.c.size, storms.c.job_status, storms.c.last_update_at, storms.c.last_post_at,
                  storms.c.job_due_at)
_STORM_FOR_UPDATE = select(*_STORM_COLUMNS).where(storms.c.id == bindparam("b_storm")).with_for_update()
_STORMS_FOR_UPDATE = (select(*_STORM_COLUMNS).where(storms.c.id.in_(bindparam("b_ids", expanding=True)))
                      .order_by(storms.c.id).with_for_update())
_SET_STORM = update(storms).where(storms.c.id == bindparam("b_storm")).values(
    size=bindparam("b_size"), last_post_at=bindparam("b_last", type_=storms.c.last_post_at.type),
    job_status=bindparam("b_status"), job_due_at=bindparam("b_due", type_=storms.c.job_due_at.type))
# PostgreSQL: a batch's dirty storms in one UPDATE, their new values as arrays (`flush`).
_SET_STORMS_PG = text(
    "UPDATE storms SET size = u.size, last_post_at = u.last, job_status = u.status, job_due_at = u.due "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:sizes AS integer[]), CAST(:lasts AS timestamptz[]), "
    "CAST(:statuses AS varchar[]), CAST(:dues AS timestamptz[])) AS u(id, size, last, status, due) "
    "WHERE storms.id = u.id")
_INDEXED_POSTS = (select(storm_bands.c.post_key, func.min(storm_bands.c.created_at).label("created_at"))
                  .where(storm_bands.c.storm_id == bindparam("b_storm"))
                  .where(storm_bands.c.created_at >= bindparam("b_since")).group_by(storm_bands.c.post_key))
# Grouped in ix_storm_bands_storm's order, so the database reads that index alone and needs no
# sort (a third of the query on SQLite; issue 17); a post's band rows share one time, and should
# they not, `prefetch` keeps the earliest, as min() per post would.
_INDEXED_POSTS_OF = (select(storm_bands.c.storm_id, storm_bands.c.post_key, storm_bands.c.created_at)
                     .where(storm_bands.c.storm_id.in_(bindparam("b_ids", expanding=True)))
                     .where(storm_bands.c.created_at >= bindparam("b_since"))
                     .group_by(storm_bands.c.storm_id, storm_bands.c.created_at, storm_bands.c.post_key))
_NEGATIVE_TIMES = (select(storm_members.c.created_at)
                   .where(storm_members.c.brand == bindparam("b_brand")).where(storm_members.c.negative.is_(True))
                   .where(storm_members.c.created_at > bindparam("b_since"))
                   .where(storm_members.c.created_at <= bindparam("b_until")))
_STORM_ROW = select(storms.c.size, storms.c.job_status, storms.c.last_update_at).where(storms.c.id == bindparam("b_storm"))
_GROW = {name: update(storms).where(storms.c.id == bindparam("b_storm")).values(
    size=storms.c.size + 1,
    last_post_at=getattr(func, name)(storms.c.last_post_at, bindparam("b_at", type_=storms.c.last_post_at.type)))
    for name in ("max", "greatest")}  # SQLite's two-argument max(); PostgreSQL's greatest()
_GROW_RETURNING = {name: stmt.returning(storms.c.size, storms.c.job_status, storms.c.last_update_at)
                   for name, stmt in _GROW.items()}
_HITS = (select(storm_bands.c.post_key).where(storm_bands.c.brand == bindparam("b_brand"))
         .where(storm_bands.c.band.in_(bindparam("b_bands", expanding=True)))
         .where(storm_bands.c.created_at >= bindparam("b_since")).where(storm_bands.c.created_at <= bindparam("b_until"))
         .distinct().subquery())
_CANDIDATES = (select(storm_members.c.post_key, storm_members.c.storm_id, storm_members.c.created_at, posts.c.text)
               .join(_HITS, _HITS.c.post_key == storm_members.c.post_key)
               .join(posts, posts.c.key == storm_members.c.post_key)
               .order_by(storm_members.c.created_at, storm_members.c.post_key))
# Two narrow queries rather than one join: the (post, band) pairs, then each post's member row
# and text once (joining posts per pair made the batch query cost more than the per-post ones).
# The pairs carry no time: a post's band rows are written with its member row's created_at
# (`storm_add_member`, the only writer), so the member row's time stands for them; converting
# ~10,000 band times per batch to aware datetimes was a fifth of the look-up (issue 17).
_BAND_PAIRS = (select(storm_bands.c.post_key, storm_bands.c.band)
               .where(storm_bands.c.brand == bindparam("b_brand"))
               .where(storm_bands.c.band.in_(bindparam("b_bands", expanding=True)))
               .where(storm_bands.c.created_at >= bindparam("b_since"))
               .where(storm_bands.c.created_at <= bindparam("b_until")))
# SQLite: the same rows, one per band with its posts as a JSON array (in the index's order, no
# sort): ~2,000 rows per brand and batch instead of ~25,000 pairs, each post key repeated for
# each of its 32 bands (issue 17: reading the pairs was most of the batch look-up's time).
_SQLITE_BAND_POSTS = ("SELECT band, json_group_array(post_key) FROM storm_bands WHERE brand = ? AND band IN ({}) "
                      "AND created_at >= ? AND created_at <= ? GROUP BY band")
# PostgreSQL: the batch's ~6,000 band keys as one array parameter, not an IN list of as many
# parameters (rendering and planning that list was most of the look-up; issue 17).
_BAND_PAIRS_PG = text(
    "SELECT post_key, band FROM storm_bands WHERE brand = :b_brand AND band = ANY(CAST(:b_bands AS bytea[])) "
    "AND created_at >= :b_since AND created_at <= :b_until")
_MEMBERS_WITH_TEXT = (select(storm_members.c.post_key, storm_members.c.storm_id, storm_members.c.created_at, posts.c.text)
                      .join(posts, posts.c.key == storm_members.c.post_key)
                      .where(storm_members.c.post_key.in_(bindparam("b_keys", expanding=True))))
_MEMBERS_WITH_TEXT_PG = text(
    "SELECT storm_members.post_key, storm_members.storm_id, storm_members.created_at, posts.text "
    "FROM storm_members JOIN posts ON posts.key = storm_members.post_key "
    "WHERE storm_members.post_key = ANY(CAST(:b_keys AS varchar[]))"
).columns(storm_members.c.post_key, storm_members.c.storm_id, storm_members.c.created_at, posts.c.text)
_COUNT_NEGATIVE = (select(func.count()).select_from(storm_members)
                   .where(storm_members.c.brand == bindparam("b_brand")).where(storm_members.c.negative.is_(True))
                   .where(storm_members.c.created_at > bindparam("b_since"))
                   .where(storm_members.c.created_at <= bindparam("b_until")))
# `_COUNT_NEGATIVE` for many (brand, since, until] ranges at once, in the ranges' order.
_COUNT_NEGATIVES_PG = text(
    "SELECT (SELECT count(*) FROM storm_members m WHERE m.brand = q.brand AND m.negative IS true "
    "AND m.created_at > q.since AND m.created_at <= q.until) "
    "FROM unnest(CAST(:brands AS varchar[]), CAST(:sinces AS timestamptz[]), CAST(:untils AS timestamptz[])) "
    "WITH ORDINALITY AS q(brand, since, until, i) ORDER BY q.i")
# A storm founded on a stored first post (`_add_kept`), in one statement: the storm row (started
# at the first post's time), the first post's member and band rows moved into it, and its band
# rows' earliest time since :since (its indexed posts, as `_INDEXED_POSTS` would read them).
_FOUND_ON_STORED_PG = text(
    "WITH f AS (SELECT CAST(:first AS varchar) AS k, CAST(:at AS timestamptz) AS at), "
    "s AS (INSERT INTO storms (brand, first_post_key, started_at, last_post_at, size, reported_size, job_attempts) "
    "SELECT :brand, f.k, coalesce((SELECT created_at FROM storm_members WHERE post_key = f.k), f.at), f.at, 1, 0, 0 "
    "FROM f RETURNING id), "
    "m AS (UPDATE storm_members SET storm_id = (SELECT id FROM s) WHERE post_key = (SELECT k FROM f)), "
    "b AS (UPDATE storm_bands SET storm_id = (SELECT id FROM s) WHERE post_key = (SELECT k FROM f) "
    "RETURNING created_at) "
    "SELECT s.id, (SELECT min(created_at) FROM b WHERE created_at >= :since) AS created_at FROM s"
).columns(storms.c.id, storm_bands.c.created_at)
# A batch's storm founded on a post kept by the batch, or (not on PostgreSQL) stored earlier
# (`_add_kept`), built once: building these four statements per founding cost more than running
# them, under the brand lock (issue 17).
_MEMBER_TIME = select(storm_members.c.created_at).where(storm_members.c.post_key == bindparam("b_key"))
_INSERT_STORM = insert(storms)
_MOVE_MEMBER = (update(storm_members).where(storm_members.c.post_key == bindparam("b_key"))
                .values(storm_id=bindparam("b_storm")))
_MOVE_BANDS = (update(storm_bands).where(storm_bands.c.post_key == bindparam("b_key"))
               .values(storm_id=bindparam("b_storm")))
_MOVE_BANDS_RETURNING = _MOVE_BANDS.returning(storm_bands.c.created_at)
_ACTIVE_ALERT = (select(storm_alerts).where(storm_alerts.c.brand == bindparam("b_brand"))
                 .where(storm_alerts.c.ended_at.is_(None)))
_ALERT_PEAK = (update(storm_alerts).where(storm_alerts.c.id == bindparam("b_id"))
               .where(storm_alerts.c.peak < bindparam("b_count")).values(peak=bindparam("b_peak")))


@dataclass(frozen=True, slots=True)
class Storm:
    """A storm cluster with its problem ticket and that ticket's delivery job."""

    id: int
    brand: str
    first_post_key: str
    started_at: datetime
    last_post_at: datetime
    size: int
    topic: str | None
    problem_helpdesk: str | None
    problem_ticket_id: str | None
    problem_url: str | None
    reported_size: int  # the count the ticket shows
    job_status: str | None  # null until the storm reaches the ticket threshold; pending | sending | done | failed
    job_due_at: datetime | None
    job_attempts: int
    job_claimed_by: str | None
    job_lease_until: datetime | None
    last_update_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class StormStatement:
    """The team's public statement on a storm, from the dashboard's storm page."""

    id: int
    storm_id: int
    text: str
    url: str | None
    author: str
    created_at: datetime


@dataclass(slots=True)
class _StormRow:
    """A storm row touched by a batch: read (and row-locked) once, kept here, written once."""

    size: int
    job_status: str | None
    last_update_at: datetime | None
    last_post_at: datetime
    job_due_at: datetime | None = None
    job_changed: bool = False
    dirty: bool = False


class StormWrites:
    """One ingest batch's storm writes, kept in memory until `flush` (issue 17).

    Grouping a batch of 200 posts wrote each post's member row, its 32 band rows and its
    storm's new size one post at a time (~4.5 round trips per post, plus the spike check's
    count per negative post), all under the brand lock: that serial share capped two
    ingesting instances at ~1.4× one. Here a batch's member and band rows are written in one
    statement each at the end, a storm row once, and the reads grouping makes meanwhile are
    answered exactly from what was read once plus what the batch added:

    - `storm_of`: a member row of this batch from memory, any other from the database (the
      batch only inserts rows, and a storm's founding flushes first and updates in SQL);
    - a storm's size and job state: read once with a row lock (FOR UPDATE, as the per-post
      UPDATE took it), counted on here;
    - a storm's indexed representatives since a time: its indexed posts since `since` read
      once, plus the batch's;
    - negative posts of a brand in a time range: the brand's negative members' times in
      (`since`, `until`] read once, plus the batch's; the active alert of a brand, read once.

    Exact because the brand lock (held until commit) keeps other instances from writing any of
    these for the batch's brands; the delivery worker's storm job updates wait on the row lock.
    Any repository call not written for batches flushes first (`StormRepository._tx`), so it
    sees the database as the per-post writes would have left it.
    """

    def __init__(self, conn: Connection, since: datetime, until: datetime) -> None:
        self.conn = conn
        self.since, self.until = since, until  # the times the caches below cover
        self.members: dict[str, dict[str, Any]] = {}  # rows not written yet, by post key
        self.bands: dict[str, tuple[tuple[bytes, ...], str, datetime, int | None]] = {}  # post → its rows
        self.storms: dict[int, _StormRow] = {}
        self.indexed: dict[int, dict[str, datetime]] = {}  # storm → indexed post → its time (≥ since)
        self.negatives: dict[str, list[datetime]] = {}  # brand → sorted times in (since, until]
        self.alerts: dict[str, dict[str, Any] | None] = {}  # brand → its active alert
        #: PostgreSQL: negative posts of a brand in a range wholly outside (since, until] as the
        #: database counted them when the batch began (`prefetch_negative_counts`), and the
        #: batch's negative members written since then (times, by brand), which such a count
        #: read later would include.
        self.outside: dict[tuple[str, datetime, datetime], int] = {}
        self.flushed_negatives: dict[str, list[datetime]] = {}

    def flush(self) -> None:
        """Write what is kept: members, then bands, then the storms' sizes and jobs (one
        statement each)."""
        conn = self.conn
        on_sqlite = conn.dialect.name == "sqlite"
        if self.members:
            if self.outside:
                for member in self.members.values():
                    if member["negative"]:
                        self.flushed_negatives.setdefault(member["brand"], []).append(member["created_at"])
            if on_sqlite:
                convert = bind_processors(conn, storm_members)
                _sqlite_insert(conn, storm_members, [tuple(f(row[c.name]) for c, f in zip(storm_members.c, convert))
                                                     for row in self.members.values()])
            elif conn.dialect.name == "postgresql":
                unnest_insert(conn, storm_members, list(self.members.values()))
            else:
                conn.execute(_INSERT_MEMBER, list(self.members.values()))
            self.members.clear()
        if self.bands:
            if on_sqlite:
                # ~32 rows per post, ~4,700 per batch: through SQLAlchemy's executemany each row's
                # time went through the column type (UTCDateTime, then SQLite's DATETIME string)
                # again; here a post's values are converted once and its band rows share them.
                # The band keys go as they are: bytes are stored as a BLOB by sqlite3 itself
                # (SQLAlchemy's LargeBinary only wraps them in sqlite3.Binary, a memoryview).
                key_of, _, brand_of, at_of, id_of = bind_processors(conn, storm_bands)
                rows: list[tuple[Any, ...]] = []
                for key, (bands, brand, at, storm_id) in self.bands.items():
                    n = len(bands)
                    rows += zip(repeat(key_of(key), n), bands, repeat(brand_of(brand), n), repeat(at_of(at), n),
                                repeat(id_of(storm_id), n))
                _sqlite_insert(conn, storm_bands, rows)
            elif conn.dialect.name == "postgresql" and len(
                    widths := {len(band) for bands, _, _, _ in self.bands.values() for band in bands}) == 1:
                # One row per post, its band keys (all one width) joined and cut apart by the
                # server: sending each band row's post, brand and time 32 times over cost
                # four times as much, mostly in adapting the values (issue 17).
                keys, sets, brands, times, ids = (list(col) for col in zip(*(
                    (key, b"".join(bands), brand, at, storm_id)
                    for key, (bands, brand, at, storm_id) in self.bands.items())))
                conn.execute(_INSERT_BAND_SETS_PG, {"keys": keys, "sets": sets, "brands": brands, "times": times,
                                                    "ids": ids, "width": widths.pop()})
            else:
                conn.execute(_INSERT_BANDS, [dict(post_key=key, band=band, brand=brand, created_at=at, storm_id=i)
                                             for key, (bands, brand, at, i) in self.bands.items() for band in bands])
            self.bands.clear()
        dirty = [(storm_id, storm) for storm_id, storm in self.storms.items() if storm.dirty]
        if dirty and conn.dialect.name == "postgresql":
            # One statement, not psycopg's one pipelined UPDATE per storm (issue 17). The rows
            # are row-locked already (read FOR UPDATE, or inserted by this transaction).
            ids, sizes, lasts, statuses, dues = (list(col) for col in zip(*(
                (storm_id, storm.size, storm.last_post_at, storm.job_status, storm.job_due_at)
                for storm_id, storm in dirty)))
            conn.execute(_SET_STORMS_PG, {"ids": ids, "sizes": sizes, "lasts": lasts, "statuses": statuses,
                                          "dues": dues})
        elif dirty:
            conn.execute(_SET_STORM, [{"b_storm": storm_id, "b_size": storm.size, "b_last": storm.last_post_at,
                                       "b_status": storm.job_status, "b_due": storm.job_due_at}
                                      for storm_id, storm in dirty])
        for _, storm in dirty:
            storm.dirty = False

    def prefetch(self, storm_ids: Sequence[int]) -> None:
        """Read the storms a batch's posts may join (their candidates' storms) and their indexed
        posts in two queries, instead of two per storm as each is first joined."""
        ids = sorted({i for i in storm_ids if i not in self.storms})
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start:start + 500]
            for found in self.conn.execute(_STORMS_FOR_UPDATE, {"b_ids": chunk}):
                self.storms[found.id] = _StormRow(found.size, found.job_status, found.last_update_at,
                                                  found.last_post_at, found.job_due_at)
            indexed: dict[int, dict[str, datetime]] = {i: {} for i in chunk if i not in self.indexed}
            for storm_id, post_key, at in self.conn.execute(
                    _INDEXED_POSTS_OF, {"b_ids": list(indexed), "b_since": self.since}).all():
                posts_ = indexed[storm_id]
                if post_key not in posts_ or at < posts_[post_key]:
                    posts_[post_key] = at
            for storm_id, posts_ in indexed.items():
                self._kept_indexed(storm_id, posts_)
                self.indexed[storm_id] = posts_

    def outside_count(self, brand: str, since: datetime, until: datetime) -> int | None:
        """Negative posts of `brand` in (since, until] (a range wholly outside the kept times)
        as the database would count them now, when read at the batch's start and no member the
        batch wrote since falls in the range (else None: ask the database). Exact because the
        brand lock keeps other instances from writing the brand's members meanwhile."""
        known = self.outside.get((brand, since, until))
        if known is None or any(since < at <= until for at in self.flushed_negatives.get(brand, ())):
            return None
        return known

    def _storm(self, storm_id: int) -> _StormRow:
        row = self.storms.get(storm_id)
        if row is None:
            found = self.conn.execute(_STORM_FOR_UPDATE, {"b_storm": storm_id}).first()
            assert found is not None  # a member's storm exists (foreign key)
            row = self.storms[storm_id] = _StormRow(found.size, found.job_status, found.last_update_at,
                                                    found.last_post_at, found.job_due_at)
        return row

    def _kept_indexed(self, storm_id: int, posts_: dict[str, datetime]) -> None:
        posts_.update((key, at) for key, (_, _, at, sid) in self.bands.items()
                      if sid == storm_id and at >= self.since)

    def _indexed(self, storm_id: int) -> dict[str, datetime]:
        posts_ = self.indexed.get(storm_id)
        if posts_ is None:
            posts_ = self.indexed[storm_id] = {r.post_key: r.created_at for r in self.conn.execute(
                _INDEXED_POSTS, {"b_storm": storm_id, "b_since": self.since})}
            self._kept_indexed(storm_id, posts_)
        return posts_

    def _negatives(self, brand: str) -> list[datetime]:
        times = self.negatives.get(brand)
        if times is None:
            times = self.negatives[brand] = sorted([*self.conn.execute(
                _NEGATIVE_TIMES, {"b_brand": brand, "b_since": self.since, "b_until": self.until}).scalars(),
                *(m["created_at"] for m in self.members.values()
                  if m["brand"] == brand and m["negative"] and self.since < m["created_at"] <= self.until)])
        return times


def _sqlite_insert(conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """INSERT rows (every column, in table order, values converted by `bind_processors`) with
    the driver's executemany: no per-row work in SQLAlchemy."""
    conn.exec_driver_sql(_SQLITE_INSERT[table.name], rows)


def _sqlite_band_posts(conn: Connection, brand: str, bands: Sequence[bytes], since: datetime,
                       until: datetime) -> dict[bytes, list[str]]:
    """`_BAND_PAIRS` on SQLite through the driver, grouped: band → the posts with a row for it
    (`_SQLITE_BAND_POSTS`). Its ~2,000 band keys are bound without SQLAlchemy's per-parameter
    processing, converted by the columns' own bind processors; the band keys come as the driver
    returns a BLOB (bytes, as SQLAlchemy's LargeBinary on SQLite would return it), the post keys
    as JSON strings, which decode to exactly the stored TEXT (pinned by tests/test_storm_batch.py)."""
    _, _, brand_of, at_of, _ = bind_processors(conn, storm_bands)  # band keys: bytes as they are (`flush`)
    sql = _SQLITE_BAND_POSTS.format(", ".join("?" * len(bands)))
    # The DBAPI cursor of this connection (same transaction): its rows are plain tuples, without
    # SQLAlchemy's Row made for each (issue 17). Nothing here needs SQLAlchemy's result handling:
    # no column type converts a value on the way out (see above).
    cursor = conn.connection.cursor()
    try:
        rows = cursor.execute(sql, (brand_of(brand), *bands, at_of(since), at_of(until))).fetchall()
    finally:
        cursor.close()
    loads = json.loads
    return {band: loads(keys) for band, keys in rows}


def _has_json(conn: Connection) -> bool:
    """Whether SQLite has json_group_array (`_SQLITE_BAND_POSTS`): built in from 3.38
    (https://sqlite.org/json1.html); an older library may lack it, and then the pairs are read
    as on other databases."""
    return bool(conn.dialect.dbapi is not None and conn.dialect.dbapi.sqlite_version_info >= (3, 38, 0))


def _by_band(pairs: Sequence[tuple[str, bytes]]) -> dict[bytes, list[str]]:
    """(post, band) pairs as band → its posts, in the pairs' order."""
    by_band: dict[bytes, list[str]] = {}
    for post_key, band in pairs:
        keys = by_band.get(band)
        if keys is None:
            by_band[band] = [post_key]
        else:
            keys.append(post_key)
    return by_band


Tx = Union[Connection, StormWrites]  # a transaction, or a batch's kept writes in one


def _plain(tx: Tx) -> Connection:
    """The connection, for statements on tables a batch does not keep writes for (no flush)."""
    return tx.conn if isinstance(tx, StormWrites) else tx


class StormRepository:
    """Public storms (connector/storms.py): clusters, their problem-ticket jobs and spike alerts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _tx(self, conn: Tx | None) -> Iterator[Connection]:
        """The caller's transaction when given (join it), else a new one. A batch's kept
        writes are flushed first: what reads or writes here sees them in the database."""
        if isinstance(conn, StormWrites):
            conn.flush()
            conn = conn.conn
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as own:
            yield own

    def storm_writes(self, conn: Connection, since: datetime, until: datetime) -> StormWrites:
        """A batch's storm writes, kept until `flush` and exact for reads of times in
        [since, until] (see `StormWrites`); pass it as `conn` to this repository's methods."""
        return StormWrites(conn, since, until)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction for grouping outside an ingest (benchmarks, bare tests)."""
        with self.engine.begin() as conn:
            yield conn

    def lock_brand(self, tx: Tx, brand: str) -> None:
        """Serialise the grouping of one brand across instances, until `tx` commits."""
        advisory_xact_lock(_plain(tx), f"storms:{brand}")

    def lock_echo_parents(self, tx: Tx, post_keys: Sequence[str]) -> None:
        """Serialise, per post, "is it a storm member?" against "who waits to echo it?" across
        instances (else an echo and its parent ingested at once could each miss the other).
        Taken before the brand locks, always in that order."""
        advisory_xact_locks(_plain(tx), [f"storms:echo:{key}" for key in post_keys])

    def storm_echo_wait(self, tx: Tx, *, post_key: str, parents: Sequence[tuple[str, str]],
                        created_at: datetime, negative: bool, risk_score: float | None, voice: str | None) -> None:
        """Keep an echo whose parents (how, key) are not storm members yet, to count it in later."""
        _plain(tx).execute(insert(storm_echo_waits), [dict(
            post_key=post_key, parent_key=parent_key, how=how, created_at=created_at, negative=negative,
            risk_score=risk_score, voice=voice) for how, parent_key in dict.fromkeys(parents)])

    def storm_waiting_echoes(self, tx: Tx, parent_key: str, since: datetime,
                             until: datetime) -> list[dict[str, Any]]:
        """Echoes waiting for `parent_key` written in [since, until], oldest first."""
        rows = _plain(tx).execute(select(storm_echo_waits).where(storm_echo_waits.c.parent_key == parent_key)
                            .where(storm_echo_waits.c.created_at >= since)
                            .where(storm_echo_waits.c.created_at <= until)
                            .order_by(storm_echo_waits.c.created_at, storm_echo_waits.c.post_key)).mappings().all()
        return [dict(r) for r in rows]

    def storm_waited_for(self, tx: Tx, parent_keys: Sequence[str]) -> set[str]:
        """Which of these posts have echoes waiting for them (one query for a batch)."""
        if not parent_keys:
            return set()
        return set(_plain(tx).execute(select(storm_echo_waits.c.parent_key).distinct()
                                .where(storm_echo_waits.c.parent_key.in_(list(parent_keys)))).scalars().all())

    def post_reasons(self, tx: Tx, post_key: str) -> list[str]:
        return list(_plain(tx).execute(select(posts.c.reasons).where(posts.c.key == post_key)).scalar() or [])

    def storm_echo_counted(self, tx: Tx, post_key: str, brand: str, reasons: Sequence[str]) -> None:
        """An echo joined its storm: its stored decision says so, and it waits no more."""
        conn = _plain(tx)
        conn.execute(update(posts).where(posts.c.key == post_key).values(brand=brand, reasons=list(reasons)))
        conn.execute(storm_echo_waits.delete().where(storm_echo_waits.c.post_key == post_key))

    def storm_prune_echo_waits(self, before: datetime) -> int:
        """Forget echoes still waiting for a parent that would have to be older than `before`:
        no parent can count them in any more. Returns how many rows went."""
        with self.engine.begin() as conn:
            return conn.execute(storm_echo_waits.delete().where(storm_echo_waits.c.created_at < before)).rowcount

    def storm_candidates(self, tx: Tx, brand: str, bands: Sequence[bytes], since: datetime,
                         until: datetime) -> list[dict[str, Any]]:
        """Indexed posts of a brand sharing a MinHash band with these, created in [since, until],
        with their storm and text (the exact score is computed by the caller)."""
        if not bands:
            return []
        with self._tx(tx) as conn:
            rows = conn.execute(_CANDIDATES, {"b_brand": brand, "b_bands": list(bands), "b_since": since,
                                              "b_until": until}).mappings().all()
        return [dict(r) for r in rows]

    def storm_band_hits(self, tx: Tx, brand: str, bands: Sequence[bytes], since: datetime,
                        until: datetime) -> tuple[dict[bytes, list[str]], dict[str, dict[str, Any]]]:
        """`storm_candidates` for many posts at once: for each of `bands`, the indexed posts of a
        brand with a row for it created in [since, until] (bands without any are absent; a post
        at most once per band), and those posts' member rows (storm, time, text) by key. Only
        posts with a member row are listed, as the per-post query's inner join. A batch asks
        once per brand and picks each post's candidates in memory; a post's band rows have its
        member row's time (`_BAND_PAIRS`)."""
        if not bands:
            return {}, {}
        with self._tx(tx) as conn:
            # fetchall, not row by row: ~25,000 (post, band) rows per brand and batch (issue 17).
            if conn.dialect.name == "sqlite" and _has_json(conn):
                by_band = _sqlite_band_posts(conn, brand, bands, since, until)
            else:
                query = _BAND_PAIRS_PG if conn.dialect.name == "postgresql" else _BAND_PAIRS
                by_band = _by_band(cast(Sequence[tuple[str, bytes]], conn.execute(
                    query, {"b_brand": brand, "b_bands": list(bands), "b_since": since, "b_until": until}).all()))
            keys = list(dict.fromkeys(chain.from_iterable(by_band.values())))
            members: dict[str, dict[str, Any]] = {}
            if conn.dialect.name == "postgresql" and keys:
                # The keys as one array parameter (issue 17): an IN list of up to 500 parameters
                # is a new statement text for psycopg and the server to parse each time.
                for row in conn.execute(_MEMBERS_WITH_TEXT_PG, {"b_keys": keys}).mappings().all():
                    members[row["post_key"]] = dict(row)
            else:
                for start in range(0, len(keys), 500):  # bounded IN lists
                    for row in conn.execute(_MEMBERS_WITH_TEXT, {"b_keys": keys[start:start + 500]}).mappings().all():
                        members[row["post_key"]] = dict(row)
        if len(members) < len(keys):  # band rows of a post without a member row: not a candidate
            by_band = {band: [k for k in posts_ if k in members] for band, posts_ in by_band.items()}
        return by_band, members

    def storm_recent_members(self, brand: str, since: datetime) -> list[dict[str, Any]]:
        """Qualified posts of a brand since a time, with their storm, to warm the index."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(storm_members.c.post_key, storm_members.c.storm_id,
                                       storm_members.c.created_at, posts.c.text)
                                .join(posts, posts.c.key == storm_members.c.post_key)
                                .where(storm_members.c.brand == brand)
                                .where(storm_members.c.created_at >= since)
                                .order_by(storm_members.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def storm_of(self, post_key: str, conn: Tx | None = None) -> dict[str, Any] | None:
        if isinstance(conn, StormWrites):
            kept = conn.members.get(post_key)
            if kept is not None:
                return dict(kept)
            # Not written by this batch: the batch only inserts member rows (a founding, which
            # updates one, flushes first), so the stored row is as the per-post writes left it.
            conn = conn.conn
        with self._tx(conn) as conn:
            row = conn.execute(_STORM_OF, {"b_key": post_key}).mappings().first()
        return dict(row) if row else None

    def storm_add_member(self, *, post_key: str, brand: str, created_at: datetime, negative: bool,
                         resembles: str | None, similarity: float | None, reason: str | None, role: str,
                         risk_score: float, join_storm: int | None, found_single: bool,
                         min_posts: int, due_at: datetime, throttle: timedelta = timedelta(0),
                         bands: Sequence[bytes] = (), represent_since: datetime | None = None,
                         representatives: int = 12, conn: Tx | None = None,
                         indexed_into: set[str] | None = None) -> int | None:
        """Record one post's assignment, in one transaction; returns its storm id (or None).

        `join_storm`: the storm of the post it resembles; when that post was alone
        (`found_single`), a new storm is opened with it as the first post. When the storm
        reaches `min_posts`, its problem-ticket job becomes due; later growth makes it due again.
        `bands` (MinHash band keys) are indexed for later posts to find this one, unless its
        storm has `representatives` indexed posts since `represent_since` already.
        Joins the caller's transaction `conn` (the post's ingest) when given. `indexed_into`, when
        given, gets `post_key` added if its bands were indexed (a batch's in-memory band index
        mirrors the table with it). `conn` may be a batch's `StormWrites`: the rows are kept
        there and written at its flush.
        """
        if isinstance(conn, StormWrites):
            return self._add_kept(
                conn, post_key=post_key, brand=brand, created_at=created_at, negative=negative, resembles=resembles,
                similarity=similarity, reason=reason, role=role, risk_score=risk_score, join_storm=join_storm,
                found_single=found_single, min_posts=min_posts, due_at=due_at, throttle=throttle, bands=bands,
                represent_since=represent_since, representatives=representatives, indexed_into=indexed_into)
        with self._tx(conn) as conn:
            storm_id = join_storm
            if storm_id is None and found_single and resembles is not None:
                first = conn.execute(select(storm_members.c.created_at).where(storm_members.c.post_key == resembles)).scalar()
                storm_id = new_id(conn.execute(insert(storms).values(
                    brand=brand, first_post_key=resembles, started_at=first or created_at,
                    last_post_at=created_at, size=1, reported_size=0, job_attempts=0)))
                conn.execute(update(storm_members).where(storm_members.c.post_key == resembles)
                             .values(storm_id=storm_id))
                conn.execute(update(storm_bands).where(storm_bands.c.post_key == resembles)
                             .values(storm_id=storm_id))
            represent = bool(bands)
            if represent and storm_id is not None:
                indexed = conn.execute(_INDEXED, {"b_storm": storm_id,
                                                  "b_since": represent_since or created_at}).scalar()
                represent = (indexed or 0) < representatives
            conn.execute(_INSERT_MEMBER, dict(
                post_key=post_key, storm_id=storm_id, brand=brand, created_at=created_at, negative=negative,
                resembles=resembles, similarity=similarity, reason=reason, role=role, risk_score=risk_score,
                linked=False))
            if represent:
                if indexed_into is not None:
                    indexed_into.add(post_key)
                if conn.dialect.name == "postgresql":
                    conn.execute(_INSERT_BANDS_PG, dict(post_key=post_key, brand=brand, created_at=created_at,
                                                        storm_id=storm_id, bands=list(dict.fromkeys(bands))))
                else:
                    conn.execute(_INSERT_BANDS, [dict(post_key=post_key, band=band, brand=brand,
                                                            created_at=created_at, storm_id=storm_id)
                                                       for band in dict.fromkeys(bands)])
            if storm_id is not None:
                larger = "max" if conn.dialect.name == "sqlite" else "greatest"
                if conn.dialect.update_returning:  # PostgreSQL, SQLite ≥ 3.35: one round trip
                    row = conn.execute(_GROW_RETURNING[larger], {"b_storm": storm_id, "b_at": created_at}).first()
                else:
                    conn.execute(_GROW[larger], {"b_storm": storm_id, "b_at": created_at})
                    row = conn.execute(_STORM_ROW, {"b_storm": storm_id}).first()
                assert row is not None  # updated just above, in this transaction
                if row.size >= min_posts and row.job_status in (None, "done"):
                    due = due_at if row.last_update_at is None else max(due_at, row.last_update_at + throttle)
                    conn.execute(update(storms).where(storms.c.id == storm_id).values(
                        job_status="pending", job_due_at=due))
        return storm_id

    def _add_kept(self, w: StormWrites, *, post_key: str, brand: str, created_at: datetime, negative: bool,
                  resembles: str | None, similarity: float | None, reason: str | None, role: str,
                  risk_score: float, join_storm: int | None, found_single: bool, min_posts: int,
                  due_at: datetime, throttle: timedelta, bands: Sequence[bytes], represent_since: datetime | None,
                  representatives: int, indexed_into: set[str] | None) -> int | None:
        """`storm_add_member` into a batch's kept writes: the same decisions, on the same state."""
        conn = w.conn
        storm_id = join_storm
        if storm_id is None and found_single and resembles is not None:
            # A founding moves the first post into the new storm: its rows where they are (kept
            # by this batch, or written before it; a post's member and band rows are together).
            kept = w.members.get(resembles)
            # The new storm's indexed posts are known without asking (issue 17: that query per
            # founding was a tenth of the brand-locked time): only its first post's band rows
            # can carry its id, kept here or just updated in the database.
            stored: dict[str, datetime] | None = {}
            if kept is None and conn.dialect.name == "postgresql":
                # The four statements below in one round trip (issue 17): a stored first post.
                found = conn.execute(_FOUND_ON_STORED_PG, {"brand": brand, "first": resembles, "at": created_at,
                                                           "since": w.since}).one()
                storm_id = found.id
                stored = {resembles: found.created_at} if found.created_at is not None else {}
            else:
                first = (kept["created_at"] if kept is not None else conn.execute(
                    _MEMBER_TIME, {"b_key": resembles}).scalar())
                storm_id = new_id(conn.execute(_INSERT_STORM, dict(
                    brand=brand, first_post_key=resembles, started_at=first or created_at,
                    last_post_at=created_at, size=1, reported_size=0, job_attempts=0)))
            if kept is not None:
                kept["storm_id"] = storm_id
                if resembles in w.bands:
                    w.bands[resembles] = (*w.bands[resembles][:3], storm_id)
            elif conn.dialect.name != "postgresql":
                moving = {"b_key": resembles, "b_storm": storm_id}
                conn.execute(_MOVE_MEMBER, moving)
                if conn.dialect.update_returning:
                    since_kept = [t for t in conn.execute(_MOVE_BANDS_RETURNING, moving).scalars() if t >= w.since]
                    stored = {resembles: min(since_kept)} if since_kept else {}  # as `_INDEXED_POSTS` reads it
                else:  # SQLite < 3.35: read when first needed (`_indexed`)
                    conn.execute(_MOVE_BANDS, moving)
                    stored = None
            if stored is not None:
                w._kept_indexed(storm_id, stored)
                w.indexed[storm_id] = stored
            w.storms[storm_id] = _StormRow(size=1, job_status=None, last_update_at=None, last_post_at=created_at)
        represent = bool(bands)
        if represent and storm_id is not None:
            since = represent_since or created_at
            if since >= w.since:
                indexed = sum(at >= since for at in w._indexed(storm_id).values())
            else:  # before the kept times (not ingest's case): ask the database
                w.flush()
                indexed = conn.execute(_INDEXED, {"b_storm": storm_id, "b_since": since}).scalar() or 0
            represent = indexed < representatives
        if post_key in w.members:
            w.flush()  # a second row for one post fails at the next flush, as its INSERT would
        at = created_at.astimezone(timezone.utc)
        w.members[post_key] = dict(
            post_key=post_key, storm_id=storm_id, brand=brand, created_at=at, negative=negative,
            resembles=resembles, similarity=similarity, reason=reason, role=role, risk_score=risk_score,
            linked=False)
        if negative:
            times = w.negatives.get(brand)
            if times is not None and w.since < at <= w.until:
                bisect.insort(times, at)
        if represent:
            if indexed_into is not None:
                indexed_into.add(post_key)
            w.bands[post_key] = (tuple(dict.fromkeys(bands)), brand, at, storm_id)
            if storm_id is not None and at >= w.since:
                w._indexed(storm_id)[post_key] = at
        if storm_id is not None:
            row = w._storm(storm_id)
            row.size += 1
            row.last_post_at = max(row.last_post_at, at)
            row.dirty = True
            if row.size >= min_posts and row.job_status in (None, "done"):
                row.job_status = "pending"
                row.job_due_at = due_at if row.last_update_at is None else max(due_at, row.last_update_at + throttle)
                row.job_changed = True
        return storm_id

    def storm(self, storm_id: int) -> Storm | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storms).where(storms.c.id == storm_id)).mappings().first()
        return Storm(**row) if row else None

    def storm_members_of(self, storm_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Members, oldest first, with their text, author and ticket, for the problem ticket."""
        with self.engine.connect() as conn:
            stmt = (select(storm_members, posts.c.text, posts.c.url, authors.c.handle, authors.c.name,
                           authors.c.followers, analyses.c.intent, analyses.c.risk,
                           tickets.c.ticket_id, tickets.c.helpdesk, tickets.c.url.label("ticket_url"))
                    .join(posts, posts.c.key == storm_members.c.post_key)
                    .join(authors, authors.c.key == posts.c.author_key)
                    .outerjoin(analyses, analyses.c.post_key == storm_members.c.post_key)
                    .outerjoin(tickets, tickets.c.post_key == storm_members.c.post_key)
                    .where(storm_members.c.storm_id == storm_id)
                    .order_by(storm_members.c.created_at, storm_members.c.post_key))
            if limit is not None:
                stmt = stmt.limit(limit)
            return [dict(r) for r in conn.execute(stmt).mappings().all()]

    def storm_replies(self, storm_id: int, limit: int = 5) -> list[dict[str, Any]]:
        """The team's newest replies to any post of a storm: how others were answered."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(exchanges.c.agent, exchanges.c.text, exchanges.c.status, exchanges.c.created_at,
                       exchanges.c.ticket_post_key, exchanges.c.helpdesk, exchanges.c.ticket_id)
                .join(storm_members, storm_members.c.post_key == exchanges.c.ticket_post_key)
                .where(storm_members.c.storm_id == storm_id).where(exchanges.c.status != "failed")
                .order_by(exchanges.c.created_at.desc(), exchanges.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def add_statement(self, storm_id: int, text: str, url: str | None, author: str, at: datetime) -> int:
        """Record a public statement on a storm (newest wins in the sidebar)."""
        with self.engine.begin() as conn:
            return int(conn.execute(insert(storm_statements).values(
                storm_id=storm_id, text=text, url=url, author=author, created_at=at)
                .returning(storm_statements.c.id)).scalar_one())

    def latest_statement(self, storm_id: int) -> StormStatement | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storm_statements).where(storm_statements.c.storm_id == storm_id)
                               .order_by(storm_statements.c.created_at.desc(), storm_statements.c.id.desc())
                               .limit(1)).mappings().first()
        return StormStatement(**row) if row else None

    def storm_top_words(self, storm_id: int, limit: int = 5) -> list[str]:
        """The complaint topics (nouns, stored at ingest) most members share."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(post_topics.c.topic, func.count().label("n"))
                                .join(storm_members, storm_members.c.post_key == post_topics.c.post_key)
                                .where(storm_members.c.storm_id == storm_id)
                                .group_by(post_topics.c.topic).order_by(func.count().desc(), post_topics.c.topic)
                                .limit(limit)).all()
        return [r.topic for r in rows]

    def claim_storm_jobs(self, now: datetime, lease: timedelta, limit: int = 20) -> list[Storm]:
        """Claim due problem-ticket jobs (a guarded UPDATE per storm, like `claim_due`)."""
        due = (((storms.c.job_status == "pending") & (storms.c.job_due_at <= now)) |
               ((storms.c.job_status == "sending") & (storms.c.job_lease_until < now)))
        claimed = []
        with self.engine.connect() as conn:
            ids = conn.execute(select(storms.c.id).where(due).order_by(storms.c.job_due_at).limit(limit)).scalars().all()
        for storm_id in ids:
            with self.engine.begin() as conn:
                row = conn.execute(update(storms).where(storms.c.id == storm_id).where(due).values(
                    job_status="sending", job_attempts=storms.c.job_attempts + 1, job_claimed_by=worker_id(),
                    job_lease_until=now + lease).returning(storms.c.id)).first()
            if row is not None:
                claimed.append(self.storm(storm_id))
        return [c for c in claimed if c]

    def storm_problem_created(self, storm_id: int, ref: TicketRef) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                problem_helpdesk=ref.helpdesk, problem_ticket_id=ref.ticket_id, problem_url=ref.url))

    def storm_mark_linked(self, post_keys: Sequence[str]) -> None:
        if post_keys:
            with self.engine.begin() as conn:
                conn.execute(update(storm_members).where(storm_members.c.post_key.in_(list(post_keys)))
                             .values(linked=True))

    def storm_job_done(self, storm_id: int, reported_size: int, topic: str | None, now: datetime) -> None:
        """Finish a job; if the storm grew meanwhile it stays due, at the throttled time."""
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                job_status="done", job_claimed_by=None, job_lease_until=None, job_attempts=0,
                reported_size=reported_size, topic=topic, last_update_at=now, last_error=None))

    def storm_job_retry(self, storm_id: int, error: str, due_at: datetime, *, failed: bool = False) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).values(
                job_status="failed" if failed else "pending", job_due_at=due_at, job_claimed_by=None,
                job_lease_until=None, last_error=error[:2000]))

    def storms_needing_update(self, now: datetime) -> list[int]:
        """Storms whose ticket shows an older count than their size (job done, growth since)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(storms.c.id).where(storms.c.job_status == "done")
                                     .where(storms.c.size > storms.c.reported_size)).scalars().all())

    def storm_schedule(self, storm_id: int, due_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storms).where(storms.c.id == storm_id).where(storms.c.job_status == "done")
                         .values(job_status="pending", job_due_at=due_at))

    def list_storms(self, min_size: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(storms).where(storms.c.size >= min_size)
                                .order_by(storms.c.last_post_at.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def storm_timeline(self, storm_id: int) -> list[tuple[datetime, str]]:
        with self.engine.connect() as conn:
            return [(r.created_at, r.post_key) for r in conn.execute(
                select(storm_members.c.created_at, storm_members.c.post_key)
                .where(storm_members.c.storm_id == storm_id).order_by(storm_members.c.created_at)).all()]

    def count_negative(self, brand: str, since: datetime, until: datetime, conn: Tx | None = None) -> int:
        """Negative qualified posts of a brand with since < created_at <= until."""
        if isinstance(conn, StormWrites):
            if conn.since <= since and until <= conn.until:
                times = conn._negatives(brand)
                return bisect.bisect_right(times, until) - bisect.bisect_right(times, since)
            if until <= conn.since or since >= conn.until:
                # Wholly outside the batch's times (the baseline's past weeks): no kept row is in
                # it, so the database answers without a flush — or the batch's read of it.
                known = conn.outside_count(brand, since, until)
                if known is not None:
                    return known
                conn = conn.conn
        with self._tx(conn) as conn:
            return conn.execute(_COUNT_NEGATIVE, {"b_brand": brand, "b_since": since, "b_until": until}).scalar() or 0

    def prefetch_negative_counts(self, tx: Tx, ranges: Sequence[tuple[str, datetime, datetime]]) -> None:
        """PostgreSQL: count the negative posts of each (brand, since, until] range wholly
        outside a batch's kept times in ONE query, for `count_negative` to answer from
        (`StormWrites.outside_count`). The spike check's baseline asked `baseline_weeks`
        queries per brand and hour, ~100 per batch under the brand lock (issue 17). Elsewhere
        (SQLite, or outside a batch) nothing is read: `count_negative` asks as before."""
        if not isinstance(tx, StormWrites) or tx.conn.dialect.name != "postgresql":
            return
        wanted = list(dict.fromkeys(r for r in ranges if (r[2] <= tx.since or r[1] >= tx.until) and r not in tx.outside))
        if not wanted:
            return
        brands, sinces, untils = (list(col) for col in zip(*wanted))
        counts = tx.conn.execute(_COUNT_NEGATIVES_PG, {"brands": brands, "sinces": sinces, "untils": untils}).scalars().all()
        tx.outside.update(zip(wanted, counts))

    def active_alert(self, brand: str, conn: Tx | None = None) -> dict[str, Any] | None:
        if isinstance(conn, StormWrites):  # read once per batch: its brands' alerts change only here
            if brand not in conn.alerts:
                found = conn.conn.execute(_ACTIVE_ALERT, {"b_brand": brand}).mappings().first()
                conn.alerts[brand] = dict(found) if found else None
            kept = conn.alerts[brand]
            return dict(kept) if kept else None
        with self._tx(conn) as conn:
            row = conn.execute(_ACTIVE_ALERT, {"b_brand": brand}).mappings().first()
        return dict(row) if row else None

    def open_alert(self, *, brand: str, started_at: datetime, count: int, baseline: float, p_value: float,
                   quiet_after: timedelta | None = None, conn: Tx | None = None) -> int | None:
        """Open an alert unless one is active for the brand (one alert per spike), or one
        ended less than `quiet_after` before `started_at` (or after it: the posts judged now
        belong to a spike already alerted and ended; issue 16 #6)."""
        if isinstance(conn, StormWrites):
            conn.alerts.pop(brand, None)  # read again when next asked
            conn = conn.conn  # storm_alerts: nothing kept to flush
        with self._tx(conn) as conn:
            if conn.execute(select(storm_alerts.c.id).where(storm_alerts.c.brand == brand)
                            .where(storm_alerts.c.ended_at.is_(None))).first() is not None:
                return None
            if quiet_after is not None:
                last_end = conn.execute(select(func.max(storm_alerts.c.ended_at))
                                        .where(storm_alerts.c.brand == brand)).scalar()
                if last_end is not None and started_at < last_end + quiet_after:
                    return None
            return new_id(conn.execute(insert(storm_alerts).values(
                brand=brand, started_at=started_at, count=count, baseline=baseline, p_value=p_value, peak=count,
                start_status="pending", attempts=0)))

    def alert_peak(self, alert_id: int, count: int, conn: Tx | None = None) -> None:
        if isinstance(conn, StormWrites):
            kept = next((a for a in conn.alerts.values() if a is not None and a["id"] == alert_id), None)
            if kept is not None:
                if kept["peak"] >= count:
                    return  # the UPDATE below would change nothing
                kept["peak"] = count
            conn = conn.conn
        with self._tx(conn) as conn:
            conn.execute(_ALERT_PEAK, {"b_id": alert_id, "b_count": count, "b_peak": count})

    def close_alert(self, alert_id: int, ended_at: datetime, conn: Tx | None = None) -> None:
        if isinstance(conn, StormWrites):
            for brand, kept in list(conn.alerts.items()):
                if kept is not None and kept["id"] == alert_id:
                    del conn.alerts[brand]  # read again when next asked
            conn = conn.conn
        with self._tx(conn) as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id)
                         .where(storm_alerts.c.ended_at.is_(None)).values(ended_at=ended_at, end_status="pending"))

    def claim_alert_jobs(self, now: datetime, lease: timedelta) -> list[tuple[str, dict[str, Any]]]:
        """Claim alerts whose start or end notice is due: ('start'|'end', alert)."""
        out = []
        for stage, col in (("start", storm_alerts.c.start_status), ("end", storm_alerts.c.end_status)):
            due = (col == "pending") | ((col == "sending") & (storm_alerts.c.lease_until < now))
            if stage == "end":
                due = due & (storm_alerts.c.start_status == "done")
            with self.engine.connect() as conn:
                ids = conn.execute(select(storm_alerts.c.id).where(due)).scalars().all()
            for alert_id in ids:
                with self.engine.begin() as conn:
                    row = conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).where(due)
                                       .values({col: "sending", "attempts": storm_alerts.c.attempts + 1,
                                                "lease_until": now + lease})
                                       .returning(*storm_alerts.c)).mappings().first()
                if row is not None:
                    out.append((stage, dict(row)))
        return out

    def alert_job_done(self, alert_id: int, stage: str, *, ticket: TicketRef | None = None) -> None:
        values: dict[str, Any] = {f"{stage}_status": "done", "lease_until": None, "attempts": 0, "last_error": None}
        if ticket is not None:
            values.update(ticket_id=ticket.ticket_id, ticket_url=ticket.url)
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).values(**values))

    def alert_job_retry(self, alert_id: int, stage: str, error: str, *, failed: bool = False) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(storm_alerts).where(storm_alerts.c.id == alert_id).values(
                {f"{stage}_status": "failed" if failed else "pending", "lease_until": None, "last_error": error[:2000]}))

    def alert_ticket(self, alert_id: int) -> TicketRef | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(storm_alerts.c.ticket_id, storm_alerts.c.ticket_url)
                               .where(storm_alerts.c.id == alert_id)).first()
        return TicketRef("", row.ticket_id, row.ticket_url) if row and row.ticket_id else None

    def list_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(storm_alerts).order_by(storm_alerts.c.started_at.desc())
                                                  .limit(limit)).mappings().all()]
