"""The priority table: an ordered list of rules from analysis labels to a helpdesk priority.

Each rule is `{"when": {label: value or [values]}, "priority": p}`, optionally with
`"min_confidence": x` (every label the rule tests must come with at least that probability from
the label model, so an uncertain label does not escalate a ticket); the first rule whose every
condition holds wins. Conditions are equality or membership only, so every decision reads back as
one line of evidence: "rule 2: risk=high, sentiment=negative → urgent". The built-in table is
`lexicon/priority.toml` (documented there); a watch file's [[priority]] tables replace it.

Numbering: evidence counts rules from 1, as a person reads the file ("rule 1" is the first
[[priority]] table); error messages name the array element as `priority[i]`, 0-based like every
other key path of the watch file (`brand[0].keywords`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from connector.analysis.lexicon import default_priority_rules
from connector.evidence import say

PRIORITIES = ("urgent", "high", "normal", "low")
FALLBACK = "normal"

#: The labels a rule may test, with their values.
CONDITION_VALUES: dict[str, tuple[str, ...]] = {
    "sentiment": ("negative", "neutral", "positive"),
    "intent": ("complaint", "question", "request", "praise", "report", "other"),
    "expectation_type": ("common", "individual", "situational", "latent"),
    "expectation_content": ("menu", "price", "quality"),
    "quality_axis": ("accuracy", "speed", "flexibility", "empathy", "reassurance", "impression"),
    "risk": ("low", "medium", "high", "critical"),
}

#: A priority as a strength in [0, 1], for `Label.score`.
PRIORITY_SCORE = {"urgent": 1.0, "high": 0.75, "normal": 0.5, "low": 0.25}


@dataclass(frozen=True)
class Rule:
    when: tuple[tuple[str, frozenset[str]], ...]   # (label, accepted values), in the order written
    priority: str
    #: each label the rule tests must have been given with at least this probability (a model's
    #: confidence; a label decided by rules has none and always passes)
    min_confidence: float = 0.0

    def matches(self, labels: Mapping[str, str], confidences: Mapping[str, float | None] | None = None) -> bool:
        if not all(labels.get(label) in accepted for label, accepted in self.when):
            return False
        return not self.min_confidence or all(
            (c := (confidences or {}).get(label)) is None or c >= self.min_confidence for label, _ in self.when)

    def describe(self, labels: Mapping[str, str]) -> str:
        if not self.when:
            return "catch-all"
        said = ", ".join(f"{label}={labels.get(label)}" for label, _ in self.when)
        return said + (f" (confidence ≥ {self.min_confidence:g})" if self.min_confidence else "")


class PriorityTable:
    """Ordered rules; `decide` returns the first match's priority and the evidence naming it."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules

    @classmethod
    def default(cls) -> "PriorityTable":
        return cls.from_rules(default_priority_rules())

    @classmethod
    def from_rules(cls, rules: list[dict]) -> "PriorityTable":
        """Rules as parsed from TOML. Raises ValueError naming the rule and the bad key or value,
        e.g. "priority[2].when.risk: 'huge' is not one of low, medium, high, critical"."""
        if not isinstance(rules, list):
            raise ValueError("priority: must be a list of rules ([[priority]] tables)")
        parsed: list[Rule] = []
        for index, raw in enumerate(rules):
            where = f"priority[{index}]"
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: must be a table with `when` and `priority`")
            unknown = sorted(set(raw) - {"when", "priority", "min_confidence"})
            if unknown:
                raise ValueError(f"{where}.{unknown[0]}: unknown key (expected when, priority, min_confidence)")
            min_confidence = raw.get("min_confidence", 0.0)
            if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
                    or not 0.0 <= min_confidence <= 1.0:
                raise ValueError(f"{where}.min_confidence: {min_confidence!r} is not a number from 0 to 1")
            if "priority" not in raw:
                raise ValueError(f"{where}: missing key 'priority' (one of {', '.join(PRIORITIES)})")
            priority = raw["priority"]
            if priority not in PRIORITIES:
                raise ValueError(f"{where}.priority: {priority!r} is not one of {', '.join(PRIORITIES)}")
            when = raw.get("when", {})
            if not isinstance(when, dict):
                raise ValueError(f"{where}.when: must be a table of label = value (or [values])")
            conditions: list[tuple[str, frozenset[str]]] = []
            for label, value in when.items():
                if label not in CONDITION_VALUES:
                    raise ValueError(f"{where}.when.{label}: unknown label (expected one of "
                                     f"{', '.join(CONDITION_VALUES)})")
                allowed = CONDITION_VALUES[label]
                values = value if isinstance(value, list) else [value]
                if not values:
                    raise ValueError(f"{where}.when.{label}: empty list (give at least one of {', '.join(allowed)})")
                for item in values:
                    if not isinstance(item, str) or item not in allowed:
                        raise ValueError(f"{where}.when.{label}: {item!r} is not one of {', '.join(allowed)}")
                conditions.append((label, frozenset(values)))
            parsed.append(Rule(tuple(conditions), priority, float(min_confidence)))
        return cls(tuple(parsed))

    def decide(self, labels: Mapping[str, str],
               confidences: Mapping[str, float | None] | None = None) -> tuple[str, str]:
        """(priority, evidence) for the analysis labels (label name → value), with the model's
        confidence per label where a model gave it (rules with `min_confidence` need it)."""
        for number, rule in enumerate(self.rules, 1):
            if rule.matches(labels, confidences):
                return rule.priority, say("priority_rule", n=number, conditions=rule.describe(labels),
                                          priority=rule.priority)
        return FALLBACK, say("priority_default", priority=FALLBACK)

    def __len__(self) -> int:
        return len(self.rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriorityTable) and self.rules == other.rules

    def __hash__(self) -> int:
        return hash(self.rules)

    def __repr__(self) -> str:
        return f"PriorityTable({len(self.rules)} rules)"
