"""Hostile and long input, text preparation, and the lexicon files themselves."""
from __future__ import annotations

import time

import pytest

from connector.analysis import analyse_text, sentiment_of
from connector.analysis import lexicon as lexicon_module
from connector.analysis.lexicon import LEXICON_DIR, LexiconError, inflections, japanese
from connector.analysis.text import chunks, detect_language, normalize, tokenize
from connector.models import MAX_TEXT_CHARS


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Load nagisa and the lexicons once, so timings measure the analysis, not start-up."""
    analyse_text("ウォームアップ")
    analyse_text("warm up")


HOSTILE = ('<div onclick="alert(1)"><script>document.write("炎上")</script>'
           'ソラモバイルは最悪です。繋がらないし、対応も遅い。拡散希望！&lt;b&gt; '
           'ｈｔｔｐｓ://example.com/a?b=1 <img src=x onerror=alert(2)></div>\n')


@pytest.mark.parametrize("text", [
    (HOSTILE * 200)[:MAX_TEXT_CHARS],
    "あ" * MAX_TEXT_CHARS,
    "最悪" * (MAX_TEXT_CHARS // 2),
    ("(" * 50 + ";" * 50) * (MAX_TEXT_CHARS // 100),
    "😡" * MAX_TEXT_CHARS,
    ("<p>The service is terrible!!! <script>x()</script> please fix it</p>" * 400)[:MAX_TEXT_CHARS],
])
def test_longest_hostile_text_finishes_quickly(text):
    start = time.perf_counter()
    result = analyse_text(text, followers=1000, reposts=5)
    assert time.perf_counter() - start < 2.0
    assert result.sentiment.value in ("negative", "neutral", "positive")
    assert len(result.sentiment.evidence) <= 14


def test_hostile_html_is_read_as_text():
    result = analyse_text(HOSTILE * 3)
    assert result.sentiment.value == "negative"
    assert any("拡散希望" in e for e in result.risk.evidence)


def test_normalize_strips_markup_urls_mentions_and_folds_width():
    assert normalize("<b>ｻｲｺｰ</b>　ＡＢＣ https://t.co/x @brand_help &amp; ❤️") == "サイコー ABC & ❤"


def test_detect_language():
    assert detect_language("繋がらない") == "ja"
    assert detect_language("not working") == "en"
    assert detect_language("not working", "ja") == "ja"
    assert detect_language("繋がらない", "en") == "en"
    assert detect_language("繋がらない", "und") == "ja"
    assert detect_language("!!!") == "ja"


def test_chunks_cover_the_text_at_sentence_ends():
    text = "あいうえお。" * 300
    pieces = chunks(text, 500)
    assert "".join(piece for _, piece in pieces) == text
    assert all(len(piece) <= 500 and piece.endswith("。") for _, piece in pieces)
    assert all(text[offset:offset + len(piece)] == piece for offset, piece in pieces)


def test_token_offsets_point_into_the_text():
    text = normalize("駅で 全然繋がらない。ｗｗ\n最悪😡")
    tokens = tokenize(text)
    for word, start in zip(tokens.words, tokens.starts):
        assert text[start:start + len(word)] == word


def test_inflections_of_each_kind():
    plain, negated = inflections("繋がる", "v5")
    assert {"繋がら", "繋がり", "繋がっ", "繋がる"} <= set(plain) and "繋がらない" in negated
    plain, negated = inflections("壊れる", "v1")
    assert "壊れ" in plain and "壊れない" in negated
    plain, negated = inflections("悪い", "adj")
    assert {"悪く", "悪かっ"} <= set(plain) and {"悪くない", "悪くはない"} <= set(negated)
    assert "高さ" not in inflections("高い", "adj")[0]  # height is not expensive
    with pytest.raises(ValueError):
        inflections("ウレシイ", "adj")


def test_lexicon_loads_with_many_entries():
    lex = japanese()
    assert len(lex.entries) > 3000
    assert lex.entries["最悪"].weight == -0.9
    assert lex.entries["繋がらない"].pre_negated
    assert lex.entries["ない"].role == "negator"


def test_lexicon_files_have_no_duplicate_entries():
    for name in ("sentiment_ja.tsv", "modifiers_ja.tsv", "symbols.tsv", "intent.tsv", "expectation_type.tsv",
                 "expectation_content.tsv", "quality_axis.tsv", "escalation.tsv", "sentiment_en.tsv"):
        seen: set[tuple[str, ...]] = set()
        for line in (LEXICON_DIR / name).read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            key = tuple(fields[:2]) if name == "modifiers_ja.tsv" else (
                tuple(fields[i] for i in (0, 1, 3)) if len(fields) >= 4 and name.endswith(
                    ("intent.tsv", "type.tsv", "content.tsv", "axis.tsv", "escalation.tsv")) else (fields[0],))
            assert key not in seen, f"{name}: duplicate {key}"
            seen.add(key)


def test_malformed_lexicon_line_names_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "sentiment_en.tsv").write_text("# header\ngood\tvery\n", encoding="utf-8")
    monkeypatch.setattr(lexicon_module, "LEXICON_DIR", tmp_path)
    lexicon_module.english_additions.cache_clear()
    try:
        with pytest.raises(LexiconError, match=r"sentiment_en.tsv:2: 'very' is not a number"):
            lexicon_module.english_additions()
    finally:
        lexicon_module.english_additions.cache_clear()


def test_sentiment_of_is_fast_on_short_posts():
    posts = ["駅で全然繋がらない。最悪", "神対応ありがとうございます！", "料金プランを教えてください"] * 100
    start = time.perf_counter()
    for post in posts:
        sentiment_of(post)
    assert (time.perf_counter() - start) / len(posts) < 0.02
