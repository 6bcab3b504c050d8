"""Public risk: how far a post can travel, and how much the author means it to.

score = 0.35·reach + 0.25·engagement + 0.15·velocity + escalation words (≤ 0.4)
        + 0.1·|sentiment| when negative, then ×0.6 for praise; clamped to [0, 1].

  reach       log10(followers + 1) / 6        (1M followers → 1.0; 1,000 → 0.5)
  engagement  log10(e + 1) / 4, e = 3·reposts + 4·quotes + 1.5·replies + 0.5·likes
              (spreading and commenting carry a post further than a like; 10,000 → 1.0)
  velocity    log10(e per hour + 1) / 3       (only when the post's age is known; 1,000/h → 1.0)

Levels: low < 0.25 ≤ medium < 0.45 ≤ high < 0.7 ≤ critical. So a 20-follower question is low,
an ordinary complaint low or medium, a small account threatening 消費者センター high, and 100k
followers with 拡散希望 on a negative post critical: words alone never make a post critical.
"""
from __future__ import annotations

import math

from connector.analysis.lexicon import Cue
from connector.analysis.sentiment import fmt
from connector.models import Label

REACH_WEIGHT = 0.35
ENGAGEMENT_WEIGHT = 0.25
VELOCITY_WEIGHT = 0.15
NEGATIVE_WEIGHT = 0.1
ESCALATION_CAP = 0.4
PRAISE_FACTOR = 0.6
LEVELS = ((0.7, "critical"), (0.45, "high"), (0.25, "medium"), (0.0, "low"))

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


def public_risk(*, escalation_cues: list[Cue], sentiment: Label, intent: str, followers: int = 0,
                reposts: int = 0, likes: int = 0, quotes: int = 0, replies: int = 0,
                age_minutes: float | None = None) -> Label:
    evidence: list[str] = []
    followers = max(int(followers or 0), 0)
    reach = min(1.0, math.log10(followers + 1) / 6)
    evidence.append(f"followers {followers:,} → reach {_reach_words(followers)} (+{REACH_WEIGHT * reach:.2f})")
    score = REACH_WEIGHT * reach

    engaged = REPOST * max(reposts, 0) + QUOTE * max(quotes, 0) + REPLY * max(replies, 0) + LIKE * max(likes, 0)
    if engaged:
        engagement = min(1.0, math.log10(engaged + 1) / 4)
        score += ENGAGEMENT_WEIGHT * engagement
        evidence.append(f"engagement {reposts} reposts, {quotes} quotes, {replies} replies, {likes} likes "
                        f"(+{ENGAGEMENT_WEIGHT * engagement:.2f})")
    if age_minutes is not None and engaged:
        hours = max(age_minutes / 60, MIN_AGE_HOURS)
        per_hour = engaged / hours
        velocity = min(1.0, math.log10(per_hour + 1) / 3)
        score += VELOCITY_WEIGHT * velocity
        evidence.append(f"velocity {per_hour:,.0f} weighted engagements/hour (+{VELOCITY_WEIGHT * velocity:.2f})")
    elif age_minutes is None and engaged:
        evidence.append("velocity unknown (post age not given)")

    escalation = 0.0
    for cue in escalation_cues:
        escalation += cue.weight
        evidence.append(f"escalation word {cue.pattern.removeprefix('re:')} (+{cue.weight:.2f})")
    if escalation > ESCALATION_CAP:
        evidence.append(f"escalation capped at {ESCALATION_CAP}")
        escalation = ESCALATION_CAP
    score += escalation

    if sentiment.score < 0 and sentiment.value == "negative":
        score += NEGATIVE_WEIGHT * -sentiment.score
        evidence.append(f"negative sentiment {fmt(sentiment.score)} (+{NEGATIVE_WEIGHT * -sentiment.score:.2f})")
    if intent == "praise":
        score *= PRAISE_FACTOR
        evidence.append(f"praise lowers risk ×{PRAISE_FACTOR}")

    score = min(max(score, 0.0), 1.0)
    level = next(name for floor, name in LEVELS if score >= floor)
    evidence.append(f"score {score:.2f} → {level}")
    return Label(level, round(score, 4), tuple(evidence))
