"""Post → ticket latency of a streamed network, end to end; prints JSON.

A fake Jetstream on loopback (tests/fakes/wsserver.py) replays Bluesky posts at a set rate
(default 2/s for 120 s; a third of them not about the brand, as on the real firehose); the
connector runs as `yorisoi poll` would — the stream supervisor, the pipeline, the delivery
worker woken on commit — against the local helpdesk on SQLite. For every post about the brand
the time from the frame being sent to its ticket's row being committed is measured.
The label model is loaded before the replay starts (once per process, start-up time).
`--drops N` closes the socket N times during the run: the stream must resume from its cursor
with 0 missing and 0 duplicate tickets.

    python benchmarks/stream_latency.py [--rate 2] [--seconds 120] [--drops 0]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from connector import create_app  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.db.schema import local_tickets  # noqa: E402
from connector.streaming import StreamSupervisor  # noqa: E402
from tests.fakes.wsserver import FakeStreamServer  # noqa: E402

WATCH = """
[[brand]]
name = "ソラモバイル"
keywords = ["ソラモバイル", "ソラSIM"]
hashtags = ["#ソラモバイル"]
languages = ["ja", "en"]
"""
TEXTS = ["ソラモバイル、駅で全然繋がらない。最悪", "ソラモバイルの料金プランについて質問です",
         "ソラSIMのeSIM設定がうまくいかない", "今日は空がきれい", "ソラモバイル、サポートの対応が丁寧だった",
         "ランチはカレーにした"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2.0, help="posts per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the replay")
    parser.add_argument("--drops", type=int, default=0, help="times the server drops the socket")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="yorisoi-stream-bench-"))
    (tmp / "watch.toml").write_text(WATCH, encoding="utf-8")
    server = FakeStreamServer()
    env = {"YORISOI_DATA_DIR": str(tmp / "data"), "YORISOI_WATCH": str(tmp / "watch.toml"),
           "YORISOI_WEBHOOK_SECRET": "bench", "YORISOI_LOG_LEVEL": "ERROR",
           "YORISOI_STORM_MIN_POSTS": "100000", "YORISOI_SPIKE_MIN_COUNT": "100000",
           "BLUESKY_HANDLE": "brand.bsky.social", "BLUESKY_APP_PASSWORD": "unused",
           "BLUESKY_SERVICE": "http://127.0.0.1:9", "BLUESKY_JETSTREAM_URL": server.url + "/subscribe"}
    app = create_app(Settings.from_env(env))
    svc = app.extensions["yorisoi"]
    # Warm-up, as a running service is: the first analysis loads the label model and nagisa
    # (several seconds, once per process), which is start-up time, not post → ticket latency.
    from datetime import datetime, timezone

    from connector.analysis import analyse
    from connector.models import Author, Post
    analyse(Post(platform="bluesky", id="warm-up", text="ソラモバイル、繋がらない", created_at=datetime.now(timezone.utc),
                 author=Author(id="did:plc:warmup")), svc.watch.priority, model=svc.pipeline.model)
    svc.start_worker()
    supervisor = StreamSupervisor(svc, wake_delivery=svc.wake_worker)
    supervisor.start()

    sent: dict[str, float] = {}  # external id fragment (post uri) → send time
    seen: dict[str, float] = {}
    ticket_rows: list[str] = []
    total = int(args.rate * args.seconds)
    drop_at = {int(total * (i + 1) / (args.drops + 1)) for i in range(args.drops)}
    time.sleep(0.5)  # connected
    start = time.monotonic()

    def collect() -> None:
        with svc.store.engine.connect() as conn:
            rows = conn.execute(select(local_tickets.c.external_id)).scalars().all()
        now = time.monotonic()
        ticket_rows[:] = rows
        for external_id in rows:
            uri = external_id.split("bluesky:", 1)[-1]
            if uri in sent and uri not in seen:
                seen[uri] = now

    for n in range(total):
        due = start + n / args.rate
        while time.monotonic() < due:
            collect()
            time.sleep(min(0.02, max(0.0, due - time.monotonic())))
        if n in drop_at:
            server.drop_now()
        text = TEXTS[n % len(TEXTS)] + f" ({n})"
        rkey = f"3kbench{n:08d}"
        did = f"did:plc:bench{n % 97:020d}"
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        server.push({"did": did, "time_us": int(time.time() * 1_000_000), "kind": "commit", "commit": {
            "rev": f"r{n}", "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey,
            "cid": f"bafybench{n}", "record": {"$type": "app.bsky.feed.post", "text": text, "langs": ["ja"],
                                                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
        if svc.pipeline.qualifier.mentions_brand(text):
            sent[uri] = time.monotonic()
    deadline = time.monotonic() + 30
    while len(seen) < len(sent) and time.monotonic() < deadline:
        collect()
        time.sleep(0.02)
    reconnects = supervisor.runners[0].health["reconnects"]
    supervisor.stop()
    svc.close()
    server.close()

    latencies = [seen[uri] - sent[uri] for uri in seen]
    duplicates = len(ticket_rows) - len(set(ticket_rows))
    print(json.dumps({
        "benchmark": "stream_latency", "network": "bluesky (fake Jetstream)", "helpdesk": "local",
        "rate_per_s": args.rate, "seconds": args.seconds, "frames": total, "brand_posts": len(sent),
        "tickets": len(set(ticket_rows)), "missing": len(sent) - len(seen), "duplicates": duplicates,
        "drops": args.drops, "reconnects": reconnects,
        "p50_s": round(percentile(latencies, 0.50), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
