"""Help writing the reply: the draft check's false alarms and the similar-case retrieval, on the
team-written fixtures; prints JSON. Each figure is compared with a baseline measured in the same
run:

- "too similar to a recent reply" (connector/draft_check.py) on every pair of good, distinct
  replies of tests/fixtures/reply_calibration.json (false-alarm rate, target <= 5%) and on its
  copy-paste variants (catch rate, target 100%), with the polite frame discounted (the rule)
  vs whole-text trigrams (the rule before issue 18), both at YORISOI_DRAFT_SIMILARITY's default;
- similar past cases (connector/similar_cases.py) on tests/fixtures/similar_cases.json:
  precision@3 of the ranking vs the same TF-IDF text similarity alone, on the queries the
  weights were chosen on and on held-out queries written afterwards (the honest figure).

    python benchmarks/reply_help.py
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import connector.similar_cases as similar  # noqa: E402
from connector.draft_check import DEFAULT_SIMILARITY, similarity  # noqa: E402
from tests.similar_cases_eval import evaluate  # noqa: E402

BRANDS = ("ソラモバイル", "ハルカ珈琲")


def draft_check() -> dict[str, object]:
    data = json.loads((ROOT / "tests" / "fixtures" / "reply_calibration.json").read_text(encoding="utf-8"))
    pairs = [(a, b, t["brand"]) for t in data["topics"] for a, b in itertools.combinations(t["replies"], 2)]
    out: dict[str, object] = {"distinct_pairs": len(pairs), "copy_pairs": len(data["copies"]),
                              "threshold": DEFAULT_SIMILARITY}
    for name, frame in (("calibrated", ()), ("baseline_whole_text", None)):
        scores = [similarity(a["text"], b["text"], [a["agent"], b["agent"], brand], frame) for a, b, brand in pairs]
        copies = [similarity(c["original"], c["copy"], [c["agent"], *BRANDS], frame) for c in data["copies"]]
        out[name] = {
            "false_alarm_rate": round(sum(s >= DEFAULT_SIMILARITY for s in scores) / len(scores), 4),
            "max_distinct_similarity": round(max(scores), 3),
            "copies_caught_rate": round(sum(s >= DEFAULT_SIMILARITY for s in copies) / len(copies), 4),
            "min_copy_similarity": round(min(copies), 3),
        }
    return out


def retrieval() -> dict[str, object]:
    started = time.perf_counter()
    ranked = evaluate(k=3)
    elapsed = time.perf_counter() - started
    heldout = evaluate(k=3, queries="heldout_queries")
    weights, floor = similar.SCORE_WEIGHTS, similar.MIN_SCORE
    try:  # the baseline: the same character TF-IDF alone, every candidate kept (no floor)
        similar.SCORE_WEIGHTS, similar.MIN_SCORE = (1.0, 0.0, 0.0), 0.0
        text_only = evaluate(k=3)
        text_only_heldout = evaluate(k=3, queries="heldout_queries")
    finally:
        similar.SCORE_WEIGHTS, similar.MIN_SCORE = weights, floor
    p, base = ranked["precision_at_3"], text_only["precision_at_3"]
    return {"cases": ranked["cases"], "brands": ranked["brands"], "queries": ranked["queries"],
            "precision_at_3": p, "baseline_text_only_precision_at_3": base,
            "ratio_vs_baseline": round(p / base, 3) if base else None,
            "heldout_queries": heldout["queries"], "heldout_precision_at_3": heldout["precision_at_3"],
            "heldout_baseline_text_only_precision_at_3": text_only_heldout["precision_at_3"],
            "evaluate_seconds_incl_analysis": round(elapsed, 2),
            "misses": [q for q in ranked["per_query"] if q["precision"] < 1]}


if __name__ == "__main__":
    print(json.dumps({"draft_check_similar_reply": draft_check(), "similar_cases": retrieval()}, ensure_ascii=False, indent=1))
