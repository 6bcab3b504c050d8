"""Evaluation of the whole path: labelled posts through qualification and analysis exactly as the
pipeline runs them, scored label by label against a gold file.

`yorisoi evaluate --posts POSTS.jsonl --gold GOLD.tsv [--watch WATCH.toml] [--model DIR]`:
the posts go through a real `Pipeline` (batched ingest, thread handling, the watch file's
rules, the model) into a throw-away SQLite database, and what it stored is compared with the
gold labels. GOLD.tsv has a header and the columns `id, qualify, sentiment, intent,
expectation, content, axis, risk`; an empty cell means "not labelled" (e.g. the labellers
disagreed) and is left out of that label's score. A post the pipeline dropped while the gold
labels it counts as the prediction "(dropped)" for every label.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.analysis.evaluation import score

#: gold column → the analysis label it is compared with
COLUMNS: dict[str, str] = {
    "sentiment": "sentiment",
    "intent": "intent",
    "expectation": "expectation_type",
    "content": "expectation_content",
    "axis": "quality_axis",
    "risk": "risk",
}
DROPPED = "(dropped)"
CHUNK = 200


class GoldFileError(ValueError):
    """A gold or posts file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class GoldRow:
    id: str
    qualify: str | None                       # "yes" | "no" | None (not labelled)
    labels: dict[str, str]                    # gold column → value, only where labelled


def read_gold(path: Path) -> list[GoldRow]:
    from connector.analysis.labeller import LABELS as MODEL_LABELS
    from connector.analysis.priority import CONDITION_VALUES

    allowed = {column: set(CONDITION_VALUES[label]) if label in CONDITION_VALUES else set(MODEL_LABELS[label])
               for column, label in COLUMNS.items()}
    rows: list[GoldRow] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise GoldFileError(f"{path}: empty file")
    header = [c.strip().lower() for c in lines[0].split("\t")]
    if header[:2] != ["id", "qualify"] or any(c not in header for c in COLUMNS):
        raise GoldFileError(f"{path}:1: header must be id, qualify, {', '.join(COLUMNS)} (tab-separated)")
    where = {name: header.index(name) for name in ("id", "qualify", *COLUMNS)}
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        cells += [""] * (len(header) - len(cells))
        row_id = cells[where["id"]].strip()
        if not row_id or row_id in seen:
            raise GoldFileError(f"{path}:{number}: {'empty' if not row_id else 'repeated'} id {row_id!r}")
        seen.add(row_id)
        qualify = cells[where["qualify"]].strip().lower() or None
        if qualify not in (None, "yes", "no"):
            raise GoldFileError(f"{path}:{number}: qualify {qualify!r} is not yes or no")
        labels = {}
        for column in COLUMNS:
            value = cells[where[column]].strip().lower()
            if value and value not in allowed[column]:
                raise GoldFileError(f"{path}:{number}: {column} {value!r} is not one of "
                                    f"{', '.join(sorted(allowed[column]))}")
            if value:
                labels[column] = value
        rows.append(GoldRow(row_id, qualify, labels))
    return rows


def read_posts(path: Path) -> list[dict[str, Any]]:
    posts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise GoldFileError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(raw, dict) or "id" not in raw or "platform" not in raw:
            raise GoldFileError(f"{path}:{number}: a post needs at least platform and id")
        posts.append(raw)
    return posts


def run_path(posts: list[dict[str, Any]], watch_path: Path, model: Any) -> dict[str, tuple[bool, dict[str, str]]]:
    """post id → (qualified, label → value), from a real pipeline on a throw-away database."""
    from connector.db import Store
    from connector.helpdesks.local import LocalHelpdesk
    from connector.pipeline import Pipeline
    from connector.watch import load_watch

    watch = load_watch(watch_path)
    with tempfile.TemporaryDirectory(prefix="yorisoi-evaluate-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'evaluate.sqlite3'}")
        try:
            pipeline = Pipeline(store, watch, LocalHelpdesk(store.tickets), model=model)
            for start in range(0, len(posts), CHUNK):
                pipeline.ingest_many(posts[start:start + CHUNK], "evaluate")
            out: dict[str, tuple[bool, dict[str, str]]] = {}
            for raw in posts:
                loaded = store.posts.load_post(f"{raw['platform']}:{raw['id']}")
                if loaded is None:  # rejected by the post schema: never stored
                    continue
                _post, decision, analysis = loaded
                values = {name: label.value for name, label in analysis.labels().items()} if analysis else {}
                out[str(raw["id"])] = (decision.qualified, values)
            return out
        finally:
            store.engine.dispose()


def evaluate_path(posts_path: Path, gold_path: Path, watch_path: Path, model: Any) -> dict[str, Any]:
    """Per label: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    gold = read_gold(gold_path)
    posts = read_posts(posts_path)
    known = {str(p["id"]) for p in posts}
    missing = [row.id for row in gold if row.id not in known]
    if missing:
        raise GoldFileError(f"{gold_path}: {len(missing)} ids are not in {posts_path} (first: {missing[0]})")
    predicted = run_path(posts, watch_path, model)
    result: dict[str, Any] = {"posts": len(posts), "gold_rows": len(gold),
                              "analyser": getattr(model, "name", None) or "lexicon"}
    pairs = [(row.qualify, "yes" if predicted.get(row.id, (False, {}))[0] else "no")
             for row in gold if row.qualify]
    result["qualify"] = score([g for g, _ in pairs], [p for _, p in pairs], ("yes", "no"))
    for column, label in COLUMNS.items():
        gold_values, guesses = [], []
        for row in gold:
            if column not in row.labels:
                continue
            qualified, values = predicted.get(row.id, (False, {}))
            gold_values.append(row.labels[column])
            guesses.append(values.get(label, DROPPED) if qualified else DROPPED)
        classes = _classes(label)
        present = tuple(c for c in classes if c in set(gold_values))
        result[column] = score(gold_values, guesses, present)
    if "negative" in result["sentiment"]["per_class"]:
        result["negative_recall"] = result["sentiment"]["per_class"]["negative"]["recall"]
    return result


def _classes(label: str) -> tuple[str, ...]:
    from connector.analysis.labeller import LABELS as MODEL_LABELS
    from connector.analysis.priority import CONDITION_VALUES

    return tuple(CONDITION_VALUES.get(label) or MODEL_LABELS[label])


def format_text(result: dict[str, Any]) -> str:
    lines = [f"{result['posts']} posts, {result['gold_rows']} gold rows · analyser {result['analyser']}"]
    for column in ("qualify", *COLUMNS):
        r = result[column]
        lines.append(f"{column:<12} n {r['n']:>5}  accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}")
        shown = list(next(iter(r["confusion"].values()))) if r["confusion"] else []
        for gold_value, row in r["confusion"].items():
            m = r["per_class"][gold_value]
            counts = " ".join(f"{row[p]:>4}" for p in shown)
            lines.append(f"    {gold_value:<12} P {m['precision']:.2f} R {m['recall']:.2f} | {counts}")
        if shown:
            lines.append("    " + " " * 27 + "  " + " ".join(f"{p[:4]:>4}" for p in shown) + "  (predicted)")
    return "\n".join(lines)
