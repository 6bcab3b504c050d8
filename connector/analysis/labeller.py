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

Each label carries its probability: `Label.confidence` is P(chosen class). The evidence names the
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
from dataclasses import dataclass, field
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
            found = reading.found.get(dimension, {})
            row.extend(min(cue_rules._score(found.get(label, [])), 2.0) / 2.0 for label in labels)
        text = item.normalized
        row.extend([float("?" in text or "？" in text), float("!" in text or "！" in text),
                    min(math.log1p(len(text)) / 6.0, 1.0), float(item.language != "ja")])
        rows[i] = row
    return rows * weight


def _vectorizers(settings: Mapping[str, Any], fitted: Mapping[str, Any] | None = None):
    from functools import partial

    from sklearn.feature_extraction.text import TfidfVectorizer

    low, high = settings["word_ngrams"]
    common = dict(sublinear_tf=True, dtype=np.float32, min_df=settings["min_df"])
    char = TfidfVectorizer(analyzer="char", ngram_range=tuple(settings["char_ngrams"]), lowercase=True,
                           max_features=settings["max_char_features"], **common)
    word = TfidfVectorizer(analyzer=partial(_ngrams, low=low, high=high), lowercase=False,
                           max_features=settings["max_word_features"], **common)
    if fitted is not None:
        for name, vec in (("char", char), ("word", word)):
            vec.vocabulary_ = {term: i for i, term in enumerate(fitted[f"{name}_terms"])}
            vec.idf_ = fitted[f"{name}_idf"]
    return char, word


@dataclass
class LabelModel:
    classes: dict[str, tuple[str, ...]]
    weights: dict[str, tuple[np.ndarray, np.ndarray]]          # label → (coef, intercept)
    settings: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    char_vec: Any = None
    word_vec: Any = None
    _names: list[str] | None = None

    @property
    def name(self) -> str:
        return f"{KIND}-{FORMAT}"

    # --- features ---------------------------------------------------------------------
    def _base(self, readings: Sequence[Reading]):
        from scipy.sparse import csr_matrix, hstack

        char = self.char_vec.transform([r.prepared.normalized for r in readings])
        word = self.word_vec.transform([r.prepared.words for r in readings])
        cues = csr_matrix(cue_columns(readings, self.settings["cue_weight"]))
        return hstack([char, word, cues], format="csr")

    def _with_chain(self, base, sentiment: np.ndarray):
        from scipy.sparse import csr_matrix, hstack

        return hstack([base, csr_matrix(sentiment.astype(np.float32) * self.settings["chain_weight"])],
                      format="csr")

    def feature_names(self) -> list[str]:
        if self._names is None:
            char = sorted(self.char_vec.vocabulary_, key=self.char_vec.vocabulary_.__getitem__)
            word = sorted(self.word_vec.vocabulary_, key=self.word_vec.vocabulary_.__getitem__)
            self._names = ([f"「{t}」" for t in char] + [f"word 「{t.replace(chr(31), ' ')}」" for t in word]
                           + list(_CUE_NAMES) + [f"sentiment P({c})" for c in self.classes["sentiment"]])
        return self._names

    # --- prediction -------------------------------------------------------------------
    def probabilities(self, readings: Sequence[Reading]) -> dict[str, np.ndarray]:
        """label → (len(readings), len(classes)) probabilities."""
        base = self._base(readings)
        out = {"sentiment": _proba(base, *self.weights["sentiment"])}
        chained = self._with_chain(base, out["sentiment"])
        for label in LABELS:
            if label != "sentiment":
                out[label] = _proba(chained if label in CHAINED else base, *self.weights[label])
        return out

    def labels(self, reading: Reading, *, explain: int = 3) -> dict[str, Label]:
        """Every label for one post, with its confidence and the features that weighed most."""
        base = self._base([reading])
        probs = {"sentiment": _proba(base, *self.weights["sentiment"])}
        chained = self._with_chain(base, probs["sentiment"])
        out: dict[str, Label] = {}
        for label in LABELS:
            row = base if label == "sentiment" or label not in CHAINED else chained
            if label != "sentiment":
                probs[label] = _proba(row, *self.weights[label])
            p = probs[label][0]
            classes = self.classes[label]
            best = int(np.argmax(p))
            value = classes[best]
            shown = " ".join(f"P({c})={q:.2f}" for c, q in sorted(zip(classes, p), key=lambda x: -x[1])[:3])
            evidence = [f"model {self.name}: {shown}"]
            weighed = self._weighed(row, label, best, explain)
            if weighed:
                evidence.append("weighed most: " + ", ".join(weighed))
            if label == "sentiment":
                score = float(p[classes.index("positive")] - p[classes.index("negative")])
            else:
                score = float(p[best])
            out[label] = Label(value, round(max(-1.0, min(1.0, score)), 4), tuple(evidence),
                               confidence=round(float(p[best]), 4))
        return out

    def _weighed(self, row, label: str, best: int, limit: int) -> list[str]:
        """The features that pushed the chosen class most, against the classes' mean."""
        coef = self.weights[label][0]
        if coef.shape[0] == 1:  # binary: one row, positive for the second class
            direction = coef[0] if best == 1 else -coef[0]
        else:
            direction = coef[best] - coef.mean(axis=0)
        row = row.tocsr()
        idx, vals = row.indices, row.data
        if not len(idx):
            return []
        contrib = vals * direction[idx]
        order = np.argsort(-contrib, kind="stable")[:limit]
        names = self.feature_names()
        return [f"{names[idx[i]]} (+{contrib[i]:.2f})" for i in order if contrib[i] > 0.05]

    # --- training ---------------------------------------------------------------------
    @classmethod
    def fit(cls, readings: Sequence[Reading], gold: Mapping[str, Sequence[str | None]], *,
            sample_weight: Sequence[float] | None = None, settings: Mapping[str, Any] | None = None,
            source: str = "") -> "LabelModel":
        """Fit every label on the rows where it is given (None = not labelled)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        merged = {**DEFAULT_SETTINGS, **(settings or {})}
        merged["C"] = {**DEFAULT_SETTINGS["C"], **dict(merged.get("C") or {})}
        model = cls({}, {}, merged)
        model.char_vec, model.word_vec = _vectorizers(merged)
        model.char_vec.fit([r.prepared.normalized for r in readings])
        model.word_vec.fit([r.prepared.words for r in readings])
        base = model._base(readings)
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
        chained = model._with_chain(base, sentiment)
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
        # sklearn orders classes_ alphabetically; store them so, and report in LABELS order
        self.classes[label] = tuple(str(c) for c in clf.classes_)
        if set(self.classes[label]) != set(classes):
            raise ModelError(f"{label}: classes changed during training")
        self.weights[label] = (clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32))

    # --- files ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        char_terms = sorted(self.char_vec.vocabulary_, key=self.char_vec.vocabulary_.__getitem__)
        word_terms = sorted(self.word_vec.vocabulary_, key=self.word_vec.vocabulary_.__getitem__)
        arrays: dict[str, np.ndarray] = {}
        for label, (coef, intercept) in self.weights.items():
            arrays[f"{label}_coef"], arrays[f"{label}_intercept"] = coef, intercept
        # savez_compressed writes zip entries with a fixed date: the same weights give the same bytes
        np.savez_compressed(folder / WEIGHTS_FILE, **arrays,
                            char_terms=np.array(char_terms, dtype=str),
                            char_idf=self.char_vec.idf_.astype(np.float32),
                            word_terms=np.array(word_terms, dtype=str),
                            word_idf=self.word_vec.idf_.astype(np.float32))
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
            fitted = {"char_terms": arrays["char_terms"].tolist(), "char_idf": arrays["char_idf"].astype(np.float64),
                      "word_terms": arrays["word_terms"].tolist(), "word_idf": arrays["word_idf"].astype(np.float64)}
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {WEIGHTS_FILE}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise ModelError(f"{folder}: damaged label model ({type(exc).__name__}: {exc})") from None
        width = len(fitted["char_terms"]) + len(fitted["word_terms"]) + len(_CUE_NAMES)
        for label, (coef, intercept) in weights.items():
            columns = width + (len(classes["sentiment"]) if label in CHAINED else 0)
            rows = 1 if len(classes[label]) == 2 else len(classes[label])
            if coef.shape != (rows, columns) or intercept.shape != (rows,):
                raise ModelError(f"{folder}: {label} weights do not match model.json "
                                 f"(coef {coef.shape}, expected {(rows, columns)})")
        meta = {k: v for k, v in info.items() if k not in ("format", "name", "classes", "features", "vocabulary")}
        model = cls(classes, weights, settings, meta)
        model.char_vec, model.word_vec = _vectorizers(settings, fitted)
        return model


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
