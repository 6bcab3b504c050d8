"""The suggested first draft (connector/reply_draft.py): pure, from the post and [brand.reply]."""
from __future__ import annotations

import pytest

from connector.draft_check import DraftContext, check_draft, x_weighted_length
from connector.reply_draft import customer_words, suggest_draft
from connector.watch import FaqLink, ReplyGuidelines

GUIDE = ReplyGuidelines(
    signature="{brand}の{agent}です", signature_en="— {agent}, Sora Mobile Support",
    avoid_words=("仕様です",), dm_handoff="お手数ですが、ご契約の詳細はDMでお知らせいただけますか。",
    dm_handoff_en="Could you DM us your account details?",
    faq=(FaqLink("通信障害", ("繋がらない", "圏外", "no signal"), "https://support.sora.example/outage", "障害情報", "Outages"),))
TERMS = ("ソラモバイル", "ソラモバ", "Sora Mobile")


def draft(text: str, *, lang: str | None = "ja", name: str | None = "田中", sentiment="negative", intent="complaint",
          agent: str | None = "佐藤", guide: ReplyGuidelines | None = GUIDE):
    return suggest_draft(post_text=text, post_lang=lang, author_name=name, author_handle="tanaka_k", brand="ソラモバイル",
                         agent=agent, guidelines=guide, sentiment=sentiment, intent=intent, brand_terms=TERMS)


def test_complaint_about_a_faq_topic():
    d = draft("ソラモバイル、また駅で全然繋がらない。最悪。もう解約したい")
    assert d.lang == "ja"
    assert d.text == ("田中様、「駅で全然繋がらない」とのこと、ご不便をおかけして申し訳ございません。"
                      "障害情報はこちらです: https://support.sora.example/outage\nソラモバイルの佐藤です。")
    assert [p.kind for p in d.parts] == ["greeting", "situation", "faq", "signature"]


def test_no_faq_topic_means_the_dm_handoff_for_a_complaint():
    d = draft("ソラモバイルの請求がおかしい、二重に引き落とされてる")
    assert "お手数ですが、ご契約の詳細はDMでお知らせいただけますか。" in d.text and "https://" not in d.text
    assert "「請求がおかしい」" in d.text or "二重に引き落とされてる" in d.text


def test_praise_gets_thanks_and_no_handoff():
    d = draft("ソラモバイルに乗り換えて正解、速くて安い！最高", sentiment="positive", intent="praise")
    assert "「乗り換えて正解、速くて安い」とのお言葉、ありがとうございます。" in d.text
    assert [p.kind for p in d.parts] == ["greeting", "situation", "signature"]


def test_english_post_gets_an_english_draft():
    d = draft("Sora Mobile has no signal at Osaka station, calls keep dropping", lang="en", name="Maria", agent="Aiko")
    assert d.lang == "en"
    assert d.text == ('Hi Maria, we\'re sorry about "Sora Mobile has no signal at Osaka station". '
                      "Outages: https://support.sora.example/outage\n— Aiko, Sora Mobile Support")


def test_japanese_by_default_without_a_language():
    assert draft("ソラモバイルの料金プランを教えて", lang=None, sentiment="neutral", intent="question").lang == "ja"
    assert draft("hello, is the plan cheaper?", lang=None, sentiment="neutral", intent="question").lang == "en"


@pytest.mark.parametrize("name, expected", [
    ("田中@新宿勤務🚃", "田中様、"), ("<img src=x onerror=alert(1)>", "tanaka_k様、"), ("さくら（育休中）", "さくら様、"),
    ("", "tanaka_k様、"), ("あ" * 40, "あ" * 20 + "様、"),
])
def test_the_greeting_name_is_cleaned(name, expected):
    assert draft("ソラモバイル繋がらない", name=name).text.startswith(expected)


def test_without_guidelines_or_agent():
    d = draft("ソラモバイル、駅で繋がらない", guide=None)
    assert d.text.endswith("\nソラモバイルの佐藤です。") and "https://" not in d.text
    assert not any(p.kind == "signature" for p in draft("ソラモバイル、駅で繋がらない", agent=None).parts)


def test_customer_words_drop_urls_mentions_and_brand():
    assert customer_words("@soramobile_help ソラモバイルのアプリが開かないんだけど https://t.co/x #障害", drop=TERMS) == "アプリが開かない"
    long = customer_words("駅で" + "とても" * 30 + "繋がらない", drop=TERMS)
    assert len(long) <= 40 and long.endswith("…")
    assert customer_words("!!!") == ""


@pytest.mark.parametrize("text, lang, sentiment, intent", [
    ("ソラモバイル、また駅で全然繋がらない。最悪。もう解約したい", "ja", "negative", "complaint"),
    ("ソラモバイルの請求がおかしい、二重に引き落とされてる", "ja", "negative", "complaint"),
    ("ソラモバイルに乗り換えて正解、速くて安い！最高", "ja", "positive", "praise"),
    ("Sora Mobile has no signal at Osaka station, calls keep dropping", "en", "negative", "complaint"),
])
def test_the_suggested_draft_passes_the_draft_check_and_fits_x(text, lang, sentiment, intent):
    agent = "Aiko" if lang == "en" else "佐藤"
    d = draft(text, lang=lang, sentiment=sentiment, intent=intent, agent=agent)
    ctx = DraftContext(platform="x", agent=agent, brand="ソラモバイル", post_sentiment=sentiment, post_intent=intent,
                       guidelines=GUIDE, brand_aliases=TERMS, post_text=text)
    assert check_draft(d.text, ctx) == []
    assert x_weighted_length(d.text) <= 280


def test_an_english_reply_to_a_japanese_name_is_still_checked_as_english():
    text = "Sora Mobile has no signal at Osaka station"
    d = draft(text, lang="en", name="田中", agent="Aiko")
    assert d.text.startswith("Hi 田中, we're sorry")
    ctx = DraftContext(platform="x", agent="Aiko", brand="ソラモバイル", guidelines=GUIDE, brand_aliases=TERMS, post_text=text)
    assert check_draft(d.text, ctx) == []
