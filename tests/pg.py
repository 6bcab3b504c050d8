"""PostgreSQL for tests: a throwaway database per test on the server CI and this machine run
(127.0.0.1:5432, trust auth, database `test`, user postgres; `.ci/run` starts it).

Tests that need it skip with the reason when no server answers. Override the server with
YORISOI_TEST_POSTGRES=postgresql://user@host:port/db (the database to connect to for CREATE
DATABASE).
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

ADMIN_URL = os.environ.get("YORISOI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _connect(url: str):
    import psycopg
    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when the server answers, else why not (the skip reason)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    try:
        with _connect(ADMIN_URL) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means: skip
        return f"no PostgreSQL at {ADMIN_URL} ({type(exc).__name__}: {str(exc).strip()[:120]})"
    return None


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards (even if the test failed)."""
    name = f"yorisoi_t_{uuid.uuid4().hex[:12]}"
    with _connect(ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with _connect(ADMIN_URL) as conn:
            # FORCE: connections a killed connector left behind must not keep it alive.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
