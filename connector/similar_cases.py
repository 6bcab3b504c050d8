"""Similar past cases: for the post an agent is answering, the team's earlier answered posts of
the same brand that are most like it, with the reply that was sent and how the customer took it.

Pure: posts and their analysis in, a ranking out (the store is read in connector/sidebar.py).
Nothing is trained; the ranking is a fixed mix of three things the connector already has for
every stored post:

- the text: cosine similarity of character 2- and 3-gram TF-IDF vectors (IDF over the brand's
  answered posts, so words every post shares — the brand's own names, 「です」 — weigh little).
  Character n-grams need no tokenizer and fit Japanese, English and 表記ゆれ alike; the brand's
  names, URLs and @mentions are removed first, they say nothing about the situation;
- the analysis labels (intent, expectation type and content, quality axis, sentiment): the
  share of LABEL_WEIGHTS on which the two posts agree;
- the situation: the complaint topics stored with negative posts (`post_topics`) plus the
  support situations the text names (SITUATIONS below, and the brand's own FAQ topics from
  `[brand.reply]`), in either language — so "no signal at the station" meets 「駅で圏外」,
  which character n-grams cannot see: Jaccard overlap.

SCORE_WEIGHTS mixes them. Measured on team-written cases (tests/fixtures/similar_cases.json,
`python benchmarks/reply_help.py`): precision@3 0.87 on the queries the weights were chosen on,
0.72 on held-out queries written afterwards (text alone: 0.65 / 0.53); both pinned in
tests/test_similar_cases.py.

How the customer reacted (`reaction_after`) is read from what the database holds: the same
customer's next post about the brand after the reply, within REACTION_WINDOW. Thanks or a
resolution in it (ありがとう, 助かりました, 直りました, thanks, works now…) or a positive
sentiment is "good"; a negative sentiment is "bad"; a neutral one "neutral"; no later post is
"none" (silence is not counted as success). Likes on our reply are not stored (the networks'
APIs would need a read per reply), so they are not used.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, Sequence

#: How much each agreeing label counts (they sum to 1): what the customer wants (intent,
#: expectation) says more about which answer fits than how they feel.
LABEL_WEIGHTS: Mapping[str, float] = {"intent": 0.3, "expectation_content": 0.2, "quality_axis": 0.2,
                                      "expectation_type": 0.15, "sentiment": 0.15}
#: text, labels, situation. The labels weigh little: the shipped model's labels agree across
#: unrelated complaints more often than they tell situations apart (on the team's cases,
#: 0.2 for labels cost 0.06 of precision@3 against 0.1).
SCORE_WEIGHTS = (0.5, 0.1, 0.4)
#: Below this a case is not shown at all: agreeing labels alone (two complaints) are no likeness.
MIN_SCORE = 0.1
DEFAULT_LIMIT = 5
NGRAMS = (2, 3)
REACTION_WINDOW = timedelta(days=7)

#: Support situations named the same in Japanese and English (compared NFKC-casefolded, as
#: substrings). Generic customer-support vocabulary, not any brand's: a brand adds its own
#: through the FAQ topics of its `[brand.reply]`.
SITUATIONS: Mapping[str, tuple[str, ...]] = {
    "signal": ("繋がらない", "つながらない", "繋がりにく", "つながりにく", "圏外", "電波", "途切れ", "通信障害",
               "signal", "no service", "connection", "dropping", "drops"),
    "place_station": ("駅", "ホーム", "改札", "station", "platform"),
    "billing": ("請求", "料金", "明細", "引き落とし", "値上げ", "割引", "家族割", "bill", "charge", "fee", "price"),
    "activation": ("開通", "esim", "qrコード", "プロファイル", "sim", "activation", "activate"),
    "login": ("ログイン", "認証", "パスワード", "サインイン", "log in", "login", "sign in", "password", "authentication"),
    "app": ("アプリ", "app"),
    "shop_visit": ("店舗", "ショップ", "来店", "shop", "store"),
    "waiting": ("待ち", "待た", "待って", "待ってる", "wait", "queue"),
    "reservation": ("予約", "reservation", "booking", "appointment"),
    "order": ("注文", "オーダー", "order"),
    "payment": ("支払", "決済", "お金だけ", "payment", "paid", "charged"),
    "staff": ("店員", "スタッフ", "態度", "言葉づかい", "接客", "staff", "rude", "employee"),
    "praise_taste": ("美味し", "おいし", "うまい", "最高", "好き", "delicious", "tasty", "love", "so good"),
    "new_item": ("新作", "新商品", "限定", "新しい味", "new ", "seasonal", "limited"),
    "delivery_late": ("届かない", "届くはず", "来ない", "遅れ", "追跡", "輸送中", "tracking", "late", "hasn't arrived",
                      "not arrived", "delayed", "was due"),
    "redelivery": ("再配達", "不在票", "redelivery", "missed delivery", "delivery slip"),
}

_NOISE = re.compile(r"https?://\S+|@[\w.@-]+|[\s\W_]+", re.UNICODE)
_THANKS = re.compile(
    r"ありがと|有難う|有り難う|助かり|助かった|感謝|解決し|直りました|直った|治りました|繋がりました|つながりました|届きました|"
    r"\bthank|\bthanks\b|\bthx\b|\bfixed\b|\bsolved\b|\bresolved\b|works? (?:fine |again |now)|\bappreciate", re.IGNORECASE)


@dataclass(frozen=True)
class CaseText:
    """A post as the ranking sees it: its text, analysis labels and complaint topics."""

    key: str
    text: str
    labels: Mapping[str, str | None] = field(default_factory=dict)
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaterPost:
    """One of the customer's posts about the brand, for the reaction to a reply."""

    text: str
    created_at: datetime
    sentiment: str | None


@dataclass(frozen=True)
class Reaction:
    verdict: str  # good | bad | neutral | none
    reason_ja: str
    reason_en: str
    post_text: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Ranked:
    key: str
    score: float
    text_score: float
    label_score: float
    topic_score: float
    shared_labels: tuple[str, ...]


def situations_of(text: str, extra: Mapping[str, Sequence[str]] | None = None) -> tuple[str, ...]:
    """The SITUATIONS (and `extra` ones: a brand's FAQ topics → their keywords) the text names."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    table = {**SITUATIONS, **{f"faq:{k}": (k, *v) for k, v in (extra or {}).items()}}
    return tuple(name for name, words in table.items()
                 if any(unicodedata.normalize("NFKC", w).casefold() in folded for w in words))


def _clean(text: str, drop: Sequence[str]) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"https?://\S+|@[\w.@-]+", " ", text)
    for word in sorted({unicodedata.normalize("NFKC", w).casefold() for w in drop if w}, key=len, reverse=True):
        text = text.replace(word, " ")
    return _NOISE.sub(" ", text)


def _ngrams(text: str) -> Counter[str]:
    grams: Counter[str] = Counter()
    for chunk in text.split():
        for n in NGRAMS:
            grams.update(chunk[i:i + n] for i in range(len(chunk) - n + 1))
        if len(chunk) == 1:
            grams[chunk] += 1  # one kanji (駅, 店) is a word
    return grams


def _tfidf(counts: Counter[str], idf: Mapping[str, float]) -> dict[str, float]:
    vector = {g: (1 + math.log(n)) * idf.get(g, 0.0) for g, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
    return {g: v / norm for g, v in vector.items()}


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(g, 0.0) for g, v in a.items())


def label_agreement(a: Mapping[str, str | None], b: Mapping[str, str | None]) -> tuple[float, tuple[str, ...]]:
    shared = tuple(name for name in LABEL_WEIGHTS if a.get(name) and a.get(name) == b.get(name))
    return sum(LABEL_WEIGHTS[name] for name in shared), shared


def rank_similar(query: CaseText, candidates: Sequence[CaseText], *, drop: Sequence[str] = (),
                 limit: int = DEFAULT_LIMIT) -> list[Ranked]:
    """The candidates most like `query`, best first, at most `limit`, none under MIN_SCORE.
    `drop`: words to ignore (the brand's names and keywords). Candidates with the query's own
    key are skipped."""
    pool = [c for c in candidates if c.key != query.key]
    if not pool:
        return []
    grams = [_ngrams(_clean(c.text, drop)) for c in pool]
    query_grams = _ngrams(_clean(query.text, drop))
    documents = len(pool) + 1
    df: Counter[str] = Counter()
    for counts in [*grams, query_grams]:
        df.update(counts.keys())
    idf = {g: math.log((documents + 1) / (n + 1)) + 1.0 for g, n in df.items()}
    query_vector = _tfidf(query_grams, idf)
    text_w, label_w, topic_w = SCORE_WEIGHTS
    ranked = []
    for case, counts in zip(pool, grams):
        text_score = _cosine(query_vector, _tfidf(counts, idf))
        label_score, shared = label_agreement(query.labels, case.labels)
        topics_a, topics_b = set(query.topics), set(case.topics)
        topic_score = len(topics_a & topics_b) / len(topics_a | topics_b) if topics_a and topics_b else 0.0
        score = text_w * text_score + label_w * label_score + topic_w * topic_score
        if score >= MIN_SCORE:
            ranked.append(Ranked(case.key, round(score, 4), round(text_score, 4), round(label_score, 4),
                                 round(topic_score, 4), shared))
    ranked.sort(key=lambda r: (-r.score, r.key))
    return ranked[:limit]


def reaction_after(reply_at: datetime | None, later: Sequence[LaterPost], *,
                   window: timedelta = REACTION_WINDOW) -> Reaction:
    """How the customer took a reply: their first post about the brand after it (see the
    module's docstring for the rule)."""
    if reply_at is None:
        return Reaction("none", "返信の日時が不明です。", "The reply's time is unknown.")
    after = sorted((p for p in later if reply_at < p.created_at <= reply_at + window), key=lambda p: p.created_at)
    if not after:
        return Reaction("none", "返信後の投稿はありません（反応なし）。", "No post from the customer after the reply.")
    first = after[0]
    if _THANKS.search(unicodedata.normalize("NFKC", first.text)):
        return Reaction("good", "返信後にお礼・解決の投稿がありました。", "The customer thanked us or said it was solved.",
                        first.text, first.created_at)
    if first.sentiment == "positive":
        return Reaction("good", "返信後の投稿はポジティブでした。", "The customer's next post was positive.",
                        first.text, first.created_at)
    if first.sentiment == "negative":
        return Reaction("bad", "返信後の投稿はネガティブでした。", "The customer's next post was negative.",
                        first.text, first.created_at)
    return Reaction("neutral", "返信後の投稿は中立でした。", "The customer's next post was neutral.",
                    first.text, first.created_at)


def precision_at(k: int, ranked_keys: Sequence[str], relevant: set[str]) -> float:
    """Share of the first k results that are relevant (a result list shorter than k counts
    the missing places as misses, so returning nothing is never a perfect score)."""
    return sum(1 for key in ranked_keys[:k] if key in relevant) / k
