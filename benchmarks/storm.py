"""Storm grouping benchmark: a synthetic storm with known truth; prints JSON.

10,000 posts over two hours about one brand: 80% echoes of five incidents (quotes with a
comment, 「私も」 + a shortened copy, copy-paste with small edits, hashtags and links added),
20% unrelated posts built from the same vocabulary. Measures
- grouping throughput of the online index alone (`StormIndex`, what `observe` adds per post
  besides its one INSERT), and of the whole `Storms.observe` path with SQLite;
- pairwise precision/recall of the clusters against the generator's truth (targets ≥ 0.95 /
  ≥ 0.90), and how many problem tickets the storms would make vs. posts;
- echoes (issue 17): bare replies and quotes (「私も！」「うちも」「同じく」, naming no brand) to the
  storm's posts, sent through the whole ingest (`Pipeline.ingest_many` on SQLite), a share of them
  before their parent (streams deliver out of order): the share counted into their parent's storm
  (target ≥ 0.95) and how many got a ticket of their own (voices only).

    python benchmarks/storm.py [--posts 10000] [--seed 7] [--with-store] [--echo-posts 1500 --echoes 300]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.storms import StormIndex, StormSettings, band_keys, clean_text, shingles, signature  # noqa: E402

INCIDENTS = [
    "ソラモバイル、朝からずっと圏外で電話もネットも全く繋がらない。仕事の連絡が取れなくて本当に困ってる",
    "ソラモバイルから身に覚えのない請求が二重に来てる。問い合わせ窓口に電話しても全然繋がらないんだけど",
    "ソラモバイルのアプリが最新版にしたら起動直後に落ちる。ログインもできないし支払い確認もできない",
    "ソラモバイルのショップで店員に説明もなく勝手にオプション契約されてた。解約しようとしたら違約金と言われた",
    "ソラモバイルの公式アカウントが障害について何も発表しないのはおかしい。せめて復旧の見込みを教えてほしい",
]
PREFIXES = ["", "", "これ私も！ → ", "私もです。", "うちも。", "【拡散希望】", "同じく", "え、マジで？ ", "RT希望 "]
SUFFIXES = ["", "", "。最悪", "…", " #ソラモバイル障害", " https://x.com/a/status/1", "！！", "。どうなってるの？", " ほんとに困る"]
VOCAB = ["ソラモバイル", "料金", "プラン", "値上げ", "店員", "親切", "アプリ", "便利", "電波", "良い", "乗り換え",
         "キャンペーン", "ポイント", "還元", "家族割", "5G", "速度", "満足", "新機種", "予約", "届いた", "最悪", "遅い",
         "サポート", "チャット", "対応", "丁寧", "解約", "手続き", "簡単", "SIM", "eSIM", "設定", "できた"]


def echo(rng: random.Random, base: str) -> str:
    text = base
    if rng.random() < 0.5:  # small edits: drop or swap a few characters
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(chars))
            if rng.random() < 0.5:
                del chars[i]
            else:
                chars[i] = rng.choice("、。！？ーあいう")
        text = "".join(chars)
    if rng.random() < 0.3:  # a shortened copy
        text = text[: max(25, int(len(text) * rng.uniform(0.6, 0.9)))]
    return rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)


def generate(n: int, seed: int) -> list[tuple[str, datetime, str, int | None]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    posts = []
    for i in range(n):
        at = start + timedelta(seconds=rng.uniform(0, 7200))
        if rng.random() < 0.8:
            truth = rng.randrange(len(INCIDENTS))
            text = echo(rng, INCIDENTS[truth])
        else:
            truth = None
            text = "ソラモバイル" + "".join(rng.choice(VOCAB) for _ in range(rng.randint(5, 12)))
        posts.append((f"x:{i}", at, text, truth))
    posts.sort(key=lambda p: p[1])
    return posts


def group(posts: list[tuple[str, datetime, str, int | None]], settings: StormSettings) -> dict[str, int]:
    """The online assignment `Storms.observe` makes, with the storms kept in memory."""
    index = StormIndex(settings.similarity, settings.window)
    drop = (clean_text("ソラモバイル"),)
    storm_of: dict[str, int | None] = {}
    next_id = 0
    for key, at, text, _ in posts:
        sh = shingles(clean_text(text, drop))
        keys = band_keys(signature(sh))
        entry, _, _ = index.find(sh, at, keys)
        storm = None
        if entry is not None:
            storm = storm_of[entry.post_key]
            if storm is None:
                next_id += 1
                storm = next_id
                storm_of[entry.post_key] = storm
                index.set_storm(entry.post_key, storm)
        storm_of[key] = storm
        index.add(key, storm, at, sh, keys)
    return {k: s for k, s in storm_of.items() if s is not None}


def pairwise(assigned: dict[str, int], truth: dict[str, int | None]) -> tuple[float, float]:
    def pairs(groups: dict[object, int]) -> int:
        return sum(c * (c - 1) // 2 for c in groups.values())

    predicted = Counter(assigned.values())
    true = Counter(t for t in truth.values() if t is not None)
    both = Counter((assigned[k], truth[k]) for k in assigned if truth.get(k) is not None)
    tp = pairs(both)  # type: ignore[arg-type]
    return tp / max(1, pairs(predicted)), tp / max(1, pairs(true))  # type: ignore[arg-type]


def with_store(posts: list[tuple[str, datetime, str, int | None]]) -> float:
    """Posts per second through `Storms.observe` (index + the member row in SQLite)."""
    from connector.models import Analysis, Decision, Label, Post
    from connector.store import Store
    from connector.storms import Storms

    store = Store(f"sqlite:///{tempfile.mkdtemp()}/storm.sqlite3")
    storms = Storms(store.storms, StormSettings(min_posts=10**9, spike_min_count=10**9), {"ソラモバイル": ("ソラモバイル",)},
                    clock=lambda: datetime.now(timezone.utc))
    label = Label("negative", -0.8)
    analysis = Analysis(label, Label("complaint", 0.9), Label("common", 0.5), Label("quality", 0.5),
                        Label("accuracy", 0.5), Label("medium", 0.5), Label("normal", 0.5), "ja")
    decision = Decision(True, "ソラモバイル", ("matched keyword ソラモバイル",))
    from connector.db.schema import authors
    from connector.db.schema import posts as posts_table
    with store.engine.begin() as conn:  # the posts exist before observe runs, as in ingest
        conn.execute(authors.insert().values(key="x:1", platform="x", author_id="1", updated_at=datetime.now(timezone.utc)))
        conn.execute(posts_table.insert(), [dict(key=k, platform="x", post_id=k[2:], created_at=at, text=text,
                                                 author_key="x:1", metrics={}, qualified=True, brand="ソラモバイル",
                                                 reasons=[], source="bench", ingested_at=at) for k, at, text, _ in posts])
    objects = [Post.model_validate({"platform": "x", "id": k[2:], "created_at": at, "text": text,
                                    "author": {"id": "1"}}) for k, at, text, _ in posts]
    started = time.perf_counter()
    for post in objects:
        storms.observe(post, decision, analysis)
    return len(objects) / (time.perf_counter() - started)


BARE_ECHOES = ["私も！", "うちも", "同じく", "うちもです…", "私も。最悪", "これ", "ほんとそれ", "me too", "same here",
               "わかる", "うちもさっきから", "同じく😭"]


def echo_run(storm_posts: int, echoes: int, seed: int, early_share: float = 0.2) -> dict[str, object]:
    """Bare replies/quotes to storm posts through the real ingest; the share counted in."""
    from sqlalchemy import select

    from connector.config import Settings
    from connector.db.schema import storm_members
    from connector.services import Services

    rng = random.Random(seed)
    generated = generate(storm_posts, seed)
    watch = Path(tempfile.mkdtemp()) / "watch.toml"
    watch.write_text('[[brand]]\nname = "ソラモバイル"\nkeywords = ["ソラモバイル"]\n', encoding="utf-8")

    def as_post(key: str, at: datetime, text: str, author: str, **refs: str) -> dict[str, object]:
        return {"platform": "x", "id": key[2:], "created_at": at.isoformat(), "lang": "ja", "text": text,
                "author": {"id": author, "followers": rng.randint(0, 3000)}, **refs}

    stream = [as_post(k, at, text, f"a{i}") for i, (k, at, text, _) in enumerate(generated)]
    parents = [(k, at) for k, at, _, truth in generated if truth is not None]
    for n in range(echoes):
        parent, at = rng.choice(parents)
        ref = {"quote_of": parent[2:]} if rng.random() < 0.3 else {"in_reply_to": parent[2:], "conversation_id": parent[2:]}
        post = as_post(f"x:echo{n}", at + timedelta(seconds=rng.uniform(5, 900)), rng.choice(BARE_ECHOES), f"e{n}", **ref)
        position = next(i for i, p in enumerate(stream) if p["id"] == parent[2:])
        if rng.random() < early_share:  # out of order: before its parent
            stream.insert(rng.randint(max(0, position - 300), position), post)
        else:
            stream.insert(rng.randint(position + 1, min(len(stream), position + 300)), post)
    with tempfile.TemporaryDirectory() as tmp:
        svc = Services.build(Settings.from_env({"YORISOI_DATA_DIR": tmp, "YORISOI_WATCH": str(watch),
                                                "YORISOI_LOG_LEVEL": "ERROR"}))
        try:
            started = time.perf_counter()
            outcomes = []
            for i in range(0, len(stream), 200):
                outcomes += svc.pipeline.ingest_many(stream[i:i + 200], "bench")
            elapsed = time.perf_counter() - started
            with svc.store.engine.connect() as conn:
                storm_of = {r.post_key: r.storm_id for r in conn.execute(select(storm_members.c.post_key,
                                                                                storm_members.c.storm_id))}
        finally:
            svc.close()
    status = {o.key: o.status for o in outcomes}
    to_storms = counted = own_tickets = early = 0
    for post in stream:
        if not str(post["id"]).startswith("echo"):
            continue
        parent = f"x:{post.get('in_reply_to') or post.get('quote_of')}"
        if storm_of.get(parent) is None:
            continue  # its parent stood alone: not a storm's post
        to_storms += 1
        counted += storm_of.get(f"x:{post['id']}") == storm_of[parent]
        own_tickets += status.get(f"x:{post['id']}") == "queued"
    early = sum(1 for i, p in enumerate(stream) if str(p["id"]).startswith("echo")
                and any(q["id"] == (p.get("in_reply_to") or p.get("quote_of")) for q in stream[i + 1:]))
    return {"storm_posts": storm_posts, "bare_echoes": echoes, "echoes_before_their_parent": early,
            "echoes_to_storm_posts": to_storms, "counted_into_the_parents_storm": counted,
            "share_counted": round(counted / max(1, to_storms), 4), "target_share": 0.95,
            "echoes_with_a_ticket_of_their_own": own_tickets,
            "ingest_posts_per_second": round(len(stream) / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--with-store", action="store_true", help="also time Storms.observe with SQLite")
    parser.add_argument("--echo-posts", type=int, default=1500, help="storm posts of the echo run (0: skip it)")
    parser.add_argument("--echoes", type=int, default=300, help="bare replies and quotes in the echo run")
    args = parser.parse_args()
    settings = StormSettings()
    posts = generate(args.posts, args.seed)
    truth = {k: t for k, _, _, t in posts}
    started = time.perf_counter()
    assigned = group(posts, settings)
    elapsed = time.perf_counter() - started
    precision, recall = pairwise(assigned, truth)
    sizes = Counter(assigned.values())
    problems = sum(1 for s in sizes.values() if s >= settings.min_posts)
    grouped = sum(s for s in sizes.values() if s >= settings.min_posts)
    result = {
        "posts": len(posts), "echoes": sum(1 for t in truth.values() if t is not None),
        "incidents": len(INCIDENTS), "similarity_threshold": settings.similarity,
        "grouping_posts_per_second": round(len(posts) / elapsed),
        "precision": round(precision, 4), "recall": round(recall, 4),
        "storms": len(sizes), "problem_tickets": problems, "posts_in_problem_storms": grouped,
        "largest_storms": [s for _, s in sizes.most_common(8)],
        "tickets": {"problem": problems, "incident_or_own": len(posts)},
        "targets": {"precision": 0.95, "recall": 0.90, "posts_per_second": 2000},
    }
    if args.with_store:
        result["observe_with_sqlite_posts_per_second"] = round(with_store(posts))
    if args.echo_posts:
        result["bare_replies"] = echo_run(args.echo_posts, args.echoes, args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
