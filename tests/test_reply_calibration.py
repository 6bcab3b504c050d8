"""The "too similar to a recent reply" rule, calibrated on team-written replies
(tests/fixtures/reply_calibration.json): good, distinct replies to different customers about the
same situation must not be flagged (false-alarm rate at most 5%), while copy-paste — the same
reply with the name changed, a line added, the signature or greeting swapped — must be caught.
`python benchmarks/reply_help.py` prints the same figures next to the uncalibrated rule's."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from connector.draft_check import DEFAULT_SIMILARITY, DraftContext, RecentReply, check_similar, similarity

FIXTURE = Path(__file__).parent / "fixtures" / "reply_calibration.json"
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))
BRANDS = ("ソラモバイル", "ハルカ珈琲")
MAX_FALSE_ALARM_RATE = 0.05


def distinct_pairs() -> list[tuple[dict, dict, str]]:
    return [(a, b, topic["brand"]) for topic in DATA["topics"] for a, b in itertools.combinations(topic["replies"], 2)]


def flagged(draft: str, agent: str, earlier: str, earlier_agent: str, brand: str) -> bool:
    ctx = DraftContext(platform="x", agent=agent, brand=brand, recent_replies=[RecentReply(earlier, earlier_agent)])
    return bool(check_similar(draft, ctx))


def test_fixture_has_at_least_fifty_distinct_pairs_and_copies():
    assert len(distinct_pairs()) >= 50
    assert len(DATA["copies"]) >= 10


def test_false_alarm_rate_on_good_distinct_replies_is_at_most_five_percent():
    pairs = distinct_pairs()
    alarms = [(a["text"], b["text"]) for a, b, brand in pairs
              if flagged(b["text"], b["agent"], a["text"], a["agent"], brand)]
    rate = len(alarms) / len(pairs)
    assert rate <= MAX_FALSE_ALARM_RATE, (rate, alarms[:3])


def test_the_uncalibrated_rule_would_have_failed_this_fixture():
    """Guards the fixture itself: it holds the short house-style replies that made the old rule
    (whole-text trigrams) cry wolf, so the test above measures something."""
    pairs = distinct_pairs()
    old = sum(similarity(a["text"], b["text"], [a["agent"], b["agent"], brand], boilerplate=None) >= DEFAULT_SIMILARITY
              for a, b, brand in pairs)
    assert old / len(pairs) > MAX_FALSE_ALARM_RATE


@pytest.mark.parametrize("copy", DATA["copies"], ids=[c["how"] for c in DATA["copies"]])
def test_copy_paste_is_still_caught(copy):
    brand = next(b for b in BRANDS if b in copy["original"] or b in copy["copy"]) if any(
        b in copy["original"] + copy["copy"] for b in BRANDS) else "ソラモバイル"
    assert flagged(copy["copy"], copy["agent"], copy["original"], "鈴木", brand), copy["how"]


def test_a_stock_reply_that_is_all_politeness_is_still_compared_whole():
    stock = "ご不便をおかけして申し訳ございません。引き続きよろしくお願いいたします。"
    assert flagged("田中様、" + stock, "佐藤", "山本様、" + stock, "鈴木", "ソラモバイル")


def test_the_brand_dm_handoff_counts_as_frame_not_content():
    from connector.watch import ReplyGuidelines
    handoff = "お手数ですが、ご契約の詳細をダイレクトメッセージでお知らせいただけますか。こちらから確認いたします。"
    earlier = f"伊藤様、請求の内訳が分かりにくい件、申し訳ございません。{handoff}"
    draft = f"松本様、分割払いの残り回数が違う件、申し訳ございません。{handoff}"
    plain = DraftContext(platform="x", agent="佐藤", brand="ソラモバイル", recent_replies=[RecentReply(earlier, "鈴木")])
    from dataclasses import replace
    guided = replace(plain, guidelines=ReplyGuidelines(dm_handoff=handoff))
    assert check_similar(draft, plain), "without the guideline the shared hand-off dominates"
    assert check_similar(draft, guided) == []
