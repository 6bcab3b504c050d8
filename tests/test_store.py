"""Schema upgrades: a database made by an older version keeps working."""
from __future__ import annotations

from sqlalchemy import inspect, text

from connector.store import Store


def test_missing_tables_are_added_to_an_existing_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    Store(url).engine.dispose()
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE exchanges"))  # as a database from before the table existed
    store.engine.dispose()
    upgraded = Store(url)
    assert "exchanges" in inspect(upgraded.engine).get_table_names()
    assert upgraded.exchanges.list_exchanges("x:1") == []
