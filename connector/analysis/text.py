"""Text preparation for the analysis: normalise, detect the language, tokenise with nagisa.

Every later step works on the *normalised* text, and token offsets point into it, so a phrase
found by a regular expression can be mapped back to the tokens it covers.
"""
from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import accumulate

#: nagisa's cost grows with the length of what it tags at once; posts are cut at sentence ends
#: into pieces of at most this many characters, so a 20,000-character post costs 40 short calls.
CHUNK_CHARS = 500

_TAG = re.compile(r"</?[A-Za-z][^<>]{0,300}>")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9_.]{1,30}")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
# Variation selectors and skin-tone modifiers: ❤️ and ❤ are the same heart.
_IGNORED = dict.fromkeys([0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400), 0x200D])
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
# A Latin word of two letters or more that is not a laugh (ｗｗ is Japanese).
_LATIN = re.compile(r"(?<![A-Za-z])(?![wW]+(?![A-Za-z]))[A-Za-z]{2,}")
_SENTENCE = re.compile(r"[^。!?\n]*(?:[。!?\n]+|$)")


@lru_cache(maxsize=8)
def normalize(text: str) -> str:
    """NFKC, HTML entities decoded, tags/URLs/@mentions dropped, whitespace collapsed.

    Hostile input (HTML, scripts) stays plain text: tags are removed, never interpreted.
    Pure, so the last few results are remembered: a post's analysis and then its complaint
    topics (connector/topics.py) normalise the same text once, like `tokenize`.
    """
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text).translate(_IGNORED)
    if "<" in text:
        text = _TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    if "@" in text:
        text = _MENTION.sub(" ", text)
    text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _NEWLINES.sub("\n", text)
    return text.strip()


def normalize_entry(entry: str) -> str:
    """A lexicon entry in the same shape as the text it is compared with."""
    return unicodedata.normalize("NFKC", entry).translate(_IGNORED)


def detect_language(text: str, declared: str | None = None) -> str:
    """'ja' or 'en': the declared language when it is one of those; else 'ja' if there is any kana
    or kanji, 'en' if there are Latin letters, and 'ja' for text of symbols only (😡, orz), whose
    lexicon is the Japanese one."""
    if declared:
        base = declared.strip().lower().split("-")[0].split("_")[0]
        if base in ("ja", "en"):
            return base
    if _JAPANESE.search(text):
        return "ja"
    return "en" if _LATIN.search(text) else "ja"


@dataclass(frozen=True, slots=True)
class Tokens:
    """nagisa's words and POS tags for a normalised text, with each word's start offset."""

    text: str
    words: tuple[str, ...]
    postags: tuple[str, ...]
    starts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.words)

    def span_tokens(self, start: int, end: int) -> range:
        """Indexes of the tokens that overlap the character span [start, end)."""
        first = max(bisect_right(self.starts, start) - 1, 0)
        last = bisect_left(self.starts, end)
        return range(first, last)


def chunks(text: str, limit: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) pairs covering `text`, cut after sentence ends, each at most `limit` chars."""
    if len(text) <= limit:
        return [(0, text)]
    pieces: list[tuple[int, str]] = []
    start = end = 0  # the piece being filled is text[start:end]
    for sentence in _SENTENCE.finditer(text):
        s_end = sentence.end()
        if s_end == sentence.start():
            continue
        if s_end - start > limit and end > start:
            pieces.append((start, text[start:end]))
            start = end
        while s_end - start > limit:  # one sentence longer than the limit: cut at a 、 or space if any
            cut = start + limit
            soft = max(text.rfind("、", start + limit // 2, cut), text.rfind(" ", start + limit // 2, cut))
            if soft > start:
                cut = soft + 1
            pieces.append((start, text[start:cut]))
            start = cut
        end = s_end
    if end > start:
        pieces.append((start, text[start:end]))
    return pieces


@cache
def _tagger():
    import nagisa  # imported lazily: loading the model takes about a second

    return nagisa


#: Texts whose tokens `tokenize` remembers. Enough for one post's analysis and then its complaint
#: topics (connector/topics.py) to share one nagisa pass, also with a few request threads
#: interleaved; deliberately no cache across posts (a repeated text is tagged again).
TOKENIZE_MEMORY = 8


@lru_cache(maxsize=TOKENIZE_MEMORY)
def tokenize(text: str) -> Tokens:
    """Tag a normalised text with nagisa (in sentence chunks) and keep every word's offset.
    Pure (the same text, the same tokens), so the last few results are remembered."""
    nagisa = _tagger()
    words: list[str] = []
    postags: list[str] = []
    starts: list[int] = []
    for offset, piece in chunks(text):
        if not piece.strip():
            continue
        tagged = nagisa.tagging(piece)
        piece_words = [w.replace("\u3000", " ") for w in tagged.words]
        piece_tags = tagged.postags
        if piece.startswith("".join(piece_words)) and len(piece_words) == len(piece_tags):
            # The usual case: the words are the piece itself, cut up (nagisa only right-stripped
            # it), so each starts where the one before ends; what the loop below finds, in C.
            words += piece_words
            postags += piece_tags
            starts += accumulate(map(len, piece_words[:-1]), initial=offset) if piece_words else ()
            continue
        position = 0
        for word, tag in zip(piece_words, piece_tags):
            # nagisa keeps the text except that it right-strips it and turns spaces into U+3000;
            # find() guards against any other change so offsets never drift.
            if not piece.startswith(word, position):
                found = piece.find(word, position)
                if found < 0:
                    continue
                position = found
            words.append(word)
            postags.append(tag)
            starts.append(offset + position)
            position += len(word)
    return Tokens(text, tuple(words), tuple(postags), tuple(starts))
