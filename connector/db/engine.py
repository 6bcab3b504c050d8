"""Engine creation, dialect helpers and advisory locks: how the connector talks to its database.

SQLAlchemy Core (not the ORM) so that one set of tables and statements runs on the embedded
SQLite default and, for scale-out, on PostgreSQL.
"""
from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Table, TextClause, create_engine, event, text
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine, make_url
from sqlalchemy.pool import QueuePool

from connector.db.errors import translate_errors


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: How long a statement waits for a lock another connection holds (SQLite's busy timeout,
#: PostgreSQL's lock_timeout) before it fails with a clear "database is locked" error: the
#: webhook then answers 503 and the sender retries, instead of hanging forever.
LOCK_TIMEOUT_SECONDS = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the worker writes; busy_timeout waits for the writer
    # instead of failing at once; NORMAL is durable across process crashes in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    # Set per connection (not in the URL) so that tests can lower it; autocommit is off, so
    # the SET is committed at once to survive the pool's rollback-on-return.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_SECONDS * 1000)}")
    cursor.close()
    dbapi_connection.commit()
    # Python lists (the array parameters of the unnest / ANY statements) in binary. psycopg
    # sends them as text by default, escaping each element in Python: 20 ms for a batch's
    # 6,000 band keys, in the storm look-up that runs under the brand lock (issue 17); binary
    # takes ~1 ms. https://www.psycopg.org/psycopg3/docs/advanced/adapt.html (a connection's
    # adapters; the dumper registered last is the one a %s placeholder uses).
    from psycopg.types.array import ListBinaryDumper
    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def driver_url(url: str) -> str:
    """The SQLAlchemy URL for a YORISOI_DATABASE value.

    `postgresql://` (and Heroku-style `postgres://`) mean psycopg 3: SQLAlchemy's default for a
    bare `postgresql://` is psycopg2, an older driver we do not ship. An explicit
    `postgresql+<driver>://` is left alone.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = driver_url(url)
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A small pool: opening a SQLite connection and setting its pragmas costs more than
        # a whole post's insert. Each pooled connection is used by one thread at a time.
        engine = create_engine(url, poolclass=QueuePool, pool_size=5, max_overflow=10,
                               connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)
        translate_errors(engine)
        return engine
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {make_url(url).render_as_string(hide_password=True)}: "
                         "use sqlite:///path or postgresql://user@host/db")
    # pre_ping: a restarted PostgreSQL (failover, maintenance) must not fail the next webhook.
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "connect", _postgres_session)
    translate_errors(engine)
    return engine


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from a name (a poll unit, …)."""
    return int.from_bytes(hashlib.sha256(f"yorisoi:{name}".encode("utf-8")).digest()[:8], "big", signed=True)


#: Advisory lock key held while the schema is created or migrated: instances started together
#: must not all run CREATE TABLE at once.
MIGRATE_LOCK = advisory_key("migrate")


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support in both dialects."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)


def new_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT … VALUES just created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def safe_url(url: str) -> str:
    """A database URL fit to show: the password hidden ("<unreadable>" when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show nothing of it
        return "<unreadable>"


class InstanceLocked(RuntimeError):
    """Another long-running instance serves this SQLite database."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL (None: another database, or in memory)."""
    url = driver_url(url)
    if not url.startswith("sqlite"):
        return None
    path = url.split("sqlite:///", 1)[-1]
    return Path(path) if path and path != ":memory:" and not path.startswith("file:") else None


@contextmanager
def instance_lock(url: str) -> Iterator[None]:
    """Be the one long-running instance (`serve`, `poll`, `demo`) on a SQLite database.

    Two processes on one SQLite file would each poll, deliver and group on their own; the
    supported way to run several instances is PostgreSQL. An exclusive lock on a file beside
    the database (released by the OS when the process ends, even on kill -9) refuses the
    second one with InstanceLocked. PostgreSQL: nothing to do (instances coordinate there).
    """
    path = sqlite_path(url)
    if path is None:
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".instance.lock")
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InstanceLocked(
                f"another Yorisoi instance (serve, poll or demo) is already running on {path} "
                f"(lock file {lock_path}). A SQLite database is served by one instance: stop the other one, "
                "or use PostgreSQL (YORISOI_DATABASE=postgresql://…) to run several.") from None
        yield
    finally:
        handle.close()


def advisory_xact_lock(conn: Connection, name: str) -> None:
    """Wait for the transaction-scoped lock `name` (released at commit or rollback).

    PostgreSQL: pg_advisory_xact_lock, so instances sharing the database take turns (e.g. the
    storm grouping of one brand). SQLite: nothing to do — the caller's transaction has
    written already and so holds the database's one write lock until it ends.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})


def advisory_xact_locks(conn: Connection, names: Sequence[str]) -> None:
    """`advisory_xact_lock` for many names in one round trip, taken in one fixed order (sorted
    keys), so two transactions locking overlapping sets never wait on each other in a cycle."""
    if conn.dialect.name == "postgresql" and names:
        keys = sorted({advisory_key(name) for name in names})
        conn.execute(text("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM unnest(CAST(:keys AS bigint[])) "
                          "WITH ORDINALITY AS t(k, n) ORDER BY n) AS ordered"), {"keys": keys})


@contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Try to become the one instance doing `name` (polling a source unit, compliance).

    PostgreSQL: a session advisory lock on a connection held for the duration; it is
    released at the end, or by the server when the process dies (its session ends), so a
    crashed instance never blocks the others. Yields False when another instance holds it.
    SQLite: always True — a SQLite database is served by one instance (see README).
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = advisory_key(name)
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


_UNNEST_INSERTS: dict[tuple[str, tuple[str, ...], str], TextClause] = {}


def unnest_insert_statement(table: Table, names: tuple[str, ...], dialect: Dialect, tail: str = "") -> TextClause:
    """PostgreSQL: INSERT rows of `table` (its columns `names`) as ONE statement, each column's
    values bound as one array (`:name`) and unnested server-side, in the rows' order; `tail`
    follows the SELECT (an ON CONFLICT clause). Built once per table, columns and tail."""
    key = (table.name, names, tail)
    stmt = _UNNEST_INSERTS.get(key)
    if stmt is None:
        quote = dialect.identifier_preparer.quote
        arrays = ", ".join(f"CAST(:{name} AS {table.c[name].type.compile(dialect=dialect)}[])" for name in names)
        stmt = _UNNEST_INSERTS[key] = text(
            f"INSERT INTO {table.name} ({', '.join(quote(n) for n in names)}) SELECT * FROM unnest({arrays}) {tail}")
    return stmt


def unnest_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], tail: str = "") -> None:
    """PostgreSQL: INSERT `rows` (dicts naming the same columns) as ONE statement
    (`unnest_insert_statement`). psycopg's executemany sends one pipelined statement per row
    (https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html#pipeline-mode), and the
    callers run while the ingest transaction holds the brand lock (issue 17). Values go
    through each column type's bind processor, as SQLAlchemy's own INSERT would send them."""
    names = tuple(rows[0])
    convert = dict(zip(table.c.keys(), bind_processors(conn, table)))
    params = {name: [convert[name](row[name]) for row in rows] for name in names}
    conn.execute(unnest_insert_statement(table, names, conn.dialect, tail), params)


def _same(value: Any) -> Any:
    return value


def bind_processors(conn: Connection, table: Table) -> list[Callable[[Any], Any]]:
    """Each column's conversion of a Python value to what SQLAlchemy hands the driver for it,
    in table order: the column type's bind processor for this dialect (for a TypeDecorator such
    as UTCDateTime, its `process_bind_param` followed by the dialect type's own), or the value
    itself. https://docs.sqlalchemy.org/en/20/core/type_api.html#sqlalchemy.types.TypeEngine.bind_processor"""
    dialect = conn.dialect
    return [c.type.dialect_impl(dialect).bind_processor(dialect) or _same for c in table.c]
