"""Posts per second through ingest (validate → qualify → analyse → store + outbox) and through
delivery to the local helpdesk, on SQLite in a temporary folder. Prints one JSON object.

    python benchmarks/pipeline_throughput.py [--posts 2000]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.config import DEMO_FEED, Settings  # noqa: E402
from connector.services import Services  # noqa: E402


def synthetic_posts(count: int) -> list[dict]:
    """The demo feed's posts again and again under new ids, so every one is new to the store."""
    base = [json.loads(line) for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    posts = []
    for n in range(count):
        post = dict(base[n % len(base)])
        post["id"] = f"bench-{n}"
        post["in_reply_to"] = post["conversation_id"] = None
        posts.append(post)
    return posts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=2000)
    args = parser.parse_args()
    posts = synthetic_posts(args.posts)
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services.build(Settings.from_env({"YORISOI_DATA_DIR": tmp, "YORISOI_LOG_LEVEL": "WARNING"}))
        svc.pipeline.ingest_raw(posts[0] | {"id": "warm-up"}, "bench")  # load nagisa and lexicons
        started = time.perf_counter()
        outcomes = [svc.pipeline.ingest_raw(p, "bench") for p in posts]
        ingest_s = time.perf_counter() - started
        qualified = sum(o.status in ("queued", "follow_up") for o in outcomes)
        started = time.perf_counter()
        report = svc.pipeline.drain(max_wait=0)
        deliver_s = time.perf_counter() - started
        svc.close()
    print(json.dumps({
        "posts": len(posts),
        "qualified": qualified,
        "ingest_posts_per_s": round(len(posts) / ingest_s, 1),
        "deliver_tickets_per_s": round(report.created / deliver_s, 1) if deliver_s else None,
        "tickets_created": report.created,
        "database": "sqlite (temporary file)",
    }, indent=1))


if __name__ == "__main__":
    main()
