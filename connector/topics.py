"""Complaint topics: the nouns and noun phrases people complain about, for the dashboard.

Pure, like the analysis package (whose nagisa tokenizer it reuses). Runs at ingest for
negative or complaint posts only, and the result is stored with the post (`post_topics`), so
the dashboard counts topics over a year of posts without tagging any text at page time.

The brand's own names, keywords and hashtags are masked out by *position*: every token that
overlaps a brand term's characters is a break. Filtering the words instead would not do: nagisa
splits 「ソラ光」 into ソラ (an interjection) + 光, so dropping brand words would keep 光, and
dropping words that contain a brand term would drop legitimate topics such as アプリ (part of
the keyword ソラアプリ). The tokens are the analysis's own (`tokenize` of the same normalised
text, which remembers the last few texts it tagged), so ingest tags each post once: until
issue 17 the masked text was tagged a second time, which cost a third of ingest's nagisa time.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Sequence

from connector.analysis.text import Tokens, detect_language, normalize, tokenize
from connector.textnorm import fold

#: nagisa's tags that make up a noun phrase: nouns, and Latin words inside Japanese text
#: (eSIM, Wi-Fi, 5G). A phrase is a run of them, with a prefix (お, 再) or suffix (料, 者) kept.
_NOUN = {"名詞", "英単語"}
_PREFIX = "接頭辞"
_SUFFIX = "接尾辞"
#: Words that are nouns to nagisa but say nothing about what is wrong.
STOP_WORDS = frozenset("""
こと もの もん の ん よう ため ところ とき 時 今 今日 昨日 明日 今回 前 後 中 方 人 自分 私 僕 俺 あなた 皆 みんな
これ それ あれ どれ ここ そこ あそこ どこ 何 なん なに 感じ 気 マジ 本当 ほんと 全然 普通 一 二 三 回 度 件 日 月 年 分 秒
ダメ だめ ヶ月 か月 ヵ月 円 毎回 毎日 今朝 今夜 最近 一番 以外 気持ち 時間 感 ほう 辺 あと
さん 様 くん ちゃん 方々 的 系 場合 状態 予定 以上 以下 一つ 全部 みたい 意味 理由 結果 場所 ww www 草
""".split())
#: Time words: when something happened is not what is wrong (「朝」 must never be the top
#: complaint topic just because commuters complain in the morning).
TIME_WORDS = frozenset("""
朝 昼 夜 晩 夕方 夕 深夜 夜中 夜間 早朝 午前 午後 正午 未明 明け方 朝方 毎朝 毎晩 毎週 毎月 昼間 昼休み 夜明け
平日 週末 休日 祝日 土日 連休 曜日 月曜 火曜 水曜 木曜 金曜 土曜 日曜 月曜日 火曜日 水曜日 木曜日 金曜日 土曜日 日曜日
今週 先週 来週 今月 先月 来月 今年 去年 昨年 来年 先日 当日 前日 翌日 翌朝 昨夜 今晩 さっき 先ほど 先程 きのう きょう あした
あさって おととい 一昨日 時間帯 期間 時期 頃 ごろ 時点 直後 直前 以来 数日 数時間 数分 半日 一日 一晩 毎度 現在 いつ
""".split())
STOP_WORDS = STOP_WORDS | TIME_WORDS
_WORDY = re.compile(r"[^\W\d_]", re.UNICODE)  # at least one letter: not an emoji, digit or symbol
_LATIN_END = re.compile(r"[A-Za-z0-9]$")
_LATIN_START = re.compile(r"[A-Za-z0-9]")
MAX_TOPICS = 8
MAX_CHARS = 40


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    folded = fold(char)
    return folded if len(folded) == 1 else char


def _fold_keep_length(text: str) -> str:
    """fold() applied per character where it keeps the length, so offsets map back (each
    character folded once per process: posts reuse the same few thousand)."""
    return "".join(map(_fold_char, text))


@lru_cache(maxsize=64)
def _mask_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    """The brand terms as one regex, built once per watch file rather than once per post."""
    return re.compile("|".join(r"\s*".join(re.escape(part) for part in term.split()) for term in terms))


def brand_terms(names: Iterable[str]) -> tuple[str, ...]:
    """Folded brand names/keywords/hashtags to mask, longest first (ソラモバイル before ソラ)."""
    terms = {fold(unicodedata.normalize("NFKC", n)).strip().lstrip("#＃@＠") for n in names}
    return tuple(sorted((t for t in terms if t), key=len, reverse=True))


def _mask_spans(text: str, terms: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where the brand terms are in `text` (character spans)."""
    if not terms:
        return []
    folded = _fold_keep_length(text)
    return [(m.start(), m.end()) for m in _mask_pattern(terms).finditer(folded) if m.end() > m.start()]


#: Markup and code in a post are an attack or noise, never what the customer complains about:
#: the demo's 「ソラモバイル最悪 <script>alert(1)</script>」 must not make 「alert」 a top topic, nor
#: a phishing link's `javascript:alert(document.cookie)` 「java script」 and 「document.cookie」.
_MARKUP = re.compile(
    r"<\s*(script|style)\b.*?(<\s*/\s*\1\s*>|$)"              # a script/style element with its content
    r"|<[^<>]{0,500}>"                                              # any other tag
    r"|\]\([^()\s]*(\([^()]*\)[^()\s]*)*\)"                  # a Markdown link's target
    r"|\b(?:https?|javascript|vbscript|data|file):[^\s「」『』（）()<>]*(\([^()]*\))?[^\s「」『』（）<>]*"  # URLs
    r"|\b[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+"               # dotted names: document.cookie, example.com
    r"|\b[A-Za-z_$][\w$]*\([^()]{0,200}\)"                      # calls: alert(1)
    r"|\bon[a-z]{3,20}\s*=\S*",                                  # event handlers: onerror=alert(2)
    re.IGNORECASE | re.DOTALL)


def strip_markup(text: str) -> str:
    """The text without HTML, links, URLs and code, each replaced by a punctuation break so the
    words on either side never join into one phrase."""
    return _MARKUP.sub("、", text)


def _markup_spans(text: str) -> list[tuple[int, int]]:
    """Where `strip_markup` cuts (every branch of _MARKUP consumes a character, so these are
    exactly the matches it replaces)."""
    return [(m.start(), m.end()) for m in _MARKUP.finditer(text) if m.end() > m.start()]


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """`strip_markup(text)` from its spans, without matching the expression again."""
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], "、"]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def topics_of_text(text: str, *, exclude: tuple[str, ...] = (), lang: str | None = None) -> list[str]:
    """Nouns and noun phrases of a Japanese text, in order of appearance, without duplicates,
    stop words, markup or code (`strip_markup`) or anything in `exclude` (folded brand terms
    from `brand_terms`).

    English text gives none: nagisa tags English words without parts of speech."""
    normalized = normalize(text)
    markup = _markup_spans(normalized)  # found once: it decides the language and masks the tokens
    stripped = _without(normalized, markup)
    if not stripped.strip("、 ") or detect_language(stripped, lang) != "ja":
        return []
    # The analysis's own tokens of the same text (no second nagisa pass); the markup is masked
    # by position in topics_of_tokens, like the brand terms.
    return topics_of_tokens(tokenize(normalized), exclude=exclude, markup=markup)


def _phrases(words: Sequence[str], postags: Sequence[str], exclude: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    phrase: list[str] = []
    prefix = ""

    def close() -> None:
        nonlocal prefix
        if not phrase:  # most tokens close nothing: only the prefix goes (issue 17: ~40 calls a post)
            prefix = ""
            return
        kept = [w.strip() for w in phrase if w.strip()]
        if kept:
            term = prefix + kept[0]
            for before, word in zip(kept, kept[1:]):
                # Japanese compounds join without a space (通信+速度); two Latin words keep one.
                term += (" " if _LATIN_END.search(before) and _LATIN_START.match(word) else "") + word
            if _keep(term, exclude) and term not in found:
                found.append(term)
        phrase.clear()
        prefix = ""

    for word, tag in zip(words, postags):
        if tag in _NOUN and _WORDY.search(word) and word not in STOP_WORDS:
            phrase.append(word)
        elif tag == _SUFFIX and phrase:
            phrase.append(word)
        elif tag == _PREFIX:
            close()
            prefix = word
        else:
            close()
    close()
    return found[:MAX_TOPICS]


def topics_of_tokens(tokens: Tokens, *, exclude: tuple[str, ...] = (),
                     markup: list[tuple[int, int]] | None = None) -> list[str]:
    """Topics from the tokens of a normalised Japanese text: a token that overlaps a brand
    term (`exclude`) or markup/code (`_MARKUP`: tags, URLs, calls) is a break, like punctuation.
    `markup`: the text's markup spans, when the caller has found them already."""
    spans = _mask_spans(tokens.text, exclude) + (_markup_spans(tokens.text) if markup is None else markup)
    if not spans:
        return _phrases(tokens.words, tokens.postags, exclude)
    # The masked characters, so a token is checked by one slice instead of against every span.
    masked = bytearray(len(tokens.text))
    for s_start, s_end in spans:
        masked[s_start:s_end] = b"\x01" * (s_end - s_start)
    words, postags = [], []
    for word, tag, start in zip(tokens.words, tokens.postags, tokens.starts):
        end = start + len(word)
        if (1 in masked[start:end]) if end > start else any(s_start < start < s_end for s_start, s_end in spans):
            words.append("、")
            postags.append("補助記号")
        else:
            words.append(word)
            postags.append(tag)
    return _phrases(words, postags, exclude)


def _keep(term: str, exclude: tuple[str, ...]) -> bool:
    if len(term) < 2 and not re.search(r"[\u4e00-\u9fff]", term):
        return False  # one kana or letter is noise; one kanji (駅, 店) is a real topic
    if len(term) > MAX_CHARS or term in STOP_WORDS:
        return False
    folded = fold(term)
    return not any(t in folded for t in exclude)  # `in` covers equality too


def is_complaint(analysis: object | None) -> bool:
    """Topics are counted for what customers complain about: negative or complaint posts."""
    if analysis is None:
        return False
    return getattr(analysis, "sentiment").value == "negative" or getattr(analysis, "intent").value == "complaint"


_TERMS_CACHE: dict[int, tuple[object, tuple[str, ...]]] = {}


def watch_terms(watch: object) -> tuple[str, ...]:
    """Every watched brand's name, keywords, hashtags and mentions, folded (cached per config)."""
    cached = _TERMS_CACHE.get(id(watch))
    if cached is not None and cached[0] is watch:
        return cached[1]
    names: list[str] = []
    for brand in getattr(watch, "brands", ()):
        names += [brand.name, *brand.keywords, *brand.hashtags, *brand.mentions]
    terms = brand_terms(names)
    _TERMS_CACHE[id(watch)] = (watch, terms)
    return terms


def complaint_topics(post: object, analysis: object | None, watch: object) -> list[str]:
    """The topics to store with a post: none unless it is a negative or complaint post."""
    if not is_complaint(analysis):
        return []
    return topics_of_text(getattr(post, "text"), exclude=watch_terms(watch), lang=getattr(post, "lang"))
