"""Text folding for matching Japanese and Latin spellings of the same name.

`fold` makes ＳＯＲＡ ＭＯＢＩＬＥ, sora mobile, ｿﾗﾓﾊﾞｲﾙ, ソラモバイル and そらもばいる compare equal
where they should: NFKC (full/half width), case folding, then katakana → hiragana.
"""
from __future__ import annotations

import re
import unicodedata

# Katakana ァ (U+30A1) .. ヶ (U+30F6) sit exactly 0x60 above their hiragana twins; ヽヾ too.
_KATA_TO_HIRA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}
_KATA_TO_HIRA.update({0x30FD: 0x309D, 0x30FE: 0x309E})
#: Invisible characters a writer can slip inside a word (ソラ\u200bモバイル) so it reads the same
#: but no longer contains the keyword or the excluded word: zero width space, non-joiner,
#: joiner, word joiner, BOM / zero width no-break space. NFKC keeps them, so fold drops them.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_KATA_TO_HIRA.update({ord(ch): None for ch in ZERO_WIDTH})

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z]")


def fold(text: str) -> str:
    """NFKC + casefold + katakana→hiragana, zero-width characters removed. Length may change
    (NFKC), so use for matching only: keywords, hashtags, exclude_words and the text they are
    looked for in all pass through here, so an invisible character never splits a match."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_KATA_TO_HIRA)


def guess_language(text: str) -> str | None:
    """'ja' when the text has kana or kanji, 'en' when it has Latin letters, else None."""
    if _JAPANESE.search(text):
        return "ja"
    if _LATIN.search(text):
        return "en"
    return None


def scrub(text: str) -> str:
    """Text that every database and encoder accepts: lone surrogates (invalid Unicode that a
    JSON `\\ud800` escape can carry in) become `?`, NUL characters are dropped."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def is_number_id(value: str, max_digits: int = 20) -> bool:
    """A helpdesk's numeric id: ASCII digits only (not ９ or ٩, which isdigit() accepts), and
    short enough for a 64-bit integer and our columns."""
    return value.isascii() and value.isdigit() and 0 < len(value) <= max_digits
