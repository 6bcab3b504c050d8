"""Labelled sentiment files and the scores `yorisoi evaluate` prints. Pure: no I/O but reading
the file it is given, no Flask, no store.

The metrics are written out here (a confusion matrix and three divisions per class) instead of
taken from sklearn.metrics: they are a few lines, they fix the conventions the issue asks for
(only the classes present in the gold labels are scored; a prediction outside them, e.g.
"neutral" on a two-class file, is simply an error; 0/0 counts as 0), and the evaluation
command then works the same whether or not the learner's libraries are used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

#: The sentiment labels, in the order they are reported.
LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class LabelledText:
    id: str
    text: str
    label: str


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class LabelledFileError(ValueError):
    """A labelled file that cannot be used at all (missing, empty, no valid row)."""


def parse_labelled_lines(lines: Iterable[str]) -> tuple[list[LabelledText], list[RowError]]:
    """Rows of `id<TAB>text<TAB>label[<TAB>extra…]`; extra columns are ignored.

    A first line whose first three columns are `id`, `text`, `label` is a header and skipped.
    Each bad row (too few columns, empty id or text, unknown label, repeated id) is reported
    with its line number and left out; the good rows are kept.
    """
    rows: list[LabelledText] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        columns = line.split("\t")
        if number == 1 and [c.strip().lower() for c in columns[:3]] == ["id", "text", "label"]:
            continue
        if len(columns) < 3:
            errors.append(RowError(number, f"expected id<TAB>text<TAB>label, found {len(columns)} column(s)"))
            continue
        row_id, text, label = columns[0].strip(), columns[1].strip(), columns[2].strip().lower()
        if not row_id:
            errors.append(RowError(number, "empty id"))
        elif not text:
            errors.append(RowError(number, f"{row_id}: empty text"))
        elif label not in LABELS:
            errors.append(RowError(number, f"{row_id}: label {columns[2].strip()!r} is not one of "
                                           f"{', '.join(LABELS)}"))
        elif row_id in seen:
            errors.append(RowError(number, f"{row_id}: id already used on an earlier line"))
        else:
            seen.add(row_id)
            rows.append(LabelledText(row_id, text, label))
    return rows, errors


def read_labelled_tsv(path: str | Path) -> tuple[list[LabelledText], list[RowError]]:
    """Read a labelled UTF-8 TSV file (see `parse_labelled_lines`). Raises LabelledFileError
    when nothing usable is in it."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows, errors = parse_labelled_lines(handle)
    except UnicodeDecodeError as exc:
        raise LabelledFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not rows:
        detail = f"; first problem: {errors[0]}" if errors else ""
        raise LabelledFileError(f"{path}: no usable row (id<TAB>text<TAB>label){detail}")
    return rows, errors


def scored_classes(gold: Iterable[str]) -> tuple[str, ...]:
    """The classes a file is scored on: those present in its gold labels, in LABELS order."""
    present = set(gold)
    return tuple(label for label in LABELS if label in present)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def score(gold: Sequence[str], predicted: Sequence[str], classes: Sequence[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    Only `classes` (default: those in `gold`) are scored; macro-F1 is their unweighted mean. A
    prediction outside them is an error that lowers recall but no class's precision.
    `confusion[gold][predicted]` counts rows, over every label that occurs on either side.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    classes = tuple(classes) if classes is not None else scored_classes(gold)
    canonical = LABELS if set(classes) <= set(LABELS) else tuple(classes)
    shown = [label for label in canonical if label in set(classes) | set(predicted)]
    shown += sorted(set(predicted) - set(shown))
    confusion = {g: {p: 0 for p in shown} for g in classes}
    for g, p in zip(gold, predicted):
        if g in confusion:
            confusion[g][p] += 1
    per_class = {}
    f1s = []
    for label in classes:
        tp = confusion[label][label]
        predicted_as = sum(confusion[g][label] for g in classes)
        actual = sum(confusion[label].values())
        precision, recall = _ratio(tp, predicted_as), _ratio(tp, actual)
        f1 = _ratio(2 * precision * recall, precision + recall)
        f1s.append(f1)
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": actual}
    n = sum(sum(row.values()) for row in confusion.values())
    correct = sum(confusion[label][label] for label in classes)
    macro = _ratio(sum(f1s), len(f1s))
    return {"n": n, "classes": list(classes), "accuracy": round(_ratio(correct, n), 4),
            "macro_f1": round(macro, 4), "per_class": per_class, "confusion": confusion}


def evaluate_rows(rows: Sequence[LabelledText], model=None, *, lang: str | None = None,
                  warm_up: int = 20) -> dict:
    """Score the sentiment analysis (the lexicon, or `model`) on labelled rows.

    `texts_per_s` is sentiment analysis only, in this process, timed after a warm-up pass over
    the first `warm_up` texts (which loads nagisa, the lexicons and VADER).
    """
    import time

    from connector.analysis import sentiment_of

    for row in rows[:warm_up]:
        sentiment_of(row.text, lang, model)
    started = time.perf_counter()
    predicted = [sentiment_of(row.text, lang, model).value for row in rows]
    elapsed = time.perf_counter() - started
    result = score([row.label for row in rows], predicted)
    result["texts_per_s"] = round(len(rows) / elapsed, 1) if elapsed > 0 else None
    result["analyser"] = model.name if model is not None else "lexicon"
    return result
