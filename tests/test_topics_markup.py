"""Complaint topics find a post's markup once (issue 17) and cut exactly where `strip_markup` does."""
from __future__ import annotations

import pytest

from connector.analysis.text import normalize, tokenize
from connector.topics import _markup_spans, _without, brand_terms, strip_markup, topics_of_text, topics_of_tokens

HOSTILE = [
    "", "普通の文章", "ソラモバイル最悪 <script>alert(1)</script> 繋がらない",
    "<style>p{}</style>料金が高い<b>本当に</b>", "リンク [ここ](https://example.com/a(b)c) の通信速度",
    "javascript:alert(document.cookie) で請求画面", "<img src=x onerror=alert(2)>アプリが落ちる",
    "example.com と foo.bar.baz の障害", "<script>閉じないまま 料金", "a<b>c</b>d", "<<<>>>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_the_spans_cut_what_strip_markup_cuts(text):
    normalized = normalize(text)
    assert _without(normalized, _markup_spans(normalized)) == strip_markup(normalized)


@pytest.mark.parametrize("text", HOSTILE)
def test_topics_with_the_spans_given_are_the_topics_found_alone(text):
    normalized = normalize(text)
    if not normalized.strip():
        return
    tokens = tokenize(normalized)
    exclude = ("ソラモバイル",)
    assert topics_of_tokens(tokens, exclude=exclude, markup=_markup_spans(normalized)) == \
        topics_of_tokens(tokens, exclude=exclude)
    assert "alert" not in " ".join(topics_of_text(text, exclude=exclude))


def test_a_token_is_a_break_exactly_when_it_overlaps_a_span():
    from connector.analysis.text import Tokens
    from connector.topics import _phrases

    text = "ソラモバイルの<b>通信速度</b>と料金とアプリ"
    # (word, start): an empty token inside the closing tag, and one at a span's edge
    cut = [("ソラ", 0), ("モバイル", 2), ("の", 6), ("<b>", 7), ("", 10), ("通信", 10), ("速度", 12),
           ("</", 14), ("", 15), ("b>", 16), ("と", 18), ("料金", 19), ("と", 21), ("アプリ", 22)]
    words, starts = tuple(w for w, _ in cut), tuple(s for _, s in cut)
    tokens = Tokens(text, words, ("名詞",) * len(words), starts)
    exclude = brand_terms(["ソラモバイル"])
    spans = [(0, 6), (7, 10), (14, 18)]  # the brand, <b>, </b>
    expected_words = []
    for word, start in cut:  # the overlap test as first written, span by span
        end = start + len(word)
        expected_words.append("、" if any(start < s_end and s_start < end for s_start, s_end in spans) else word)
    assert expected_words.count("、") == 6
    expected = _phrases(expected_words, ["補助記号" if w == "、" else "名詞" for w in expected_words], exclude)
    assert topics_of_tokens(tokens, exclude=exclude, markup=[(7, 10), (14, 18)]) == expected
    assert "通信速度" in expected and not any("ソラ" in t or "<" in t for t in expected)
