"""Post → ticket latency of a streamed network, end to end; prints JSON.

A fake Jetstream on loopback (tests/fakes/wsserver.py) replays Bluesky posts at a set rate
(default 2/s for 120 s; a third of them not about the brand, as on the real firehose) — or,
with `--network x`, the fake X API (tests/fakes/x.py) publishes them on its filtered stream
(newline-delimited JSON over HTTP; only posts matching our rules are sent, as X does); the
connector runs as `yorisoi poll` would — the stream supervisor, the pipeline, the delivery
worker woken on commit — against the local helpdesk on SQLite. For every post about the brand
the time from the frame being sent to its ticket's row being committed is measured.
The label model is loaded before the replay starts (once per process, start-up time).
`--drops N` closes the socket N times during the run: the stream must resume from its cursor
with 0 missing and 0 duplicate tickets (X: posts published while reconnecting never come on
the stream again; the reconnect's recent-search catch-up from the last id brings them).

    python benchmarks/stream_latency.py [--network bluesky|x] [--rate 2] [--seconds 120] [--drops 0]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from connector import create_app  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.db.schema import local_tickets  # noqa: E402
from connector.streaming import StreamSupervisor  # noqa: E402
from tests.fakes.wsserver import FakeStreamServer  # noqa: E402
from tests.fakes.x import BEARER, FakeX  # noqa: E402

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


class JetstreamFeed:
    """Bluesky posts as Jetstream frames over the fake WebSocket server."""

    network, platform = "bluesky (fake Jetstream)", "bluesky"

    def __init__(self) -> None:
        self.server = FakeStreamServer()

    def env(self) -> dict[str, str]:
        return {"BLUESKY_HANDLE": "brand.bsky.social", "BLUESKY_APP_PASSWORD": "unused",
                "BLUESKY_SERVICE": "http://127.0.0.1:9", "BLUESKY_JETSTREAM_URL": self.server.url + "/subscribe"}

    def publish(self, n: int, text: str) -> str:
        rkey = f"3kbench{n:08d}"
        did = f"did:plc:bench{n % 97:020d}"
        self.server.push({"did": did, "time_us": int(time.time() * 1_000_000), "kind": "commit", "commit": {
            "rev": f"r{n}", "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey,
            "cid": f"bafybench{n}", "record": {"$type": "app.bsky.feed.post", "text": text, "langs": ["ja"],
                                                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}})
        return f"at://{did}/app.bsky.feed.post/{rkey}"

    def drop(self) -> None:
        self.server.drop_now()

    def close(self) -> None:
        self.server.close()


class XStreamFeed:
    """X posts published on the fake X API's filtered stream (HTTP, newline-delimited JSON)."""

    network, platform = "x (fake filtered stream)", "x"

    def __init__(self) -> None:
        from pytest_httpserver import HTTPServer
        self.fake = FakeX()
        self.http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.fake.install(self.http)
        self.http.start()

    def env(self) -> dict[str, str]:
        return {"X_BEARER_TOKEN": BEARER, "X_API_URL": self.fake.url, "X_DAILY_READ_BUDGET": "100000"}

    def publish(self, n: int, text: str) -> str:
        return self.fake.add_post(text, author=f"1850000000{n % 97:09d}",
                                  created_at=datetime.now(timezone.utc))

    def drop(self) -> None:
        self.fake.drop_streams_now()

    def close(self) -> None:
        self.fake.close_streams()
        self.http.clear()
        self.http.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2.0, help="posts per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the replay")
    parser.add_argument("--drops", type=int, default=0, help="times the server drops the socket")
    parser.add_argument("--network", choices=("bluesky", "x"), default="bluesky",
                        help="bluesky: fake Jetstream (WebSocket); x: fake X filtered stream (HTTP)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="yorisoi-stream-bench-"))
    (tmp / "watch.toml").write_text(WATCH, encoding="utf-8")
    feed = XStreamFeed() if args.network == "x" else JetstreamFeed()
    env = {"YORISOI_DATA_DIR": str(tmp / "data"), "YORISOI_WATCH": str(tmp / "watch.toml"),
           "YORISOI_WEBHOOK_SECRET": "stream-latency-benchmark-secret", "YORISOI_LOG_LEVEL": "ERROR",
           "YORISOI_STORM_MIN_POSTS": "100000", "YORISOI_SPIKE_MIN_COUNT": "100000", **feed.env()}
    app = create_app(Settings.from_env(env))
    svc = app.extensions["yorisoi"]
    # Warm-up, as a running service is: the first analysis loads the label model and nagisa
    # (several seconds, once per process), which is start-up time, not post → ticket latency.
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
    time.sleep(0.5 if args.network == "bluesky" else 2.0)  # connected (X: rules synced first)
    start = time.monotonic()
    prefix = f"yorisoi:{feed.platform}:"

    def collect() -> None:
        with svc.store.engine.connect() as conn:
            rows = conn.execute(select(local_tickets.c.external_id)).scalars().all()
        now = time.monotonic()
        ticket_rows[:] = rows
        for external_id in rows:
            uri = external_id.removeprefix(prefix)
            if uri in sent and uri not in seen:
                seen[uri] = now

    for n in range(total):
        due = start + n / args.rate
        while time.monotonic() < due:
            collect()
            time.sleep(min(0.02, max(0.0, due - time.monotonic())))
        if n in drop_at:
            feed.drop()
        text = TEXTS[n % len(TEXTS)] + f" ({n})"
        sent_at = time.monotonic()
        uri = feed.publish(n, text)
        if svc.pipeline.qualifier.mentions_brand(text):
            sent[uri] = sent_at
    deadline = time.monotonic() + 30
    while len(seen) < len(sent) and time.monotonic() < deadline:
        collect()
        time.sleep(0.02)
    reconnects = supervisor.runners[0].health["reconnects"]
    supervisor.stop()
    svc.close()
    feed.close()

    latencies = [seen[uri] - sent[uri] for uri in seen]
    from connector.sources import PLATFORMS
    poll_interval = PLATFORMS[feed.platform].poll_interval
    duplicates = len(ticket_rows) - len(set(ticket_rows))
    print(json.dumps({
        "benchmark": "stream_latency", "network": feed.network, "helpdesk": "local",
        "rate_per_s": args.rate, "seconds": args.seconds, "frames": total, "brand_posts": len(sent),
        "tickets": len(set(ticket_rows)), "missing": len(sent) - len(seen), "duplicates": duplicates,
        "drops": args.drops, "reconnects": reconnects,
        "p50_s": round(percentile(latencies, 0.50), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
        # The baseline: without the stream a post waits for the next poll (up to one interval).
        "poll_interval_s": poll_interval,
        "p95_vs_poll_interval": round(percentile(latencies, 0.95) / poll_interval, 4) if latencies else None,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
