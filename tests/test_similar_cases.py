"""Similar past cases (connector/similar_cases.py): the ranking on team-written cases, the
customer's reaction rule, and the sidebar's section built from the store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connector.similar_cases import (
    CaseText,
    LaterPost,
    precision_at,
    rank_similar,
    reaction_after,
    situations_of,
)
from tests.similar_cases_eval import evaluate

#: Measured 0.87 on the 18 queries the weights were chosen on, 0.72 on 12 held-out queries
#: written afterwards (40 cases of 3 brands; `python benchmarks/reply_help.py`); a change that
#: loses about a sixth of the good neighbours fails here.
MIN_PRECISION_AT_3 = 0.75
MIN_HELDOUT_PRECISION_AT_3 = 0.6


def test_precision_at_3_on_team_written_cases():
    result = evaluate(k=3)
    assert result["cases"] >= 40 and result["brands"] >= 2 and result["queries"] >= 15
    assert result["precision_at_3"] >= MIN_PRECISION_AT_3, [q for q in result["per_query"] if q["precision"] < 1]


def test_precision_at_3_on_held_out_queries():
    result = evaluate(k=3, queries="heldout_queries")
    assert result["queries"] >= 10
    assert result["precision_at_3"] >= MIN_HELDOUT_PRECISION_AT_3, [q for q in result["per_query"] if q["precision"] < 1]


def test_precision_counts_missing_places_as_misses():
    assert precision_at(3, ["a"], {"a", "b", "c"}) == 1 / 3
    assert precision_at(3, [], {"a"}) == 0.0


def case(key: str, text: str, **labels: str) -> CaseText:
    return CaseText(key, text, labels, situations_of(text))


def test_ranking_finds_the_same_situation_across_languages_and_skips_the_query():
    pool = [case("a", "ソラモバイル、駅で圏外になる", intent="complaint"),
            case("b", "ソラモバイルの請求が高い", intent="complaint"),
            case("q", "Sora Mobile has no signal at the station", intent="complaint")]
    ranked = rank_similar(pool[2], pool, drop=("ソラモバイル", "Sora Mobile"))
    assert [r.key for r in ranked][:1] == ["a"] and "q" not in [r.key for r in ranked]
    assert ranked[0].topic_score > 0 and "intent" in ranked[0].shared_labels


def test_brand_names_alone_make_no_likeness():
    pool = [case("a", "ソラモバイル ソラモバイル ソラモバイル"), case("b", "ハルカ珈琲のラテが美味しい")]
    assert rank_similar(case("q", "ソラモバイル"), pool, drop=("ソラモバイル",)) == []


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def later(hours: float, text: str, sentiment: str | None = "neutral") -> LaterPost:
    return LaterPost(text, T0 + timedelta(hours=hours), sentiment)


def test_reaction_from_the_customers_next_post():
    assert reaction_after(T0, [later(2, "返信ありがとう、助かりました")]).verdict == "good"
    assert reaction_after(T0, [later(2, "Thanks, works now")]).verdict == "good"
    assert reaction_after(T0, [later(2, "今日は晴れ", "positive")]).verdict == "good"
    bad = reaction_after(T0, [later(5, "全然直らない", "negative"), later(1, "まだ", "negative")])
    assert bad.verdict == "bad" and bad.post_text == "まだ"  # the first post after the reply
    assert reaction_after(T0, [later(1, "ふむ")]).verdict == "neutral"
    assert reaction_after(T0, [later(-1, "ありがとう")]).verdict == "none"  # before the reply
    assert reaction_after(T0, [later(24 * 8, "ありがとう")]).verdict == "none"  # too late to be about it
    assert reaction_after(None, []).verdict == "none"
