"""Qualification: Japanese width/kana folding, Latin word boundaries, and every exclusion."""
from __future__ import annotations

import pytest

from connector.models import Post
from connector.qualify import Qualifier
from connector.watch import load_watch
from tests.conftest import FIXTURES, post_dict


@pytest.fixture(scope="module")
def qualifier() -> Qualifier:
    return Qualifier(load_watch(FIXTURES / "watch.toml"))


def decide(qualifier: Qualifier, text: str, **overrides):
    return qualifier.decide(Post.model_validate(post_dict(text=text, **overrides)))


@pytest.mark.parametrize("text, reason", [
    ("ソラモバイルの料金が高い", "matched keyword ソラモバイル"),
    ("そらもばいるの料金が高い", "matched keyword ソラモバイル"),          # hiragana
    ("ｿﾗﾓﾊﾞｲﾙの料金が高い", "matched keyword ソラモバイル"),               # half-width katakana
    ("ＳＯＲＡ ＭＯＢＩＬＥ is slow today", "matched keyword sora mobile"),  # full-width Latin
    ("SoraMobile is slow today", "matched keyword sora mobile"),            # no space
    ("sora_mobile support please", "matched keyword sora mobile"),
    ("ソラモバ繋がらない", "matched keyword ソラモバ"),
    ("ソラｓｉｍ届いた", "matched keyword ソラSIM"),
    ("I switched to AU last week", "matched keyword au"),
    ("#ソラモバイルサポート 助けて", "matched hashtag #ソラモバイルサポート"),
    ("＃ソラモバイルサポート 助けて", "matched hashtag #ソラモバイルサポート"),   # full-width #
    ("@SoraMobile_Help 返信ください", "matched mention @soramobile_help"),
])
def test_spellings_match(qualifier, text, reason):
    decision = decide(qualifier, text)
    assert decision.qualified, decision.reasons
    assert decision.brand == "ソラモバイル"
    assert f"brand ソラモバイル: {reason}" in decision.reasons


@pytest.mark.parametrize("text", [
    "I stayed home because of the rain",          # `au` inside a word
    "Beautiful sky today",                         # `au` inside a word again
    "sora mobilephone case",                       # Latin keyword followed by letters
    "今日のソラがきれい",                            # ソラ alone is not the brand
])
def test_non_matches(qualifier, text):
    decision = decide(qualifier, text)
    assert not decision.qualified
    assert decision.reasons == ("no brand keyword, hashtag or mention matched",)


@pytest.mark.parametrize("text, rule", [
    ("#ソラモバイルサポート最高", "matched hashtag"),        # a different, longer hashtag
    ("mail@soramobile_help.example", "matched mention"),  # an e-mail address, not a mention
    ("@soramobile_helpdesk", "matched mention"),          # a longer handle
])
def test_hashtags_and_mentions_end_at_the_word(qualifier, text, rule):
    # These texts still name the brand (the keyword matches), but not through this rule.
    assert not any(rule in reason for reason in decide(qualifier, text).reasons)


def test_second_brand(qualifier):
    decision = decide(qualifier, "haruka coffee のラテ最高")
    assert decision.qualified and decision.brand == "ハルカ珈琲"


@pytest.mark.parametrize("overrides, reason", [
    ({"author": {"handle": "soramobile_jp"}}, "excluded: own or blocked account @soramobile_jp (exclude_accounts)"),
    ({"author": {"handle": "soramobile_help"}}, "excluded: own or blocked account @soramobile_help (exclude_accounts)"),  # case-insensitive
    ({"platform": "mastodon", "author": {"id": "777", "handle": "someone"}}, "excluded: own or blocked account @someone (exclude_accounts)"),
    ({"text": "ソラモバイル 求人 募集中"}, "excluded: word 求人"),
    ({"text": "ソラモバイルの紹介コードはこちら"}, "excluded: word 紹介コード"),
    ({"repost_of": "1860000000000000001"}, "excluded: repost of 1860000000000000001"),
    ({"text": "RT @tanaka_k: ソラモバイル最悪"}, "excluded: repost (text starts with RT @)"),
    ({"lang": "fr", "text": "ソラモバイル c'est nul"}, "excluded: language fr is not watched for ソラモバイル"),
    ({"text": "ソラモバイル http://a.example http://b.example https://c.example"}, "excluded: looks like spam (3 links)"),
    ({"text": "ソラモバイル " + " ".join(f"#tag{i}" for i in range(8))}, "excluded: looks like spam (8 hashtags)"),
])
def test_every_exclusion_is_explained(qualifier, overrides, reason):
    text = overrides.pop("text", "ソラモバイル最悪")
    decision = decide(qualifier, text, **overrides)
    assert not decision.qualified
    assert reason in decision.reasons
    assert any(r.startswith("brand ソラモバイル: matched") for r in decision.reasons)


def test_language_detected_when_missing(qualifier):
    decision = decide(qualifier, "ソラモバイル最悪", lang=None)
    assert decision.qualified


def test_follow_up_qualifies_without_brand(qualifier):
    post = Post.model_validate(post_dict(text="追記：再起動したら直りました"))
    decision = qualifier.decide(post, follow_up_of="x:1", follow_up_brand="ソラモバイル")
    assert decision.qualified and decision.brand == "ソラモバイル"
    assert decision.reasons[0].startswith("follow-up: same author's conversation already has a ticket (x:1)")


def test_follow_up_repost_still_excluded(qualifier):
    post = Post.model_validate(post_dict(text="RT @x: 追記", repost_of="5"))
    decision = qualifier.decide(post, follow_up_of="x:1", follow_up_brand="ソラモバイル")
    assert not decision.qualified


@pytest.mark.parametrize("mark", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_zero_width_characters_do_not_hide_a_keyword_or_an_excluded_word(qualifier, mark):
    """ソラ<U+200B>モバイル reads as ソラモバイル but did not contain the keyword (a complaint
    slipped past), and 求<U+200B>人 slipped past exclude_words (a job ad became a ticket).
    Zero-width characters are removed before matching (issue 16 #19)."""
    hidden_keyword = decide(qualifier, f"ソラ{mark}モバイル最悪、繋がらない")
    assert hidden_keyword.qualified and "brand ソラモバイル: matched keyword ソラモバイル" in hidden_keyword.reasons
    hidden_latin = decide(qualifier, f"So{mark}ra{mark}Mobile is slow today")
    assert "brand ソラモバイル: matched keyword sora mobile" in hidden_latin.reasons
    hidden_exclusion = decide(qualifier, f"ソラモバイル 求{mark}人 募集中")
    assert not hidden_exclusion.qualified and "excluded: word 求人" in hidden_exclusion.reasons
