"""The label model: every label of the guide (docs/labels.md) learnt from posts the team labelled.

One feature space for all five labels, one multinomial logistic regression per label:

  char   TF-IDF over character 1–4-grams of the normalised, case-folded text (inflections,
         slang, kaomoji and spelling variants nagisa splits oddly);
  word   TF-IDF over nagisa tokens and token bigrams (English: words);
  cues   the lexicon's verdicts as dense columns: its sentiment score and label, each intent /
         expectation / content / axis / escalation cue score, and a few shape cues (question
         mark, length). The hand-written lexicon is thus a feature the data weighs, not a rival.

Labels then interact in one step (`chain`): the intent, expectation and axis models also see the
out-of-fold probabilities of the sentiment model, so "a factual failure" learnt for sentiment
helps intent read a complaint, and praise goes with positive.

Each label carries its probability: `Label.confidence` is P(chosen class). Prediction needs no
scikit-learn: a post is a dictionary look-up per n-gram and five small dot products (load 0.05 s). The evidence names the
model, the probabilities and the features that weighed most for the chosen class (their
contribution to its score against the mean of the classes), then the lexicon's own view.

A model folder holds `model.json` (format, classes per label, settings, corpus digest) and
`weights.npz` (vocabularies, IDF vectors, coefficients as float32 arrays). It is loaded with
`numpy.load(allow_pickle=False)` and `json`: nothing in it is executed. Training is deterministic
(lbfgs, fixed folds, sorted inputs, no timestamps in the files): the same corpus gives the same
bytes. Pure: the caller loads the model once and passes it in.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from connector.analysis import cues as cue_rules
from connector.analysis.lexicon import CUE_FILES
from connector.analysis.model import ModelError, Prepared, _ngrams, _proba
from connector.models import Label

FORMAT = 2
KIND = "lr-labels"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"

#: The labels the model learns, with their classes in report order.
LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "intent": ("complaint", "question", "request", "praise", "report", "other"),
    "expectation_type": ("common", "individual", "situational", "latent"),
    "expectation_content": ("menu", "price", "quality"),
    "quality_axis": ("accuracy", "speed", "flexibility", "empathy", "reassurance", "impression"),
}
LABELS_ORDER = tuple(LABELS)
#: Labels whose model also sees the sentiment model's (out-of-fold) probabilities.
CHAINED = ("intent", "expectation_type", "expectation_content", "quality_axis")

DEFAULT_SETTINGS: dict[str, Any] = {
    "char_ngrams": [1, 4],
    "word_ngrams": [1, 2],
    "min_df": 2,
    "max_char_features": 60_000,
    "max_word_features": 30_000,
    "cue_weight": 1.0,
    "C": {"sentiment": 30.0, "intent": 30.0, "expectation_type": 30.0, "expectation_content": 30.0,
          "quality_axis": 30.0},
    "class_weight": "balanced",
    "cv_folds": 5,
    "chain_weight": 1.0,
}

_CUE_NAMES: tuple[str, ...] = tuple(
    [f"lexicon:{name}" for name in ("score_ja", "score_en", "positive", "negative")]
    + [f"cue:{dimension}={label}" for dimension, (_, labels) in CUE_FILES.items() for label in labels]
    + ["shape:question_mark", "shape:exclamation", "shape:length", "shape:english"])


@dataclass(frozen=True, slots=True)
class Reading:
    """One post as the label model reads it: the prepared text and the lexicon's cues."""

    prepared: Prepared
    found: cue_rules.Found


def cue_columns(readings: Sequence[Reading], weight: float) -> np.ndarray:
    rows = np.zeros((len(readings), len(_CUE_NAMES)), dtype=np.float32)
    for i, reading in enumerate(readings):
        item = reading.prepared
        row = [item.lexicon.score if item.language == "ja" else 0.0,
               item.lexicon.score if item.language != "ja" else 0.0,
               float(item.lexicon.value == "positive"), float(item.lexicon.value == "negative")]
        for dimension, (_, labels) in CUE_FILES.items():
            found = reading.found.get(dimension)
            if not found:  # most posts have cues in few dimensions: a score of no cues is 0.0
                row.extend([0.0] * len(labels))
                continue
            row.extend(min(cue_rules._score(found[label]), 2.0) / 2.0 if label in found else 0.0 for label in labels)
        text = item.normalized
        row.extend([float("?" in text or "？" in text), float("!" in text or "！" in text),
                    min(math.log1p(len(text)) / 6.0, 1.0), float(item.language != "ja")])
        rows[i] = row
    return rows * weight


_WHITE_SPACES = re.compile(r"\s\s+")   # as scikit-learn's char analyzer collapses runs of blanks


def char_grams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams exactly as scikit-learn's `analyzer="char"` (lower-cased) makes them."""
    text = _WHITE_SPACES.sub(" ", text.lower())
    grams: list[str] = []
    length = len(text)
    for n in range(low, min(high, length) + 1):
        grams += [text[i:i + n] for i in range(length - n + 1)]  # a list comprehension: faster than extend(genexpr)
    return grams


def _minus_second(pair: tuple[str, float]) -> float:
    """Sort key: largest probability first (a named function, not a lambda made per label)."""
    return -pair[1]


_NO_COLUMNS = np.zeros(0, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float64)


@dataclass
class Vocabulary:
    """One TF-IDF feature block: terms → columns, IDF weights (sublinear tf, L2 norm per block)."""

    index: dict[str, int]
    idf: np.ndarray

    def encode(self, terms: Sequence[str], offset: int) -> tuple[np.ndarray, np.ndarray]:
        # Count first (Counter counts in C), then look each distinct term up once, also in C
        # (map over dict.get with -1 for "not in the vocabulary"): a post has hundreds of
        # n-grams but far fewer distinct ones. Terms map to distinct columns.
        counted = Counter(terms)
        found = np.fromiter(map(self.index.get, counted, repeat(-1)), dtype=np.int64, count=len(counted))
        known = found >= 0
        if not known.any():
            return _NO_COLUMNS, _NO_VALUES
        tf = np.fromiter(counted.values(), dtype=np.float64, count=len(counted))[known]
        columns = found[known]
        order = np.argsort(columns)
        return self.weigh(columns[order], tf[order], offset)

    def weigh(self, columns: np.ndarray, tf: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF values of distinct columns in ascending order with their term counts."""
        if not len(columns):
            return _NO_COLUMNS, _NO_VALUES
        values = (1.0 + np.log(tf.astype(np.float64))) * self.idf[columns]
        values /= np.sqrt(values @ values)
        return columns + offset, values

    def terms(self) -> list[str]:
        return sorted(self.index, key=self.index.__getitem__)


def fit_vocabulary(documents: Sequence[Sequence[str]], min_df: int, max_features: int) -> Vocabulary:
    """Document frequencies → the most frequent `max_features` terms seen in ≥ min_df documents
    (ties by term, so the vocabulary is the same on every run), smoothed IDF as scikit-learn's."""
    df: dict[str, int] = {}
    for terms in documents:
        for term in set(terms):
            df[term] = df.get(term, 0) + 1
    kept = sorted((t for t, n in df.items() if n >= min_df), key=lambda t: (-df[t], t))[:max_features]
    kept.sort()
    n_docs = len(documents)
    idf = np.array([math.log((1 + n_docs) / (1 + df[t])) + 1.0 for t in kept], dtype=np.float32)
    return Vocabulary({t: i for i, t in enumerate(kept)}, idf)


def _sorted_keys(keys: Sequence[int], columns: Sequence[int], high: int, bits: int,
                 ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """A packed-key index's arrays: keys sorted (for `searchsorted`) with their columns, whether
    the columns then come out ascending (so a post's columns need no sort), and the shift of
    each of the `high` places of a key."""
    order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
    sorted_columns = np.array(columns, dtype=np.int64)[order]
    in_order = bool(np.all(sorted_columns[1:] > sorted_columns[:-1]))
    return (np.array(keys, dtype=np.int64)[order], sorted_columns, in_order,
            (high - 1 - np.arange(high, dtype=np.int64)) * bits)


class CharGramIndex:
    """The character vocabulary keyed by integers, so a post's n-grams are looked up in numpy
    instead of as hundreds of new substrings hashed into a 50,000-term dictionary (which cost
    ~280 µs a post, most of the label model's time).

    Every character of the vocabulary gets a small id (1…A, in code point order; 0: a character
    no term contains), and an n-gram's key packs its ids `bits` per character, the first
    character highest: distinct terms get distinct keys, an n-gram with an unknown character
    matches no term, exactly as the string look-up, and keys sort as the strings do, so for a
    vocabulary numbered in term order (as trained ones are) the columns come out in order.
    `counts` therefore gives the same columns and counts as `Vocabulary.encode(char_grams(…))`.
    """

    def __init__(self, vocabulary: Vocabulary, low: int, high: int) -> None:
        chars = sorted({ord(c) for term in vocabulary.index for c in term})
        self.low, self.high = low, high
        self.bits = max(1, len(chars).bit_length())
        codes = np.array(chars, dtype=np.intp)
        # issue 17: each code point's id by one table look-up (one slot per code point up to
        # the highest the vocabulary has, the last slot 0 for any code point beyond it), where
        # a binary search over the sorted code points and the checks after it took five numpy
        # calls a post.
        # 1 MB for a vocabulary that reaches into the emoji planes.
        self.ids_by_code = np.zeros((int(codes.max()) + 2) if chars else 1, dtype=np.int64)
        self.ids_by_code[codes] = np.arange(1, len(chars) + 1, dtype=np.int64)
        keys, columns = [], []
        ids = {c: i + 1 for i, c in enumerate(chars)}
        for term, column in vocabulary.index.items():
            if low <= len(term) <= high:  # no other term can match an n-gram of the text
                keys.append(self._pack([ids[ord(c)] for c in term]))
                columns.append(column)
        self.keys, self.columns, self.in_order, self.shifts = _sorted_keys(keys, columns, high, self.bits)

    def _pack(self, ids: Sequence[int]) -> int:
        return sum(i << (self.bits * (self.high - 1 - k)) for k, i in enumerate(ids))

    @staticmethod
    def usable(vocabulary: Vocabulary, high: int) -> bool:
        """Whether the keys fit in 63 bits (they do for any real vocabulary: 1,400 characters
        of 1–4-grams take 44)."""
        chars = len({c for term in vocabulary.index for c in term})
        return max(1, chars.bit_length()) * high <= 63

    def counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns ascending, how often each occurs) for the text's character n-grams, the text
        prepared as `char_grams` prepares it."""
        text = _WHITE_SPACES.sub(" ", text.lower())
        # surrogatepass: a lone surrogate is one code point, as it is one character of the str
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if not len(points) or not len(self.keys):
            return _NO_COLUMNS, _NO_COLUMNS
        ids = np.zeros(len(points) + self.high - 1, dtype=np.int64)  # padded: a gram past the end is unknown
        ids[:len(points)] = self.ids_by_code[np.minimum(points, len(self.ids_by_code) - 1)]
        return _packed_counts(ids, len(points), self)


def _packed_counts(ids: np.ndarray, length: int,
                   index: CharGramIndex | WordGramIndex) -> tuple[np.ndarray, np.ndarray]:
    """(columns ascending, how often each occurs) of the n-grams of `length` unit ids (0: a unit
    no term contains), `ids` padded with high − 1 zeros (a gram past the end is unknown).
    A handful of numpy calls whatever the length: every n-gram of every length at once."""
    # windows[k] = ids[k:k+length]: row k holds each position's k-th unit (a view; along axis 0
    # numpy runs each step over a whole row, where axis 1 would loop `high` at a time)
    windows = np.ndarray((index.high, length), dtype=np.int64, buffer=ids, strides=(8, 8))
    keys = np.cumsum(windows << index.shifts[:, None], axis=0)  # row n-1: the n-grams' keys
    known = np.logical_and.accumulate(windows > 0, axis=0)
    known[:index.low - 1] = False
    candidates = keys[known]
    if not len(candidates):
        return _NO_COLUMNS, _NO_COLUMNS
    # Counted before the look-up, each distinct n-gram looked up once, in ascending order (the
    # binary search then walks the vocabulary forward, mostly in cache).
    candidates.sort()
    first = np.flatnonzero(np.concatenate(([True], candidates[1:] != candidates[:-1])))
    distinct = candidates[first]
    ends = np.empty_like(first)
    ends[:-1], ends[-1] = first[1:], len(candidates)
    at = np.searchsorted(index.keys, distinct)
    at[at == len(index.keys)] = 0
    hit = index.keys[at] == distinct
    columns, counts = index.columns[at[hit]], (ends - first)[hit]
    if not index.in_order:
        order = np.argsort(columns)
        columns, counts = columns[order], counts[order]
    return columns, counts


class WordGramIndex:
    """The word vocabulary (tokens and token bigrams joined by U+001F) keyed by integers, as
    `CharGramIndex` keys the characters: each word of the vocabulary gets an id, a term's key
    packs its words' ids. `counts` gives what `Vocabulary.encode(_ngrams(words, …))` counts,
    or None for words that contain U+001F themselves (then only the string look-up can say
    which terms they make)."""

    def __init__(self, vocabulary: Vocabulary, low: int, high: int) -> None:
        parts = sorted({part for term in vocabulary.index for part in term.split("\x1f")})
        self.low, self.high = low, high
        self.bits = max(1, len(parts).bit_length())
        self.ids = {part: i + 1 for i, part in enumerate(parts)}
        keys, columns = [], []
        for term, column in vocabulary.index.items():
            pieces = term.split("\x1f")
            if low <= len(pieces) <= high:  # no other term can match an n-gram of \x1f-free words
                keys.append(sum(self.ids[w] << (self.bits * (high - 1 - k)) for k, w in enumerate(pieces)))
                columns.append(column)
        self.keys, self.columns, self.in_order, self.shifts = _sorted_keys(keys, columns, high, self.bits)

    @staticmethod
    def usable(vocabulary: Vocabulary, high: int) -> bool:
        parts = len({part for term in vocabulary.index for part in term.split("\x1f")})
        return max(1, parts.bit_length()) * high <= 63

    def counts(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        if "\x1f" in "".join(words):
            return None
        if not words or not len(self.keys):
            return _NO_COLUMNS, _NO_COLUMNS
        ids = np.zeros(len(words) + self.high - 1, dtype=np.int64)
        ids[:len(words)] = np.fromiter(map(self.ids.get, words, repeat(0)), dtype=np.int64, count=len(words))
        return _packed_counts(ids, len(words), self)


@dataclass
class LabelModel:
    classes: dict[str, tuple[str, ...]]
    weights: dict[str, tuple[np.ndarray, np.ndarray]]          # label → (coef, intercept)
    settings: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    char: Vocabulary | None = None
    word: Vocabulary | None = None
    _names: list[str] | None = None
    _stack: tuple[np.ndarray, np.ndarray, dict[str, slice]] | None = None
    _char_index: CharGramIndex | None = None
    _word_index: WordGramIndex | None = None
    _centered_stack: np.ndarray | None = None
    _centered_first: dict[str, int] = field(default_factory=dict)
    _columns_first: np.ndarray | None = None

    name = f"{KIND}-{FORMAT}"

    # --- features ---------------------------------------------------------------------
    @property
    def base_width(self) -> int:
        assert self.char is not None and self.word is not None
        return len(self.char.index) + len(self.word.index) + len(_CUE_NAMES)

    def columns(self, reading: Reading) -> tuple[np.ndarray, np.ndarray]:
        """The post's non-zero features: (columns, values) — TF-IDF of its character n-grams and
        word n-grams, then the lexicon's cue columns. No scikit-learn at prediction time: a
        dictionary look-up per n-gram is all a post costs."""
        assert self.char is not None and self.word is not None
        low, high = self.settings["char_ngrams"]
        fast = self._chars()
        if fast is not None:
            c_cols, c_vals = self.char.weigh(*fast.counts(reading.prepared.normalized), 0)
        else:
            c_cols, c_vals = self.char.encode(char_grams(reading.prepared.normalized, low, high), 0)
        low, high = self.settings["word_ngrams"]
        packed = self._words()
        counted = packed.counts(reading.prepared.words) if packed is not None else None
        if counted is not None:
            w_cols, w_vals = self.word.weigh(counted[0], counted[1], len(self.char.index))
        else:
            w_cols, w_vals = self.word.encode(_ngrams(reading.prepared.words, low, high), len(self.char.index))
        cues = cue_columns([reading], self.settings["cue_weight"])[0]
        nonzero = np.flatnonzero(cues)
        offset = len(self.char.index) + len(self.word.index)
        cols = np.concatenate([c_cols, w_cols, nonzero + offset])
        # one cast after the join: float32 → float64 → float32 is exact, so the same values
        vals = np.concatenate([c_vals, w_vals, cues[nonzero]]).astype(np.float32)
        return cols, vals

    def _chars(self) -> CharGramIndex | None:
        """The integer-keyed character vocabulary, built on first use (~0.1 s), or None if the
        vocabulary cannot be packed (then the string look-up, which gives the same columns)."""
        if self._char_index is None and self.char is not None:
            low, high = self.settings["char_ngrams"]
            if 1 <= low <= high and CharGramIndex.usable(self.char, high):
                self._char_index = CharGramIndex(self.char, low, high)
        return self._char_index

    def _words(self) -> WordGramIndex | None:
        """The integer-keyed word vocabulary, as `_chars`."""
        if self._word_index is None and self.word is not None:
            low, high = self.settings["word_ngrams"]
            if 1 <= low <= high and WordGramIndex.usable(self.word, high):
                self._word_index = WordGramIndex(self.word, low, high)
        return self._word_index

    def _stacked(self) -> tuple[np.ndarray, np.ndarray, dict[str, slice]]:
        """Every label's coefficients in one matrix (sentiment's padded with zero chain columns),
        so a post costs one column gather and one product instead of one per label."""
        if self._stack is None:
            width = self.base_width + len(self.classes["sentiment"])
            blocks, intercepts, rows, start = [], [], {}, 0
            for label in LABELS:
                coef, intercept = self.weights[label]
                if coef.shape[1] < width:
                    coef = np.hstack([coef, np.zeros((coef.shape[0], width - coef.shape[1]), dtype=coef.dtype)])
                blocks.append(coef)
                intercepts.append(intercept)
                rows[label] = slice(start, start + coef.shape[0])
                start += coef.shape[0]
            self._stack = (np.vstack(blocks), np.concatenate(intercepts), rows)
        return self._stack

    @staticmethod
    def _softmax(scores: np.ndarray) -> np.ndarray:
        if scores.shape[0] == 1:  # binary: one row, the second class's log-odds
            p1 = 1.0 / (1.0 + math.exp(-float(scores[0])))
            return np.array([1.0 - p1, p1])
        exp = np.exp(scores - scores.max())
        return exp / exp.sum()

    def _by_column(self) -> np.ndarray:
        """The stacked coefficients and the centred ones side by side, one row per feature: a
        post's few hundred columns are then a few hundred contiguous rows read, where gathering
        them from the (labels × features) matrices touched a cache line per feature and label
        (that gather was most of a post's label-model time)."""
        if self._columns_first is None:
            stack = self._stacked()[0]
            centered = self._centered_rows()[0]
            self._columns_first = np.ascontiguousarray(np.vstack([stack, centered]).T)
        return self._columns_first

    def _row_probabilities(self, cols: np.ndarray, vals: np.ndarray,
                           gathered: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """`gathered`: `_by_column()[cols]`, when the caller has it already."""
        stack, intercepts, rows = self._stacked()
        if gathered is None:
            gathered = self._by_column()[cols]
        # The (labels × columns) matrix in the memory order stack[:, cols] gives (column-major),
        # so BLAS takes the same path and sums in the same order: the same scores, bit for bit
        # (a row-major copy gives scores that differ in the last bit).
        scores = np.ascontiguousarray(gathered[:, :stack.shape[0]]).T @ vals + intercepts
        sentiment = self._softmax(scores[rows["sentiment"]])
        chain = stack[:, self.base_width:] @ (sentiment * self.settings["chain_weight"])
        # issue 17: the chain added to every row at once (one numpy call, not one a label); an
        # element-wise sum, so each label's scores are the same floats as added label by label
        chained = scores + chain
        out = {"sentiment": sentiment}
        for label in LABELS:
            if label != "sentiment":
                part = chained[rows[label]] if label in CHAINED else scores[rows[label]]
                out[label] = self._softmax(part)
        return out

    def feature_names(self) -> list[str]:
        if self._names is None:
            assert self.char is not None and self.word is not None
            self._names = ([f"「{t}」" for t in self.char.terms()]
                           + [f"word 「{t.replace(chr(31), ' ')}」" for t in self.word.terms()]
                           + list(_CUE_NAMES) + [f"sentiment P({c})" for c in self.classes["sentiment"]])
        return self._names

    # --- prediction -------------------------------------------------------------------
    def probabilities(self, readings: Sequence[Reading]) -> dict[str, np.ndarray]:
        """label → (len(readings), len(classes)) probabilities."""
        rows = [self._row_probabilities(*self.columns(r)) for r in readings]
        return {label: np.array([row[label] for row in rows]).reshape(len(readings), -1) for label in LABELS}

    def labels(self, reading: Reading, *, explain: int = 3) -> dict[str, Label]:
        """Every label for one post, with its confidence and the features that weighed most."""
        cols, vals = self.columns(reading)
        gathered = self._by_column()[cols]
        probs = self._row_probabilities(cols, vals, gathered)
        # Python floats for the ordering and the text (numpy scalars format slowly); the same
        # values, so the same order, digits and choice (index(max) is argmax: the first of
        # equals; a softmax of finite scores has no NaN). The score below stays in p's own precision.
        listed_of = {label: probs[label].tolist() for label in LABELS}
        best = {label: listed.index(max(listed)) for label, listed in listed_of.items()}
        weighed = self._weighed(best, cols, vals, probs["sentiment"], explain, gathered)
        out: dict[str, Label] = {}
        for label in LABELS:
            classes = self.classes[label]
            listed = listed_of[label]
            chosen = best[label]
            shown = " ".join(f"P({c})={q:.2f}" for c, q in sorted(zip(classes, listed), key=_minus_second)[:3])
            evidence = [f"model {self.name}: {shown}"]
            if weighed[label]:
                evidence.append("weighed most: " + ", ".join(weighed[label]))
            if label == "sentiment":
                p = probs[label]  # the difference in p's own precision, as it always was
                score = float(p[classes.index("positive")] - p[classes.index("negative")])
            else:
                # issue 17: the Python float of P(chosen) is p[chosen] exactly (tolist() widens
                # each value without rounding), without indexing numpy for a scalar
                score = listed[chosen]
            out[label] = Label(classes[chosen], round(max(-1.0, min(1.0, score)), 4), tuple(evidence),
                               confidence=round(listed[chosen], 4))
        return out

    def _centered_rows(self) -> tuple[np.ndarray, dict[str, int]]:
        """Every label's coefficients against the mean of its classes, one row per class (a
        binary label's one row as −w, +w), stacked; the sentiment rows have zeros for the chain
        columns (that label does not see them). With the first row of each label."""
        if self._centered_stack is None:
            width = self.base_width + len(self.classes["sentiment"])
            blocks, first, start = [], {}, 0
            for label in LABELS:
                coef = self.weights[label][0]
                centered = np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef - coef.mean(axis=0)
                if centered.shape[1] < width:
                    centered = np.hstack([centered, np.zeros((centered.shape[0], width - centered.shape[1]),
                                                              dtype=centered.dtype)])
                blocks.append(centered)
                first[label] = start
                start += centered.shape[0]
            self._centered_stack = np.vstack(blocks)
            self._centered_first = first
        return self._centered_stack, self._centered_first

    def _weighed(self, best: Mapping[str, int], cols: np.ndarray, vals: np.ndarray, sentiment: np.ndarray,
                 limit: int, gathered: np.ndarray) -> dict[str, list[str]]:
        """For each label, the features that pushed its chosen class most, against the classes'
        mean: a feature's contribution is its value × (its weight for the class − the mean weight),
        and the `limit` largest above 0.05 are shown, largest first, ties in column order (the
        chained labels' sentiment columns last). All labels in one gather; only the few
        contributions above the cut are sorted."""
        first = self._centered_rows()[1]
        offset = self._stacked()[0].shape[0]  # the centred rows follow the stacked ones in _by_column
        rows = np.array([offset + first[label] + best[label] for label in LABELS], dtype=np.intp)
        chain_vals = sentiment.astype(np.float32) * self.settings["chain_weight"]
        width = self.base_width
        chain = self._by_column()[width:width + len(chain_vals)]
        contrib = np.concatenate([gathered[:, rows].T * vals, chain[:, rows].T * chain_vals], axis=1)
        which, where = np.nonzero(contrib > 0.05)  # in contrib's precision, as always
        values = contrib[which, where]
        order = np.lexsort((-values, which))  # by label, then largest first; stable: ties keep column order
        n = len(cols)
        # at most `limit` each (a negative limit, as a slice's end, counts from the end of the label's columns)
        stops = np.array([limit if limit >= 0 else max(0, n + (len(chain_vals) if label in CHAINED else 0) + limit)
                          for label in LABELS])
        # Each label's first `stops` in that order picked in numpy (rank = place within its
        # label's run): a post has hundreds of contributions above the cut, and looping over
        # them all in Python to keep ~15 was most of this method's time (issue 17).
        labels_of = which[order]
        keep = order[np.arange(len(order)) - np.searchsorted(labels_of, labels_of) < stops[labels_of]]
        names = self.feature_names()
        shown: dict[str, list[str]] = {label: [] for label in LABELS}
        for k, w, v in zip(which[keep].tolist(), where[keep].tolist(), values[keep].tolist()):
            column = int(cols[w]) if w < n else width + (w - n)
            shown[LABELS_ORDER[k]].append(f"{names[column]} (+{v:.2f})")
        return shown

    # --- training ---------------------------------------------------------------------
    def _matrix(self, readings: Sequence[Reading]):
        from scipy.sparse import csr_matrix

        indptr, indices, data = [0], [], []
        for reading in readings:
            cols, vals = self.columns(reading)
            indices.extend(cols.tolist())
            data.extend(vals.tolist())
            indptr.append(len(indices))
        return csr_matrix((np.array(data, dtype=np.float32), np.array(indices, dtype=np.int64), np.array(indptr)),
                          shape=(len(readings), self.base_width))

    @classmethod
    def fit(cls, readings: Sequence[Reading], gold: Mapping[str, Sequence[str | None]], *,
            sample_weight: Sequence[float] | None = None, settings: Mapping[str, Any] | None = None,
            source: str = "") -> "LabelModel":
        """Fit every label on the rows where it is given (None = not labelled)."""
        from scipy.sparse import csr_matrix, hstack
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        merged = {**DEFAULT_SETTINGS, **(settings or {})}
        merged["C"] = {**DEFAULT_SETTINGS["C"], **dict(merged.get("C") or {})}
        model = cls({}, {}, merged)
        low, high = merged["char_ngrams"]
        model.char = fit_vocabulary([char_grams(r.prepared.normalized, low, high) for r in readings],
                                    merged["min_df"], merged["max_char_features"])
        low, high = merged["word_ngrams"]
        model.word = fit_vocabulary([_ngrams(r.prepared.words, low, high) for r in readings],
                                    merged["min_df"], merged["max_word_features"])
        base = model._matrix(readings)
        weights = np.asarray(sample_weight if sample_weight is not None else np.ones(len(readings)), dtype=np.float64)

        def logistic(label: str) -> LogisticRegression:
            return LogisticRegression(C=merged["C"][label], class_weight=merged["class_weight"], max_iter=5000)

        def rows_of(label: str) -> tuple[np.ndarray, list[str]]:
            values = gold.get(label) or [None] * len(readings)
            keep = np.array([v is not None and v != "" for v in values], dtype=bool)
            return keep, [str(v) for v, k in zip(values, keep) if k]

        counts: dict[str, dict[str, int]] = {}
        # sentiment first: its out-of-fold probabilities are the chained labels' extra features
        keep, labels = rows_of("sentiment")
        classes = tuple(c for c in LABELS["sentiment"] if c in labels)
        if len(classes) < 3:
            raise ModelError(f"training needs all three sentiment classes; the data has {list(classes)}")
        clf = logistic("sentiment").fit(base[keep], labels, sample_weight=weights[keep])
        model._keep("sentiment", clf, classes)
        counts["sentiment"] = {c: labels.count(c) for c in classes}
        sentiment = _proba(base, *model.weights["sentiment"])
        folds = min(merged["cv_folds"], min(counts["sentiment"].values()))
        if folds >= 2:
            cv = StratifiedKFold(folds, shuffle=True, random_state=0)
            oof = cross_val_predict(logistic("sentiment"), base[keep], labels, cv=cv, method="predict_proba",
                                    params={"sample_weight": weights[keep]})
            sentiment = sentiment.copy()
            sentiment[keep] = oof  # rows that trained the model get what an unseen post would get
        chained = hstack([base, csr_matrix(sentiment.astype(np.float32) * merged["chain_weight"])], format="csr")
        for label in LABELS:
            if label == "sentiment":
                continue
            keep, labels = rows_of(label)
            classes = tuple(c for c in LABELS[label] if c in labels)
            if len(classes) < 2:
                raise ModelError(f"training needs at least two classes of {label}; the data has {list(classes)}")
            matrix = chained if label in CHAINED else base
            clf = logistic(label).fit(matrix[keep], labels, sample_weight=weights[keep])
            model._keep(label, clf, classes)
            counts[label] = {c: labels.count(c) for c in classes}
        model.meta = {"training_size": len(readings), "class_counts": counts, "source": source}
        return model

    def _keep(self, label: str, clf: Any, classes: tuple[str, ...]) -> None:
        # sklearn orders classes_ alphabetically; they are stored so
        self.classes[label] = tuple(str(c) for c in clf.classes_)
        if set(self.classes[label]) != set(classes):
            raise ModelError(f"{label}: classes changed during training")
        self.weights[label] = (clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32))

    # --- files ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        assert self.char is not None and self.word is not None
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        char_terms, word_terms = self.char.terms(), self.word.terms()
        arrays: dict[str, np.ndarray] = {}
        for label, (coef, intercept) in self.weights.items():
            arrays[f"{label}_coef"], arrays[f"{label}_intercept"] = coef, intercept
        # savez_compressed writes zip entries with a fixed date: the same weights give the same bytes
        np.savez_compressed(folder / WEIGHTS_FILE, **arrays,
                            char_terms=np.array(char_terms, dtype=str), char_idf=self.char.idf.astype(np.float32),
                            word_terms=np.array(word_terms, dtype=str), word_idf=self.word.idf.astype(np.float32))
        info = {"format": FORMAT, "name": self.name, "classes": {k: list(v) for k, v in self.classes.items()},
                "features": self.settings, **self.meta,
                "vocabulary": {"char": len(char_terms), "word": len(word_terms)}}
        (folder / MODEL_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "LabelModel":
        folder = Path(folder)
        try:
            info = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {MODEL_FILE}") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder / MODEL_FILE}: cannot read it: {exc}") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise ModelError(f"{folder / MODEL_FILE}: not a label model of format {FORMAT}")
        try:
            with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            settings = {**DEFAULT_SETTINGS, **info["features"]}
            classes = {label: tuple(info["classes"][label]) for label in LABELS}
            weights = {label: (arrays[f"{label}_coef"], arrays[f"{label}_intercept"]) for label in LABELS}
            char = Vocabulary({t: i for i, t in enumerate(arrays["char_terms"].tolist())}, arrays["char_idf"])
            word = Vocabulary({t: i for i, t in enumerate(arrays["word_terms"].tolist())}, arrays["word_idf"])
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {WEIGHTS_FILE}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise ModelError(f"{folder}: damaged label model ({type(exc).__name__}: {exc})") from None
        width = len(char.index) + len(word.index) + len(_CUE_NAMES)
        for label, (coef, intercept) in weights.items():
            columns = width + (len(classes["sentiment"]) if label in CHAINED else 0)
            rows = 1 if len(classes[label]) == 2 else len(classes[label])
            if coef.shape != (rows, columns) or intercept.shape != (rows,):
                raise ModelError(f"{folder}: {label} weights do not match model.json "
                                 f"(coef {coef.shape}, expected {(rows, columns)})")
        meta = {k: v for k, v in info.items() if k not in ("format", "name", "classes", "features", "vocabulary")}
        return cls(classes, weights, settings, meta, char, word)


def corpus_digest(paths: Sequence[Path]) -> str:
    """sha256 over the corpus files, recorded in model.json instead of a training date."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


#: The model shipped in the package, trained on corpus/ by `yorisoi train --corpus corpus --out …`.
DEFAULT_MODEL_DIR = Path(__file__).with_name("default_model")


def load_model_folder(folder: str | Path) -> "LabelModel | Any":
    """A label model (format 2) or a sentiment-only model (format 1), by what model.json says."""
    from connector.analysis.model import SentimentModel

    path = Path(folder) / MODEL_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder}: no {MODEL_FILE} (train one with `yorisoi train … --out {folder}`)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read it: {exc}") from None
    if isinstance(info, dict) and info.get("format") == FORMAT:
        return LabelModel.load(folder)
    return SentimentModel.load(folder)


def default_model() -> "LabelModel | None":
    """The shipped label model, or None when the package has none (the lexicon decides)."""
    if not (DEFAULT_MODEL_DIR / MODEL_FILE).exists():
        return None
    return LabelModel.load(DEFAULT_MODEL_DIR)
