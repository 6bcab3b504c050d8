"""A batch's storm writes are kept in memory and written at its end (connector/db/storms.py
`StormWrites`, issue 17): grouping in batches must leave exactly the rows that grouping post by
post leaves — memberships, indexed bands, storm sizes and jobs, spike alerts, waiting echoes."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from benchmarks.pipeline_throughput import synthetic_posts
from benchmarks.storm import BARE_ECHOES, generate
from connector.config import Settings
from connector.db.schema import posts, storm_alerts, storm_bands, storm_echo_waits, storm_members, storms
from connector.services import Services
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
