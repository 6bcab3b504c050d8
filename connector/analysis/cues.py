"""Intent, expectation type, expectation content and quality axis from weighted cue lists.

Each dimension's cues (lexicon/<dimension>.tsv) are found in one pass over the case-folded text
for all dimensions (`find`). A label's score is its strongest cue plus half of each further
distinct cue (two cues agree, ten synonyms do not make a certainty); the best label wins and its
cues are the evidence. When nothing fires, a documented default is returned with the evidence
"no cue: default …".
"""
from __future__ import annotations

from connector.analysis.lexicon import Cue, cue_index
from connector.analysis.sentiment import fmt
from connector.models import Label

#: Below this an intent is "other": one weak cue (ください alone, 0.6) is just enough for a request,
#: a mildly negative post (微妙, -0.38) is not yet a complaint.
INTENT_THRESHOLD = 0.5
#: How much the sentiment score adds to praise (positive) and complaint (negative).
SENTIMENT_WEIGHT = 1.0
#: A malfunction makes people unhappy: negative sentiment adds this much (× |score|) to report,
#: when report has cues of its own, so an outage post with 最悪 stays a report.
REPORT_SENTIMENT_WEIGHT = 0.6
#: Praise cues in a negative post (ありがとうございました。二度と使いません) and complaint cues in a
#: positive one (返金してもらえて感謝) count for this much.
AGAINST_SENTIMENT = 0.2
#: A question that is also negative (なんで繋がらないの？) leans to report/complaint.
NEGATIVE_QUESTION = 0.7
#: Ties go to the label earlier here: the more actionable one.
INTENT_ORDER = ("report", "request", "question", "complaint", "praise")

AXIS_BY_INTENT = {"report": "accuracy", "complaint": "accuracy", "question": "reassurance",
                  "request": "flexibility", "praise": "impression", "other": "impression"}


#: dimension → label → the cues found for it (see `find`).
Found = dict[str, dict[str, list[Cue]]]


def find(lang: str, folded: str) -> Found:
    """All cues of all dimensions in the case-folded normalised text, in one pass."""
    return cue_index(lang).find(folded)


def _score(found: list[Cue]) -> float:
    weights = sorted((cue.weight for cue in found), reverse=True)
    return weights[0] + 0.5 * sum(weights[1:]) if weights else 0.0


def _strength(score: float) -> float:
    """A cue score as a strength in [0, 1]: one clear cue (≈1.0) is 0.5, two agreeing ones ≈0.75."""
    return round(min(1.0, score / 2.0), 4)


def _cue_evidence(found: list[Cue]) -> list[str]:
    return [f"{cue.evidence} ({fmt(cue.weight)})" for cue in found]


def _best(found: dict[str, list[Cue]], order: tuple[str, ...], default: str, default_why: str) -> Label:
    scores = {label: _score(found.get(label, [])) for label in order}
    best = max(order, key=lambda label: scores[label])  # max keeps the first of equals: `order` breaks ties
    if scores[best] <= 0:
        return Label(default, 0.0, (default_why,))
    return Label(best, _strength(scores[best]), tuple(_cue_evidence(found[best])))


def intent(found: Found, sentiment: Label) -> Label:
    found = found.get("intent", {})
    s = sentiment.score
    scores = {label: _score(found.get(label, [])) for label in INTENT_ORDER}
    notes: dict[str, list[str]] = {label: _cue_evidence(found.get(label, [])) for label in INTENT_ORDER}
    if s > 0:
        scores["complaint"] *= AGAINST_SENTIMENT
        scores["praise"] += SENTIMENT_WEIGHT * s
        notes["praise"].append(f"positive sentiment {fmt(s)} adds {SENTIMENT_WEIGHT * s:.2f}")
    elif s < 0:
        scores["praise"] *= AGAINST_SENTIMENT
        scores["complaint"] += SENTIMENT_WEIGHT * -s
        notes["complaint"].append(f"negative sentiment {fmt(s)} adds {SENTIMENT_WEIGHT * -s:.2f}")
        if scores["report"] > 0:
            scores["report"] += REPORT_SENTIMENT_WEIGHT * -s
            notes["report"].append(f"negative sentiment {fmt(s)} adds {REPORT_SENTIMENT_WEIGHT * -s:.2f}")
    if sentiment.value == "negative" and scores["question"] > 0:
        scores["question"] *= NEGATIVE_QUESTION
        notes["question"].append(f"negative question: ×{NEGATIVE_QUESTION:g}")
    best = max(INTENT_ORDER, key=lambda label: scores[label])
    if scores[best] < INTENT_THRESHOLD:
        why = f"no intent reached {INTENT_THRESHOLD:g} (best {best} {scores[best]:.2f}): other"
        return Label("other", 0.0, tuple(notes[best][:3]) + (why,))
    return Label(best, _strength(scores[best]), tuple(notes[best]))


def expectation_type(found: Found) -> Label:
    found = found.get("expectation_type", {})
    # Common cues weigh less and lose ties: a post that is about connecting *at the station* is
    # situational; without any cue, what every customer expects is the default.
    return _best(found, ("situational", "individual", "latent", "common"), "common", "no cue: default common")


def expectation_content(found: Found) -> Label:
    found = found.get("expectation_content", {})
    return _best(found, ("price", "menu", "quality"), "quality", "no cue: default quality")


def quality_axis(found: Found, intent_value: str) -> Label:
    found = found.get("quality_axis", {})
    default = AXIS_BY_INTENT.get(intent_value, "accuracy")
    return _best(found, ("accuracy", "speed", "flexibility", "empathy", "reassurance", "impression"),
                 default, f"no cue: default {default} for intent {intent_value}")
