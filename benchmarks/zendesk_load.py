"""Load against the fake Zendesk (loopback, 700 requests/min with 429 + Retry-After), with a
real `yorisoi serve` process receiving posts on its webhook. Prints one JSON object.

    python benchmarks/zendesk_load.py latency [--rate 20] [--seconds 120]
    python benchmarks/zendesk_load.py storm [--posts 10000] [--no-bulk] [--limit-seconds 600]
    (either: [--database postgresql://…] [--bulk-threshold N])

latency: posts arrive one per webhook call at --rate per second for --seconds; each post's
  time from being sent to its ticket existing in the fake (p50/p95/p99). Target p95 ≤ 3 s.
storm:   --posts posts arrive at once (webhook calls of 500); time until every ticket exists in
  the fake, with create_many (bulk jobs) or --no-bulk (one by one); duplicates and missing
  tickets counted in the fake's own records. Target ≤ 4 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.helpdesks.zendesk.client import ZendeskConfig  # noqa: E402
from tests.fakes.base import LoopbackServer  # noqa: E402
from tests.fakes.zendesk import FakeZendesk  # noqa: E402

SECRET = "bench-webhook-secret"
DEFAULT_BULK_THRESHOLD = ZendeskConfig.bulk_threshold

import logging  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake's access log


def sign(body: bytes) -> str:
    import hashlib
    import hmac
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def make_post(n: int, run: str) -> dict:
    texts = ["ソラモバイル、駅で全然繋がらない。最悪", "ソラモバイルの請求が二重になってる。どうなってるの？",
             "ソラモバイル遅すぎる、昼休みは動画も見られない", "ソラモバイルのサポートに電話しても繋がらない"]
    return {"platform": "x", "id": f"{run}-{n}", "url": f"https://x.com/u{n}/status/{n}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "lang": "ja",
            "text": f"{texts[n % len(texts)]} #{n}",
            "author": {"id": f"{run}-a{n}", "handle": f"user{n}", "name": f"ユーザー{n}", "followers": n % 5000},
            "metrics": {"replies": 0, "reposts": n % 7, "likes": n % 13, "quotes": 0}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.fake = FakeZendesk(rate_limit=700)
        self.server = LoopbackServer(self.fake.wsgi).start()
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "YORISOI_DATA_DIR": self.tmp.name, "YORISOI_PORT": str(self.port),
               "YORISOI_LOG_LEVEL": "WARNING", "YORISOI_WEBHOOK_SECRET": SECRET, "YORISOI_HELPDESK": "zendesk",
               "ZENDESK_URL": self.server.url, "ZENDESK_EMAIL": "agent@example.com", "ZENDESK_API_TOKEN": "test-token",
               "ZENDESK_BULK_THRESHOLD": str(args.bulk_threshold), "YORISOI_DELIVERY_INTERVAL": "0.2",
               "YORISOI_MAX_BODY_BYTES": str(20 * 1_048_576)}
        if args.database:
            env["YORISOI_DATABASE"] = args.database
        # The server's log goes to a file: a pipe nobody reads fills after 64 KB (a storm's spike
        # and rate warnings), and then every thread that logs blocks on it.
        self.log_path = Path(self.tmp.name) / "serve.log"
        self.log_file = self.log_path.open("w", encoding="utf-8")
        self.serve = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=self.log_file, text=True)
        self.session = requests.Session()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.session.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)

    def send(self, posts: list[dict]) -> None:
        body = json.dumps(posts, ensure_ascii=False).encode()
        answer = self.session.post(f"http://127.0.0.1:{self.port}/sources/webhook", data=body, timeout=120,
                                   headers={"X-Yorisoi-Signature": sign(body), "Content-Type": "application/json"})
        if answer.status_code != 202:
            raise SystemExit(f"webhook answered {answer.status_code}: {answer.text[:300]}")

    def created(self) -> dict[str, list[float]]:
        with self.fake._lock:
            result: dict[str, list[float]] = {}
            for ticket_id, ticket in self.fake.tickets.items():
                result.setdefault(ticket["external_id"], []).append(self.fake.created_times[ticket_id])
            return result

    def close(self) -> None:
        self.serve.terminate()
        try:
            self.serve.wait(20)
        except subprocess.TimeoutExpired:
            self.serve.kill()
        self.server.stop()
        self.log_file.close()
        self.tmp.cleanup()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))], 2)


def latency(args: argparse.Namespace) -> dict:
    harness = Harness(args)
    run = f"lat{int(time.time())}"
    sent: dict[str, float] = {}
    try:
        started = time.monotonic()
        total = int(args.rate * args.seconds)
        for n in range(total):
            due = started + n / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            sent[f"yorisoi:x:{run}-{n}"] = time.time()
            harness.send([make_post(n, run)])
        send_s = time.monotonic() - started
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline and len(set(harness.created()) & set(sent)) < len(sent):
            time.sleep(0.5)
        created = harness.created()
        latencies = [created[k][0] - t for k, t in sent.items() if k in created]
        return {
            "benchmark": "latency post → ticket (fake Zendesk, 700 req/min)", "posts": total, "rate_per_s": args.rate,
            "sending_s": round(send_s, 1), "tickets": len(latencies), "missing": len(sent) - len(latencies),
            "duplicates": sum(len(v) - 1 for v in created.values()),
            "p50_s": percentile(latencies, 0.5), "p95_s": percentile(latencies, 0.95),
            "p99_s": percentile(latencies, 0.99), "max_s": round(max(latencies), 2) if latencies else None,
            "mean_s": round(statistics.mean(latencies), 2) if latencies else None, "target_p95_s": 3.0,
            "zendesk_requests": len(harness.fake.log), "zendesk_429": harness.fake.refused_429,
            "bulk_threshold": args.bulk_threshold, "database": "postgresql" if args.database else "sqlite",
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        harness.close()


def storm(args: argparse.Namespace) -> dict:
    harness = Harness(args)
    run = f"storm{int(time.time())}"
    posts = [make_post(n, run) for n in range(args.posts)]
    wanted = {f"yorisoi:x:{p['id']}" for p in posts}
    try:
        started = time.monotonic()
        for i in range(0, len(posts), 500):
            harness.send(posts[i:i + 500])
        ingest_s = time.monotonic() - started
        deadline = started + args.limit_seconds
        done = 0
        while time.monotonic() < deadline:
            done = len(set(harness.created()) & wanted)
            if done == len(wanted):
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        created = harness.created()
        requests_made = len(harness.fake.log)
        per_minute = requests_made / (elapsed / 60)
        return {
            "benchmark": "storm: posts at once until every ticket exists (fake Zendesk, 700 req/min)",
            "posts": len(posts), "create_many": args.bulk_threshold > 0, "all_delivered": done == len(wanted),
            "seconds_until_all_tickets" if done == len(wanted) else "stopped_after_s": round(elapsed, 1),
            "target_s": 240, "ingest_s": round(ingest_s, 1), "tickets": len(set(created) & wanted),
            "missing": len(wanted - set(created)), "duplicates": sum(len(v) - 1 for v in created.values()),
            "tickets_per_minute": round(len(set(created) & wanted) / (elapsed / 60), 1),
            "zendesk_requests": requests_made, "zendesk_requests_per_minute": round(per_minute, 1),
            "zendesk_429": harness.fake.refused_429, "jobs": len(harness.fake.jobs),
            "max_jobs_in_flight": harness.fake.max_jobs_in_flight_seen,
            "database": "postgresql" if args.database else "sqlite", "load_average_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        harness.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["latency", "storm"])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--drain-seconds", type=float, default=300.0, help="latency: wait this long for the last tickets")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--limit-seconds", type=float, default=600.0, help="storm: give up after this long")
    parser.add_argument("--no-bulk", action="store_true", help="storm: one by one (ZENDESK_BULK_THRESHOLD=0)")
    parser.add_argument("--bulk-threshold", type=int, default=None,
                        help=f"ZENDESK_BULK_THRESHOLD (default: {DEFAULT_BULK_THRESHOLD}, the connector's default; "
                             "0 with --no-bulk)")
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    if args.bulk_threshold is None:
        args.bulk_threshold = 0 if args.no_bulk else DEFAULT_BULK_THRESHOLD
    result = latency(args) if args.kind == "latency" else storm(args)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
