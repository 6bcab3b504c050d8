"""Public risk and the priority table."""
from __future__ import annotations

import pytest

from connector.analysis import analyse_text
from connector.analysis.priority import PriorityTable

# ── public risk ──────────────────────────────────────────────────────────────────────────

def test_influencer_with_kakusan_kibou_is_critical():
    result = analyse_text("ソラモバイル最悪。全然繋がらない。拡散希望", followers=120_000)
    assert result.risk.value == "critical"
    assert "followers 120,000 → reach very high (+0.30)" in result.risk.evidence
    assert any(e.startswith("escalation word 拡散希望") for e in result.risk.evidence)
    assert result.priority.value == "urgent"


def test_small_account_with_escalation_words_is_critical_by_the_guide():
    # docs/labels.md: "an escalation word (拡散希望, 消費者センター, 弁護士, 保健所, 晒す) with a
    # negative post" is critical, whatever the reach; the score still orders within the level.
    result = analyse_text("消費者センターに相談します。二度と使わない", followers=800)
    assert result.risk.value == "critical"
    assert "escalation capped at 0.4" in result.risk.evidence
    assert "negative with escalation word 消費者センター" in result.risk.evidence[-1]


def test_a_weak_escalation_word_alone_does_not_make_a_post_critical():
    # 二度と is a strong complaint, not an escalation word for risk (docs/labels.md, amendments)
    result = analyse_text("二度と使わない", followers=300)
    assert result.risk.value == "medium"


@pytest.mark.parametrize("followers,reposts,sentiment_text,level", [
    (20_000, 0, "全然繋がらない。最悪", "critical"),      # negative, large audience
    (20_000, 0, "いつも快適です、ありがとう", "low"),        # large audience alone is not risk
    (1_500, 0, "全然繋がらない。最悪", "high"),           # negative with real reach
    (200, 60, "全然繋がらない。最悪", "high"),            # negative and spreading
    (200, 0, "全然繋がらない。最悪", "medium"),           # negative, modest reach
    (200, 60, "いつも快適です、ありがとう", "medium"),      # any post spreading
    (200, 30, "いつも快適です、ありがとう", "low"),         # 30 reposts is not yet spreading
])
def test_risk_levels_follow_the_guide(followers, reposts, sentiment_text, level):
    assert analyse_text(sentiment_text, followers=followers, reposts=reposts).risk.value == level


def test_small_neutral_question_is_low():
    result = analyse_text("料金プランについて教えてください", followers=20)
    assert result.risk.value == "low"
    assert result.risk.score < 0.25
    assert result.priority.value == "normal"


def test_engagement_weighs_reposts_and_quotes_over_likes():
    likes = analyse_text("繋がらない", followers=500, likes=100).risk.score
    reposts = analyse_text("繋がらない", followers=500, reposts=100).risk.score
    quotes = analyse_text("繋がらない", followers=500, quotes=100).risk.score
    assert likes < reposts < quotes


def test_velocity_raises_risk_when_age_is_known():
    slow = analyse_text("繋がらない", followers=500, reposts=30, age_minutes=24 * 60).risk.score
    fast = analyse_text("繋がらない", followers=500, reposts=30, age_minutes=10).risk.score
    assert fast > slow


def test_negative_sentiment_raises_and_praise_lowers_risk():
    neutral = analyse_text("明日の予定を確認します", followers=50_000).risk.score
    negative = analyse_text("対応が最悪", followers=50_000).risk.score
    praise = analyse_text("いつもありがとう！神対応", followers=50_000).risk
    assert negative > neutral > praise.score
    assert "praise lowers risk ×0.6" in praise.evidence


def test_english_escalation_words():
    risk = analyse_text("Worst service ever. I will report to the BBB and my lawyer", followers=3000).risk
    assert risk.value in ("high", "critical")
    assert any(e.startswith("escalation word lawyer") for e in risk.evidence)


def test_risk_score_is_bounded():
    risk = analyse_text("拡散希望 弁護士 訴訟 消費者センター 炎上 最悪", followers=10**9, reposts=10**9,
                        quotes=10**9, likes=10**9, age_minutes=1).risk
    assert risk.value == "critical"
    assert 0 <= risk.score <= 1


# ── priority table ───────────────────────────────────────────────────────────────────────

LABELS = {"sentiment": "neutral", "intent": "other", "expectation_type": "common",
          "expectation_content": "quality", "quality_axis": "accuracy", "risk": "low"}


def decide(**changes):
    return PriorityTable.default().decide({**LABELS, **changes})


@pytest.mark.parametrize("changes, priority, rule", [
    ({"risk": "critical", "sentiment": "positive"}, "urgent", 1),
    ({"risk": "high", "sentiment": "negative"}, "urgent", 2),
    ({"intent": "report", "risk": "medium"}, "high", 3),
    ({"risk": "high"}, "high", 4),
    ({"intent": "complaint", "sentiment": "negative"}, "high", 5),
    ({"intent": "question"}, "normal", 6),
    ({"intent": "request"}, "normal", 7),
    ({"intent": "praise", "sentiment": "positive"}, "low", 8),
    ({"sentiment": "positive"}, "low", 9),
    ({}, "normal", 10),
])
def test_default_rules(changes, priority, rule):
    decided, evidence = decide(**changes)
    assert decided == priority
    assert evidence.startswith(f"rule {rule}: ")
    assert evidence.endswith(f"→ {priority}")


def test_evidence_names_the_conditions_with_their_values():
    assert decide(risk="high", sentiment="negative") == (
        "urgent", "rule 2: risk=high, sentiment=negative (confidence ≥ 0.6) → urgent")
    assert decide() == ("normal", "rule 10: catch-all → normal")


def test_a_report_at_low_risk_is_not_high():
    assert decide(intent="report")[0] == "normal"


def test_from_rules_with_lists_and_fallback_without_catch_all():
    table = PriorityTable.from_rules([
        {"when": {"intent": ["report", "complaint"], "risk": ["high", "critical"]}, "priority": "urgent"},
        {"when": {"sentiment": "positive"}, "priority": "low"},
    ])
    assert table.decide({**LABELS, "intent": "complaint", "risk": "critical"}) == (
        "urgent", "rule 1: intent=complaint, risk=critical → urgent")
    assert table.decide({**LABELS, "sentiment": "positive"})[0] == "low"
    assert table.decide(LABELS) == ("normal", "no rule matched: default normal")


def test_analyse_text_uses_the_given_table():
    table = PriorityTable.from_rules([{"when": {}, "priority": "low"}])
    result = analyse_text("店員の態度が最悪。二度と行かない", priority_table=table)
    assert result.priority.value == "low"
    assert result.priority.evidence == ("rule 1: catch-all → low",)


@pytest.mark.parametrize("rules, message", [
    ([{"when": {"risk": "critical"}, "priority": "urgent"}, {"when": {}, "priority": "low"},
      {"when": {"risk": "huge"}, "priority": "high"}],
     "priority[2].when.risk: 'huge' is not one of low, medium, high, critical"),
    ([{"when": {"mood": "angry"}, "priority": "high"}], "priority[0].when.mood: unknown label"),
    ([{"when": {}, "priority": "asap"}], "priority[0].priority: 'asap' is not one of urgent, high, normal, low"),
    ([{"when": {}}], "priority[0]: missing key 'priority'"),
    ([{"when": {}, "priority": "low", "tag": "x"}], "priority[0].tag: unknown key"),
    ([{"when": {"intent": []}, "priority": "low"}], "priority[0].when.intent: empty list"),
    ([{"when": {"intent": ["report", 3]}, "priority": "low"}], "priority[0].when.intent: 3 is not one of"),
    ([{"when": "risk=high", "priority": "low"}], "priority[0].when: must be a table"),
    (["risk=high"], "priority[0]: must be a table"),
    ({"when": {}}, "priority: must be a list"),
])
def test_from_rules_names_the_bad_rule(rules, message):
    with pytest.raises(ValueError) as error:
        PriorityTable.from_rules(rules)
    assert str(error.value).startswith(message)


def test_default_table_is_the_documented_file():
    table = PriorityTable.default()
    assert len(table) == 10
    assert table == PriorityTable.default()
