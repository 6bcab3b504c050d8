"""Intent, expectation type and content, quality axis; `analyse` on a Post; language choice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector.analysis import analyse, analyse_text
from connector.models import Analysis, Author, Metrics, Post


def labels(text: str, **kwargs) -> Analysis:
    return analyse_text(text, **kwargs)


# ── intent ───────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, intent", [
    ("料金プランの変更方法を教えてください", "question"),
    ("機種変更のときデータ移行はどうすればいいでしょうか？", "question"),
    ("アプリにダークモードを追加してほしいです", "request"),
    ("家族割があればいいのに", "request"),
    ("昨日から通信障害で全く繋がらない", "report"),
    ("アプリを開くとエラーが出てログインできない", "report"),
    ("いつも丁寧な対応ありがとうございます！神対応でした", "praise"),
    ("店員の態度が最悪。二度と行かない", "complaint"),
    ("請求額がおかしい、ふざけるな", "complaint"),
    ("この前の件について", "other"),
    ("How do I change my plan?", "question"),
    ("Please add a family plan", "request"),
    ("The app is down again, not working since this morning", "report"),
    ("Thanks for the quick help, awesome support!", "praise"),
    ("Worst customer service ever, totally unacceptable", "complaint"),
])
def test_intent(text, intent):
    label = labels(text).intent
    assert label.value == intent, label
    assert label.evidence


def test_praise_words_in_a_negative_post_do_not_make_praise():
    assert labels("ありがとうございました。でも二度と使いません。最悪").intent.value == "complaint"


def test_intent_evidence_names_the_cues():
    label = labels("機種変更はどうすればいいでしょうか？").intent
    assert any("question mark ？" in e for e in label.evidence)
    assert any("でしょうか" in e for e in label.evidence)


def test_other_says_why():
    label = labels("この前の件について").intent
    assert label.score == 0
    assert "other" in label.evidence[-1]


# ── expectation type ─────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, kind", [
    ("駅で今すぐ地図を見たいのに繋がらない", "situational"),
    ("締め切り前なのにWi-Fiが落ちた", "situational"),
    ("出張先のホテルで使えなくて困った", "situational"),
    ("うちの母は高齢なので字が小さくて読めない", "individual"),
    ("子どもに卵アレルギーがあるので原材料を知りたい", "individual"),
    ("視覚障害があるので読み上げに対応してほしい", "individual"),
    ("アプリに家計簿機能があればいいのに", "latent"),
    ("複数回線をまとめて管理できたらいいな", "latent"),
    ("荷物が届かない", "common"),
    ("今日も普通に使えた", "common"),
    ("What a great day", "common"),
])
def test_expectation_type(text, kind):
    assert labels(text).expectation_type.value == kind


def test_expectation_type_default_is_common_with_evidence():
    label = labels("明日の予定を確認します").expectation_type
    assert label.value == "common"
    assert label.evidence == ("no cue: default common",)


# ── expectation content ──────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, content", [
    ("月額料金が高すぎる", "price"),
    ("3,980円のプランに変えたい", "price"),
    ("I was billed twice this month", "price"),
    ("学割プランがなくなったのは残念", "menu"),
    ("近所の店舗が閉店してしまった", "menu"),
    ("Please add more plan options", "menu"),
    ("通信速度が遅い", "quality"),
    ("窓口の接客が丁寧だった", "quality"),
])
def test_expectation_content(text, content):
    assert labels(text).expectation_content.value == content


def test_expectation_content_default_is_quality():
    label = labels("明日の予定を確認します").expectation_content
    assert (label.value, label.evidence) == ("quality", ("no cue: default quality",))


# ── quality axis ─────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, axis", [
    ("明細を見たら誤請求されていました", "accuracy"),
    ("説明と違う料金を引き落とされた", "accuracy"),
    ("サポートに電話したら1時間も待たされた", "speed"),
    ("返信が遅い", "speed"),
    ("規則なので対応できませんと言われた、融通がきかない", "flexibility"),
    ("オペレーターの態度が冷たくて悲しかった", "empathy"),
    ("個人情報が漏洩していないか不安です", "reassurance"),
    ("店員さんの笑顔が素敵で感じがよかった", "impression"),
    ("The staff was so rude to me", "empathy"),
    ("I'm worried my account was hacked", "reassurance"),
])
def test_quality_axis(text, axis):
    assert labels(text).quality_axis.value == axis


def test_quality_axis_default_follows_intent():
    label = labels("アプリがまた落ちてる").quality_axis
    assert label.value == "accuracy"
    assert label.evidence[0].startswith("no cue: default accuracy for intent report")


# ── the whole analysis ───────────────────────────────────────────────────────────────────

def make_post(text: str, *, lang: str | None = "ja", followers: int | None = 320, **metrics) -> Post:
    return Post(platform="x", id="1860000000000000001", created_at=datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc),
                lang=lang, text=text, author=Author(id="90000001", handle="tanaka_k", followers=followers),
                metrics=Metrics(**metrics))


def test_analyse_post_gives_every_label_with_evidence():
    result = analyse(make_post("ソラモバイル、駅で全然繋がらない。最悪", reposts=2, likes=6))
    assert isinstance(result, Analysis)
    assert result.language == "ja"
    assert result.sentiment.value == "negative"
    assert result.intent.value == "report"
    assert result.expectation_type.value == "situational"
    for name, label in result.labels().items():
        assert label.evidence, name
    assert Analysis.from_dict(result.to_dict()) == result


def test_analyse_is_deterministic_without_now():
    post = make_post("駅で繋がらない", reposts=40, likes=100)
    assert analyse(post) == analyse(post)
    assert "velocity unknown (post age not given)" in analyse(post).risk.evidence


def test_analyse_with_now_measures_velocity():
    post = make_post("駅で繋がらない", reposts=40, likes=100)
    later = post.created_at + timedelta(minutes=30)
    risk = analyse(post, now=later).risk
    assert any(e.startswith("velocity ") and "/hour" in e for e in risk.evidence)
    assert risk.score > analyse(post).risk.score


def test_post_lang_wins_and_detection_falls_back():
    assert analyse(make_post("ソラモバイル最高", lang=None)).language == "ja"
    assert analyse(make_post("Sora Mobile is great", lang=None)).language == "en"
    assert analyse(make_post("Sora Mobile is great", lang="en-US")).language == "en"
    assert analyse_text("😡").language == "ja"  # symbols only: the Japanese lexicon reads them


def test_different_texts_get_different_labels():
    texts = ["料金プランの変更方法を教えてください", "昨日から通信障害で全く繋がらない",
             "いつも丁寧な対応ありがとうございます！", "店員の態度が最悪。二度と行かない",
             "アプリにダークモードを追加してほしいです"]
    results = [labels(t) for t in texts]
    assert len({r.intent.value for r in results}) == 5
    assert len({r.sentiment.value for r in results}) == 3
    assert len({(r.intent.value, r.quality_axis.value, r.expectation_content.value) for r in results}) == 5


def test_blank_after_normalisation_is_neutral_other():
    result = labels("<br> https://example.com/x @someone")
    assert result.sentiment.value == "neutral"
    assert result.intent.value == "other"
