"""Complaint topics find a post's markup once (issue 17) and cut exactly where `strip_markup` does."""
from __future__ import annotations

import pytest

from connector.analysis.text import normalize, tokenize
from connector.topics import _markup_spans, _without, strip_markup, topics_of_text, topics_of_tokens

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
