"""Dashboard page times over a year of data: seeds ≥ 1,000,000 posts straight through SQL
(bulk inserts shaped exactly like the pipeline's rows and report tables; no nagisa), a year of
tickets with first replies (so /response-times over a year merges a year of response times),
storms twice a day, signs a supervisor in, requests every page repeatedly and prints p50/p95
per page in ms as JSON, with each page's ratio to a baseline measured in the same run (the
login page: a template and no query) and the machine's load average before and after.

    python benchmarks/dashboard_pages.py [--posts 1000000] [--db PATH] [--runs 15]

With --db pointing at an existing file seeded earlier, seeding is skipped (it takes minutes);
a file seeded by an older version is brought up to date by the app's migrations on opening.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.db.counts import monday_of  # noqa: E402
from connector.latency_bins import bin_of  # noqa: E402
from connector.report_time import report_day  # noqa: E402
from connector.store import Store  # noqa: E402

SENTIMENTS = (("negative", 4), ("neutral", 3), ("positive", 3))
INTENTS = (("complaint", 3), ("question", 3), ("request", 1), ("praise", 2), ("report", 1), ("other", 2))
EXPECT_TYPES = (("common", 5), ("individual", 2), ("situational", 2), ("latent", 1))
EXPECT_CONTENT = (("menu", 2), ("price", 3), ("quality", 5))
AXES = (("accuracy", 3), ("speed", 3), ("flexibility", 1), ("empathy", 1), ("reassurance", 2), ("impression", 2))
PLATFORMS = (("x", 6), ("mastodon", 1), ("bluesky", 2), ("rss", 1))
BRANDS = (("ソラモバイル", 8), ("ソラ光", 2))
DROP_REASONS = ("no brand keyword, hashtag or mention matched", "repost of another post",
                "excluded word 求人", "from an own or excluded account @soramobile_jp", "spam: too many hashtags")
PRIORITY_OF_RISK = {"critical": "urgent", "high": "high", "medium": "normal", "low": "low"}


def pick(rng: random.Random, weighted):
    values, weights = zip(*weighted)
    return rng.choices(values, weights)[0]


def ts(moment: datetime) -> str:
    """SQLAlchemy's SQLite storage format for our UTCDateTime (naive UTC with microseconds)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


MONTHLY_TOPICS_SQL = ("INSERT INTO report_topic_monthly SELECT substr(day, 1, 7), brand, platform, topic, count(*) "
                      "FROM post_topics GROUP BY substr(day, 1, 7), brand, platform, topic")


def seed(path: Path, total: int, seed_value: int = 8) -> dict:
    Store(f"sqlite:///{path}").engine.dispose()  # the schema, exactly as the app creates it
    rng = random.Random(seed_value)
    vocabulary = [f"話題{n}" for n in range(3000)]
    zipf = [1 / (n + 1) for n in range(len(vocabulary))]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=365)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    authors = [(f"x:a{n}", "x", f"a{n}", f"user{n}", f"ユーザー{n}", "", "東京", rng.randint(10, 50000), 100, None,
                None, ts(now)) for n in range(20000)]
    db.executemany("INSERT INTO authors VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", authors)
    daily: Counter = Counter()
    one_label: Counter = Counter()
    reasons: Counter = Counter()
    response_hist: Counter = Counter()
    batch_storm_members: list = []
    storm_rows: dict[int, dict] = {}
    storm_every = max(1, total // 730)  # a storm starts twice a day and gathers posts for two hours
    storm_span = max(1, total // (365 * 12))
    batch_posts, batch_analyses, batch_outbox, batch_tickets, batch_facts, batch_topics, batch_exchanges = \
        [], [], [], [], [], [], []
    ticket_no = outbox_id = 0

    def flush():
        db.executemany("INSERT INTO posts (key, platform, post_id, url, created_at, lang, text, author_key, metrics, "
                       "in_reply_to, conversation_id, repost_of, qualified, brand, reasons, source, ingested_at) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_posts)
        db.executemany("INSERT INTO analyses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_analyses)
        db.executemany("INSERT INTO outbox (id, post_key, kind, ticket_post_key, status, attempts, next_attempt_at, "
                       "claimed_by, lease_until, last_error, created_at, updated_at, done_at) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_outbox)
        db.executemany("INSERT INTO tickets VALUES (?,?,?,?,?,?,?,?,?)", batch_tickets)
        db.executemany("INSERT INTO ticket_facts (post_key, day, brand, platform, sentiment, intent, expectation_type, "
                       "expectation_content, quality_axis, priority, risk, risk_score, posted_at, ticket_seconds, "
                       "reply_seconds, answered) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch_facts)
        db.executemany("INSERT INTO post_topics VALUES (?,?,?,?,?,?,?,?,?,?)", batch_topics)
        db.executemany("INSERT INTO storm_members (post_key, storm_id, brand, created_at, negative, resembles, "
                       "similarity, reason, role, risk_score, linked) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       batch_storm_members)
        db.executemany("INSERT INTO exchanges (dedupe_key, ticket_post_key, reply_to_key, helpdesk, ticket_id, agent, "
                       "text, status, network_id, url, error, created_at, sent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       batch_exchanges)
        for batch in (batch_posts, batch_analyses, batch_outbox, batch_tickets, batch_facts, batch_topics,
                      batch_exchanges, batch_storm_members):
            batch.clear()

    for n in range(total):
        posted = start + timedelta(seconds=365 * 86400 * n / total + rng.random() * 30)
        platform = pick(rng, PLATFORMS)
        key = f"{platform}:p{n}"
        day = report_day(posted)
        qualified = rng.random() < 0.55
        brand = pick(rng, BRANDS) if qualified or rng.random() < 0.3 else None
        text = f"{brand or 'そら'}の件で投稿 {n}: 駅で繋がらない、料金も高い"
        if qualified:
            labels = (pick(rng, SENTIMENTS), pick(rng, INTENTS), pick(rng, EXPECT_TYPES), pick(rng, EXPECT_CONTENT),
                      pick(rng, AXES))
            risk_score = min(1.0, rng.betavariate(1.2, 5))
            risk = "critical" if risk_score > 0.75 else "high" if risk_score > 0.5 else "medium" if risk_score > 0.25 else "low"
            priority = PRIORITY_OF_RISK[risk]
            why = [f"matched keyword {brand}"]
        else:
            labels = ("", "", "", "", "")
            why = [rng.choice(DROP_REASONS)]
        batch_posts.append((key, platform, f"p{n}", f"https://example.com/{n}", ts(posted), "ja", text,
                            f"x:a{rng.randrange(20000)}", '{"replies": 0, "reposts": 1, "likes": 2, "quotes": 0}',
                            None, None, None, int(qualified), brand, json.dumps(why, ensure_ascii=False), "bench",
                            ts(posted + timedelta(seconds=20))))
        daily[(day, brand or "", platform, int(qualified), *labels)] += 1
        one_label[("qualified", day, brand or "", platform, str(int(qualified)))] += 1
        one_label[("platform", day, brand or "", platform, platform)] += 1
        if qualified:
            for name, value in zip(("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis"),
                                   labels):
                one_label[(name, day, brand or "", platform, value)] += 1
        for reason in why:
            reasons[(day, brand or "", platform, int(qualified), reason)] += 1
        if qualified:
            batch_analyses.append((key, labels[0], -0.5 if labels[0] == "negative" else 0.3, labels[1], labels[2],
                                   labels[3], labels[4], risk, risk_score, priority, "{}", "bench", ts(posted)))
            outbox_id += 1
            is_ticket = rng.random() < 0.85
            age_days = (now - posted).days
            status = "done" if age_days > 1 or rng.random() < 0.9 else rng.choice(("pending", "failed"))
            batch_outbox.append((outbox_id, key, "create" if is_ticket else "comment", key, status,
                                 1 if status == "done" else 3, ts(posted), None, None,
                                 "HTTP 422: priority is invalid" if status == "failed" else None, ts(posted),
                                 ts(posted), ts(posted) if status == "done" else None))
            if is_ticket and status == "done":
                ticket_no += 1
                ticket_s = int(rng.lognormvariate(math.log(40), 0.8))
                created = posted + timedelta(seconds=ticket_s)
                answered = age_days > 3 and rng.random() < 0.97 or rng.random() < 0.5
                reply_s = int(ticket_s + rng.lognormvariate(math.log(1800), 1.2)) if answered else None
                batch_tickets.append((key, "local", str(ticket_no), None, f"yorisoi:{key}", f"[{brand}] {text[:30]}",
                                      priority, '["yorisoi"]', ts(created)))
                batch_facts.append((key, day, brand, platform, *labels, priority, risk, risk_score, ts(posted),
                                    ticket_s, reply_s, int(answered)))
                response_hist[(day, priority, "ticket", brand, platform, bin_of(ticket_s))] += 1
                if reply_s is not None:
                    response_hist[(day, priority, "reply", brand, platform, bin_of(reply_s))] += 1
                if answered:
                    batch_exchanges.append((f"bench:{key}", key, key, "local", str(ticket_no), "佐藤", "返信", "recorded",
                                            None, None, None, ts(posted + timedelta(seconds=reply_s)),
                                            ts(posted + timedelta(seconds=reply_s))))
            if labels[0] == "negative":
                storm_id = n // storm_every + 1 if n % storm_every < storm_span and rng.random() < 0.5 else None
                if storm_id is not None:
                    storm = storm_rows.setdefault(storm_id, {"brand": brand, "first": key, "started": posted, "size": 0})
                    if storm["brand"] == brand:
                        storm["size"] += 1
                        storm["last"] = posted
                    else:
                        storm_id = None
                batch_storm_members.append((key, storm_id, brand, ts(posted), 1, None, None,
                                            "near-duplicate (bench)" if storm_id else None, "echo", risk_score, 0))
            if labels[0] == "negative" or labels[1] == "complaint":
                for topic in set(rng.choices(vocabulary, zipf, k=rng.randint(1, 4))):
                    batch_topics.append((key, topic, day, brand, platform, *labels))
        if len(batch_posts) >= 50000:
            flush()
    flush()
    db.executemany("INSERT INTO report_daily VALUES (?,?,?,?,?,?,?,?,?,?)", [(*k, v) for k, v in daily.items()])
    db.executemany("INSERT INTO report_daily_label VALUES (?,?,?,?,?,?)", [(*k, v) for k, v in one_label.items()])
    db.executemany("INSERT INTO report_reasons VALUES (?,?,?,?,?,?)", [(*k, v) for k, v in reasons.items()])
    db.execute(MONTHLY_TOPICS_SQL)  # what ingest keeps per month, counted in one go
    # The tickets search's FTS5 index, as mark_created fills it (rowid = the ticket post's outbox.id).
    db.execute("INSERT INTO ticket_search (rowid, subject, text) SELECT o.id, t.subject, p.text FROM outbox o "
               "JOIN tickets t ON t.post_key = o.post_key JOIN posts p ON p.key = o.post_key")
    db.executemany("INSERT INTO report_response_hist (day, priority, kind, brand, platform, bin, n) "
                   "VALUES (?,?,?,?,?,?,?)", [(*k, v) for k, v in response_hist.items()])
    weekly: Counter = Counter()
    for (day, priority, kind, _, _, b), n in response_hist.items():
        weekly[(monday_of(day), priority, kind, b)] += n
    db.executemany("INSERT INTO report_response_weekly (week, priority, kind, bin, n) VALUES (?,?,?,?,?)",
                   [(*k, v) for k, v in weekly.items()])
    db.executemany("INSERT INTO storms (id, brand, first_post_key, started_at, last_post_at, size, topic, reported_size, "
                   "job_attempts) VALUES (?,?,?,?,?,?,?,?,?)",
                   [(i, s["brand"], s["first"], ts(s["started"]), ts(s["last"]), s["size"], "話題1", 0, 0)
                    for i, s in storm_rows.items()])
    db.commit()
    counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("posts", "tickets", "post_topics", "report_daily", "report_daily_label", "report_reasons",
                            "ticket_facts", "report_topic_monthly", "report_response_hist", "report_response_weekly", "storms",
                            "storm_members")}
    db.close()
    return counts


PAGES = {
    "overview": "/overview",
    "topics": "/topics",
    "risk": "/risk",
    "response_times": "/response-times",
    "qualification_log": "/decisions",
    "outbox": "/outbox",
    "overview_filtered": "/overview?brand=ソラモバイル&source=x&sentiment=negative&intent=complaint",
    "overview_year": "/overview?from={year_ago}&to={today}",
    "today": "/",
    "weekly": "/reports/weekly",
    "topics_year": "/topics?from={year_ago}&to={today}",
    "response_times_year": "/response-times?from={year_ago}&to={today}",
    "qualification_log_year": "/decisions?from={year_ago}&to={today}&only=dropped",
    "csv_overview_sentiment": "/export/volume_sentiment.csv",
    "healthz": "/healthz",
    "risk_year": "/risk?from={year_ago}&to={today}",
    "response_times_year_brand_source": "/response-times?from={year_ago}&to={today}&brand=ソラモバイル&source=x",
    "response_times_year_labels": "/response-times?from={year_ago}&to={today}&sentiment=negative&intent=complaint",
    "csv_response_summary_year": "/export/response_summary.csv?from={year_ago}&to={today}",
    "weekly_xlsx": "/reports/weekly?format=xlsx",
    "tickets": "/tickets",
    "tickets_filtered": "/tickets?priority=urgent&state=open&source=x",
    "tickets_search": "/tickets?q=投稿 99999",
    # A word in every ticket (through the trigram index, then capped at 10,000), and words too
    # short for trigrams: common (stops early) and found nowhere (reads the whole FTS table).
    "tickets_search_common": "/tickets?q=繋がらない",
    "tickets_search_short_common": "/tickets?q=料金",
    "tickets_search_short_none": "/tickets?q=ゞゞ",
    "tickets_page_2000": "/tickets?page=2000",
    "storms": "/storms",
    "post": "/posts/{post_key}",
}


def measure(db_path: Path, runs: int) -> dict:
    from connector import create_app
    from connector.config import Settings
    from connector.report_time import today
    from connector.web.auth import hash_password
    app = create_app(Settings.from_env({"YORISOI_DATABASE": str(db_path), "YORISOI_LOG_LEVEL": "WARNING",
                                        "YORISOI_DATA_DIR": str(db_path.parent)}))
    store = app.extensions["yorisoi"].store
    store.accounts.create_user("bench", hash_password("benchmark-password"), replace=True)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/login", data={"name": "bench", "password": "benchmark-password",
                                       "csrf_token": token}).status_code == 302
    end = today()
    with sqlite3.connect(db_path) as db:
        post_key = db.execute("SELECT post_key FROM tickets ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    values = {"today": end.isoformat(), "year_ago": (end - timedelta(days=364)).isoformat(), "post_key": post_key}
    anonymous = app.test_client()

    def timed(get, url: str) -> dict:
        times = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            response = get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        times = sorted(times[1:])  # the first request warms SQLite's page cache
        return {"url": url, "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[max(0, math.ceil(0.95 * len(times)) - 1)], 1), "bytes": len(response.data)}

    baseline = timed(anonymous.get, "/login")
    results = {}
    for name, url in PAGES.items():
        results[name] = timed(client.get, url.format(**values))
    after = timed(anonymous.get, "/login")  # the baseline again: did the load change meanwhile?
    for row in results.values():
        row["p50_ratio"] = round(row["p50_ms"] / max(baseline["p50_ms"], 0.1), 1)
        row["p95_ratio"] = round(row["p95_ms"] / max(baseline["p95_ms"], 0.1), 1)
    app.extensions["yorisoi"].close()
    return {"baseline_login_before": baseline, "baseline_login_after": after, "pages": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to seed (or reuse when it exists)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory()
        args.db = Path(tmp.name) / "bench.sqlite3"
    seeded = None
    if not args.db.exists():
        started = time.perf_counter()
        seeded = seed(args.db, args.posts)
        seeded["seconds"] = round(time.perf_counter() - started, 1)
    counts = {}
    with sqlite3.connect(args.db) as db:
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("posts", "tickets", "post_topics")}
        counts["answered_tickets"] = db.execute("SELECT count(*) FROM ticket_facts WHERE answered = 1").fetchone()[0]
        counts["first_ticket_day"], counts["last_ticket_day"] = db.execute(
            "SELECT min(day), max(day) FROM ticket_facts").fetchone()
    load_before = os.getloadavg()
    results = measure(args.db, args.runs)
    load_after = os.getloadavg()
    slowest = max(results["pages"].items(), key=lambda item: item[1]["p95_ms"])
    print(json.dumps({"database": "sqlite", "rows": counts, "seeding": seeded, "runs_per_page": args.runs,
                      "cpus": os.cpu_count(), "load_average_1_5_15": {"before": load_before, "after": load_after},
                      **results, "slowest_p95": {"page": slowest[0], "p95_ms": slowest[1]["p95_ms"]}},
                     ensure_ascii=False, indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
