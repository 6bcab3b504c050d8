"""Analysis of one public post: sentiment, intent, expectation, quality axis, public risk, priority.

Pure functions over text and `Post`: no Flask, no store, no helpdesk. Every label carries the
evidence (tokens, cues, rules) that produced it. Lexicons are data files in `lexicon/`, loaded
once; Japanese is tokenised once per post with nagisa, English goes through VADER.

    analyse(post)                       the pipeline's entry point
    analyse_text(text, lang=…, …)       the same without a Post (evaluation, tests)
    sentiment_of(text, lang=None)       sentiment only, for the evaluation command
"""
from __future__ import annotations

from datetime import datetime
from functools import cache

from connector.analysis import cues
from connector.analysis.priority import PRIORITY_SCORE, PriorityTable
from connector.analysis.risk import public_risk
from connector.analysis.sentiment import english_sentiment, japanese_sentiment
from connector.analysis.text import detect_language, normalize, tokenize
from connector.models import Analysis, Label, Post

__all__ = ["analyse", "analyse_text", "sentiment_of", "PriorityTable", "VERSION"]

VERSION = "lexicon-1"


@cache
def _default_table() -> PriorityTable:
    return PriorityTable.default()


def _sentiment(normalized: str, language: str) -> Label:
    if not normalized:
        return Label("neutral", 0.0, ("empty text after normalisation: neutral",))
    if language == "ja":
        return japanese_sentiment(tokenize(normalized))
    return english_sentiment(normalized)


def sentiment_of(text: str, lang: str | None = None) -> Label:
    """Sentiment only: negative | neutral | positive, score in [-1, 1], with evidence."""
    normalized = normalize(text)
    return _sentiment(normalized, detect_language(normalized, lang))


def analyse_text(text: str, *, lang: str | None = None, followers: int = 0, reposts: int = 0,
                 likes: int = 0, quotes: int = 0, replies: int = 0, age_minutes: float | None = None,
                 priority_table: PriorityTable | None = None) -> Analysis:
    """Every label for a text and its engagement numbers. `age_minutes` None: velocity unknown."""
    normalized = normalize(text)
    language = detect_language(normalized, lang)
    sentiment = _sentiment(normalized, language)
    found = cues.find(language, normalized.casefold())
    intent = cues.intent(found, sentiment)
    risk = public_risk(escalation_cues=found.get("escalation", {}).get("escalation", []),
                       sentiment=sentiment, intent=intent.value,
                       followers=followers, reposts=reposts, likes=likes, quotes=quotes, replies=replies,
                       age_minutes=age_minutes)
    labels = {
        "sentiment": sentiment,
        "intent": intent,
        "expectation_type": cues.expectation_type(found),
        "expectation_content": cues.expectation_content(found),
        "quality_axis": cues.quality_axis(found, intent.value),
        "risk": risk,
    }
    table = priority_table if priority_table is not None else _default_table()
    priority, why = table.decide({name: label.value for name, label in labels.items()})
    return Analysis(**labels, priority=Label(priority, PRIORITY_SCORE[priority], (why,)),
                    language=language, version=VERSION)


def analyse(post: Post, priority_table: PriorityTable | None = None, *, now: datetime | None = None) -> Analysis:
    """Analyse a post. Velocity needs the post's age: pass `now` (aware) to get it; without it
    the result depends on the post alone, so the same post always gets the same labels."""
    age_minutes = None
    if now is not None:
        age_minutes = max((now - post.created_at).total_seconds() / 60, 0.0)
    metrics = post.metrics
    return analyse_text(post.text, lang=post.lang, followers=post.author.followers or 0,
                        reposts=metrics.reposts, likes=metrics.likes, quotes=metrics.quotes,
                        replies=metrics.replies, age_minutes=age_minutes, priority_table=priority_table)
