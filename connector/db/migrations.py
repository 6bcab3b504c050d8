"""Creating the schema, or bringing an older one up to `schema.SCHEMA_VERSION`."""
from __future__ import annotations

from typing import Callable

from sqlalchemy import Column, Integer, String, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from connector.db.counts import backfill_response_hist, rebuild_reports
from connector.db.engine import MIGRATE_LOCK, utcnow
from connector.db.schema import SCHEMA_VERSION, ix_posts_created, metadata, schema_version
from connector.db.ticket_search import backfill_search_index, create_search_index, has_search_index


def migrate(engine: Engine) -> None:
    """Create a fresh schema, or bring an older one up to SCHEMA_VERSION.

    New tables need no numbered migration: `create_all` adds whatever table is missing,
    on fresh and existing databases alike. Changes to existing tables (a new column, an
    index) go into MIGRATIONS with the next version number.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Serialises instances that start at the same time; released at commit.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        if not engine.dialect.has_table(conn, "schema_version"):
            metadata.create_all(conn)
            create_search_index(conn)
            conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))
            return
        current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
        metadata.create_all(conn)  # checkfirst: only the tables that are missing
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(insert(schema_version).values(version=version, applied_at=utcnow()))
        if current >= 8 and not has_search_index(conn):
            # pg_trgm was refused at migration 8: try again at every start (an admin may have
            # created the extension since); the warning repeats until it works.
            if create_search_index(conn):
                backfill_search_index(conn)


def _migrate_2_reports(conn: Connection) -> None:
    """The dashboard's report tables are new (create_all made them); fill them from the posts
    already stored, and index posts by created_at for the qualification log.
    Complaint topics of older posts need nagisa: `yorisoi report --rebuild` adds them."""
    ix_posts_created.create(conn, checkfirst=True)
    rebuild_reports(conn, None)


def add_column(conn: Connection, table: str, column: Column[object]) -> None:
    """ALTER TABLE … ADD COLUMN unless the column is there already (create_all may just have
    made the table with it, when the table was missing)."""
    if column.name in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    ddl = column.type.compile(dialect=conn.dialect)
    conn.execute(text(f'ALTER TABLE {table} ADD COLUMN {column.name} {ddl}'))


def _migrate_3_correction_token(conn: Connection) -> None:
    """Corrections record the id of the token that made them (issue 16 #14)."""
    add_column(conn, "corrections", Column("token_id", Integer))


def _migrate_4_channel_feed(conn: Connection) -> None:
    """Number the qualifying posts already stored for the Channel framework feed, in the order
    the old cursor walked them ((ingested_at, key)); posts numbered already keep their number."""
    from connector.db.schema import channel_feed, outbox, posts

    missing = (select(posts.c.key).join(outbox, outbox.c.post_key == posts.c.key)
               .where(posts.c.qualified == True)  # noqa: E712
               .where(~select(channel_feed.c.seq).where(channel_feed.c.post_key == posts.c.key).exists())
               .order_by(posts.c.ingested_at, posts.c.key))
    keys = list(conn.execute(missing).scalars())
    if keys:
        conn.execute(insert(channel_feed), [{"post_key": key} for key in keys])


def _migrate_5_session_generation(conn: Connection) -> None:
    """Supervisors' sessions can be ended everywhere (issue 16 #13)."""
    add_column(conn, "users", Column("session_generation", Integer))


def _migrate_6_token_origin(conn: Connection) -> None:
    """Agent tokens record how they were made (CLI, extension sign-in, SSO; issue 18)."""
    add_column(conn, "agent_tokens", Column("origin", String(16)))


def _migrate_7_response_hist(conn: Connection) -> None:
    """Response times as per-day histograms (issue 19): create_all made report_response_hist;
    count the tickets already in ticket_facts into it. And the indexes of the tickets page and
    the home page's backlog."""
    from connector.db.schema import ticket_facts, tickets

    backfill_response_hist(conn)
    for table, name in ((tickets, "ix_tickets_created"), (ticket_facts, "ix_ticket_facts_backlog")):
        next(ix for ix in table.indexes if ix.name == name).create(conn, checkfirst=True)


def _migrate_8_ticket_search(conn: Connection) -> None:
    """The tickets page's text search by trigram index (issue 19): SQLite's FTS5 table filled
    from the tickets already stored, in batches; PostgreSQL's pg_trgm GIN indexes (or a log
    line saying the search stays a scan, when the extension cannot be created)."""
    if create_search_index(conn):
        backfill_search_index(conn)


def _migrate_9_response_filters(conn: Connection) -> None:
    """/response-times over a year filtered by brand and source, or by labels, within 500 ms at
    1M posts (issue 19): the covering indexes of both; the old, narrower ticket_facts index is a
    prefix of the new one."""
    from connector.db.schema import report_response_hist, ticket_facts

    conn.execute(text("DROP INDEX IF EXISTS ix_ticket_facts_times"))
    for table, name in ((ticket_facts, "ix_ticket_facts_times_by"), (report_response_hist, "ix_response_hist_brand")):
        next(ix for ix in table.indexes if ix.name == name).create(conn, checkfirst=True)


def _migrate_10_storm_bands_lookup(conn: Connection) -> None:
    """The storm band indexes cover post_key (issue 17): rebuilt with it."""
    from connector.db.schema import storm_bands

    for ix in sorted(storm_bands.indexes, key=lambda ix: str(ix.name)):
        conn.execute(text(f"DROP INDEX IF EXISTS {ix.name}"))
        ix.create(conn)


def _migrate_11_band_keys(conn: Connection) -> None:
    """storm_bands without its foreign keys (see `schema.storm_bands`: checking them was half of
    the band insert under the brand lock, issue 17). PostgreSQL drops the constraints; SQLite
    cannot drop one, so the table is made anew and its rows copied, as
    https://www.sqlite.org/lang_altertable.html#otheralter describes. Nothing to do on a schema
    created without them."""
    from connector.db.schema import storm_bands

    keys = [fk["name"] for fk in inspect(conn).get_foreign_keys("storm_bands")]
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        for name in keys:
            conn.execute(text(f'ALTER TABLE storm_bands DROP CONSTRAINT "{name}"'))
        return
    for index in storm_bands.indexes:  # their names go with the new table
        conn.execute(text(f'DROP INDEX IF EXISTS "{index.name}"'))
    conn.execute(text("ALTER TABLE storm_bands RENAME TO storm_bands_old"))
    storm_bands.create(conn)
    columns = ", ".join(c.name for c in storm_bands.columns)
    conn.execute(text(f"INSERT INTO storm_bands ({columns}) SELECT {columns} FROM storm_bands_old"))
    conn.execute(text("DROP TABLE storm_bands_old"))


def _migrate_12_quote_of(conn: Connection) -> None:
    """Posts keep what they quote, as they keep what they reply to: a stored quote loaded again
    (a waiting echo made a voice, a ticket's post) still knows its parent. Posts stored before
    have none (NULL): what they quoted was not kept."""
    add_column(conn, "posts", Column("quote_of", String(256)))


#: version → function(conn) that upgrades the previous version. Version 1 is the initial schema
#: created by `metadata.create_all`; later versions append here.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _migrate_2_reports, 3: _migrate_3_correction_token,
                                                      4: _migrate_4_channel_feed,
                                                      5: _migrate_5_session_generation,
                                                      6: _migrate_6_token_origin,
                                                      7: _migrate_7_response_hist,
                                                      8: _migrate_8_ticket_search,
                                                      9: _migrate_9_response_filters,
                                                      10: _migrate_10_storm_bands_lookup,
                                                      11: _migrate_11_band_keys,
                                                      12: _migrate_12_quote_of}
