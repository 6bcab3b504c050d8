"""A sentiment model learnt from the customer's own labels (TSV files or agents' corrections).

Features that suit Japanese without a dictionary: TF-IDF over character n-grams of the
normalised text (they catch inflections and slang nagisa splits oddly), TF-IDF over nagisa
tokens and token bigrams (regex words for English), and the lexicon's own verdict (its score
and label, per language). Three logistic regressions, blended:

  text   on the n-grams alone;
  meta   on the text model's out-of-fold log-probabilities plus the lexicon's verdict (stacking:
         it learns how far to trust each on this customer's posts, from predictions the text
         model made on rows it had not seen);
  joint  on n-grams and lexicon verdict together;
  P = (1 − BLEND_JOINT)·P(meta) + BLEND_JOINT·P(joint).

On the dev files (trained on one half, scored on the other) stacking wins on long reviews, the
joint model on short posts; the blend is at least as good as the better of the two on each.
The signed score is P(positive) − P(negative).

A model folder holds `model.json` (format, name, classes, training size, date, feature
settings) and `weights.npz` (vocabularies, IDF vectors and coefficients as plain arrays). It is
loaded with `numpy.load(allow_pickle=False)` and `json`: nothing in it is executed, so a model
folder is data, not code, and loading takes well under a second. scikit-learn is used to fit and
to vectorise; the probabilities are computed here from the saved coefficients.

Pure like the rest of the package: the caller (services) loads a model once and passes it in.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from connector.models import Label

MODEL_FORMAT = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
KIND = "lr-charngram"

#: Default feature settings (stored in model.json, so a saved model keeps its own).
DEFAULT_SETTINGS: dict[str, Any] = {
    "char_ngrams": [1, 4],        # character n-grams of the normalised, case-folded text
    "word_ngrams": [1, 2],        # nagisa tokens (English: words) and their bigrams
    "min_df": 1,
    "max_features": 300_000,      # per vectoriser, most frequent first
    "lexicon_weight": 1.0,        # scale of the lexicon's score and label columns
    "C": 10.0,                    # inverse regularisation of the text and joint models
    "C_meta": 1.0,                # … and of the small stacking model
    "cv_folds": 5,                # folds for the out-of-fold probabilities the meta model learns from
    "blend_joint": 0.3,           # weight of the joint model in the blend
    "class_weight": "balanced",   # macro-F1 counts a rare class as much as a common one
}
PARTS = ("text", "joint", "meta")

_EN_TOKEN = re.compile(r"[a-z0-9][a-z0-9'_]*|[^\sa-z0-9]", re.IGNORECASE)
_SHORT = {"negative": "neg", "neutral": "neu", "positive": "pos"}


class ModelError(ValueError):
    """A model folder that cannot be used; the message names the folder and the problem."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One text as the model reads it: normalised text, language, words and the lexicon label."""

    normalized: str
    language: str
    words: tuple[str, ...]
    lexicon: Label


def english_words(text: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _EN_TOKEN.findall(text))


def _ngrams(words: Sequence[str], low: int, high: int) -> list[str]:
    grams: list[str] = []
    for n in range(low, high + 1):
        grams.extend("\x1f".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return grams


def _vectorizers(settings: dict[str, Any], fitted: dict[str, Any] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    low, high = settings["word_ngrams"]
    common = dict(sublinear_tf=True, dtype=np.float32)
    char = TfidfVectorizer(analyzer="char", ngram_range=tuple(settings["char_ngrams"]), lowercase=True,
                           min_df=settings["min_df"], max_features=settings["max_features"], **common)
    word = TfidfVectorizer(analyzer=partial(_ngrams, low=low, high=high), lowercase=False,
                           min_df=settings["min_df"], max_features=settings["max_features"], **common)
    if fitted is not None:
        for name, vec in (("char", char), ("word", word)):
            vec.vocabulary_ = {term: i for i, term in enumerate(fitted[f"{name}_terms"])}
            vec.idf_ = fitted[f"{name}_idf"]
    return char, word


def _dense(items: Sequence[Prepared], weight: float) -> np.ndarray:
    """The lexicon's verdict: score per language, and its label as two indicator columns."""
    rows = np.zeros((len(items), 4), dtype=np.float32)
    for i, item in enumerate(items):
        rows[i, 0 if item.language == "ja" else 1] = item.lexicon.score
        rows[i, 2] = item.lexicon.value == "positive"
        rows[i, 3] = item.lexicon.value == "negative"
    return rows * weight


def _lexicon_columns(items: Sequence[Prepared]) -> np.ndarray:
    """The meta model's view of the lexicon: label indicators, score, and the score unsquashed
    (a long review's many cues saturate tanh; atanh gives their sum back, scaled down)."""
    score = np.array([[item.lexicon.score] for item in items], dtype=np.float64)
    return np.hstack([_dense(items, 1.0), np.arctanh(np.clip(score, -0.999, 0.999)) / 3])


def _proba(matrix: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Class probabilities of a logistic regression from its coefficients (binary: one row)."""
    scores = np.asarray(matrix @ coef.T) + intercept
    if coef.shape[0] == 1:
        p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, 1e-4, 1.0))


@dataclass
class SentimentModel:
    classes: tuple[str, ...]
    weights: dict[str, tuple[np.ndarray, np.ndarray]]   # part → (coef, intercept); meta may be absent
    settings: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    char_vec: Any = None
    word_vec: Any = None

    @property
    def name(self) -> str:
        return f"{KIND}-{MODEL_FORMAT}"

    # --- features ---------------------------------------------------------------------
    def _matrix(self, items: Sequence[Prepared]):
        """n-gram columns, then the 4 lexicon columns last."""
        from scipy.sparse import csr_matrix, hstack

        char = self.char_vec.transform([item.normalized for item in items])
        word = self.word_vec.transform([item.words for item in items])
        dense = csr_matrix(_dense(items, self.settings["lexicon_weight"]))
        return hstack([char, word, dense], format="csr")

    def probabilities(self, items: Sequence[Prepared]) -> np.ndarray:
        """(len(items), len(classes)) class probabilities."""
        matrix = self._matrix(items)
        joint = _proba(matrix, *self.weights["joint"])
        if "meta" not in self.weights:
            return joint
        text = _proba(matrix[:, :-4], *self.weights["text"])
        stacked = _proba(np.hstack([_log(text), _lexicon_columns(items)]), *self.weights["meta"])
        blend = self.settings["blend_joint"]
        return (1.0 - blend) * stacked + blend * joint

    def label(self, item: Prepared) -> Label:
        """The model's sentiment for one text; the lexicon's evidence follows the model's line."""
        probs = self.probabilities([item])[0]
        by_class = dict(zip(self.classes, (float(p) for p in probs)))
        value = max(by_class, key=by_class.__getitem__)
        score = by_class.get("positive", 0.0) - by_class.get("negative", 0.0)
        shown = " ".join(f"P({_SHORT.get(c, c)})={p:.2f}" for c, p in by_class.items())
        lexicon = item.lexicon
        evidence = (f"model {self.name}: {shown}",
                    f"lexicon says {lexicon.value} ({lexicon.score:+.2f}):",
                    *(f"  {line}" for line in lexicon.evidence))
        return Label(value, round(max(-1.0, min(1.0, score)), 4), evidence)

    # --- training ---------------------------------------------------------------------
    @classmethod
    def fit(cls, items: Sequence[Prepared], labels: Sequence[str], *, source: str = "",
            settings: dict[str, Any] | None = None) -> "SentimentModel":
        """Fit on prepared texts and their labels (at least two classes)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        settings = {**DEFAULT_SETTINGS, **(settings or {})}
        labels = list(labels)
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ModelError(f"training needs at least two classes; the data has only {classes or 'none'}")
        model = cls(tuple(classes), {}, settings)
        model.char_vec, model.word_vec = _vectorizers(settings)
        model.char_vec.fit([item.normalized for item in items])
        model.word_vec.fit([item.words for item in items])
        matrix = model._matrix(items)

        def logistic(c: float) -> LogisticRegression:
            return LogisticRegression(C=c, class_weight=settings["class_weight"], max_iter=3000)

        def keep(part: str, clf: LogisticRegression) -> None:
            if tuple(clf.classes_) != model.classes:  # both sorted: cannot happen
                raise ModelError("class order changed during training")
            model.weights[part] = (clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32))

        keep("joint", logistic(settings["C"]).fit(matrix, labels))
        # Stacking needs every class in every fold; with fewer examples the joint model is all.
        folds = min(settings["cv_folds"], min(labels.count(c) for c in classes))
        if folds >= 2:
            text_matrix = matrix[:, :-4]
            cv = StratifiedKFold(folds, shuffle=True, random_state=0)
            out_of_fold = cross_val_predict(logistic(settings["C"]), text_matrix, labels, cv=cv,
                                            method="predict_proba")
            keep("text", logistic(settings["C"]).fit(text_matrix, labels))
            stacked = np.hstack([_log(out_of_fold), _lexicon_columns(items)])
            keep("meta", logistic(settings["C_meta"]).fit(stacked, labels))
        counts = {c: labels.count(c) for c in classes}
        languages = sorted({item.language for item in items})
        model.meta = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "training_size": len(items), "class_counts": counts, "languages": languages,
                      "source": source, "stacked": "meta" in model.weights}
        return model

    # --- files ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        char_terms = sorted(self.char_vec.vocabulary_, key=self.char_vec.vocabulary_.__getitem__)
        word_terms = sorted(self.word_vec.vocabulary_, key=self.word_vec.vocabulary_.__getitem__)
        arrays = {}
        for part, (coef, intercept) in self.weights.items():
            arrays[f"{part}_coef"], arrays[f"{part}_intercept"] = coef, intercept
        np.savez_compressed(
            folder / WEIGHTS_FILE, **arrays,
            char_terms=np.array(char_terms, dtype=str), char_idf=self.char_vec.idf_.astype(np.float32),
            word_terms=np.array(word_terms, dtype=str), word_idf=self.word_vec.idf_.astype(np.float32))
        info = {"format": MODEL_FORMAT, "name": self.name, "classes": list(self.classes),
                "features": self.settings, **self.meta,
                "vocabulary": {"char": len(char_terms), "word": len(word_terms)}}
        (folder / MODEL_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "SentimentModel":
        """Load a saved model. Raises ModelError naming the folder and what is wrong."""
        folder = Path(folder)
        try:
            info = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {MODEL_FILE} (train one with `yorisoi train … --out {folder}`)") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder / MODEL_FILE}: cannot read it: {exc}") from None
        if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
            raise ModelError(f"{folder / MODEL_FILE}: format {info.get('format') if isinstance(info, dict) else '?'} "
                             f"is not {MODEL_FORMAT}; retrain the model with this version")
        try:
            with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            settings = {**DEFAULT_SETTINGS, **info["features"]}
            classes = tuple(info["classes"])
            weights = {part: (arrays[f"{part}_coef"], arrays[f"{part}_intercept"])
                       for part in PARTS if f"{part}_coef" in arrays}
            fitted = {"char_terms": arrays["char_terms"].tolist(), "char_idf": arrays["char_idf"].astype(np.float64),
                      "word_terms": arrays["word_terms"].tolist(), "word_idf": arrays["word_idf"].astype(np.float64)}
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {WEIGHTS_FILE}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise ModelError(f"{folder}: damaged model ({type(exc).__name__}: {exc})") from None
        n_terms = len(fitted["char_terms"]) + len(fitted["word_terms"])
        rows = 1 if len(classes) == 2 else len(classes)
        widths = {"joint": n_terms + 4, "text": n_terms, "meta": len(classes) + 5}
        if "joint" not in weights or ("meta" in weights) != ("text" in weights) or len(set(classes)) != len(classes):
            raise ModelError(f"{folder}: {WEIGHTS_FILE} lacks some of its parts")
        for part, (coef, intercept) in weights.items():
            if coef.shape != (rows, widths[part]) or intercept.shape != (rows,):
                raise ModelError(f"{folder}: {part} weights do not match model.json "
                                 f"(coef {coef.shape}, expected {(rows, widths[part])})")
        meta = {k: v for k, v in info.items() if k not in ("format", "name", "classes", "features", "vocabulary")}
        model = cls(classes, weights, settings, meta)
        model.char_vec, model.word_vec = _vectorizers(settings, fitted)
        return model

