"""Delivery latency and ingest scale-out, end to end; prints one JSON object.

    python benchmarks/delivery_latency.py steady [--rate 2] [--seconds 120]
    python benchmarks/delivery_latency.py storm  [--rate 20] [--seconds 120] [--urgent-at 60]
    python benchmarks/delivery_latency.py pg-ingest [--posts 800] [--rounds 2] [--database URL]

steady / storm: a real `yorisoi serve` process (SQLite, the delivery worker woken on commit)
  gets posts on its signed webhook from a feeder on loopback that replays them at `--rate`
  per second (every 0.25 s the posts due by then, as a stream delivers them), and delivers to
  the fake Zendesk timed like the recorded answers (`FakeZendesk.realistic()`: 0.15 s per call,
  bulk jobs ~0.1 s per record, 700 requests/min, Update Ticket 100/min, ≤30 jobs; see
  tests/fakes/zendesk.py). A post's latency runs from the moment it was due to be sent to the
  moment its ticket exists in the fake. Targets: steady (2/s) p50 ≤ 3 s, p95 ≤ 8 s; storm
  (20/s, bulk jobs) p95 ≤ 20 s and the one urgent post sent at `--urgent-at` ≤ 5 s (it goes one
  by one in the priority lane while the echoes are in bulk jobs).
pg-ingest: ingest throughput (validate → qualify → analyse → store + outbox, batches of 200
  as `yorisoi replay` does) with two processes against one on the same PostgreSQL server, each
  configuration on a fresh database, alternating `--rounds` times; the ratio of the best
  rounds. Target ≥ 1.7×. Two processes can only scale as far as the machine has idle cores:
  the JSON says the load average and CPU count, measure on a quiet machine. It also says the
  share of one process's time spent holding the brand lock (`BrandLockClock`), which bounds
  the ratio (2 / (1 + share)) whatever the machine's load.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.base import LoopbackServer  # noqa: E402
from tests.fakes.zendesk import FakeZendesk  # noqa: E402

SECRET = "bench-webhook-secret"
TEXTS = ["ソラモバイル、駅で全然繋がらない。最悪", "ソラモバイルの請求が二重になってる。どうなってるの？",
         "ソラモバイル遅すぎる、昼休みは動画も見られない", "ソラモバイルのサポートに電話しても繋がらない"]
URGENT = "ソラモバイル解約する。最悪。消費者センターに相談します"

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake's access log


def make_post(n: int, run: str, text: str | None = None) -> dict:
    return {"platform": "x", "id": f"{run}-{n}", "url": f"https://x.com/u{n}/status/{n}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "lang": "ja",
            "text": text or f"{TEXTS[n % len(TEXTS)]} #{n}",
            "author": {"id": f"{run}-a{n}", "handle": f"user{n}", "name": f"ユーザー{n}", "followers": n % 500},
            "metrics": {"replies": 0, "reposts": n % 7, "likes": n % 13, "quotes": 0}}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine() -> dict:
    return {"load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


class Serve:
    """`yorisoi serve` against the realistic fake Zendesk, fed on its webhook."""

    def __init__(self, bulk_threshold: int | None) -> None:
        self.fake = FakeZendesk.realistic()
        self.server = LoopbackServer(self.fake.wsgi).start()
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "YORISOI_DATA_DIR": self.tmp.name,
               "YORISOI_PORT": str(self.port), "YORISOI_LOG_LEVEL": "WARNING", "YORISOI_WEBHOOK_SECRET": SECRET,
               "YORISOI_HELPDESK": "zendesk", "ZENDESK_URL": self.server.url, "ZENDESK_EMAIL": "agent@example.com",
               "ZENDESK_API_TOKEN": "test-token", "YORISOI_STORM_MIN_POSTS": "100000",
               "YORISOI_SPIKE_MIN_COUNT": "100000"}
        env.pop("YORISOI_DATABASE", None)
        if bulk_threshold is not None:
            env["ZENDESK_BULK_THRESHOLD"] = str(bulk_threshold)
        # The connector's log goes to a file (a pipe nobody reads would block it once full).
        self.log_path = Path(self.tmp.name) / "serve.log"
        self.log_file = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.log_file, text=True)
        self.session = requests.Session()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.session.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            raise SystemExit("yorisoi serve did not start")
        # Warm-up (start-up time, not latency): the first analysis loads the model and nagisa.
        self.send([make_post(0, "warm-up")])

    def send(self, posts: list[dict]) -> None:
        body = json.dumps(posts, ensure_ascii=False).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        answer = self.session.post(f"http://127.0.0.1:{self.port}/sources/webhook", data=body, timeout=120,
                                   headers={"X-Yorisoi-Signature": signature, "Content-Type": "application/json"})
        if answer.status_code != 202:
            raise SystemExit(f"webhook answered {answer.status_code}: {answer.text[:300]}")

    def tickets(self) -> dict[str, list[tuple[float, str]]]:
        """external id → [(created at, priority)] as the fake holds them."""
        with self.fake._lock:
            found: dict[str, list[tuple[float, str]]] = {}
            for ticket_id, ticket in self.fake.tickets.items():
                found.setdefault(ticket["external_id"], []).append((self.fake.created_times[ticket_id],
                                                                     ticket.get("priority") or ""))
            return found

    def warnings(self) -> list[str]:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line[:300] for line in lines if " WARNING " in line or " ERROR " in line]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log_file.close()
        self.server.stop()
        self.tmp.cleanup()


def replay(args: argparse.Namespace, storm: bool) -> dict:
    serve = Serve(args.bulk_threshold)
    run = f"{'storm' if storm else 'steady'}{int(time.time())}"
    due: dict[str, float] = {}  # external id → epoch second it was due
    urgent_id = f"yorisoi:x:{run}-urgent"
    total = int(args.rate * args.seconds)
    feeder_lag: list[float] = []
    try:
        started = time.time()
        urgent_sent = False
        n = 0
        while n < total or (storm and not urgent_sent):
            tick_end = time.time()
            batch = []
            while n < total and started + n / args.rate <= tick_end:
                post = make_post(n, run)
                due[f"yorisoi:x:{post['id']}"] = started + n / args.rate
                batch.append(post)
                n += 1
            if storm and not urgent_sent and tick_end - started >= args.urgent_at:
                batch.append(make_post(0, run, URGENT) | {"id": f"{run}-urgent"})
                due[urgent_id] = tick_end
                urgent_sent = True
            if batch:
                serve.send(batch)
                feeder_lag.append(time.time() - tick_end)
            time.sleep(max(0.0, tick_end + 0.25 - time.time()))
        sending_s = time.time() - started
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline and len(set(serve.tickets()) & set(due)) < len(due):
            time.sleep(0.5)
        created = serve.tickets()
        latencies = {k: created[k][0][0] - t for k, t in due.items() if k in created}
        regular = [v for k, v in latencies.items() if k != urgent_id]
        result = {
            "benchmark": "delivery_latency " + ("storm" if storm else "steady"),
            "helpdesk": "fake Zendesk, realistic timing (700 req/min, Update Ticket 100/min, jobs ~0.1 s/record)",
            "rate_per_s": args.rate, "seconds": args.seconds, "posts": len(due), "sending_s": round(sending_s, 1),
            "tickets": len(latencies), "missing": len(due) - len(latencies),
            "duplicates": sum(len(v) - 1 for v in created.values()),
            "p50_s": percentile(regular, 0.5), "p95_s": percentile(regular, 0.95), "p99_s": percentile(regular, 0.99),
            "max_s": round(max(regular), 2) if regular else None,
            "mean_s": round(statistics.mean(regular), 2) if regular else None,
            "feeder_p95_s": percentile(feeder_lag, 0.95),
            "zendesk_requests": len(serve.fake.log), "zendesk_429": serve.fake.refused_429,
            "zendesk_jobs": len(serve.fake.jobs), "max_jobs_in_flight": serve.fake.max_jobs_in_flight_seen,
            "one_by_one_creates": len(serve.fake.calls("POST", r"^/api/v2/tickets$")),
            "connector_warnings": len(serve.warnings()), "last_warnings": serve.warnings()[-3:],
            **machine(),
        }
        if storm:
            result |= {"urgent_s": round(latencies[urgent_id], 2) if urgent_id in latencies else None,
                       "urgent_priority": created.get(urgent_id, [(0, None)])[0][1],
                       "targets": {"p95_s": 20, "urgent_s": 5}}
        else:
            result["targets"] = {"p50_s": 3, "p95_s": 8}
        return result
    finally:
        serve.close()


# --- ingest on PostgreSQL: 2 processes vs 1 ---------------------------------------------------
class BrandLockClock:
    """Times how long ingest holds the storm grouping's brand locks: from the first
    `lock_brand` of a batch's transaction (once granted) to the end of its commit, the span in
    which another instance ingesting the same brand waits. Two processes scale at most to
    2 / (1 + share) of one (Amdahl), so this share is the figure to watch; it hardly depends on
    how busy the machine is, unlike the ratio itself."""

    def __init__(self) -> None:
        from connector.db.posts import PostRepository
        from connector.db.storms import StormRepository
        self.seconds = 0.0
        self._granted: float | None = None
        lock_brand, record_posts = StormRepository.lock_brand, PostRepository.record_posts

        def timed_lock(repo: Any, tx: Any, brand: str) -> None:
            lock_brand(repo, tx, brand)
            if self._granted is None:
                self._granted = time.perf_counter()

        def timed_record(repo: Any, *args: Any, **kwargs: Any) -> None:
            self._granted = None
            try:
                record_posts(repo, *args, **kwargs)
            finally:
                if self._granted is not None:
                    self.seconds += time.perf_counter() - self._granted

        StormRepository.lock_brand = timed_lock  # type: ignore[method-assign, assignment]
        PostRepository.record_posts = timed_record  # type: ignore[method-assign, assignment]


def _ingest_worker(url: str, posts: list[dict], ready: "multiprocessing.synchronize.Barrier", out) -> None:
    from connector.config import Settings
    from connector.services import Services
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services.build(Settings.from_env({"YORISOI_DATA_DIR": tmp, "YORISOI_DATABASE": url,
                                                "YORISOI_LOG_LEVEL": "WARNING"}))
        # Warm-up (model, nagisa, statement cache) on posts of its own, before the clock starts.
        svc.pipeline.ingest_many([p | {"id": f"warm-{os.getpid()}-{i}"} for i, p in enumerate(posts[:20])], "bench")
        clock = BrandLockClock()
        ready.wait()
        started = time.perf_counter()
        stored = 0
        for i in range(0, len(posts), 200):
            stored += sum(o.status in ("queued", "follow_up", "dropped")
                          for o in svc.pipeline.ingest_many(posts[i:i + 200], "bench"))
        wall = time.perf_counter() - started
        out.put((wall, stored, clock.seconds / wall))
        svc.close()


def _ingest_round(admin_url: str, posts: list[dict], processes: int) -> dict:
    from tests import pg
    os.environ.setdefault("YORISOI_TEST_POSTGRES", admin_url)
    pg.ADMIN_URL = admin_url
    with pg.fresh_database() as url:
        from connector.store import Store
        Store(url).engine.dispose()  # schema created once, before the clock
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Barrier(processes + 1)
        out = ctx.Queue()
        shares = [posts[i::processes] for i in range(processes)]
        workers = [ctx.Process(target=_ingest_worker, args=(url, share, ready, out)) for share in shares]
        for worker in workers:
            worker.start()
        ready.wait()
        started = time.perf_counter()
        results = [out.get(timeout=1800) for _ in workers]
        wall = time.perf_counter() - started
        for worker in workers:
            worker.join(60)
    stored = sum(r[1] for r in results)
    return {"processes": processes, "posts": stored, "wall_s": round(wall, 2),
            "posts_per_s": round(stored / wall, 1),
            "brand_lock_held_share": round(statistics.mean(r[2] for r in results), 3),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def pg_ingest(args: argparse.Namespace) -> dict:
    from benchmarks.pipeline_throughput import synthetic_posts
    posts = synthetic_posts(args.posts)
    rounds: list[dict] = []
    for _ in range(args.rounds):
        for processes in (1, 2):
            rounds.append(_ingest_round(args.database, posts, processes))
    best = {p: max(r["posts_per_s"] for r in rounds if r["processes"] == p) for p in (1, 2)}
    share = statistics.median(r["brand_lock_held_share"] for r in rounds if r["processes"] == 1)
    return {"benchmark": "delivery_latency pg-ingest: 2 processes vs 1 on one PostgreSQL",
            "database": args.database.split("@")[-1], "posts": args.posts, "rounds": rounds,
            "best_posts_per_s": best, "speedup_2_vs_1": round(best[2] / best[1], 2), "target": 1.7,
            # One process's time holding the brand lock (median of its rounds) and the 2-vs-1 ratio
            # it allows at most: ≥ 1.7× needs a share ≤ 0.176.
            "brand_lock_held_share_1_process": round(share, 3),
            "amdahl_bound_2_vs_1": round(2 / (1 + share), 2), **machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["steady", "storm", "pg-ingest"])
    parser.add_argument("--rate", type=float, default=None, help="posts per second (steady 2, storm 20)")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--urgent-at", type=float, default=60.0, help="storm: second at which the urgent post is sent")
    parser.add_argument("--drain-seconds", type=float, default=180.0, help="wait this long for the last tickets")
    parser.add_argument("--bulk-threshold", type=int, default=None, help="ZENDESK_BULK_THRESHOLD (default: the connector's)")
    parser.add_argument("--posts", type=int, default=800, help="pg-ingest: posts per configuration")
    parser.add_argument("--rounds", type=int, default=2, help="pg-ingest: alternating rounds of 1 and 2 processes")
    parser.add_argument("--database", default=os.environ.get("YORISOI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="pg-ingest: server to create throwaway databases on")
    args = parser.parse_args()
    if args.rate is None:
        args.rate = 20.0 if args.kind == "storm" else 2.0
    if args.kind == "pg-ingest":
        result = pg_ingest(args)
    else:
        result = replay(args, storm=args.kind == "storm")
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
