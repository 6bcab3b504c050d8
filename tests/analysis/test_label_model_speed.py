"""The label model's fast paths give what the plain ones give, bit for bit (issue 17).

`CharGramIndex` looks a post's character n-grams up as packed integers instead of strings, and
`LabelModel._weighed` finds every label's strongest features in one gather: both are checked
here against the straightforward versions they replace, on the corpus and on awkward text.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from connector.analysis import read
from connector.analysis.labeller import (
    CHAINED,
    LABELS,
    CharGramIndex,
    LabelModel,
    Vocabulary,
    WordGramIndex,
    char_grams,
    default_model,
)
from connector.analysis.model import _ngrams

ROOT = Path(__file__).resolve().parents[2]

AWKWARD = [
    "", " ", "a", "ab", "ＡＢＣ　ｄｅｆ", "İstanbul ǅ ß ΣΑΣ",  # lower() that changes length or case oddly
    "返金して\t\t  ください\n\n\nまだ？", "😡😡😡 orz (´・ω・`)", "\ud800 lone surrogate \udfff",
    "𠮷野家の𠮷", "ｗｗｗ草" * 50, "あ" * 600, "\x1f\x1e control",
]


@pytest.fixture(scope="module")
def shipped() -> LabelModel:
    model = default_model()
    assert model is not None
    return model


def corpus_texts(limit: int = 400) -> list[str]:
    lines = (ROOT / "corpus" / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:limit] if line.strip()]


def string_look_up(vocabulary: Vocabulary, grams) -> tuple[list[int], list[int]]:
    """The plain way: count the n-gram strings, look each up in the vocabulary's dict."""
    counted = Counter(grams)
    pairs = sorted((vocabulary.index[t], n) for t, n in counted.items() if t in vocabulary.index)
    return [c for c, _ in pairs], [n for _, n in pairs]


def string_counts(vocabulary: Vocabulary, text: str, low: int, high: int) -> tuple[list[int], list[int]]:
    return string_look_up(vocabulary, char_grams(text, low, high))


def test_packed_char_grams_are_the_string_look_up(shipped):
    low, high = shipped.settings["char_ngrams"]
    fast = CharGramIndex(shipped.char, low, high)
    for text in corpus_texts() + AWKWARD:
        columns, counts = fast.counts(text)
        assert (columns.tolist(), counts.tolist()) == string_counts(shipped.char, text, low, high), text


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("low,high", [(1, 1), (2, 3), (3, 5)])
def test_packed_char_grams_for_other_ranges_and_a_small_vocabulary(low, high, shuffled):
    terms = sorted({g for text in ["返金してください", "abc abd", "ｗｗ草", "ab"] for g in char_grams(text, 1, 5)})
    if shuffled:  # columns not in term order: a vocabulary built by hand
        terms = [terms[i] for i in np.random.default_rng(0).permutation(len(terms))]
    vocabulary = Vocabulary({t: i for i, t in enumerate(terms)}, np.ones(len(terms), dtype=np.float32))
    fast = CharGramIndex(vocabulary, low, high)
    assert fast.in_order is not shuffled
    for text in ["返金してくださいabc", "abd abc ab", "zzz", "ｗｗ草ｗｗ", *AWKWARD]:
        columns, counts = fast.counts(text)
        assert (columns.tolist(), counts.tolist()) == string_counts(vocabulary, text, low, high), text


def string_word_counts(vocabulary: Vocabulary, words, low: int, high: int) -> tuple[list[int], list[int]]:
    return string_look_up(vocabulary, _ngrams(words, low, high))


def test_packed_word_grams_are_the_string_look_up(shipped):
    low, high = shipped.settings["word_ngrams"]
    fast = WordGramIndex(shipped.word, low, high)
    for text in corpus_texts() + AWKWARD:
        words = read(text).prepared.words
        columns, counts = fast.counts(words)
        assert (columns.tolist(), counts.tolist()) == string_word_counts(shipped.word, words, low, high), text


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("low,high", [(1, 1), (1, 2), (2, 3)])
def test_packed_word_grams_for_other_ranges_and_a_small_vocabulary(low, high, shuffled):
    sentences = [["返金", "して", "ください"], ["返金", "して", "ない"], ["", "a", ""], ["ｗ", "ｗ", "ｗ"]]
    terms = sorted({g for words in sentences for g in _ngrams(words, 1, 3)})
    if shuffled:
        terms = [terms[i] for i in np.random.default_rng(1).permutation(len(terms))]
    vocabulary = Vocabulary({t: i for i, t in enumerate(terms)}, np.ones(len(terms), dtype=np.float32))
    fast = WordGramIndex(vocabulary, low, high)
    for words in sentences + [["返金", "して", "して", "ください", "未知"], [], ["未知"], ["ｗ"] * 7]:
        columns, counts = fast.counts(words)
        assert (columns.tolist(), counts.tolist()) == string_word_counts(vocabulary, words, low, high), words
    assert fast.counts(["返金\x1fして"]) is None  # only the string look-up can read such a token


def test_a_token_with_the_separator_is_read_by_the_string_look_up(shipped):
    from connector.analysis.labeller import Reading
    from connector.analysis.model import Prepared

    reading = read("返金してください")
    odd = Reading(Prepared(reading.prepared.normalized, "ja", ("返金\x1fして", "ください"),
                           reading.prepared.lexicon), reading.found)
    cols, vals = shipped.columns(odd)
    low, high = shipped.settings["word_ngrams"]
    offset = len(shipped.char.index)
    w_cols, w_vals = shipped.word.encode(_ngrams(odd.prepared.words, low, high), offset)
    word_part = (cols >= offset) & (cols < offset + len(shipped.word.index))
    assert cols[word_part].tolist() == w_cols.tolist()
    assert vals[word_part].tobytes() == w_vals.astype(np.float32).tobytes()


def test_a_vocabulary_too_wide_to_pack_keeps_the_string_look_up():
    vocabulary = Vocabulary({chr(0x4E00 + i): i for i in range(5000)}, np.ones(5000, dtype=np.float32))
    assert CharGramIndex.usable(vocabulary, 4)
    assert not CharGramIndex.usable(vocabulary, 5)  # 13 bits × 5 > 63


def reference_weighed(model: LabelModel, label: str, best: int, cols: np.ndarray, vals: np.ndarray,
                      sentiment: np.ndarray, limit: int) -> list[str]:
    """The per-label version the one-gather `_weighed` replaced."""
    coef = model.weights[label][0]
    centered = np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef - coef.mean(axis=0)
    if label in CHAINED:
        cols = np.concatenate([cols, np.arange(model.base_width, model.base_width + len(sentiment))])
        vals = np.concatenate([vals, sentiment.astype(np.float32) * model.settings["chain_weight"]])
    if not len(cols):
        return []
    contrib = vals * centered[best, cols]
    order = np.argsort(-contrib, kind="stable")[:limit]
    order = order[contrib[order] > 0.05]
    names = model.feature_names()
    return [f"{names[c]} (+{w:.2f})" for c, w in zip(cols[order].tolist(), contrib[order].tolist())]


@pytest.mark.parametrize("limit", [3, 0, 1, 8, -1, -500])
def test_what_weighed_most_is_the_per_label_ranking(shipped, limit):
    for text in corpus_texts(150) + AWKWARD:
        reading = read(text)
        if not reading.prepared.normalized:
            continue
        cols, vals = shipped.columns(reading)
        probs = shipped._row_probabilities(cols, vals)
        stack = shipped._stacked()[0]
        reference = stack[:, cols] @ vals  # the product as it was written before, bit for bit
        assert (np.ascontiguousarray(shipped._by_column()[cols][:, :stack.shape[0]]).T @ vals
                == reference).all()
        best = {label: int(np.argmax(probs[label])) for label in LABELS}
        got = shipped._weighed(best, cols, vals, probs["sentiment"], limit, shipped._by_column()[cols])
        for label in LABELS:
            assert got[label] == reference_weighed(shipped, label, best[label], cols, vals, probs["sentiment"],
                                                   limit), (label, text)


def reference_tokenize(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """tokenize's position-finding loop alone, as it was before its one-pass path."""
    from connector.analysis.text import _tagger, chunks

    words, postags, starts = [], [], []
    for offset, piece in chunks(text):
        if not piece.strip():
            continue
        tagged = _tagger().tagging(piece)
        position = 0
        for word, tag in zip([w.replace("\u3000", " ") for w in tagged.words], tagged.postags):
            if not piece.startswith(word, position):
                found = piece.find(word, position)
                if found < 0:
                    continue
                position = found
            words.append(word)
            postags.append(tag)
            starts.append(offset + position)
            position += len(word)
    return tuple(words), tuple(postags), tuple(starts)


def test_token_offsets_are_what_the_position_loop_finds():
    from connector.analysis.text import normalize, tokenize

    texts = corpus_texts(120) + ["全角　スペース　と 半角 スペース  ", "末尾の空白   ", "。" * 3 + "短い。" * 300,
                                 "ＡＢＣ ｄｅｆ ghi", "改行\nの\n\nある 文"]
    for text in texts:
        normalized = normalize(text)
        if not normalized.strip():
            continue
        tokens = tokenize(normalized)
        assert (tokens.words, tokens.postags, tokens.starts) == reference_tokenize(normalized), text


def test_the_literal_scan_looks_everywhere_a_literal_can_start():
    """`starts` only skips places: scanning every position finds the same, also for emoji (whose
    first characters are one range in the pattern, not listed)."""
    from connector.analysis.lexicon import _is_word, cue_index, japanese

    def everywhere(scanner, text):
        found = []
        for i in range(len(text)):
            for candidates in (scanner.by_two.get(text[i:i + 2]), scanner.by_one.get(text[i])):
                for literal, payload, whole_word in candidates or ():
                    end = i + len(literal)
                    if text.startswith(literal, i) and not (whole_word and (
                            (i and _is_word(text[i - 1])) or (end < len(text) and _is_word(text[end])))):
                        found.append((i, end, payload))
        return found

    texts = [t.casefold() for t in corpus_texts(200)] + [
        "最高😂😂👍🏻✨ありがとう🙏", "🫠🥲(´;ω;`)orz", "\U0001fa77💔😡 不具合", "bug debugging bugs", ""]
    for scanner in (japanese().symbols, cue_index("ja").literals, cue_index("en").literals):
        for text in texts:
            assert scanner.scan(text) == everywhere(scanner, text), text
