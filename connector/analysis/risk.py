"""Public risk: how far a post can travel, and how badly — the level by the labelling guide's
rules (docs/labels.md), the score for ordering within a level.

Level (the guide, in order; "negative" is the post's sentiment):
  critical  negative with ≥ 10,000 followers or a strong escalation word (拡散希望, 消費者センター,
            弁護士, 保健所, 晒す: weight ≥ 0.3); or a safety or legal issue (food poisoning, foreign
            matter, injury, fire, fraud, data leak…) in a negative post or a report;
  high      negative with ≥ 1,000 followers, or negative and already spreading (≥ 50 reposts+quotes);
  medium    negative with modest reach; or any post already spreading (≥ 50 reposts+quotes);
  low       the rest.

Score (for ordering, e.g. the dashboard's risk list; it no longer sets the level):
score = 0.35·reach + 0.25·engagement + 0.15·velocity + escalation words (≤ 0.4)
        + 0.1·|sentiment| when negative, then ×0.6 for praise; clamped to [0, 1].

  reach       log10(followers + 1) / 6        (1M followers → 1.0; 1,000 → 0.5)
  engagement  log10(e + 1) / 4, e = 3·reposts + 4·quotes + 1.5·replies + 0.5·likes
              (spreading and commenting carry a post further than a like; 10,000 → 1.0)
  velocity    log10(e per hour + 1) / 3       (only when the post's age is known; 1,000/h → 1.0)

"""
from __future__ import annotations

import math

from connector.analysis.lexicon import Cue
from connector.analysis.sentiment import fmt
from connector.evidence import say
from connector.models import Label

REACH_WEIGHT = 0.35
ENGAGEMENT_WEIGHT = 0.25
VELOCITY_WEIGHT = 0.15
NEGATIVE_WEIGHT = 0.1
ESCALATION_CAP = 0.4
PRAISE_FACTOR = 0.6
#: The guide's thresholds.
LARGE_AUDIENCE = 10_000
REAL_REACH = 1_000
STRONG_ESCALATION = 0.3
#: "Many reposts" (docs/labels.md): reposts + quotes from this many on, a post is spreading.
SPREADING = 50

#: Engagement weights: a repost or quote puts the post in front of new people; a like barely does.
REPOST, QUOTE, REPLY, LIKE = 3.0, 4.0, 1.5, 0.5
#: A post younger than this is treated as this old, so two reposts in the first minute are not
#: "7,200 per hour".
MIN_AGE_HOURS = 1 / 6


def _reach_words(followers: int) -> str:
    if followers >= 100_000:
        return "very high"
    if followers >= 10_000:
        return "high"
    if followers >= 1_000:
        return "medium"
    return "low"


def risk_level(*, negative: bool, report: bool, followers: int, spread: int, strong_escalation: list[str],
               safety: list[str]) -> tuple[str, str]:
    """(level, why) by the guide's rules, in its order."""
    if safety and (negative or report):
        return "critical", say("why_safety", words=", ".join(safety[:3]))
    if negative and followers >= LARGE_AUDIENCE:
        return "critical", say("why_large", followers=f"{followers:,}", limit=f"{LARGE_AUDIENCE:,}")
    if negative and strong_escalation:
        return "critical", say("why_escalation", words=", ".join(strong_escalation[:3]))
    if negative and followers >= REAL_REACH:
        return "high", say("why_large", followers=f"{followers:,}", limit=f"{REAL_REACH:,}")
    if negative and spread >= SPREADING:
        return "high", say("why_spreading_negative", spread=f"{spread:,}", limit=SPREADING)
    if negative:
        return "medium", say("why_modest")
    if spread >= SPREADING:
        return "medium", say("why_spreading", spread=f"{spread:,}", limit=SPREADING)
    return "low", say("why_low")


def public_risk(*, escalation_cues: list[Cue], sentiment: Label, intent: str, followers: int = 0,
                reposts: int = 0, likes: int = 0, quotes: int = 0, replies: int = 0,
                age_minutes: float | None = None, safety_cues: list[Cue] | None = None) -> Label:
    evidence: list[str] = []
    followers = max(int(followers or 0), 0)
    reach = min(1.0, math.log10(followers + 1) / 6)
    evidence.append(say("followers", followers=f"{followers:,}", reach=_reach_words(followers),
                        weight=f"{REACH_WEIGHT * reach:.2f}"))
    score = REACH_WEIGHT * reach

    engaged = REPOST * max(reposts, 0) + QUOTE * max(quotes, 0) + REPLY * max(replies, 0) + LIKE * max(likes, 0)
    if engaged:
        engagement = min(1.0, math.log10(engaged + 1) / 4)
        score += ENGAGEMENT_WEIGHT * engagement
        evidence.append(say("engagement", reposts=reposts, quotes=quotes, replies=replies, likes=likes,
                            weight=f"{ENGAGEMENT_WEIGHT * engagement:.2f}"))
    if age_minutes is not None and engaged:
        hours = max(age_minutes / 60, MIN_AGE_HOURS)
        per_hour = engaged / hours
        velocity = min(1.0, math.log10(per_hour + 1) / 3)
        score += VELOCITY_WEIGHT * velocity
        evidence.append(say("velocity", per_hour=f"{per_hour:,.0f}", weight=f"{VELOCITY_WEIGHT * velocity:.2f}"))
    elif age_minutes is None and engaged:
        evidence.append(say("velocity_unknown"))

    escalation = 0.0
    for cue in escalation_cues:
        escalation += cue.weight
        evidence.append(say("escalation", word=cue.pattern.removeprefix("re:"), weight=f"{cue.weight:.2f}"))
    if escalation > ESCALATION_CAP:
        evidence.append(say("escalation_cap", cap=ESCALATION_CAP))
        escalation = ESCALATION_CAP
    score += escalation

    if sentiment.score < 0 and sentiment.value == "negative":
        score += NEGATIVE_WEIGHT * -sentiment.score
        evidence.append(say("risk_negative", score=fmt(sentiment.score), weight=f"{NEGATIVE_WEIGHT * -sentiment.score:.2f}"))
    if intent == "praise":
        score *= PRAISE_FACTOR
        evidence.append(say("praise_factor", factor=PRAISE_FACTOR))

    score = min(max(score, 0.0), 1.0)
    strong = [cue.pattern.removeprefix("re:") for cue in escalation_cues if cue.weight >= STRONG_ESCALATION]
    safety = [cue.pattern.removeprefix("re:") for cue in (safety_cues or [])]
    level, why = risk_level(negative=sentiment.value == "negative", report=intent == "report",
                            followers=followers, spread=max(reposts, 0) + max(quotes, 0),
                            strong_escalation=strong, safety=safety)
    evidence.append(say("risk_score", score=f"{score:.2f}", why=why, level=level))
    return Label(level, round(score, 4), tuple(evidence))
