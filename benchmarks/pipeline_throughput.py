"""Posts per second through ingest (validate → qualify → analyse → store + outbox) on SQLite in a
temporary folder, one process, with nagisa's share of the time; and tickets per second through
delivery to the local helpdesk. Prints one JSON object.

The baseline, measured in the same run on the same posts: bare nagisa, each post's normalised
text tagged once (what any analysis in Japanese must pay). `ingest_vs_bare_nagisa` is ingest's
throughput over that one (issue 17: ≥ 0.85), in CPU time (this process's, so other load on a
shared machine weighs on both alike) and in wall time. The two alternate batch by batch (bare
nagisa on a batch's posts, then ingest of that batch): on a shared virtual machine the speed of
the same code drifts by 15–25 % within a minute, and a bare pass before and after ingest only
averaged that drift out when it was linear.

    python benchmarks/pipeline_throughput.py [--posts 2000] [--batch 200] [--database URL]

Ingest runs as `yorisoi replay` and the webhook do: batches of posts (`Pipeline.ingest_many`,
one transaction each). `--batch 1` measures the post-by-post path (`Pipeline.ingest`). Target:
≥ 500 posts/s (issue 9).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.analysis import text as analysis_text  # noqa: E402
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


class NagisaClock:
    """Wraps nagisa's `tagging` and times it, including the lazy work: nagisa 0.3's tagging()
    returns an object that only tags when `.words`/`.postags` are read, so both are read here,
    inside the clock."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.real = analysis_text._tagger()

    def tagging(self, text: str) -> SimpleNamespace:
        started = time.perf_counter()
        tagged = self.real.tagging(text)
        result = SimpleNamespace(words=list(tagged.words), postags=list(tagged.postags))
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return result


def bare_nagisa(posts: list[dict], tagger: object) -> tuple[float, float]:
    """(wall, CPU) seconds to tag each post's normalised text once, reading words and tags."""
    texts = [analysis_text.normalize(p["text"]) for p in posts]
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        tagged = tagger.tagging(text)  # type: ignore[attr-defined]
        list(tagged.words), list(tagged.postags)
    return time.perf_counter() - wall, time.process_time() - cpu


def timed(work: Callable[[], list]) -> tuple[list, float, float]:
    """(result, wall, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def warm_services(tmp: str, database: str | None, posts: list[dict]) -> Services:
    """The connector's services on `database` (default: SQLite in `tmp`), warmed up on 50 of
    the posts under other ids: nagisa's model, the lexicons, SQLAlchemy's statement cache."""
    env = {"YORISOI_DATA_DIR": tmp, "YORISOI_LOG_LEVEL": "WARNING"}
    if database:
        env["YORISOI_DATABASE"] = database
    svc = Services.build(Settings.from_env(env))
    svc.warm_up()  # as `yorisoi serve`, `poll` and `replay` do before their first post
    svc.pipeline.ingest_many([p | {"id": f"warm-up-{i}"} for i, p in enumerate(posts[:50])], "bench")
    return svc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="posts per transaction (1: one by one)")
    parser.add_argument("--database", default=None, help="YORISOI_DATABASE (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    posts = synthetic_posts(args.posts)
    clock = NagisaClock()
    analysis_text._tagger = lambda: clock  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        svc = warm_services(tmp, args.database, posts)
        clock.seconds, clock.calls = 0.0, 0
        outcomes: list = []
        ingest_s = ingest_cpu = bare_wall = bare_cpu = 0.0
        step = max(1, args.batch)
        for i in range(0, len(posts), step):
            batch = posts[i:i + step]
            wall, cpu = bare_nagisa(batch, clock.real)
            bare_wall, bare_cpu = bare_wall + wall, bare_cpu + cpu
            if args.batch <= 1:
                done, wall, cpu = timed(lambda: [svc.pipeline.ingest_raw(p, "bench") for p in batch])
            else:
                done, wall, cpu = timed(lambda: svc.pipeline.ingest_many(batch, "bench"))
            outcomes += done
            ingest_s, ingest_cpu = ingest_s + wall, ingest_cpu + cpu
        qualified = sum(o.status in ("queued", "follow_up") for o in outcomes)
        started = time.perf_counter()
        report = svc.pipeline.drain(max_wait=0)
        deliver_s = time.perf_counter() - started
        svc.close()
    print(json.dumps({
        "posts": len(posts),
        "qualified": qualified,
        "batch": args.batch,
        "ingest_posts_per_s": round(len(posts) / ingest_s, 1),
        "target_posts_per_s": 500,
        "bare_nagisa_posts_per_s": round(len(posts) / bare_wall, 1),
        "ingest_vs_bare_nagisa": round(bare_cpu / ingest_cpu, 3),  # CPU time: the figure to compare
        "ingest_vs_bare_nagisa_wall": round(bare_wall / ingest_s, 3),
        "target_ingest_vs_bare_nagisa": 0.85,
        "nagisa_share_of_ingest": round(clock.seconds / ingest_s, 3),
        "nagisa_calls": clock.calls,
        "nagisa_ms_per_call": round(1000 * clock.seconds / max(1, clock.calls), 2),
        "ingest_cpu_share": round(ingest_cpu / ingest_s, 2),  # < 1: the process waited (I/O, other load)
        "deliver_tickets_per_s": round(report.created / deliver_s, 1) if deliver_s else None,
        "tickets_created": report.created,
        "database": args.database.split("@")[-1] if args.database else "sqlite (temporary file)",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
