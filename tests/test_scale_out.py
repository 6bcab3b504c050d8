"""Several connector instances on one database: PostgreSQL via psycopg 3, outbox claims with
FOR UPDATE SKIP LOCKED, one poller per source unit (advisory lock), the 429 pause shared
through the database. Each test runs on SQLite and on a real PostgreSQL server (skipped with
the reason when none answers)."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from connector.config import Settings
from connector.db.engine import driver_url, make_engine, utcnow
from connector.models import Decision, Post
from connector.poller import Poller
from connector.store import Store
from tests import pg
from tests.conftest import database_url, post_dict
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env


def test_postgresql_urls_use_psycopg_3():
    assert driver_url("postgresql://u:pw@db.internal:5432/yorisoi") == "postgresql+psycopg://u:pw@db.internal:5432/yorisoi"
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"
    engine = make_engine("postgresql://u:pw@db.internal/yorisoi")  # no connection is made yet
    assert engine.dialect.driver == "psycopg"


def test_database_password_never_shown():
    settings = Settings.from_env({"YORISOI_DATABASE": "postgresql://yorisoi:pw-ひみつ-42@db/yorisoi"})
    assert "pw-ひみつ-42" not in repr(settings)
    store = Store.__new__(Store)
    store.engine = make_engine(settings.database_url)
    assert "pw-ひみつ-42" not in repr(store)


def _fill(store: Store, count: int) -> None:
    for i in range(count):
        post = Post.model_validate(post_dict(id=f"scale-{i}", author={"id": f"a{i}"}))
        store.posts.record_post(post, Decision(True, "ソラモバイル", ("keyword",)), None, source="test")


def test_concurrent_claims_never_share_a_row(db_env):
    """Four workers (two stores = two instances, two threads each) claim the same backlog."""
    url = database_url(db_env)
    stores = [Store(url), Store(url)]
    _fill(stores[0], 60)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(store: Store, name: str) -> None:
        while True:
            items = store.outbox.claim_due(7, timedelta(minutes=2), worker=name)
            if not items:
                return
            with lock:
                claimed.extend(item.id for item in items)

    threads = [threading.Thread(target=worker, args=(stores[i % 2], f"host:{1000 + i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    counts = Counter(claimed)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert stores[1].outbox.outbox_counts() == {"sending": 60}
    for store in stores:
        store.engine.dispose()


def test_a_429_pause_holds_every_instance_back(db_env, app_factory):
    first = app_factory(**db_env).extensions["yorisoi"]
    second = app_factory(**db_env).extensions["yorisoi"]  # another instance, same database
    first.pipeline.pause(30, "Zendesk rate limit reached (429)")
    until = second.pipeline.paused_until
    assert until is not None and 25 < (until - utcnow()).total_seconds() <= 30
    first.store.posts.record_post(Post.model_validate(post_dict(id="paused-1")), Decision(True, "ソラモバイル", ("k",)),
                            None, source="test")
    report = second.pipeline.deliver()
    assert report.stopped and "wait until" in report.stopped and report.created == 0
    assert second.pipeline.seconds_until_due() > 25
    # A shorter pause recorded later does not cut the longer one short.
    second.pipeline.pause(1, "short")
    assert (first.pipeline.paused_until - utcnow()).total_seconds() > 25


def test_each_unit_is_polled_by_one_instance_at_a_time(db_env, backend, tmp_path, fakes, app_factory):
    fakes["mastodon"].add_status("<p>ソラ光の工事、3週間待ちは長い #ソラモバイル</p>", tags=["ソラモバイル"])
    run_env = social_env(db_env, tmp_path, {"mastodon": fakes["mastodon"]})
    svc = app_factory(**run_env).extensions["yorisoi"]
    poller = Poller(svc)
    units = [unit for _source, unit in poller.schedule()]
    other = Store(database_url(db_env))  # another instance holding the first unit
    with other.sources.exclusive(f"poll:{units[0]}") as mine:
        assert mine
        report = poller.run_once(compliance=False)
    by_unit = {u.unit: u for u in report.units}
    if backend == "postgresql":
        assert not by_unit[units[0]].polled and by_unit[units[0]].note == "being polled by another instance"
        assert all(by_unit[u].polled for u in units[1:])
        with svc.store.sources.exclusive("poll:x") as a, other.sources.exclusive("poll:x") as b:
            assert a and not b  # one holder at a time …
        with other.sources.exclusive("poll:x") as again:
            assert again  # … and released afterwards
    else:
        # SQLite: one instance per database (README), so the lock is always this process's.
        assert all(u.polled for u in report.units)
    other.engine.dispose()


@pytest.mark.skipif(pg.unavailable() is not None, reason=str(pg.unavailable()))
def test_instances_started_together_migrate_once():
    with pg.fresh_database() as url:
        errors: list[BaseException] = []

        def start() -> None:
            try:
                Store(url).engine.dispose()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        store = Store(url)
        from sqlalchemy import func, select

        from connector.db.schema import schema_version
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(schema_version)).scalar() == 1
        store.engine.dispose()


def test_a_second_instance_on_one_sqlite_file_is_refused(env, monkeypatch):
    """`serve` + `poll` (or two `serve`s) on one SQLite file used to run side by side, each
    polling, delivering and grouping on its own (issue 16, #5): the second is refused now,
    while one-shot commands still share the file."""
    import fcntl
    from pathlib import Path

    from click.testing import CliRunner

    from connector.cli import main

    # SQLite even when the whole suite runs on PostgreSQL: the lock is SQLite's.
    env = {**env, "YORISOI_DATABASE": f"sqlite:///{env['YORISOI_DATA_DIR']}/yorisoi.sqlite3"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = database_url(env)
    lock_file = Path(url.split("sqlite:///", 1)[1] + ".instance.lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as held:  # a running `serve` holds the lock beside the database
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = CliRunner().invoke(main, ["poll", "--once"])
        assert refused.exit_code != 0
        assert "another Yorisoi instance" in refused.output and "PostgreSQL" in refused.output, refused.output
        from connector.db.engine import InstanceLocked, instance_lock
        with pytest.raises(InstanceLocked):
            with instance_lock(url):
                pass
        assert CliRunner().invoke(main, ["token", "list"]).exit_code == 0  # one-shot commands share
    with instance_lock(url):  # released when the first one ends
        pass


@pytest.mark.skipif(pg.unavailable() is not None, reason=str(pg.unavailable()))
def test_postgresql_sends_lists_in_binary():
    """Array parameters (a batch's band keys, the report bumps' columns) go in binary: psycopg's
    default text format escaped each element in Python, under the brand lock (issue 17)."""
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper
    from sqlalchemy import text

    with pg.fresh_database() as url:
        store = Store(url)
        try:
            with store.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None and raw.adapters.get_dumper(list, PyFormat.AUTO) is ListBinaryDumper
                keys = [b"\x00\\\"{}, x", b"", None, bytes(range(256))]  # what text format had to escape
                assert conn.execute(text("SELECT CAST(:keys AS bytea[])"), {"keys": keys}).scalar() == keys
        finally:
            store.engine.dispose()
