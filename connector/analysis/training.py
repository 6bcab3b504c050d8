"""Training the label model: on the team's corpus, and on the corpus plus agents' corrections.

    train_on_corpus(corpus)                    the shipped default (`yorisoi train --corpus corpus`)
    fine_tune(corpus, corrections, current)    `yorisoi train --from-corrections`: the corpus plus
                                               the customer's corrections (weighted), scored
                                               before/after on a held-back part of the
                                               corrections; the caller refuses a worse model.

The corpus is `posts.jsonl` (normalized posts) + `labels.tsv` (id, qualify, sentiment, intent,
expectation, content, axis, risk). Only qualifying posts train; an empty cell is "not labelled"
for that label. Rows are read in id order, so the same files give the same model bytes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from connector.analysis.labeller import LABELS, LabelModel, Reading, corpus_digest

#: gold column of labels.tsv → the label it trains
GOLD_COLUMNS = {"sentiment": "sentiment", "intent": "intent", "expectation": "expectation_type",
                "content": "expectation_content", "axis": "quality_axis"}
#: A correction counts this many times a corpus row: it is the customer's own SV speaking.
CORRECTION_WEIGHT = 3.0
#: Every HOLD_BACK-th corrected post (by a hash of its key) is kept out of training to judge.
HOLD_BACK = 5


class CorpusError(ValueError):
    """The corpus cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Example:
    key: str
    text: str
    lang: str | None
    labels: dict[str, str]      # label → value, only the labelled ones


def corpus_files(folder: Path) -> tuple[Path, Path]:
    posts, labels = folder / "posts.jsonl", folder / "labels.tsv"
    for path in (posts, labels):
        if not path.is_file():
            raise CorpusError(f"{folder}: no {path.name} (a corpus is posts.jsonl + labels.tsv)")
    return posts, labels


def read_corpus(folder: Path) -> list[Example]:
    """The qualifying, labelled posts of a corpus folder, in id order."""
    posts_path, labels_path = corpus_files(folder)
    texts: dict[str, tuple[str, str | None]] = {}
    for number, line in enumerate(posts_path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                raw = json.loads(line)
                texts[str(raw["id"])] = (str(raw["text"]), raw.get("lang"))
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{posts_path}:{number}: {exc}") from None
    lines = labels_path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if header[:2] != ["id", "qualify"] or any(c not in header for c in GOLD_COLUMNS):
        raise CorpusError(f"{labels_path}:1: header must be id, qualify, {', '.join(GOLD_COLUMNS)}, …")
    examples = []
    for number, line in enumerate(lines[1:], 2):
        cells = dict(zip(header, line.split("\t")))
        if cells.get("qualify") != "yes":
            continue
        row_id = cells["id"]
        if row_id not in texts:
            raise CorpusError(f"{labels_path}:{number}: id {row_id} is not in {posts_path.name}")
        labels = {}
        for column, label in GOLD_COLUMNS.items():
            value = (cells.get(column) or "").strip()
            if value:
                if value not in LABELS[label]:
                    raise CorpusError(f"{labels_path}:{number}: {column} {value!r} is not one of "
                                      f"{', '.join(LABELS[label])}")
                labels[label] = value
        text, lang = texts[row_id]
        examples.append(Example(row_id, text, lang, labels))
    if not examples:
        raise CorpusError(f"{labels_path}: no qualifying labelled post")
    return sorted(examples, key=lambda e: e.key)


def _readings(examples: Sequence[Example]) -> list[Reading]:
    from connector.analysis import read

    return [read(e.text, e.lang) for e in examples]


def fit(examples: Sequence[Example], weights: Sequence[float] | None = None, *, source: str = "",
        readings: Sequence[Reading] | None = None, settings: Mapping[str, Any] | None = None) -> LabelModel:
    readings = list(readings) if readings is not None else _readings(examples)
    gold = {label: [e.labels.get(label) for e in examples] for label in LABELS}
    return LabelModel.fit(readings, gold, sample_weight=weights, source=source, settings=settings)


def train_on_corpus(folder: Path, settings: Mapping[str, Any] | None = None) -> LabelModel:
    examples = read_corpus(folder)
    model = fit(examples, source=f"corpus {folder.name}", settings=settings)
    model.meta["corpus_sha256"] = corpus_digest(list(corpus_files(folder)))
    return model


def accuracy(model: LabelModel | None, examples: Sequence[Example]) -> dict[str, float | int]:
    """Share of the examples' labels the model gets right, per label and overall (`all`).
    model None: the lexicon and rules (what runs without a model)."""
    from connector.analysis import analyse_text

    right: dict[str, int] = {}
    total: dict[str, int] = {}
    for example in examples:
        analysis = analyse_text(example.text, lang=example.lang, model=model)
        for label, value in example.labels.items():
            total[label] = total.get(label, 0) + 1
            right[label] = right.get(label, 0) + (getattr(analysis, label).value == value)
    out: dict[str, float | int] = {label: round(right[label] / total[label], 4) for label in sorted(total)}
    out["all"] = round(sum(right.values()) / max(sum(total.values()), 1), 4)
    out["n"] = sum(total.values())
    return out


def held_back(key: str) -> bool:
    bucket = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % HOLD_BACK
    return bucket == 0


def corrections_as_examples(rows: Iterable[tuple[str, str, str, str, str | None]]) -> list[Example]:
    """(post key, label, value, text, lang) rows — the latest correction per post and label —
    as one example per post."""
    merged: dict[str, Example] = {}
    for key, label, value, text, lang in rows:
        if label not in LABELS or value not in LABELS[label]:
            continue  # risk and priority are rules, not learnt
        example = merged.setdefault(key, Example(key, text, lang, {}))
        example.labels[label] = value
    return [merged[key] for key in sorted(merged)]


@dataclass(frozen=True, slots=True)
class FineTuned:
    model: LabelModel
    before: dict[str, float | int]
    after: dict[str, float | int]
    trained_on: int
    held_back: int

    @property
    def better(self) -> bool:
        """Not worse on the held-back corrections (all labels together)."""
        return float(self.after["all"]) >= float(self.before["all"])


def fine_tune(folder: Path, corrections: Sequence[Example], current: LabelModel | None, *,
              weight: float = CORRECTION_WEIGHT) -> FineTuned:
    """The corpus plus the corrections (each `weight` times a corpus row), judged on the corrected
    posts held back from training; `before` is the current model on the same posts."""
    if not corrections:
        raise CorpusError("no corrections of sentiment, intent, expectation or quality axis yet")
    judge = [c for c in corrections if held_back(c.key)]
    learn = [c for c in corrections if not held_back(c.key)]
    if not judge:  # too few to hold one back by hash: judge on the last one
        judge, learn = list(corrections[-1:]), list(corrections[:-1])
    corpus = read_corpus(folder)
    examples = corpus + learn
    weights = [1.0] * len(corpus) + [weight] * len(learn)
    model = fit(examples, weights, source=f"corpus {folder.name} + {len(learn)} corrections")
    model.meta["corpus_sha256"] = corpus_digest(list(corpus_files(folder)))
    model.meta["corrections"] = len(learn)
    return FineTuned(model, accuracy(current, judge), accuracy(model, judge), len(learn), len(judge))


def default_corpus() -> Path | None:
    """The team's corpus: inside the installed package, or beside it in a checkout."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "corpus", package.parent / "corpus"):
        if (folder / "labels.tsv").is_file():
            return folder
    return None
