"""Batched ingest (`Pipeline.ingest_many`: webhook calls, replay files) decides, analyses and
stores exactly what post-by-post ingest does: the demo feed's labels are the recorded ones."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from connector.config import DEMO_FEED, DEMO_WATCH
from connector.db.schema import analyses, outbox, posts
from tests.conftest import post_dict

GOLDEN = Path(__file__).parent / "fixtures" / "demo_labels.json"
FIXED = datetime(2026, 11, 21, tzinfo=timezone.utc)  # velocity (risk) depends on the post's age


def _stored(store):
    with store.engine.connect() as conn:
        labels = {key: detail for key, detail in conn.execute(select(analyses.c.post_key, analyses.c.detail)).all()}
        rows = sorted(tuple(r) for r in conn.execute(select(posts.c.key, posts.c.qualified, posts.c.brand, posts.c.reasons,
                                                            outbox.c.kind, outbox.c.ticket_post_key)
                                                     .outerjoin(outbox, outbox.c.post_key == posts.c.key)).all())
    return labels, rows


def test_demo_feed_labels_are_unchanged_by_batching(app_factory, tmp_path):
    lines = [line for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    one = app_factory(YORISOI_DATA_DIR=str(tmp_path / "one"), YORISOI_WATCH=str(DEMO_WATCH)).extensions["yorisoi"]
    many = app_factory(YORISOI_DATA_DIR=str(tmp_path / "many"), YORISOI_WATCH=str(DEMO_WATCH)).extensions["yorisoi"]
    one.pipeline.clock = many.pipeline.clock = lambda: FIXED
    for line in lines:
        one.pipeline.ingest_raw(line, "demo")
    many.pipeline.ingest_lines(lines, "demo", batch_size=7)  # threads span batches, too
    labels_one, rows_one = _stored(one.store)
    labels_many, rows_many = _stored(many.store)
    assert rows_many == rows_one  # same decisions, same follow-ups
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert labels_many == golden and labels_one == golden  # recorded before batching existed


def test_a_batch_is_all_or_nothing_and_dedupes(app_factory):
    svc = app_factory().extensions["yorisoi"]
    first = post_dict(id="b1", author={"id": "u1"})
    follow = post_dict(id="b2", text="ソラモバイルまだ繋がらない", author={"id": "u1"}, in_reply_to="b1", conversation_id="b1")
    other = post_dict(id="b3", text="ソラモバイル遅い", author={"id": "u2"}, in_reply_to="b1", conversation_id="b1")
    outcomes = svc.pipeline.ingest_many([first, follow, other, first, {"platform": "x"}], "test")
    assert [o.status for o in outcomes] == ["queued", "follow_up", "queued", "duplicate", "rejected"]
    assert svc.store.outbox.ticket_post_key_of("x:b2") == "x:b1" and svc.store.outbox.ticket_post_key_of("x:b3") == "x:b3"
    again = svc.pipeline.ingest_many([first, follow], "test")
    assert [o.status for o in again] == ["duplicate", "duplicate"]
