"""Public storms (炎上): group the echoes of one incident, answer once, alert on spikes.

Three parts, each small:

1. **Grouping** (pure functions + an index in the database): every qualifying post is compared with
   the recent posts of the same brand (within `window`) by the similarity of their character
   3-gram sets, after the brand's own names, URLs and @mentions are taken out (they are in
   every post and would make unrelated complaints look alike). Candidates come from a MinHash
   LSH index (numpy; 64 hashes in 32 bands of 2, so pairs from Jaccard ≈ 0.2 up are found with
   high probability; the band keys are rows of `storm_bands`, written in the post's ingest
   transaction under a per-brand lock, so every instance sharing the database groups alike and
   a post is never stored without its place in a storm), then the exact score decides:
   `max(Jaccard, containment)`, where containment (|A∩B| / the smaller set) counts only when
   the smaller post has at least MIN_CONTAINMENT_SHINGLES 3-grams — a quote (「これ私も→」 +
   the original text) contains the original, while a two-word 「私も」 contains nothing worth
   matching. A reply to a post already in a storm joins that storm outright. Each assignment
   is stored with the post it resembles and the score (the explanation the dashboard shows).
   **Echoes**: a reply or quote that names no brand (「私も！」「うちも」「同じく」) whose parent is
   a storm member (or a lone qualified post: the storm opens with both) is counted in the
   storm too, on the problem ticket's running count, without a ticket of its own unless its
   author is a voice (`voice_reason`: reach, a question or request, an expectation of its own).
   Streams deliver out of order, so an echo whose parent is not a member yet waits
   (`storm_echo_waits`) and is counted in, in the same transaction, when the parent joins a
   storm within `window` of it.
2. **Tickets**: once a storm has `min_posts` posts it gets one `problem` ticket; its members'
   tickets become incidents linked to it (Zendesk `problem_id`; local helpdesk: the
   `problem_id` field). Echoes get priority low and tag `yorisoi_storm_echo`; high-reach
   authors and questions keep their priority and get `yorisoi_storm_voice`, so agents still
   answer them personally. The problem ticket's count is refreshed at most every
   `update_seconds` (Zendesk allows 30 updates per ticket per 10 minutes).
   The problem job is claimed like an outbox row (committed claim with a lease, lookup by
   external id before any re-send), so a crash never makes a second problem ticket.
3. **Spike alert**: per brand, the negative posts of the last 15 minutes are compared with the
   same clock hour of the same weekday over the past `baseline_weeks` weeks (mean per 15
   minutes, at least BASELINE_FLOOR). The test is the Poisson upper tail: with λ the baseline
   and k the count, p = P(X ≥ k | λ). It fires when k ≥ `spike_min_count` and p < `spike_alpha`;
   an active alert blocks new ones for the brand, and it ends when p ≥ SPIKE_END_ALPHA (the
   count is no longer unusual). Start and end are judged on the posts' own clock, and a new
   alert needs a check time more than one window after the last one's end (hysteresis):
   back-dated posts of a spike that already ended never reopen it. Start and end each create one ticket / note and one webhook
   message (Slack-compatible JSON).
"""
from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import zlib
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import chain, repeat
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from connector.config import ConfigError, number_setting
from connector.db.storms import Storm
from connector.evidence import say
from connector.helpdesks.base import CommentDraft, HelpdeskError, Requester, TicketDraft
from connector.models import Analysis, CountedEchoes, Decision, Post, TicketRef
from connector.ports import StormStore
from connector.qualify import echo_reason, echo_refs
from connector.sources.http import new_session
from connector.sources.netguard import allow_private
from connector.textnorm import fold
from connector.ticket_format import JST, excerpt

log = logging.getLogger(__name__)

SHINGLE = 3
MIN_CONTAINMENT_SHINGLES = 12
NUM_HASHES = 64
BANDS = 32
ROWS = NUM_HASHES // BANDS
_PRIME = 4_294_967_311  # > 2**32, so a*h + b fits in uint64 for 32-bit a, b, h
_rng = np.random.default_rng(20261122)  # fixed: signatures are comparable across restarts
_A = _rng.integers(1, 2**32 - 1, NUM_HASHES, dtype=np.uint64)
_B = _rng.integers(0, 2**32 - 1, NUM_HASHES, dtype=np.uint64)
_A_COLUMN, _B_COLUMN = _A[:, None], _B[:, None]  # one row per hash function, against a post's shingles
#: Representatives indexed per storm: enough to follow a storm whose wording drifts, few enough
#: that a 5,000-post storm does not make every new post compare with 5,000 others.
REPRESENTATIVES_PER_STORM = 12
#: Stored posts whose 3-grams are kept in memory (a cache: the index is in the database).
SHINGLE_CACHE = 20_000
SPIKE_WINDOW = timedelta(minutes=15)
#: An echo waits this long (plus the window) for its parent: as far back as a source can still
#: bring a post (X's recent search: 7 days, https://docs.x.com/x-api/posts/search/introduction).
ECHO_WAIT_KEEP = timedelta(days=8)
ECHO_WAIT_PRUNE_EVERY = timedelta(hours=1)
#: Least expected count per 15 minutes: a brand with no history is not "infinitely" surprised.
BASELINE_FLOOR = 0.5
SPIKE_END_ALPHA = 0.05
JOB_LEASE = timedelta(seconds=120)
SYSTEM_REQUESTER = Requester(external_id="yorisoi:system", name="Yorisoi 炎上検知 / storm watch", handle=None)

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@[A-Za-z0-9_.]+")


# --- settings -------------------------------------------------------------------------
@dataclass(frozen=True)
class StormSettings:
    similarity: float = 0.5
    window: timedelta = timedelta(minutes=120)
    min_posts: int = 5
    #: From this size a cluster is called 「炎上」 (YORISOI_STORM_LABEL_MIN): a problem ticket
    #: opens at `min_posts`, but five similar posts are not a storm to the agents reading it.
    label_min: int = 20
    update_seconds: float = 120.0
    high_reach: int = 10_000
    spike_alpha: float = 1e-4
    spike_min_count: int = 10
    baseline_weeks: int = 4
    alert_webhook: str | None = field(default=None, repr=False)
    allow_private: bool = False  # YORISOI_ALLOW_PRIVATE_FEEDS: the webhook may be on an intranet address

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "StormSettings":
        def num(name: str, default: float, low: float, high: float, cast: type = float) -> Any:
            return number_setting(env, name, default, low, high, cast)

        webhook = env.get("YORISOI_ALERT_WEBHOOK") or None
        if webhook and not webhook.startswith(("https://", "http://")):
            raise ConfigError("YORISOI_ALERT_WEBHOOK must be an http(s) URL")
        return cls(
            similarity=num("YORISOI_STORM_SIMILARITY", 0.5, 0.05, 1.0),
            window=timedelta(minutes=num("YORISOI_STORM_WINDOW_MINUTES", 120, 1, 7 * 24 * 60, int)),
            min_posts=num("YORISOI_STORM_MIN_POSTS", 5, 2, 100_000, int),
            label_min=num("YORISOI_STORM_LABEL_MIN", 20, 1, 10**9, int),
            update_seconds=num("YORISOI_STORM_UPDATE_SECONDS", 120.0, 20.0, 86_400.0),
            high_reach=num("YORISOI_STORM_HIGH_REACH", 10_000, 0, 10**10, int),
            spike_alpha=num("YORISOI_SPIKE_ALPHA", 1e-4, 1e-12, 0.5),
            spike_min_count=num("YORISOI_SPIKE_MIN_COUNT", 10, 1, 100_000, int),
            alert_webhook=webhook,
            allow_private=allow_private(env),
        )


# --- similarity (pure) -----------------------------------------------------------------
class _LettersAndNumbers(dict[int, int | None]):
    """A `str.translate` table that keeps letters and numbers (Unicode categories L* and N*) and
    deletes every other character, filled in as characters are first seen: one C-level look-up
    per character instead of a `unicodedata.category` call (issue 17: a third of `clean_text`)."""

    def __missing__(self, code: int) -> int | None:
        kept = code if unicodedata.category(chr(code))[0] in "LN" else None
        self[code] = kept
        return kept


_KEEP_LETTERS_AND_NUMBERS = _LettersAndNumbers()


def clean_text(text: str, drop: tuple[str, ...] = ()) -> str:
    """Text as compared: folded (width, case, kana), without URLs, mentions, the brand's own
    names, spaces and punctuation."""
    text = fold(_MENTION.sub(" ", _URL.sub(" ", text)))  # fold starts with NFKC
    for word in drop:
        if word:
            text = text.replace(word, " ")
    return text.translate(_KEEP_LETTERS_AND_NUMBERS)


def shingles(text: str, n: int = SHINGLE) -> frozenset[str]:
    if len(text) <= n:
        return frozenset([text]) if text else frozenset()
    return frozenset([text[i:i + n] for i in range(len(text) - n + 1)])


def similarity(a: frozenset[str], b: frozenset[str]) -> tuple[float, str]:
    """(score, kind): Jaccard, or containment of the smaller post when it is long enough."""
    if not a or not b:
        return 0.0, "empty"
    common = len(a & b)
    jaccard = common / (len(a) + len(b) - common)
    small = min(len(a), len(b))
    if small >= MIN_CONTAINMENT_SHINGLES:
        contained = common / small
        if contained > jaccard:
            return contained, "quote"
    return jaccard, "near-duplicate"


class _ShingleHashes(dict[str, int]):
    """CRC-32 of a 3-gram's UTF-8, kept as 3-grams are first seen (posts share most of theirs:
    a look-up is a fifth of hashing again); emptied when it reaches `limit` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, shingle: str) -> int:
        if len(self) >= self.limit:
            self.clear()
        value = self[shingle] = zlib.crc32(shingle.encode("utf-8"))
        return value


_SHINGLE_HASHES = _ShingleHashes(200_000)


def signature(sh: frozenset[str]) -> np.ndarray:
    if not sh:
        return np.zeros(NUM_HASHES, dtype=np.uint64)
    hashes = np.fromiter(map(_SHINGLE_HASHES.__getitem__, sh), dtype=np.uint64, count=len(sh))
    values = _A_COLUMN * hashes  # (a·h + b) mod p for every hash function and shingle, in place
    values += _B_COLUMN
    values %= _PRIME
    return values.min(axis=1)


_BAND_NUMBERS = [bytes([i]) for i in range(BANDS)]


def band_keys(sig: np.ndarray) -> list[bytes]:
    """Each band's `ROWS` values as bytes (native order), then the band's number: cut from one
    `tobytes` of the whole signature rather than one per band."""
    raw, width = sig.tobytes(), ROWS * sig.itemsize
    return [raw[i * width:(i + 1) * width] + _BAND_NUMBERS[i] for i in range(BANDS)]


@dataclass
class _Entry:
    post_key: str
    storm_id: int | None
    at: datetime
    shingles: frozenset[str]
    keys: list[bytes]


@dataclass(frozen=True)
class Assignment:
    """Where one post went and why."""

    post_key: str
    resembles: str | None
    similarity: float | None
    reason: str | None
    storm_id: int | None  # the storm of the resembled post (None: it was alone)

    @property
    def found(self) -> bool:
        return self.resembles is not None


class StormIndex:
    """Recent posts of one brand, searchable by similarity (MinHash LSH + exact check)."""

    def __init__(self, threshold: float, window: timedelta) -> None:
        self.threshold = threshold
        self.window = window
        self.entries: dict[str, _Entry] = {}
        self.buckets: dict[bytes, list[str]] = {}
        self.order: deque[str] = deque()
        self.per_storm: Counter[int] = Counter()

    def _expire(self, now: datetime) -> None:
        horizon = now - self.window
        while self.order and (self.order[0] not in self.entries or self.entries[self.order[0]].at < horizon):
            key = self.order.popleft()
            entry = self.entries.pop(key, None)
            if entry is None:
                continue
            if entry.storm_id is not None:
                self.per_storm[entry.storm_id] -= 1
            for band in entry.keys:
                bucket = self.buckets.get(band)
                if bucket is not None:
                    try:
                        bucket.remove(key)
                    except ValueError:
                        pass
                    if not bucket:
                        del self.buckets[band]

    def find(self, sh: frozenset[str], at: datetime, keys: list[bytes]) -> tuple[_Entry | None, float, str]:
        self._expire(at)
        best: tuple[_Entry | None, float, str] = (None, 0.0, "")
        seen: set[str] = set()
        for band in keys:
            for key in self.buckets.get(band, ()):
                if key in seen:
                    continue
                seen.add(key)
                entry = self.entries[key]
                if abs((entry.at - at).total_seconds()) > self.window.total_seconds():
                    continue
                score, kind = similarity(sh, entry.shingles)
                if score > best[1]:
                    best = (entry, score, kind)
        if best[0] is None or best[1] < self.threshold:
            return None, best[1], ""
        return best

    def add(self, post_key: str, storm_id: int | None, at: datetime, sh: frozenset[str], keys: list[bytes]) -> None:
        if storm_id is not None and self.per_storm[storm_id] >= REPRESENTATIVES_PER_STORM:
            return  # the storm is represented well enough; this post is only counted
        entry = _Entry(post_key, storm_id, at, sh, keys)
        self.entries[post_key] = entry
        self.order.append(post_key)
        if storm_id is not None:
            self.per_storm[storm_id] += 1
        for band in keys:
            self.buckets.setdefault(band, []).append(post_key)

    def set_storm(self, post_key: str, storm_id: int) -> None:
        entry = self.entries.get(post_key)
        if entry is not None and entry.storm_id is None:
            entry.storm_id = storm_id
            self.per_storm[storm_id] += 1


# --- echoes (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class EchoParent:
    """The storm member a bare reply or quote answers."""

    how: str  # reply | quote
    parent_key: str
    brand: str
    storm_id: int | None  # None: the parent stood alone until now (or joins in this batch)


#: Intents that ask something of the brand: the echo's author wants an answer of their own.
_ASKING = {"question": ("asks a question", "質問している"), "request": ("asks for something", "要望を伝えている")}
#: Expectation types that come from the writer, not from what every customer expects
#: (docs/labels.md: individual, situational, latent).
_OWN_EXPECTATION = {"individual": "個別的", "situational": "状況的", "latent": "潜在的"}


def voice_reason(post: Post, analysis: Analysis, high_reach: int) -> str | None:
    """Why an echo's author should be answered personally (a ticket of their own), or None.

    A voice has reach (YORISOI_STORM_HIGH_REACH followers or more), asks a question or for
    something, or states an expectation of their own (individual, situational or latent in
    the label guide); a model's label below the confidence threshold does not count, so a bare
    「私も！」 stays an echo.
    """
    followers = post.author.followers or 0
    if followers >= high_reach:
        return (f"voice: {followers:,} followers (≥ {high_reach:,}), answered personally / "
                f"発信力のある声: フォロワー {followers:,} 人（個別に対応）")
    unsure = set(analysis.unsure())
    intent = analysis.intent.value
    if intent in _ASKING and "intent" not in unsure:
        en, ja = _ASKING[intent]
        return f"voice: {en} (intent {intent}), answered personally / {ja}声（個別に対応）"
    expectation = analysis.expectation_type.value
    if expectation in _OWN_EXPECTATION and "expectation_type" not in unsure:
        return (f"voice: an expectation of their own ({expectation}), answered personally / "
                f"独自の事前期待（{_OWN_EXPECTATION[expectation]}）のある声（個別に対応）")
    return None


def final_echo_reasons(decision_reasons: Sequence[str], storm_id: int | None, how: str, parent_key: str) -> tuple[str, ...]:
    """An echo's reasons once it is counted: the first names the storm it joined."""
    rest = tuple(r for r in decision_reasons if not r.startswith(("echo ", "no brand keyword")))
    return (echo_reason(storm_id, how, parent_key), *rest)


# --- spike test (pure) --------------------------------------------------------------------
def poisson_tail(k: int, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(lam), computed stably in log space."""
    if k <= 0:
        return 1.0
    term = math.exp(-lam)
    cdf = 0.0
    for i in range(k):
        cdf += term
        term *= lam / (i + 1)
    if cdf < 0.999:
        return max(0.0, 1.0 - cdf)
    # Near 1: sum the tail instead of subtracting (keeps tiny p-values exact).
    tail, term_k = 0.0, math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1)) if lam > 0 else 0.0
    i, term = k, term_k
    while term > tail * 1e-16 and i < k + 10_000:
        tail += term
        i += 1
        term *= lam / i
    return tail


def baseline_hour(at: datetime) -> datetime:
    """The clock hour a moment's spike baseline is for (its cache key)."""
    return at.replace(minute=0, second=0, microsecond=0)


def baseline_windows(hour: datetime, weeks: int) -> list[tuple[datetime, datetime]]:
    """The (since, until] ranges a baseline counts: the clock hour starting at `hour`, the same
    weekday of each of the past `weeks` weeks."""
    return [(hour - timedelta(weeks=w) - timedelta(microseconds=1),
             hour - timedelta(weeks=w) + timedelta(hours=1) - timedelta(microseconds=1)) for w in range(1, weeks + 1)]


def spike_fires(count: int, baseline: float, settings: StormSettings) -> tuple[bool, float]:
    p = poisson_tail(count, max(baseline, BASELINE_FLOOR))
    return (count >= settings.spike_min_count and p < settings.spike_alpha), p


# --- formatting (pure) -------------------------------------------------------------------
def problem_external_id(storm: Storm) -> str:
    return f"yorisoi:storm:{storm.first_post_key}"


def storm_topic(words: list[str], members: list[Mapping[str, Any]]) -> str:
    if words:
        return "・".join(words[:3])
    return excerpt(members[0]["text"], 24) if members else "?"


def voices(members: list[Mapping[str, Any]], limit: int = 5) -> list[Mapping[str, Any]]:
    """The highest-risk voices: by risk score, then reach."""
    return sorted(members, key=lambda m: (-(m.get("risk_score") or 0.0), -(m.get("followers") or 0)))[:limit]


def cluster_term(size: int, lang: str, minimum: int) -> str:
    """「炎上」 only at or above `minimum` posts (YORISOI_STORM_LABEL_MIN); below it 「類似投稿のまとまり」."""
    if size >= minimum:
        return "炎上" if lang == "ja" else "Storm"
    return "類似投稿のまとまり" if lang == "ja" else "Cluster of similar posts"


def problem_subject(brand: str, topic: str, size: int, label_min: int = 20) -> str:
    return (f"[{brand}] {cluster_term(size, 'ja', label_min)}: {topic} — {size}件 / "
            f"{cluster_term(size, 'en', label_min)}: {topic} — {size} posts")


def member_line(m: Mapping[str, Any]) -> str:
    who = f"@{m['handle']}" if m.get("handle") else (m.get("name") or m["post_key"])
    ticket = f" → #{m['ticket_id']}" if m.get("ticket_id") else ""
    reach = f", {m['followers']:,} followers" if m.get("followers") else ""
    return f"- {who}{reach} ({m.get('risk') or '?'}): {excerpt(m['text'], 60)}{ticket}"


def problem_draft(storm: Storm, members: list[Mapping[str, Any]], words: list[str],
                  label_min: int = 20) -> TicketDraft:
    first = members[0]
    size = storm.size
    topic = storm_topic(words, members)
    started = storm.started_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    headline = ([f"炎上の可能性: 同じ出来事についての投稿が {size} 件あります（{started} から）。",
                 f"Possible storm: {size} posts about the same incident since {started}."]
                if size >= label_min else
                [f"類似投稿のまとまり: 同じ出来事についての投稿が {size} 件あります（{started} から）。"
                 f"{label_min} 件以上で「炎上」と呼びます。",
                 f"Cluster of similar posts: {size} posts about the same incident since {started} "
                 f"(called a storm from {label_min})."])
    lines = [
        *headline,
        "",
        "■ 最初の投稿 / First post:",
        member_line(first),
        *( [f"  {first['url']}"] if first.get("url") else [] ),
        "",
        f"■ 件数 / Posts: {size}（更新されます / kept up to date）",
        f"■ よく出る言葉 / Top words: {'、'.join(words) if words else '—'}",
        "■ リスクの高い声 / Highest-risk voices:",
        *(member_line(m) for m in voices(members)),
        "",
        "このチケットを解決すると、リンクされたインシデントにも同じ回答が届きます（Zendesk）。",
        "Solving this problem ticket answers every linked incident at once (Zendesk).",
    ]
    note = ["Yorisoi のまとめ方 / how posts were grouped:"]
    for m in members[1:21]:
        note.append(f"- {m['post_key']}: {m.get('reason') or '—'}")
    if len(members) > 21:
        note.append(f"… (+{len(members) - 21})")
    any_critical = any(m.get("risk") == "critical" for m in members)
    return TicketDraft(
        external_id=problem_external_id(storm),
        subject=problem_subject(storm.brand, topic, size, label_min),
        description="\n".join(lines) + "\n",
        note="\n".join(note) + "\n",
        priority="urgent" if any_critical else "high",
        tags=("yorisoi", "yorisoi_storm", "yorisoi_storm_problem"),
        requester=SYSTEM_REQUESTER,
        post_url=first.get("url"),
        labels={},
        ticket_type="problem",
    )


def count_note(storm: Storm, members: list[Mapping[str, Any]], words: list[str],
               label_min: int = 20) -> CommentDraft:
    size = storm.size
    body = [f"件数の更新 / Count update: {size} 件 / posts (前回 / before: {storm.reported_size})",
            *([f"{label_min} 件を超えたため「炎上」として扱います / Now a storm ({label_min}+ similar posts)"]
              if storm.reported_size < label_min <= size else []),
            f"よく出る言葉 / Top words: {'、'.join(words) if words else '—'}",
            "リスクの高い声 / Highest-risk voices:", *(member_line(m) for m in voices(members))]
    return CommentDraft(dedupe_key=f"{problem_external_id(storm)}#count:{size}", body="\n".join(body) + "\n",
                        public=False)


def alert_text(alert: Mapping[str, Any], stage: str) -> str:
    when = alert["started_at"].astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    if stage == "start":
        return (f"【急増アラート / Spike alert】{alert['brand']}: ネガティブな投稿が15分で {alert['count']} 件"
                f"（通常 {alert['baseline']:.1f} 件, p={alert['p_value']:.2g}）— {when}\n"
                f"Negative posts in 15 minutes: {alert['count']} (usual {alert['baseline']:.1f}).")
    ended = alert["ended_at"].astimezone(JST).strftime("%H:%M JST") if alert.get("ended_at") else "?"
    return (f"【アラート終了 / Spike ended】{alert['brand']}: {when} からの急増は {ended} に通常の水準に戻りました"
            f"（最大 {alert['peak']} 件/15分）。 The spike has ended (peak {alert['peak']} per 15 minutes).")


def slack_payload(alert: Mapping[str, Any], stage: str, ticket_url: str | None) -> dict[str, Any]:
    """Slack incoming-webhook JSON (`text` + `blocks`); Teams/Mattermost accept `text` too."""
    text = alert_text(alert, stage)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if ticket_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{ticket_url}|チケット / ticket>"}]})
    return {"text": text, "blocks": blocks}


def alert_draft(alert: Mapping[str, Any]) -> TicketDraft:
    text = alert_text(alert, "start")
    return TicketDraft(
        external_id=f"yorisoi:alert:{alert['id']}:{alert['started_at'].strftime('%Y%m%dT%H%M')}",
        subject=f"[{alert['brand']}] 急増アラート / Spike alert: {alert['count']}件/15分",
        description=text + "\n\nスーパーバイザーへ: 一覧はダッシュボードの「炎上・類似投稿 / Storms」で確認できます。\n"
                           "Supervisors: see the dashboard's Storms page.\n",
        note=f"Poisson test: count={alert['count']}, baseline λ={alert['baseline']:.3f}, p={alert['p_value']:.3g}\n",
        priority="urgent",
        tags=("yorisoi", "yorisoi_spike_alert"),
        requester=SYSTEM_REQUESTER,
        post_url=None,
        labels={},
    )


# --- the service ------------------------------------------------------------------------
class BatchBands:
    """One brand's MinHash band index for one ingest batch, in memory: what `storm_candidates`
    would find, for every post of the batch, from one query (`storm_band_hits` with the union
    of the batch's band keys over the batch's time span) instead of one per post. Posts indexed
    during the batch are added as they join, and storm ids follow the storms founded, so each
    post sees exactly what its own query would have seen inside the same transaction (the brand
    is locked until commit: no other instance writes its bands meanwhile)."""

    def __init__(self, hits: tuple[dict[bytes, list[str]], Mapping[str, Mapping[str, Any]]]) -> None:
        #: post key → [storm id, created_at, text]; a post's band rows have its member row's time
        by_band, members = hits
        self._posts: dict[str, list[Any]] = {
            key: [m["storm_id"], m["created_at"], m["text"]] for key, m in members.items()}
        # Band → its posts, taken as the repository hands them (issue 17: building a set per band
        # from ~25,000 (post, band) pairs per brand and batch cost as much as reading them).
        self._by_band = by_band

    def add(self, post_key: str, bands: Sequence[bytes], storm_id: int | None, created_at: datetime, text: str) -> None:
        """A post of this batch whose bands were just indexed (member and band rows share its time)."""
        self._posts.setdefault(post_key, [storm_id, created_at, text])
        by_band = self._by_band
        for band in bands:
            keys = by_band.get(band)
            if keys is None:
                by_band[band] = [post_key]
            elif post_key not in keys:
                keys.append(post_key)

    def storm_ids(self) -> set[int]:
        """The storms of the indexed posts: those this batch's posts may join by similarity."""
        return {entry[0] for entry in self._posts.values() if entry[0] is not None}

    def founded(self, first_post_key: str, storm_id: int | None) -> None:
        """A storm was opened with this post as its first: its member row now carries the id."""
        entry = self._posts.get(first_post_key)
        if entry is not None and storm_id is not None:
            entry[0] = storm_id

    def candidates(self, bands: Sequence[bytes], since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        """As `storm_candidates`: distinct posts sharing a band, band row in [since, until],
        ordered by (created_at, post_key). Each row is made as it is asked for: `assign` mostly
        stops at the first candidate (an exact copy), and making every row up front was a third
        of the look-up (issue 17)."""
        posts_ = self._posts
        found = set().union(*map(self._by_band.get, bands, repeat(())))
        # (time, key) pairs sort as the rows should, without a key function (issue 17).
        order = sorted([(entry[1], key) for key in found if since <= (entry := posts_[key])[1] <= until])
        for at, key in order:
            entry = posts_[key]
            yield {"post_key": key, "storm_id": entry[0], "created_at": at, "text": entry[2]}


@dataclass
class StormReport:
    problems_created: int = 0
    problems_updated: int = 0
    incidents_linked: int = 0
    alerts_sent: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class Storms:
    """Online grouping at ingest (`observe`), ticket shaping and jobs at delivery."""

    def __init__(self, repo: StormStore, settings: StormSettings, brand_words: Mapping[str, tuple[str, ...]],
                 clock: Callable[[], datetime], post_json: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.repo = repo
        self.settings = settings
        self.brand_words = {b: tuple(sorted({clean_text(w) for w in words if w}, key=len, reverse=True))
                            for b, words in brand_words.items()}
        self.clock = clock
        self.post_json = post_json or (lambda url, payload: _post_json(url, payload, settings.allow_private))
        # Caches of derived, immutable data only (the index itself is in the database); one
        # Storms serves every request thread, so both are guarded by a lock.
        self._lock = threading.Lock()
        self._baseline: dict[tuple[str, datetime], float] = {}
        self._shingle_cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._pruned_at: datetime | None = None

    # grouping
    def _shingles(self, brand: str, post_key: str, text: str) -> frozenset[str]:
        """A stored post's 3-grams (cached: a post's text and the brand's words do not change)."""
        with self._lock:
            cached = self._shingle_cache.get(post_key)
            if cached is not None:
                self._shingle_cache.move_to_end(post_key)
                return cached
        sh = shingles(clean_text(text, self.brand_words.get(brand, ())))
        with self._lock:
            self._shingle_cache[post_key] = sh
            while len(self._shingle_cache) > SHINGLE_CACHE:
                self._shingle_cache.popitem(last=False)
        return sh

    def _fingerprint(self, post: Post, brand: str) -> tuple[frozenset[str], list[bytes]]:
        sh = shingles(clean_text(post.text, self.brand_words.get(brand, ())))
        return sh, band_keys(signature(sh))

    def assign(self, post: Post, brand: str, conn: Any, bands: BatchBands | None = None,
               fingerprint: tuple[frozenset[str], list[bytes]] | None = None,
               ) -> tuple[Assignment, frozenset[str], list[bytes]]:
        """Where `post` goes: its storm's candidates come from the database (MinHash band keys
        written with each post), so every instance sharing the database finds the same ones;
        in a batch, from the batch's in-memory copy of the same rows (`bands`)."""
        sh, keys = fingerprint or self._fingerprint(post, brand)
        for ref in (post.in_reply_to, post.quote_of, post.conversation_id):
            if ref:
                parent = self.repo.storm_of(f"{post.platform}:{ref}", conn=conn)
                if parent is not None and parent["brand"] == brand and parent["post_key"] != post.key:
                    return (Assignment(post.key, parent["post_key"], 1.0, say("storm_reply", key=parent["post_key"]),
                                       parent["storm_id"]), sh, keys)
        window = self.settings.window
        best: tuple[dict[str, Any] | None, float, str] = (None, 0.0, "")
        since, until = post.created_at - window, post.created_at + window
        rows = (bands.candidates(keys, since, until) if bands is not None
                else self.repo.storm_candidates(conn, brand, keys, since, until))
        for row in rows:
            if row["post_key"] == post.key:
                continue
            score, kind = similarity(sh, self._shingles(brand, row["post_key"], row["text"]))
            if score > best[1]:
                best = (row, score, kind)
                if score >= 1.0:
                    # No later candidate can win: scores are ratios (at most 1) and a tie keeps the
                    # first. Echo storms are mostly copies, so this ends most searches early.
                    break
        row, score, kind = best
        if row is None or score < self.settings.similarity:
            return Assignment(post.key, None, None, None, None), sh, keys
        return (Assignment(post.key, row["post_key"], round(score, 4), say("storm_quote" if kind == "quote" else "storm_near", key=row["post_key"], score=f"{score:.2f}"),
                           row["storm_id"]), sh, keys)

    def voice_reason(self, post: Post, analysis: Analysis) -> str | None:
        return voice_reason(post, analysis, self.settings.high_reach)

    def echo_parent(self, post: Post, batch: Mapping[str, tuple[str, int | None]] | None = None) -> EchoParent | None:
        """The storm member (stored, or qualified earlier in this batch: `batch` key → (brand,
        storm)) that `post` replies to or quotes, or None when none is (yet)."""
        for how, key in echo_refs(post):
            if key == post.key:
                continue
            if batch and key in batch:
                brand, storm_id = batch[key]
                return EchoParent(how, key, brand, storm_id)
            member = self.repo.storm_of(key)
            if member is not None:
                return EchoParent(how, key, member["brand"], member["storm_id"])
        return None

    def fingerprints(self, items: Sequence[tuple[Post, Decision, Analysis | None]],
                     ) -> dict[str, tuple[frozenset[str], list[bytes]]]:
        """Shingles and MinHash band keys of the qualified posts: pure work, to be done BEFORE
        the ingest transaction and the brand lock (issue 17: computed under the lock, it made
        two ingesting instances of one brand take turns)."""
        return {p.key: self._fingerprint(p, d.brand) for p, d, a in items
                if d.qualified and d.brand is not None and a is not None}

    def observe_batch(self, conn: Any, items: Sequence[tuple[Post, Decision, Analysis | None]],
                      fingerprints: Mapping[str, tuple[frozenset[str], list[bytes]]] | None = None,
                      ) -> CountedEchoes:
        """Group the qualified posts and count in the echoes of one ingest transaction (`conn`),
        in order. Returns the final reasons of the echoes counted in (the storm they joined),
        by post key — also echoes stored earlier that waited for a post of this batch — and
        which of them are voices still without a ticket (`CountedEchoes.voices`).

        Runs inside the transaction that stores the posts, so a post is stored together with
        its storm membership or not at all. Locks, always in this order so no two instances
        wait on each other in a cycle: the posts that echoes may wait for (this batch's
        qualified posts and the echoes' parents), then the brands, sorted; held until commit.
        `fingerprints` (from `fingerprints`, computed before the transaction) saves that work
        under the locks; missing ones are computed here.
        """
        counted = [(p, d, a) for p, d, a in items if d.qualified and d.brand is not None and a is not None]
        echoes = [(p, d, a) for p, d, a in items if not d.qualified and d.echo_of is not None]
        self.repo.lock_echo_parents(conn, [p.key for p, _, _ in counted] +
                                    [key for p, _, _ in echoes for _, key in echo_refs(p)])
        brands = {d.brand for _, d, _ in counted if d.brand is not None}
        for post, _, _ in echoes:
            for _, key in echo_refs(post):
                member = self.repo.storm_of(key, conn=conn)
                if member is not None:
                    brands.add(member["brand"])
                    break
        # Before the brand locks, which make other instances of these brands wait until commit:
        # only an echo's ingest writes a wait for its parent, holding that parent's lock, and
        # this batch holds its posts' locks (above), so the answer cannot change until commit.
        waited = self.repo.storm_waited_for(conn, [p.key for p, _, _ in counted])
        for brand in sorted(brands):
            self.repo.lock_brand(conn, brand)
        # From here on the batch's storm writes are kept in memory and written at the end, in a
        # few statements (issue 17: one post at a time they were most of the time spent under
        # the brand lock); `writes` answers grouping's reads as the written rows would. Its
        # times cover the batch's posts, back by the longer of the window and the spike window.
        times = [p.created_at for p, _, _ in items]
        if not times:
            return CountedEchoes()
        writes = self.repo.storm_writes(conn, min(times) - max(self.settings.window, SPIKE_WINDOW), max(times))
        conn = writes
        # Candidate look-up once per brand for the whole batch (issue 17: one query per post was
        # a fifth of storm grouping's time), after the brand locks.
        given = fingerprints or {}
        fingerprints = {p.key: given.get(p.key) or self._fingerprint(p, d.brand)
                        for p, d, _ in counted if d.brand is not None}
        window = self.settings.window
        indexes: dict[str, BatchBands] = {}
        for brand in sorted({d.brand for _, d, _ in counted if d.brand is not None}):
            mine = [p for p, d, _ in counted if d.brand == brand]
            keys = list(dict.fromkeys(chain.from_iterable(fingerprints[p.key][1] for p in mine)))
            indexes[brand] = BatchBands(self.repo.storm_band_hits(
                conn, brand, keys, min(p.created_at for p in mine) - window, max(p.created_at for p in mine) + window))
        # The storms those candidates are in, read (and row-locked) at once rather than each as
        # it is first joined.
        writes.prefetch(sorted({i for index in indexes.values() for i in index.storm_ids()}))
        self._prefetch_baselines(writes, counted)
        reasons = CountedEchoes()
        for post, decision, analysis in items:
            if decision.qualified:
                self._observe(post, decision, analysis, conn, reasons=reasons, waited=waited,
                              fingerprint=fingerprints.get(post.key), batch=indexes)
            elif decision.echo_of is not None and analysis is not None:
                self._echo(post, decision, analysis, conn, reasons, waited, indexes)
        writes.flush()
        return reasons

    def observe(self, post: Post, decision: Decision, analysis: Analysis | None, conn: Any = None) -> int | None:
        """Place a qualified post (stored already, or in `conn`'s transaction) in a storm (or
        alone) and check the brand for a spike."""
        if conn is None:
            with self.repo.transaction() as own:
                if decision.qualified and decision.brand is not None:
                    self.repo.lock_echo_parents(own, [post.key])
                    self.repo.lock_brand(own, decision.brand)
                return self._observe(post, decision, analysis, own)
        return self._observe(post, decision, analysis, conn)

    def _observe(self, post: Post, decision: Decision, analysis: Analysis | None, conn: Any,
                 reasons: CountedEchoes | None = None, waited: set[str] | None = None,
                 fingerprint: tuple[frozenset[str], list[bytes]] | None = None,
                 batch: Mapping[str, BatchBands] | None = None) -> int | None:
        if not decision.qualified or decision.brand is None or analysis is None:
            return None
        brand = decision.brand
        bands = batch.get(brand) if batch is not None else None
        assignment, sh, keys = self.assign(post, brand, conn, bands=bands, fingerprint=fingerprint)
        indexed: set[str] | None = set() if bands is not None else None
        # A qualified echo is a voice by construction (else it would have no ticket).
        voice = ((post.author.followers or 0) >= self.settings.high_reach or analysis.intent.value == "question"
                 or decision.echo_of is not None)
        now = self.clock()
        storm_id = self.repo.storm_add_member(
            post_key=post.key, brand=brand, created_at=post.created_at,
            negative=analysis.sentiment.value == "negative", resembles=assignment.resembles,
            similarity=assignment.similarity, reason=assignment.reason, role="voice" if voice else "echo",
            risk_score=analysis.risk.score, join_storm=assignment.storm_id,
            found_single=assignment.found and assignment.storm_id is None,
            min_posts=self.settings.min_posts, due_at=now,
            throttle=timedelta(seconds=self.settings.update_seconds),
            bands=keys, represent_since=post.created_at - self.settings.window,
            representatives=REPRESENTATIVES_PER_STORM, conn=conn, indexed_into=indexed)
        if bands is not None:
            if assignment.found and assignment.storm_id is None and assignment.resembles is not None:
                bands.founded(assignment.resembles, storm_id)
            if indexed:
                bands.add(post.key, keys, storm_id, post.created_at, post.text)
        with self._lock:
            self._shingle_cache[post.key] = sh
        if decision.echo_of is not None and reasons is not None:
            how = next((h for h, k in echo_refs(post) if k == decision.echo_of), "reply")
            final = final_echo_reasons(decision.reasons, storm_id, how, decision.echo_of)
            if final != decision.reasons:
                self.repo.storm_echo_counted(conn, post.key, brand, final)
                reasons[post.key] = final
        if analysis.sentiment.value == "negative":
            self.check_spike(brand, post.created_at, conn)
        if waited is None or post.key in waited:
            self._count_waiting(post.key, post.created_at, conn, reasons if reasons is not None else CountedEchoes(), batch)
        return storm_id

    def _echo(self, post: Post, decision: Decision, analysis: Analysis, conn: Any,
              reasons: CountedEchoes, waited: set[str],
              batch: Mapping[str, BatchBands] | None = None) -> None:
        """Count a bare reply or quote in its parent's storm, or keep it waiting for one."""
        for how, key in echo_refs(post):
            member = self.repo.storm_of(key, conn=conn)
            if member is not None and key != post.key:
                # An echo the ingest judged already (it has the brand) is no voice, else it would
                # have its ticket; one that found its parent only here (another instance stored
                # it meanwhile) is judged now, as a waiting echo is when its parent joins.
                voice = self.voice_reason(post, analysis) if decision.brand is None else None
                self._join_echo(post.key, post.created_at, analysis.sentiment.value == "negative", analysis.risk.score,
                                voice, how, member, decision.reasons, conn, reasons, batch)
                return
        self.repo.storm_echo_wait(conn, post_key=post.key, parents=echo_refs(post), created_at=post.created_at,
                                  negative=analysis.sentiment.value == "negative", risk_score=analysis.risk.score,
                                  voice=self.voice_reason(post, analysis))
        waited.update(key for _, key in echo_refs(post))  # a later post of this batch may be its parent

    def _join_echo(self, post_key: str, created_at: datetime, negative: bool, risk_score: float | None,
                   voice: str | None, how: str, member: Mapping[str, Any], stored_reasons: Sequence[str], conn: Any,
                   reasons: CountedEchoes, batch: Mapping[str, BatchBands] | None = None) -> None:
        brand = member["brand"]
        storm_id = self.repo.storm_add_member(
            post_key=post_key, brand=brand, created_at=created_at, negative=negative,
            resembles=member["post_key"], similarity=1.0, reason=f"{how} {'to' if how == 'reply' else 'of'} {member['post_key']}",
            role="voice" if voice else "echo", risk_score=risk_score or 0.0, join_storm=member["storm_id"],
            found_single=member["storm_id"] is None, min_posts=self.settings.min_posts, due_at=self.clock(),
            throttle=timedelta(seconds=self.settings.update_seconds), bands=(), conn=conn)
        if batch is not None and brand in batch and member["storm_id"] is None:
            batch[brand].founded(member["post_key"], storm_id)  # the parent opened a storm with its echo
        final = final_echo_reasons(stored_reasons, storm_id, how, member["post_key"])
        if voice is not None:  # a voice that waited: counted, said so, and given its own ticket
            final += (voice,)
            reasons.voices[post_key] = (brand, tuple(stored_reasons))
        self.repo.storm_echo_counted(conn, post_key, brand, final)
        reasons[post_key] = final
        if negative:
            self.check_spike(brand, created_at, conn)
        self._count_waiting(post_key, created_at, conn, reasons, batch)

    def _count_waiting(self, parent_key: str, parent_at: datetime, conn: Any,
                       reasons: CountedEchoes, batch: Mapping[str, BatchBands] | None = None) -> None:
        """Count in the echoes that waited for `parent_key` (written within `window` of it),
        and theirs in turn (「私も」 replying to 「うちも」)."""
        window = self.settings.window
        queue = [(parent_key, parent_at)]
        while queue:
            key, at = queue.pop(0)
            for wait in self.repo.storm_waiting_echoes(conn, key, at - window, at + window):
                if self.repo.storm_of(wait["post_key"], conn=conn) is not None:
                    continue  # counted already through another parent
                member = self.repo.storm_of(key, conn=conn)
                if member is None:
                    continue
                # This echo may have echoes waiting in turn: hold its lock like the batch's own.
                self.repo.lock_echo_parents(conn, [wait["post_key"]])
                self._join_echo(wait["post_key"], wait["created_at"], wait["negative"], wait["risk_score"],
                                wait["voice"], wait["how"], member, self.repo.post_reasons(conn, wait["post_key"]),
                                conn, reasons, batch)

    # spikes
    def baseline(self, brand: str, at: datetime, conn: Any = None) -> float:
        """Mean negative posts per 15 minutes in the same clock hour, same weekday, past weeks."""
        hour = baseline_hour(at)
        with self._lock:
            cached = self._baseline.get((brand, hour))
        if cached is None:
            weeks = self.settings.baseline_weeks
            total = sum(self.repo.count_negative(brand, since, until, conn=conn)
                        for since, until in baseline_windows(hour, weeks))
            cached = total / (weeks * 4)
            with self._lock:
                self._baseline[(brand, hour)] = cached
        return cached

    def _prefetch_baselines(self, writes: Any, counted: Sequence[tuple[Post, Decision, Analysis | None]]) -> None:
        """Ask for the past weeks' counts of the baselines the batch's negative posts will need
        (those not known yet) in one query (issue 17: `baseline_weeks` queries per brand and
        hour, under the brand lock); `count_negative` answers from it exactly as the database
        would (see `StormWrites.outside_count`). Echoes' brands are known only as they join:
        theirs are asked one by one as before."""
        with self._lock:
            known = set(self._baseline)
        hours = dict.fromkeys((d.brand, baseline_hour(p.created_at))
                              for p, d, a in counted
                              if d.brand is not None and a is not None and a.sentiment.value == "negative")
        weeks = self.settings.baseline_weeks
        self.repo.prefetch_negative_counts(writes, [(brand, since, until) for brand, hour in hours
                                                    if (brand, hour) not in known
                                                    for since, until in baseline_windows(hour, weeks)])

    def check_spike(self, brand: str, at: datetime, conn: Any = None) -> None:
        if conn is None:
            with self.repo.transaction() as own:
                self.repo.lock_brand(own, brand)
                self.check_spike(brand, at, own)
            return
        count = self.repo.count_negative(brand, at - SPIKE_WINDOW, at, conn=conn)
        baseline = self.baseline(brand, at, conn)
        active = self.repo.active_alert(brand, conn=conn)
        fires, p = spike_fires(count, baseline, self.settings)
        if active is None:
            if fires:
                # Hysteresis: posts judged at a time up to one window after the end of the
                # brand's last alert (back-dated posts of that spike arriving late) do not open
                # another one; the end was judged on the same post-time clock as the start.
                alert_id = self.repo.open_alert(brand=brand, started_at=at, count=count, baseline=baseline, p_value=p,
                                                quiet_after=SPIKE_WINDOW, conn=conn)
                if alert_id is not None:
                    log.warning("spike alert for %s: %d negative posts in 15 min (baseline %.2f, p=%.2g)",
                                brand, count, baseline, p)
        elif at >= active["started_at"]:
            self.repo.alert_peak(active["id"], count, conn=conn)
            if p >= SPIKE_END_ALPHA and at - active["started_at"] >= SPIKE_WINDOW:
                self.repo.close_alert(active["id"], at, conn=conn)

    def tick(self, now: datetime) -> None:
        """End alerts whose brand went quiet (no post arrives to end them); now and then,
        forget echoes that waited for a parent in vain."""
        for alert in self.repo.list_alerts(limit=20):
            if alert["ended_at"] is None and now - alert["started_at"] >= SPIKE_WINDOW:
                self.check_spike(alert["brand"], max(now, alert["started_at"] + SPIKE_WINDOW))
        with self._lock:
            due = self._pruned_at is None or now - self._pruned_at >= ECHO_WAIT_PRUNE_EVERY
            if due:
                self._pruned_at = now
        if due:
            # A parent counts an echo in when the two are within `window` of each other, and a
            # parent may still arrive that late (X's recent search reaches 7 days back).
            gone = self.repo.storm_prune_echo_waits(now - ECHO_WAIT_KEEP - self.settings.window)
            if gone:
                log.info("forgot %d echoes whose parent never joined a storm", gone)

    # delivery
    def shape(self, post_key: str, draft: TicketDraft) -> TicketDraft:
        """A member's ticket: tagged with its storm, linked to the problem once it exists."""
        member = self.repo.storm_of(post_key)
        if member is None or member["storm_id"] is None:
            return draft
        storm = self.repo.storm(member["storm_id"])
        if storm is None or storm.size < self.settings.min_posts:
            return draft
        role = member["role"] or "echo"
        tags = tuple(dict.fromkeys((*draft.tags, "yorisoi_storm", f"yorisoi_storm_{storm.id}", f"yorisoi_storm_{role}")))
        draft = replace(draft, tags=tags, priority="low" if role == "echo" else draft.priority)
        if storm.problem_ticket_id:
            draft = replace(draft, ticket_type="incident", problem_id=storm.problem_ticket_id)
            # Every later attempt of this create carries the link too, so it counts as linked.
            self.repo.storm_mark_linked([post_key])
        return draft

    def deliver(self, helpdesk: Any) -> StormReport:
        report = StormReport()
        now = self.clock()
        for storm_id in self.repo.storms_needing_update(now):
            storm = self.repo.storm(storm_id)
            if storm is not None:
                last = storm.last_update_at or now
                self.repo.storm_schedule(storm_id, max(now, last + timedelta(seconds=self.settings.update_seconds)))
        for storm in self.repo.claim_storm_jobs(now, JOB_LEASE):
            try:
                self._problem_job(helpdesk, storm, report)
            except HelpdeskError as exc:
                report.errors.append({"storm": storm.id, "stage": "storm_problem", "message": exc.message})
                retry = timedelta(seconds=exc.retry_after if exc.retry_after is not None
                                  else min(600, 2 ** storm.job_attempts))
                self.repo.storm_job_retry(storm.id, exc.message, now + retry,
                                           failed=not (exc.retryable or exc.stop_delivery))
                if exc.stop_delivery or exc.retry_after is not None:
                    break
            except Exception as exc:  # unknown outcome: the retry looks up first
                log.exception("storm %s: problem ticket job failed", storm.id)
                self.repo.storm_job_retry(storm.id, str(exc), now + timedelta(seconds=30))
        self.tick(now)
        for stage, alert in self.repo.claim_alert_jobs(now, JOB_LEASE):
            try:
                self._alert_job(helpdesk, stage, alert)
                report.alerts_sent += 1
            except Exception as exc:
                message = exc.message if isinstance(exc, HelpdeskError) else str(exc)
                log.warning("spike alert %s (%s): %s", alert["id"], stage, message)
                report.errors.append({"alert": alert["id"], "stage": f"alert_{stage}", "message": message})
                self.repo.alert_job_retry(alert["id"], stage, message,
                                           failed=isinstance(exc, HelpdeskError) and not exc.retryable)
        return report

    def _problem_job(self, helpdesk: Any, storm: Storm, report: StormReport) -> None:
        members = self.repo.storm_members_of(storm.id)
        words = self.repo.storm_top_words(storm.id)
        draft = problem_draft(storm, members, words, self.settings.label_min)
        ref = (TicketRef(storm.problem_helpdesk, storm.problem_ticket_id, storm.problem_url)
               if storm.problem_ticket_id else None)
        if ref is None:
            if storm.job_attempts > 1:
                ref = helpdesk.find_ticket(draft.external_id)
                if ref is not None and not helpdesk.has_comment(ref, draft.note_key):
                    helpdesk.add_comment(ref, draft.note_comment())
            if ref is None:
                ref = helpdesk.create_ticket(draft)
            self.repo.storm_problem_created(storm.id, ref)
            report.problems_created += 1
        elif storm.size > storm.reported_size:
            note = count_note(storm, members, words, self.settings.label_min)
            if not (storm.job_attempts > 1 and helpdesk.has_comment(ref, note.dedupe_key)):
                update = getattr(helpdesk, "update_problem", None)
                if callable(update):  # one update: new subject + the count note
                    update(ref, draft.subject, note)
                else:
                    helpdesk.add_comment(ref, note)
            report.problems_updated += 1
        link = getattr(helpdesk, "link_incident", None)
        if callable(link):
            for m in members:
                if m["ticket_id"] and not m["linked"]:
                    link(ref, TicketRef(m["helpdesk"], m["ticket_id"], m["ticket_url"]))
                    self.repo.storm_mark_linked([m["post_key"]])
                    report.incidents_linked += 1
        self.repo.storm_job_done(storm.id, storm.size, storm_topic(words, members), self.clock())

    def _alert_job(self, helpdesk: Any, stage: str, alert: dict[str, Any]) -> None:
        ref = self.repo.alert_ticket(alert["id"])
        if stage == "start":
            draft = alert_draft(alert)
            if ref is None and alert["attempts"] > 1:
                ref = helpdesk.find_ticket(draft.external_id)
            if ref is None:
                ref = helpdesk.create_ticket(draft)
            self.repo.alert_job_done(alert["id"], "start", ticket=ref)  # ticket first: never twice
            if self.settings.alert_webhook:
                self.post_json(self.settings.alert_webhook, slack_payload(alert, stage, ref.url))
            return
        if ref is not None:
            comment = CommentDraft(dedupe_key=f"yorisoi:alert:{alert['id']}#end", body=alert_text(alert, "end") + "\n",
                                   public=False)
            if not helpdesk.has_comment(ref, comment.dedupe_key):
                helpdesk.add_comment(ref, comment)
        if self.settings.alert_webhook:
            self.post_json(self.settings.alert_webhook, slack_payload(alert, stage, ref.url if ref else None))
        self.repo.alert_job_done(alert["id"], "end")


def _post_json(url: str, payload: dict[str, Any], allow_private: bool = False) -> None:
    """POST to the alert webhook: public addresses only unless opted in, redirects checked."""
    session = new_session(guarded=not allow_private)
    with session:
        response = session.post(url, json=payload, timeout=10)
    if response.status_code >= 300:
        raise RuntimeError(f"alert webhook answered HTTP {response.status_code}")
