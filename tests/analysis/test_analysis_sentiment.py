"""Sentiment: Japanese lexicon walk (negation, contrast, slang, politeness, emoji) and English VADER."""
from __future__ import annotations

import pytest

from connector.analysis import sentiment_of
from connector.analysis.sentiment import fmt


def sentiment(text: str, lang: str | None = None):
    return sentiment_of(text, lang)


# ── negation with scope ──────────────────────────────────────────────────────────────────

def test_waruku_nai_is_not_negative():
    label = sentiment("この機種、悪くない")
    assert label.value != "negative"
    assert label.score > 0
    assert any(e.startswith("negated: 悪く+ない") for e in label.evidence)


def test_yoku_wa_nai_is_negative():
    label = sentiment("画質は良くはない")
    assert label.value == "negative"


def test_double_negation_tsukaenaku_wa_nai_is_not_negative():
    label = sentiment("使えなくはない")
    assert label.value != "negative"
    assert any("double negation" in e for e in label.evidence)


def test_tsunagaranai_is_a_negated_positive_verb():
    label = sentiment("ソラモバイル、繋がらない")
    assert label.value == "negative"
    assert "negated: 繋がら+ない → -0.8" in label.evidence


def test_negation_reaches_across_particles_and_auxiliaries():
    assert sentiment("便利じゃない").value == "negative"
    assert sentiment("アプリが繋がってない").value == "negative"
    assert sentiment("問題ありません").value == "positive"
    assert sentiment("文句なし").value == "positive"


def test_shika_nai_intensifies_instead_of_negating():
    label = sentiment("感謝しかない")
    assert label.value == "positive"
    assert any("nothing but 感謝" in e for e in label.evidence)


def test_embedded_question_naika_is_not_a_denial():
    label = sentiment("個人情報が漏洩していないか不安です")
    assert label.value == "negative"
    assert any("asks whether" in e for e in label.evidence)


# ── contrast ─────────────────────────────────────────────────────────────────────────────

def test_cheap_but_slow_is_negative():
    label = sentiment("安いけど遅い")
    assert label.value == "negative"
    assert "contrast: clause after けど weighted ×1.5" in label.evidence


def test_slow_but_cheap_leans_positive():
    label = sentiment("遅いけど安い")
    assert label.score > 0


def test_sentence_initial_shikashi_weights_the_next_sentence():
    label = sentiment("デザインは素敵です。しかし、電池の持ちが最悪。")
    assert label.value == "negative"
    assert any(e.startswith("contrast: clause after しかし") for e in label.evidence)


def test_dangling_ga_takes_back_the_praise_before_it():
    plain = sentiment("良いです。").score
    hedged = sentiment("良いのですが。").score
    assert hedged < plain


# ── slang, intensifiers, softeners ───────────────────────────────────────────────────────

@pytest.mark.parametrize("text", ["草", "ｗｗ", "神対応でした", "まじで神アプリ", "サイコー"])
def test_positive_slang(text):
    assert sentiment(text).value == "positive"


@pytest.mark.parametrize("text", ["クソ回線", "最悪", "ゴミ対応", "オワコン"])
def test_negative_slang(text):
    assert sentiment(text).value == "negative"


def test_bimyou_leans_negative():
    assert sentiment("新プランは微妙").score < 0


def test_laughter_in_a_negative_sentence_is_mockery():
    label = sentiment("対応が最悪すぎて草")
    assert label.value == "negative"
    assert any("mockery" in e for e in label.evidence)


def test_intensifier_and_softener_scale_the_next_word():
    strong = sentiment("めちゃくちゃ遅い").score
    plain = sentiment("遅い").score
    soft = sentiment("ちょっと遅い").score
    assert strong < plain < soft < 0
    assert any(e.startswith("intensified: めちゃくちゃ+遅い") for e in sentiment("めちゃくちゃ遅い").evidence)


def test_sugoi_alone_is_praise_but_before_a_word_an_intensifier():
    assert sentiment("すごい！").value == "positive"
    assert sentiment("すごい遅い").value == "negative"


def test_too_much_of_a_neutral_word_is_a_complaint():
    assert sentiment("待ち時間が長すぎる").value == "negative"


# ── politeness, advice, questions ────────────────────────────────────────────────────────

def test_polite_request_hiding_a_complaint_is_not_positive():
    label = sentiment("早めにご対応していただけると助かるのですが")
    assert label.value == "negative"
    assert any(e.startswith("polite request:") for e in label.evidence)


def test_real_thanks_for_help_stays_positive():
    assert sentiment("すぐに対応してくれて助かりました").value == "positive"


def test_advice_with_hou_ga_ii_is_not_praise():
    assert sentiment("もう少し早く返信した方がいいと思います").value != "positive"
    assert sentiment("駐車場があるとよかったです").value == "negative"


def test_plain_question_is_neutral():
    label = sentiment("料金プランの変更はどうすればいいですか？")
    assert label.value == "neutral"


def test_question_with_negative_words_is_negative():
    assert sentiment("なんで毎朝こんなに遅いんですか？").value == "negative"


def test_positive_words_in_a_question_are_damped():
    label = sentiment("新しいプランは安いですか？")
    assert label.value == "neutral"
    assert any(e.startswith("question mark ？") for e in label.evidence)


# ── emoji and kaomoji ────────────────────────────────────────────────────────────────────

def test_angry_emoji_alone_is_negative():
    label = sentiment("😡")
    assert label.value == "negative"
    assert "😡 (-0.8)" in label.evidence


def test_crying_kaomoji_is_negative():
    assert sentiment("また繋がらない(´；ω；｀)").value == "negative"
    assert sentiment("(´；ω；｀)").value == "negative"


def test_thanks_emoji_are_positive():
    assert sentiment("🙏✨").value == "positive"
    assert sentiment("ありがとうございます😊").value == "positive"


def test_emoji_with_variation_selector_matches():
    assert sentiment("❤️").value == "positive"


# ── normalisation ────────────────────────────────────────────────────────────────────────

def test_half_width_katakana_and_full_width_latin_are_normalised():
    assert sentiment("ｻｲｺｰ").value == "positive"
    assert sentiment("ＧＪ").value == "positive"


def test_no_polar_word_is_neutral_with_evidence():
    label = sentiment("明日の予定を確認します")
    assert label.value == "neutral"
    assert label.score == 0
    assert label.evidence[0] == "no polar word: neutral"


def test_score_is_bounded_and_evidence_is_capped():
    label = sentiment("最悪。" * 200)
    assert -1.0 <= label.score <= -0.99
    assert len(label.evidence) <= 14


# ── English ──────────────────────────────────────────────────────────────────────────────

def test_english_uses_vader_with_its_thresholds():
    assert sentiment("I love the new plan, great support!").value == "positive"
    assert sentiment("Worst customer service ever.").value == "negative"
    assert sentiment("I changed my plan yesterday.").value == "neutral"
    assert sentiment("Worst customer service ever.").evidence[-1].startswith("vader compound -")


def test_english_support_vocabulary_extends_vader():
    label = sentiment("The app keeps crashing after the update")
    assert label.value == "negative"
    assert any(e.startswith("crashing (") for e in label.evidence)


def test_fmt_is_signed_and_short():
    assert fmt(0.4) == "+0.4"
    assert fmt(-0.9) == "-0.9"
    assert fmt(1.0) == "+1.0"
    assert fmt(-0.125) == "-0.12"
