"""Evaluation of the similar-case retrieval on the team-written cases of
tests/fixtures/similar_cases.json: each text is analysed by the connector's own analysis (the
shipped label model) and its complaint topics, as ingest does, then ranked by
connector.similar_cases. Shared by tests/test_similar_cases.py and benchmarks/reply_help.py."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from connector.analysis import analyse_text
from connector.analysis.labeller import default_model
from connector.similar_cases import CaseText, precision_at, rank_similar, situations_of
from connector.topics import is_complaint, topics_of_text

FIXTURE = Path(__file__).parent / "fixtures" / "similar_cases.json"
#: The brands' names and keywords, as a watch file would list them (dropped before comparing).
BRAND_TERMS = {"ソラモバイル": ("ソラモバイル", "ソラモバ", "Sora Mobile", "ソラSIM", "ソラアプリ", "ソラショップ"),
               "ハルカ珈琲": ("ハルカ珈琲", "ハルカコーヒー", "Haruka Coffee"),
               "ナギ配送": ("ナギ配送", "Nagi Delivery")}


def load() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@cache
def _model():
    return default_model()


def features(key: str, text: str, brand: str) -> CaseText:
    analysis = analyse_text(text, model=_model())
    labels = {name: getattr(analysis, name).value for name in
              ("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis")}
    nouns = tuple(topics_of_text(text, exclude=tuple(t.casefold() for t in BRAND_TERMS[brand]))) \
        if is_complaint(analysis) else ()
    return CaseText(key=key, text=text, labels=labels, topics=nouns + situations_of(text))


def evaluate(k: int = 3, queries: str = "queries") -> dict[str, Any]:
    """precision@k over the fixture's `queries` (the set the weights were chosen on) or
    `heldout_queries` (written after, never tuned on: the honest estimate)."""
    data = load()
    cases = data["cases"]
    by_brand: dict[str, list[CaseText]] = {}
    for case in cases:
        by_brand.setdefault(case["brand"], []).append(features(case["id"], case["text"], case["brand"]))
    situation = {c["id"]: c["situation"] for c in cases}
    per_query = []
    for query in data[queries]:
        ranked = rank_similar(features(query["id"], query["text"], query["brand"]), by_brand[query["brand"]],
                              drop=BRAND_TERMS[query["brand"]])
        relevant = {c["id"] for c in cases if c["brand"] == query["brand"] and c["situation"] == query["situation"]}
        keys = [r.key for r in ranked]
        per_query.append({"id": query["id"], "precision": precision_at(k, keys, relevant), "top": keys[:k],
                          "top_situations": [situation[x] for x in keys[:k]]})
    mean = sum(q["precision"] for q in per_query) / len(per_query)
    return {"k": k, "queries": len(per_query), "cases": len(cases), "brands": len(by_brand),
            f"precision_at_{k}": round(mean, 4), "per_query": per_query}
