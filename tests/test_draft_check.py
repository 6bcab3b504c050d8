"""Each draft-check rule with replies a Japanese support team would actually write."""
from __future__ import annotations

import pytest

from connector.draft_check import (
    DraftContext,
    RecentReply,
    bluesky_length,
    check_avoid_words,
    check_draft,
    check_faq_link,
    check_length,
    check_personal_data,
    check_signature,
    check_similar,
    check_stock_phrases,
    check_tone,
    mastodon_length,
    similarity,
    x_weighted_length,
)

CTX = DraftContext(platform="x", agent="佐藤", brand="ソラモバイル", post_sentiment="negative", post_intent="complaint")


def ctx(**changes) -> DraftContext:
    from dataclasses import replace
    return replace(CTX, **changes)


def rules(findings) -> list[str]:
    return [f.rule for f in findings]


# --- length -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("hello", 5),
    ("こんにちは", 10),  # CJK counts 2
    ("ｱｲｳ", 6),  # half-width katakana is outside the light ranges too
    ("café", 4),  # Latin-1 counts 1
    ("“quoted” — ok", 13),  # U+201C/201D, U+2014 are in the light ranges
    ("👍", 2), ("👨‍👩‍👧", 2), ("🇯🇵", 2), ("👍🏽", 2),  # each emoji 2, sequences included
    ("詳細 https://example.com/" + "a" * 80, 4 + 1 + 23),  # every URL 23
    ("sora.jp を見て", 23 + 1 + 6),  # bare domains are links on X too
])
def test_x_weighted_length(text, expected):
    assert x_weighted_length(text) == expected


def test_mastodon_and_bluesky_lengths():
    assert mastodon_length("@yamada@mstdn.example ありがとう https://example.com/" + "x" * 100) == len("@yamada") + 1 + 5 + 1 + 23
    assert bluesky_length("👨‍👩‍👧あ") == 2  # graphemes


def test_length_counts_the_signature_that_will_be_added():
    text = "あ" * 136  # 272: fits alone, not with 「（ソラモバイル 佐藤）」 appended
    assert x_weighted_length(text) <= 280
    [finding] = check_length(text, CTX)
    assert finding.severity == "error" and "署名" in finding.message_ja and "/ 280" in finding.message_ja
    assert check_length("ソラモバイルの佐藤です。" + "あ" * 120, CTX) == []


def test_length_limits_per_network():
    assert check_length("a" * 500, ctx(platform="mastodon", agent=None)) == []
    assert rules(check_length("a" * 490, ctx(platform="mastodon", agent="Sato"))) == ["length"]  # + signature
    assert rules(check_length("a" * 501, ctx(platform="mastodon", agent=None))) == ["length"]
    assert rules(check_length("あ" * 301, ctx(platform="bluesky", agent=None))) == ["length"]
    assert check_length("あ" * 5000, ctx(platform="rss")) == []  # answered on the site


# --- signature ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "ソラモバイルの佐藤です。ご不便をおかけしております。",
    "ソラモバイル サポートの佐藤でございます。",
    "ソラモバイルカスタマーサポートの佐藤が担当いたします。",
    "ご不便をおかけしております。（ソラモバイル 佐藤）",  # the YORISOI_REPLY_SIGNATURE form
    "Hi, this is 佐藤 from ソラモバイル.",
])
def test_signature_forms_accepted(text):
    assert check_signature(text, CTX) == []


def test_missing_signature_is_info_because_it_is_appended():
    [finding] = check_signature("ご不便をおかけしております。", CTX)
    assert finding.severity == "info" and "（ソラモバイル 佐藤）" in finding.message_ja


def test_name_without_signature_form_means_nothing_is_appended():
    [finding] = check_signature("佐藤が確認しました。", CTX)
    assert finding.severity == "info" and "追加されません" in finding.message_ja


def test_unknown_agent_is_a_warning():
    assert [f.severity for f in check_signature("確認します", ctx(agent=None))] == ["warning"]


def test_configured_signature_pattern():
    custom = ctx(signature_pattern=r"担当[:：]\s*{agent}")
    assert check_signature("確認しました。担当：佐藤", custom) == []
    assert rules(check_signature("ソラモバイルの佐藤です。", custom)) == ["signature"]


# --- similar to a recent reply ----------------------------------------------------------------

TEMPLATE = "ご不便をおかけして申し訳ございません。ただいま駅周辺の通信状況を確認しております。復旧の見込みが分かり次第お知らせいたします。"


def test_copy_of_a_recent_reply_with_another_name_is_flagged():
    recent = [RecentReply(f"田中様、{TEMPLATE}（ソラモバイル 鈴木）", "鈴木")]
    [finding] = check_similar(f"山本様、{TEMPLATE}", ctx(recent_replies=recent))
    assert finding.severity == "warning" and "鈴木" in finding.message_ja


def test_pasted_template_with_a_line_added_is_flagged():
    recent = [RecentReply(TEMPLATE, "鈴木")]
    assert rules(check_similar(TEMPLATE + "新宿駅では本日18時に工事が終わる予定です。ご迷惑をおかけします。",
                               ctx(recent_replies=recent))) == ["similar_reply"]


def test_a_reply_written_for_this_customer_passes():
    recent = [RecentReply(TEMPLATE, "鈴木")]
    text = "新宿駅の地下ホームで繋がりにくい件、本日18時の工事完了で改善する見込みです。改善しなければこちらにご返信ください。"
    assert check_similar(text, ctx(recent_replies=recent)) == []
    assert similarity(text, TEMPLATE) < 0.6


def test_similarity_threshold_is_configurable():
    recent = [RecentReply("駅での通信状況を確認しております。少々お待ちください。", "鈴木")]
    text = "駅での通信状況を確認しています。お待ちください。"
    assert check_similar(text, ctx(recent_replies=recent, similarity_threshold=0.95)) == []
    assert rules(check_similar(text, ctx(recent_replies=recent, similarity_threshold=0.3))) == ["similar_reply"]


# --- stock phrases ------------------------------------------------------------------------

@pytest.mark.parametrize("text, phrase", [
    ("貴重なご意見ありがとうございます。今後の参考にさせていただきます。", "貴重なご意見"),
    ("今後のサービス向上の参考にさせていただきます", "今後のサービス向上の参考にさせていただき"),
    ("担当部署へ申し伝えます。", "担当部署へ申し伝え"),
    ("ご理解とご協力をお願いいたします。", "ご理解とご協力をお願い"),
    ("こちらは仕様となっております。", "仕様となっております"),
    ("We value your feedback.", "We value your feedback"),
    ("We apologize for any inconvenience.", "We apologize for any inconvenience"),
    ("We'll pass this on to the relevant team.", "We'll pass this on to the relevant team"),
])
def test_stock_phrases(text, phrase):
    findings = check_stock_phrases(text, CTX)
    assert findings and findings[0].severity == "warning"
    start, end = findings[0].span
    assert text[start:end] == phrase


def test_concrete_reply_has_no_stock_phrase():
    assert check_stock_phrases("新宿駅の件、18時の工事完了で改善する見込みです。改善しなければお知らせください。", CTX) == []


# --- personal data ------------------------------------------------------------------------

@pytest.mark.parametrize("text, found", [
    ("お電話は 090-1234-5678 までお願いします", "090-1234-5678"),
    ("03-1234-5678 にお電話ください", "03-1234-5678"),
    ("０９０－１２３４－５６７８へ", "０９０－１２３４－５６７８"),  # full-width digits and dash
    ("09012345678 まで", "09012345678"),
    ("+81 90-1234-5678", "+81 90-1234-5678"),
    ("sato.k+support@example.co.jp へ", "sato.k+support@example.co.jp"),
    ("ご注文番号：A1234567 の件", "ご注文番号：A1234567"),
    ("契約番号 SM-2026-0042 を確認", "契約番号 SM-2026-0042"),
    ("Your order #SO-88812 shipped", "order #SO-88812"),
    ("〒150-0002 まで", "〒150-0002"),
    ("東京都渋谷区渋谷2-21-1 の窓口", "東京都渋谷区渋谷2-21"),
    ("大阪市北区梅田3丁目", "大阪市北区梅田3丁目"),
])
def test_personal_data(text, found):
    [finding] = check_personal_data(text, CTX)
    assert finding.severity == "error" and "DM" in finding.hint_ja
    start, end = finding.span
    assert text[start:end] == found


@pytest.mark.parametrize("text", [
    "@yamada@mstdn.example ご連絡ありがとうございます",  # a Mastodon mention, not an e-mail
    "https://x.com/tanaka_k/status/1860000000000000103 をご覧ください",  # digits in a link
    "東京都内の駅で繋がりにくい件",  # a prefecture without a street address
    "2026-11-20 の障害",  # a date
    "詳細はDMでお伺いします",
])
def test_not_personal_data(text):
    assert check_personal_data(text, CTX) == []


# --- tone ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, marker", [
    ("それは災難でしたねｗ", "ｗ"), ("駅で繋がらないのは草", "草"), ("確認するね（笑）", "（笑）"),
    ("すぐ直るじゃん", "じゃん"), ("大丈夫だよ！", "だよ"), ("了解っす", "っす"),
    ("haha sorry about that", "haha"), ("no worries, we'll fix it", "no worries"),
])
def test_casual_tone_on_a_complaint(text, marker):
    [finding] = check_tone(text, CTX)
    assert finding.severity == "warning" and marker in finding.message_ja


def test_casual_tone_is_fine_with_a_happy_customer():
    assert check_tone("ありがとうございますｗ 嬉しいです", ctx(post_sentiment="positive", post_intent="praise")) == []


def test_polite_reply_to_a_complaint_passes():
    assert check_tone("ご不便をおかけしております。草津駅周辺の状況を確認いたします。", CTX) == []


# --- all together -------------------------------------------------------------------------

def test_a_good_reply_has_no_findings():
    text = "ソラモバイルの佐藤です。新宿駅の地下ホームで繋がりにくい件、本日18時の工事完了で改善する見込みです。詳細はDMでお伺いします。"
    assert check_draft(text, ctx(recent_replies=[RecentReply(TEMPLATE, "鈴木")])) == []


def test_a_reply_breaking_every_rule_gets_every_finding_errors_first():
    from tests.sidebar_seed import BAD_REPLY, EARLIER_REPLY
    findings = check_draft(BAD_REPLY, ctx(recent_replies=[RecentReply(EARLIER_REPLY, "鈴木")]))
    assert set(rules(findings)) == {"length", "signature", "similar_reply", "stock_phrase", "personal_data", "tone"}
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    for finding in findings:
        assert finding.message_ja and finding.message_en and finding.hint_ja and finding.hint_en


# --- English signatures, brand reply guidelines, character counts (issue 18) ---------------

EN = DraftContext(platform="x", agent="Aiko", brand="ソラモバイル", brand_aliases=("Sora Mobile", "ソラモバ"))


@pytest.mark.parametrize("text", [
    "Sorry for the trouble, data is back in Shibuya.\n— Aiko, Sora Mobile Support",
    "Sorry for the trouble, data is back in Shibuya. — Aiko",
    "Data is back in Shibuya.\n-Aiko",
    "Data is back in Shibuya.\nBest, Aiko",
    "Data is back in Shibuya. Thanks,\nAiko",
    "Kind regards, Aiko (Sora Mobile)",
    "Hi Tom, this is Aiko from the support team. Data is back.",
    "Hi Tom, Aiko from Sora Mobile here. Data is back.",
    "Aiko @ Sora Mobile: data is back in Shibuya.",
])
def test_english_signatures_are_recognised(text):
    assert check_signature(text, EN) == []


@pytest.mark.parametrize("text", [
    "Data is back in Shibuya.",  # unsigned: the signature is appended
    "Aikonic service is back.",  # a word that only starts with the name
    "Best, Aikomi",
])
def test_english_text_without_a_signature_is_not_taken_for_one(text):
    assert rules(check_signature(text, EN)) == ["signature"]


def guided(**changes):
    from connector.watch import FaqLink, ReplyGuidelines
    guide = ReplyGuidelines(
        signature="{brand}の{agent}です", signature_en="— {agent}, Sora Mobile Support",
        avoid_words=("仕様です", "ご理解ください", "per our policy"),
        dm_handoff="お手数ですが、ご契約の詳細はDMでお知らせいただけますか。",
        faq=(FaqLink("通信障害", ("繋がらない", "圏外", "no signal"), "https://support.sora.example/outage", "障害情報", "Outages"),))
    return ctx(**{"guidelines": guide, "post_text": "駅で全然繋がらない", **changes})


def test_signature_in_another_form_than_the_brands_is_info():
    [finding] = check_signature("ご不便をおかけしております。（ソラモバイル 佐藤）", guided())
    assert finding.severity == "info" and "ソラモバイルの佐藤です" in finding.message_ja
    assert check_signature("ソラモバイルの佐藤です。ご不便をおかけしております。", guided()) == []
    english = guided(agent="Aiko", brand_aliases=("Sora Mobile",))
    assert check_signature("Data is back.\n— Aiko, Sora Mobile Support", english) == []
    [finding] = check_signature("Data is back.\nBest, Aiko", english)
    assert "— Aiko, Sora Mobile Support" in finding.message_en


def test_avoid_words_are_found_folded_with_their_span():
    text = "申し訳ございません、こちらはシヨウです。ＰＥＲ ＯＵＲ ＰＯＬＩＣＹ、ご理解ください。"
    findings = check_avoid_words("それは仕様です。ご理解ください。", guided())
    assert [f.rule for f in findings] == ["avoid_word", "avoid_word"]
    assert findings[0].span == (3, 7) and "仕様です" in findings[0].message_ja
    [per, understand] = check_avoid_words(text, guided())
    assert text[per.span[0]:per.span[1]] == "ＰＥＲ ＯＵＲ ＰＯＬＩＣＹ"
    assert text[understand.span[0]:understand.span[1]] == "ご理解ください"
    assert check_avoid_words("それは仕様です。", ctx()) == []  # no guidelines, no rule


def test_faq_link_is_asked_for_when_the_post_is_about_its_topic():
    [finding] = check_faq_link("ご不便をおかけしております。復旧を急いでいます。", guided())
    assert finding.rule == "faq_link" and finding.severity == "info"
    assert "https://support.sora.example/outage" in finding.message_ja
    assert check_faq_link("復旧状況は https://support.sora.example/outage にあります。", guided()) == []
    assert check_faq_link("詳しい状況をＤＭでお知らせいただけますか。", guided()) == []  # moved to DMs
    assert check_faq_link("ご不便をおかけしております。", guided(post_text="料金が高い")) == []  # other topic


def test_character_counts_as_the_network_and_as_a_person_counts():
    from connector.draft_check import character_counts
    family = "👨\u200d👩\u200d👧"
    text = f"か\u3099{family}é\u0301"  # が as か + combining dakuten, a ZWJ family, e + two accents
    counted = character_counts(text, "x")
    assert counted["graphemes"] == 3
    assert counted["count"] == x_weighted_length(text) and counted["limit"] == 280 and counted["unit"] == "x-weighted"
    assert character_counts(text, "bluesky")["count"] == 3
    assert character_counts(text, "rss") == {"platform": "rss", "count": None, "limit": None, "unit": None, "graphemes": 3}
