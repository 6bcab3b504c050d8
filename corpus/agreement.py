#!/usr/bin/env python3
"""Agreement between the first pass (corpus/first_pass.tsv: the first labels of the posts labelled
twice, before disagreements were settled) and the independent second pass (corpus/second_pass.tsv): accuracy and Cohen's kappa per label. Labels are compared on the posts
both labellers call qualifying. Usage: python corpus/agreement.py [--json]"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ("qualify", "sentiment", "intent", "expectation", "content", "axis", "risk")


def read(path: Path) -> dict[str, dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {cells[0]: dict(zip(header, cells)) for cells in (line.split("\t") for line in lines[1:] if line)}


def kappa(pairs: list[tuple[str, str]]) -> float:
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in set(first) | set(second)) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def agreement(first: dict[str, dict[str, str]], second: dict[str, dict[str, str]]) -> dict[str, dict[str, float]]:
    out = {}
    for column in COLUMNS:
        pairs = []
        for key, row in second.items():
            a, b = first[key].get(column, ""), row.get(column, "")
            if column != "qualify" and (first[key]["qualify"] != "yes" or row["qualify"] != "yes"):
                continue
            pairs.append((a, b))
        out[column] = {"n": len(pairs), "accuracy": round(sum(a == b for a, b in pairs) / len(pairs), 3),
                       "kappa": round(kappa(pairs), 3)}
    return out


if __name__ == "__main__":
    result = agreement(read(HERE / "first_pass.tsv"), read(HERE / "second_pass.tsv"))
    if "--json" in sys.argv:
        print(json.dumps(result))
    else:
        for column, r in result.items():
            print(f"{column:<12} n {r['n']:>4}  accuracy {r['accuracy']:.3f}  kappa {r['kappa']:.3f}")
