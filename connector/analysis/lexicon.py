"""Loading the data files in `lexicon/` once, into the shapes the analysis looks things up in.

The files are the team's own word lists (see the header of each file for its format). Each loader
is cached: the first analysis pays for reading and compiling, every later one only looks up.
A malformed line raises `LexiconError` naming the file and line, so a typo fails loudly in tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from connector.analysis.text import normalize_entry

LEXICON_DIR = Path(__file__).with_name("lexicon")

ROLES = ("negator", "bridge", "intensifier", "softener", "contrast", "contrast_initial", "request",
         "question", "laughter")


class LexiconError(ValueError):
    """A lexicon file is malformed; the message names the file and line."""


def _rows(name: str, columns: tuple[int, int]):
    """(line number, fields) of a TSV data file, skipping blank lines and # comments."""
    path = LEXICON_DIR / name
    low, high = columns
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n").split("\t")
        if not low <= len(fields) <= high:
            raise LexiconError(f"{name}:{number}: expected {low}-{high} tab-separated columns, got {len(fields)}")
        yield number, fields


def _number(name: str, number: int, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise LexiconError(f"{name}:{number}: {value!r} is not a number") from None


class LiteralScanner:
    """Finds many literal strings in a text in one pass: a dict from each literal's first two
    characters (or its only one) to the literals that start so, longest first.

    Python's `re` tries every branch of a big alternation at every position; this costs one slice
    and two dict look-ups per character whatever the number of literals, which keeps the analysis
    cheap next to nagisa.
    """

    def __init__(self, literals: list[tuple[str, object, bool]]):
        """literals: (text, payload, whole_word). whole_word: only between non-word characters
        (English cues: "bug" is not in "debugging")."""
        self.by_two: dict[str, list[tuple[str, object, bool]]] = {}
        self.by_one: dict[str, list[tuple[str, object, bool]]] = {}
        for literal in sorted(literals, key=lambda item: -len(item[0])):
            text = literal[0]
            if not text:
                continue
            index = self.by_two if len(text) >= 2 else self.by_one
            index.setdefault(text[:2], []).append(literal)
        firsts = sorted({key[0] for key in self.by_two} | set(self.by_one))
        # A class that holds characters beyond the BMP (emoji) is matched by walking its members
        # at every position (~20 µs a post); so those are one range instead: any such character
        # is a place to look, and the dict look-ups in `scan` decide, as for every other.
        narrow = [c for c in firsts if ord(c) < 0x10000]
        classes = ["[" + "".join(map(re.escape, narrow)) + "]"] if narrow else []
        if len(narrow) < len(firsts):
            classes.append("[\U00010000-\U0010FFFF]")
        # a never-matching pattern when there are no literals ([] is not a valid class)
        self.starts = re.compile("|".join(classes) if classes else "(?!)")

    def scan(self, text: str) -> list[tuple[int, int, object]]:
        """(start, end, payload) of every occurrence, by start, longest first at each start."""
        found: list[tuple[int, int, object]] = []
        by_two, by_one = self.by_two, self.by_one
        # Only where a literal can start: one regex pass (in C) over the text finds the
        # characters some literal begins with, instead of two dict look-ups at every character.
        for match in self.starts.finditer(text):
            i = match.start()
            for candidates in (by_two.get(text[i:i + 2]), by_one.get(text[i])):
                if candidates is None:
                    continue
                for literal, payload, whole_word in candidates:
                    if not text.startswith(literal, i):
                        continue
                    end = i + len(literal)
                    if whole_word and ((i and _is_word(text[i - 1])) or (end < len(text) and _is_word(text[end]))):
                        continue
                    found.append((i, end, payload))
        return found


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


# ── Japanese sentiment: words, their inflections and the modifiers ───────────────────────────

@dataclass(frozen=True, slots=True)
class Entry:
    """What a (possibly multi-token) surface string means for Japanese sentiment."""

    lemma: str                    # as written in the lexicon, for evidence
    weight: float | None = None   # polarity when used plainly; None: not a polar word
    negated: float | None = None  # polarity when negated
    pre_negated: bool = False     # the surface already carries the negation (悪くない, 繋がらない)
    noun: bool = False            # an invariant word: negation may reach it across が (問題がない)
    role: str | None = None       # one of ROLES, or None
    factor: float = 1.0           # the role's factor (intensifier ×1.5, question damping ×0.3, …)


#: 〜すぎ ("too …") scales an adjective's weight.
TOO_MUCH = 1.3


def _clip(weight: float) -> float:
    return max(-1.0, min(1.0, weight))


def default_negated(weight: float) -> float:
    """A positive word negated is clearly negative (良くない); a negative one only mildly positive
    (悪くない)."""
    return -0.8 * weight if weight > 0 else -0.5 * weight


_GODAN = {  # dictionary-form ending → (a-, i-, e-, o-stem endings, euphonic 連用形 ending)
    "う": ("わ", "い", "え", "お", "っ"), "く": ("か", "き", "け", "こ", "い"),
    "ぐ": ("が", "ぎ", "げ", "ご", "い"), "す": ("さ", "し", "せ", "そ", "し"),
    "つ": ("た", "ち", "て", "と", "っ"), "ぬ": ("な", "に", "ね", "の", "ん"),
    "ぶ": ("ば", "び", "べ", "ぼ", "ん"), "む": ("ま", "み", "め", "も", "ん"),
    "る": ("ら", "り", "れ", "ろ", "っ"),
}
_NEGATION_TAILS = ("ない", "なかっ", "なく", "なけれ", "ず", "ねー", "ねぇ", "ねえ", "ん")
_HARD_TAILS = ("にくい", "にくく", "にくかっ", "づらい", "づらく", "づらかっ")  # 繋がりにくい = barely connects
_EASY_TAILS = ("やすい", "やすく", "やすかっ")


def inflections(lemma: str, kind: str) -> tuple[list[str], list[str]]:
    """(plain forms, negated forms) of a lexicon word, as nagisa's tokens concatenate."""
    if kind == "adj":
        if not lemma.endswith("い"):
            raise ValueError("an adj entry must end in い")
        stem = lemma[:-1]
        # Not the noun in さ: 高さ, 重さ, 広さ are neutral dimensions (height, weight, size).
        plain = [lemma] + [stem + t for t in ("く", "かっ", "けれ", "き", "かろ", "すぎ", "すぎる", "そう")]
        if len(stem) >= 2:
            plain.append(stem)  # ひど(すぎ), 素晴らし(そう): nagisa sometimes cuts before the suffix
        negated = [stem + "く" + t for t in ("ない", "なかっ", "なく", "なけれ", "ねー", "ねぇ", "ねえ", "はない", "もない")]
        return plain, negated
    if kind == "v5":
        last = lemma[-1]
        if last not in _GODAN:
            raise ValueError("a v5 entry must end in an u-row kana")
        stem = lemma[:-1]
        a, i, e, o, euphonic = _GODAN[last]
        if lemma.endswith(("いく", "行く")):
            euphonic = "っ"  # 行く → 行った, not 行いた
        plain = [lemma, stem + a, stem + i, stem + e, stem + o, stem + euphonic]  # a-stem: 騙さ+れる
        negated = [stem + a + t for t in _NEGATION_TAILS] + [stem + i + t for t in _HARD_TAILS]
        plain += [stem + i + t for t in _EASY_TAILS]
        return plain, negated
    if kind == "v1":
        if not lemma.endswith("る"):
            raise ValueError("a v1 entry must end in る")
        stem = lemma[:-1]
        plain = [lemma, stem, stem + "れ", stem + "ろ", stem + "よ"] + [stem + t for t in _EASY_TAILS]
        negated = [stem + t for t in _NEGATION_TAILS] + [stem + t for t in _HARD_TAILS]
        return plain, negated
    raise ValueError(f"unknown kind {kind!r}")


@dataclass(frozen=True)
class JapaneseLexicon:
    entries: dict[str, Entry]      # surface string (one or more whole tokens) → entry
    prefixes: frozenset[str]       # every prefix of every key: lets the matcher stop early
    max_tokens: int                # the longest key spans at most this many tokens (bound for the matcher)
    symbols: LiteralScanner           # emoji, kaomoji and laughter marks (payload: Entry)
    patterns: tuple[tuple[re.Pattern[str], Entry], ...]   # `re` entries of sentiment_ja.tsv and symbols.tsv
    bridges: frozenset[str]


@cache
def japanese() -> JapaneseLexicon:
    entries: dict[str, Entry] = {}
    explicit: dict[str, Entry] = {}
    patterns: list[tuple[re.Pattern[str], Entry]] = []
    symbols: list[tuple[str, object, bool]] = []
    name = "sentiment_ja.tsv"
    for number, fields in _rows(name, (3, 4)):
        raw, kind, weight_text = fields[:3]
        weight = _number(name, number, weight_text)
        negated = _number(name, number, fields[3]) if len(fields) == 4 and fields[3] else default_negated(weight)
        if kind == "re":
            patterns.append((_compiled(name, number, normalize_entry(raw)), Entry(raw, weight, negated)))
            continue
        lemma = normalize_entry(raw)
        if kind == "n":
            explicit[lemma] = Entry(raw, weight, negated, noun=True)
            continue
        try:
            plain, negated_forms = inflections(lemma, kind)
        except ValueError as exc:
            raise LexiconError(f"{name}:{number}: {raw}: {exc}") from None
        for form in negated_forms:
            entries.setdefault(form, Entry(raw, weight, negated, pre_negated=True))
        for form in plain:  # plain forms win over a negated form that happens to be spelled the same
            strong = form.endswith(("すぎ", "すぎる"))  # 高すぎ, 遅すぎる: "too …" is stronger
            entries[form] = Entry(raw, _clip(weight * TOO_MUCH) if strong else weight, negated)
    entries.update(explicit)  # a word listed as itself beats any generated inflection

    name = "modifiers_ja.tsv"
    for number, fields in _rows(name, (3, 4)):
        raw, role, factor_text = fields[:3]
        if role not in ROLES:
            raise LexiconError(f"{name}:{number}: role {role!r} is not one of {', '.join(ROLES)}")
        factor = _number(name, number, factor_text)
        key = normalize_entry(raw)
        own = _number(name, number, fields[3]) if len(fields) == 4 and fields[3] else None
        base = entries.get(key) or Entry(raw, noun=True)
        if own is not None:
            base = replace(base, weight=own, negated=default_negated(own))
        if base.role is not None and base.role != role:
            raise LexiconError(f"{name}:{number}: {raw} already has role {base.role}")
        entries[key] = replace(base, role=role, factor=factor)

    name = "symbols.tsv"
    for number, fields in _rows(name, (3, 3)):
        raw, kind, weight_text = fields
        weight = _number(name, number, weight_text)
        entry = Entry(raw, weight, default_negated(weight), role="laughter" if kind.startswith("laugh") else None)
        if kind in ("lit", "laugh"):
            symbols.append((normalize_entry(raw), entry, False))
        elif kind in ("re", "laugh_re"):
            patterns.append((_compiled(name, number, normalize_entry(raw)), entry))
        else:
            raise LexiconError(f"{name}:{number}: kind {kind!r} is not one of lit, re, laugh, laugh_re")

    prefixes = {key[:n] for key in entries for n in range(1, len(key) + 1)}
    bridges = frozenset(key for key, entry in entries.items() if entry.role == "bridge")
    return JapaneseLexicon(entries, frozenset(prefixes), 8, LiteralScanner(symbols), tuple(patterns), bridges)


def _compiled(name: str, number: int, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LexiconError(f"{name}:{number}: bad regular expression: {exc}") from None


@cache
def english_additions() -> dict[str, float]:
    """Support vocabulary added to VADER's lexicon (word → valence on its -4..4 scale)."""
    name = "sentiment_en.tsv"
    additions: dict[str, float] = {}
    for number, (word, valence) in _rows(name, (2, 2)):
        if word != word.lower() or " " in word:
            raise LexiconError(f"{name}:{number}: {word!r}: single lower-case words only")
        value = _number(name, number, valence)
        if not -4 <= value <= 4:
            raise LexiconError(f"{name}:{number}: valence {value} is outside -4..4")
        additions[word] = value
    return additions


# ── cue lists: intent, expectation type and content, quality axis, escalation ───────────────

@dataclass(frozen=True, slots=True)
class Cue:
    dimension: str
    label: str
    weight: float
    pattern: str   # as written in the file
    evidence: str


class CueIndex:
    """Every dimension's cues for one language, found in one pass (plus the few regex cues)."""

    def __init__(self, literals: LiteralScanner, patterns: list[tuple[re.Pattern[str], Cue]]):
        self.literals = literals
        self.patterns = patterns

    def find(self, folded: str) -> dict[str, dict[str, list[Cue]]]:
        """dimension → label → distinct cues in the case-folded normalised text, in order.

        Within a dimension matches do not overlap and the longest wins (拡散希望 is one escalation
        cue, and its 希望 is not also a request); across dimensions they may (対応してくれない is
        a flexibility cue and its 対応 a quality one)."""
        found: dict[str, dict[str, list[Cue]]] = {}
        seen: set[Cue] = set()
        blocked: dict[str, int] = {}
        for start, end, cue in self.literals.scan(folded):
            if start < blocked.get(cue.dimension, 0) or cue in seen:
                continue
            blocked[cue.dimension] = end
            seen.add(cue)
            found.setdefault(cue.dimension, {}).setdefault(cue.label, []).append(cue)
        for regex, cue in self.patterns:
            if cue not in seen and regex.search(folded):
                seen.add(cue)
                found.setdefault(cue.dimension, {}).setdefault(cue.label, []).append(cue)
        return found


CUE_FILES = {
    "intent": ("intent.tsv", ("complaint", "question", "request", "praise", "report")),
    "expectation_type": ("expectation_type.tsv", ("common", "individual", "situational", "latent")),
    "expectation_content": ("expectation_content.tsv", ("menu", "price", "quality")),
    "quality_axis": ("quality_axis.tsv", ("accuracy", "speed", "flexibility", "empathy", "reassurance", "impression")),
    "escalation": ("escalation.tsv", ("escalation", "safety")),
}


@cache
def cue_index(lang: str) -> CueIndex:
    literals: list[tuple[str, object, bool]] = []
    patterns: list[tuple[re.Pattern[str], Cue]] = []
    for dimension, (name, labels) in CUE_FILES.items():
        for number, fields in _rows(name, (4, 5)):
            label, cue_lang, weight_text, raw = fields[:4]
            if label not in labels:
                raise LexiconError(f"{name}:{number}: label {label!r} is not one of {', '.join(labels)}")
            if cue_lang not in ("ja", "en", "*"):
                raise LexiconError(f"{name}:{number}: lang {cue_lang!r} is not one of ja, en, *")
            if cue_lang not in (lang, "*"):
                continue
            weight = _number(name, number, weight_text)
            shown = raw[3:] if raw.startswith("re:") else raw
            evidence = fields[4] if len(fields) == 5 and fields[4] else f"{label} cue {shown}"
            cue = Cue(dimension, label, weight, raw, evidence)
            if raw.startswith("re:"):
                patterns.append((_compiled(name, number, normalize_entry(raw[3:]).casefold()), cue))
            else:
                literals.append((normalize_entry(raw).casefold(), cue, cue_lang == "en"))
    return CueIndex(LiteralScanner(literals), patterns)


@cache
def default_priority_rules() -> list[dict]:
    import tomllib

    data = tomllib.loads((LEXICON_DIR / "priority.toml").read_text(encoding="utf-8"))
    return data["priority"]
