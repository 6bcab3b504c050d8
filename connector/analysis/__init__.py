"""Analysis of one public post: sentiment, intent, expectation, quality axis, public risk, priority.

Pure functions over text and `Post`: no Flask, no store, no helpdesk. Every label carries the
evidence (tokens, cues, rules) that produced it. Lexicons are data files in `lexicon/`, loaded
once; Japanese is tokenised once per post with nagisa, English goes through VADER.

    analyse(post)                       the pipeline's entry point
    analyse_text(text, lang=…, …)       the same without a Post (evaluation, tests)
    sentiment_of(text, lang=None)       sentiment only, for the evaluation command

Each takes an optional `model`, loaded once by the caller:
  a `LabelModel` (labeller.py; the shipped default is trained on the team's corpus/): sentiment,
    intent, expectation type and content and quality axis come from it, each with its
    probability (`Label.confidence`) and the features that weighed most; the lexicon's cues are
    among its features, stay in the evidence, and decide alone should the model fail;
  a `SentimentModel` (model.py, `yorisoi train FILE.tsv`): sentiment only.
Risk and priority stay rules over the labels, so every escalation reads back as one rule.
"""
from __future__ import annotations

import logging
from datetime import datetime
from functools import cache

from connector.analysis import cues
from connector.analysis.labeller import LabelModel, Reading
from connector.analysis.model import Prepared, SentimentModel, english_words
from connector.analysis.priority import PRIORITY_SCORE, PriorityTable
from connector.analysis.risk import public_risk
from connector.analysis.sentiment import english_sentiment, japanese_sentiment
from connector.analysis.text import detect_language, normalize, tokenize
from connector.models import Analysis, Label, Post

__all__ = ["analyse", "analyse_text", "sentiment_of", "prepare", "read", "PriorityTable", "SentimentModel",
           "LabelModel", "VERSION", "DEFAULT_CONFIDENCE"]

VERSION = "lexicon-1"
#: Below this probability a model's label is marked 「要確認 / please check」 (YORISOI_CONFIDENCE).
DEFAULT_CONFIDENCE = 0.5
#: The labels a label model decides (risk and priority are rules over them).
MODEL_LABELS = ("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis")

log = logging.getLogger(__name__)


@cache
def _default_table() -> PriorityTable:
    return PriorityTable.default()


def prepare(text: str, lang: str | None = None) -> Prepared:
    """Normalise, detect the language, tokenise once and run the lexicon: what both the lexicon
    label and a model's features are made of."""
    normalized = normalize(text)
    language = detect_language(normalized, lang)
    if not normalized:
        return Prepared(normalized, language, (), Label("neutral", 0.0, ("empty text after normalisation: neutral",)))
    if language == "ja":
        tokens = tokenize(normalized)
        return Prepared(normalized, language, tokens.words, japanese_sentiment(tokens))
    return Prepared(normalized, language, english_words(normalized), english_sentiment(normalized))


def read(text: str, lang: str | None = None) -> Reading:
    """A text as the label model reads it: prepared once, and the lexicon's cues found."""
    prepared = prepare(text, lang)
    return Reading(prepared, cues.find(prepared.language, prepared.normalized.casefold()))


def _sentiment(prepared: Prepared, model: SentimentModel | LabelModel | None) -> Label:
    if isinstance(model, LabelModel):
        model_labels = _learnt(Reading(prepared, cues.find(prepared.language, prepared.normalized.casefold())),
                               model)
        return model_labels["sentiment"] if model_labels else prepared.lexicon
    if model is None or not prepared.normalized:
        return prepared.lexicon
    try:
        return model.label(prepared)
    except Exception as exc:  # a broken model must never stop a post: the lexicon stands in
        log.exception("sentiment model %s failed; using the lexicon", model.name)
        lexicon = prepared.lexicon
        return Label(lexicon.value, lexicon.score,
                     (f"model {model.name} failed ({type(exc).__name__}): lexicon used",) + lexicon.evidence)


def _learnt(reading: Reading, model: LabelModel) -> dict[str, Label] | None:
    if not reading.prepared.normalized:
        return None
    try:
        return model.labels(reading)
    except Exception:  # a broken model must never stop a post: the lexicon and rules stand in
        log.exception("label model %s failed; using the lexicon and rules", model.name)
        return None


def _with_lexicon(learnt: Label, lexicon: Label) -> Label:
    """The model's label, its evidence followed by what the lexicon and rules said."""
    said = (f"lexicon and rules say {lexicon.value}:", *(f"  {line}" for line in lexicon.evidence[:4]))
    return Label(learnt.value, learnt.score, learnt.evidence + said, learnt.confidence)


def sentiment_of(text: str, lang: str | None = None, model: SentimentModel | LabelModel | None = None) -> Label:
    """Sentiment only: negative | neutral | positive, score in [-1, 1], with evidence."""
    return _sentiment(prepare(text, lang), model)


def analyse_text(text: str, *, lang: str | None = None, followers: int = 0, reposts: int = 0,
                 likes: int = 0, quotes: int = 0, replies: int = 0, age_minutes: float | None = None,
                 priority_table: PriorityTable | None = None, model: SentimentModel | LabelModel | None = None,
                 confidence: float = DEFAULT_CONFIDENCE) -> Analysis:
    """Every label for a text and its engagement numbers. `age_minutes` None: velocity unknown.
    `confidence`: a model's label below this probability is marked for a person to check."""
    prepared = prepare(text, lang)
    normalized, language = prepared.normalized, prepared.language
    found = cues.find(language, normalized.casefold())
    learnt = _learnt(Reading(prepared, found), model) if isinstance(model, LabelModel) else None
    sentiment = _sentiment(prepared, None if isinstance(model, LabelModel) else model)
    intent = cues.intent(found, sentiment)
    rules = {"sentiment": sentiment, "intent": intent, "expectation_type": cues.expectation_type(found),
             "expectation_content": cues.expectation_content(found),
             "quality_axis": cues.quality_axis(found, intent.value)}
    if learnt:
        rules = {name: _with_lexicon(learnt[name], rules[name]) for name in MODEL_LABELS}
        sentiment, intent = rules["sentiment"], rules["intent"]
    risk = public_risk(escalation_cues=found.get("escalation", {}).get("escalation", []),
                       safety_cues=found.get("escalation", {}).get("safety", []),
                       sentiment=sentiment, intent=intent.value,
                       followers=followers, reposts=reposts, likes=likes, quotes=quotes, replies=replies,
                       age_minutes=age_minutes)
    labels = {**rules, "risk": risk}
    table = priority_table if priority_table is not None else _default_table()
    priority, why = table.decide({name: label.value for name, label in labels.items()},
                                 {name: label.confidence for name, label in labels.items()})
    used = model.name if model is not None and (learnt or not isinstance(model, LabelModel)) else None
    return Analysis(**labels, priority=Label(priority, PRIORITY_SCORE[priority], (why,)),
                    language=language, version=VERSION if used is None else f"{VERSION}+{used}",
                    confidence_threshold=confidence)


def analyse(post: Post, priority_table: PriorityTable | None = None, *, now: datetime | None = None,
            model: SentimentModel | LabelModel | None = None, confidence: float = DEFAULT_CONFIDENCE) -> Analysis:
    """Analyse a post. Velocity needs the post's age: pass `now` (aware) to get it; without it
    the result depends on the post alone, so the same post always gets the same labels.
    `model`: a trained sentiment model (see `SentimentModel`); the lexicon stays as evidence."""
    age_minutes = None
    if now is not None:
        age_minutes = max((now - post.created_at).total_seconds() / 60, 0.0)
    metrics = post.metrics
    return analyse_text(post.text, lang=post.lang, followers=post.author.followers or 0,
                        reposts=metrics.reposts, likes=metrics.likes, quotes=metrics.quotes,
                        replies=metrics.replies, age_minutes=age_minutes, priority_table=priority_table,
                        model=model, confidence=confidence)
