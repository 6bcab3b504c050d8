"""「いま対応が必要なもの」: what needs the supervisor now — the dashboard's home page.

Pure assembly over the store's repositories (connector/db): the open backlog against the SLA
targets (YORISOI_SLA_MINUTES), critical single posts, active storms, and what changed since
yesterday and since the same weekday last week.

Statuses: the helpdesk's own status (open, pending, solved) is not synced back yet, so the only
statuses Yorisoi knows are its own records: 未対応 = a ticket with no public reply (一次回答)
recorded yet, 対応済み = one was sent. `STATUS_NOTE` says so on the page.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from connector.db import Store
from connector.db.reports import ReportFilter
from connector.helpdesks.base import parse_sla_minutes
from connector.report_time import today as jst_today
from connector.storms import cluster_term  # noqa: F401  (re-exported for the templates and reports)

BACKLOG_LIMIT = 200
ALERT_LIMIT = 30
#: Critical single posts stay on the home page this long (a weekend must not hide one).
ALERT_HOURS = 72
ACTIVE_STORM_HOURS = 3
RISK_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
DEFAULT_STORM_LABEL_MIN = 20

STATUS_NOTE = {
    "ja": "ヘルプデスクのステータス同期はまだありません。ここでの「未対応」は、Yorisoi に公開返信（一次回答）の"
          "記録がないチケットです（ヘルプデスク側で対応中・対応済みでも、公開返信が Yorisoi を通っていなければ未対応と表示されます）。",
    "en": "The helpdesk's ticket status is not synced yet. Here \"open\" means no public reply (first response) "
          "has been recorded by Yorisoi (a ticket being worked on or solved in the helpdesk still shows as open "
          "until a public reply goes through Yorisoi).",
}


def storm_label_min(env: Mapping[str, str] | None = None) -> int:
    """YORISOI_STORM_LABEL_MIN: from this many similar posts a cluster is called 「炎上」."""
    env = os.environ if env is None else env
    raw = (env.get("YORISOI_STORM_LABEL_MIN") or "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_STORM_LABEL_MIN




@dataclass
class BacklogItem:
    row: dict[str, Any]
    waited: float  # seconds since the post
    left: float  # seconds to the SLA target (negative: breached by that much)
    target_minutes: int

    @property
    def breached(self) -> bool:
        return self.left < 0


@dataclass
class Today:
    now: datetime
    sla: dict[str, int]
    backlog: list[BacklogItem]
    counts: dict[str, tuple[int, int]]
    alerts: list[dict[str, Any]]
    storms: list[dict[str, Any]]
    change: dict[str, Any]
    storm_label_min: int
    notes: list[str] = field(default_factory=list)

    @property
    def open_total(self) -> int:
        return sum(n for n, _ in self.counts.values())

    @property
    def breached_total(self) -> int:
        return sum(b for _, b in self.counts.values())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def backlog(store: Store, sla: dict[str, int], now: datetime, limit: int = BACKLOG_LIMIT) -> list[BacklogItem]:
    items = []
    for row in store.reports.backlog_rows(limit):
        target = sla.get(row["priority"], sla.get("normal", 240))
        waited = (now - _aware(row["posted_at"])).total_seconds()
        items.append(BacklogItem(row, waited, target * 60 - waited, target))
    # Breached first (the longest overdue first), then by risk, then the least time left.
    items.sort(key=lambda i: (not i.breached, RISK_ORDER.get(i.row["risk"], 9), -i.row["risk_score"], i.left))
    return items[:limit]


def escalation_words(detail: Any) -> list[str]:
    """The escalation words the risk rule found (from the stored evidence)."""
    evidence = ((detail or {}).get("risk") or {}).get("evidence") or []
    return [e.removeprefix("escalation word ").rsplit(" (+", 1)[0] for e in evidence
            if isinstance(e, str) and e.startswith("escalation word ")]


def critical_posts(store: Store, now: datetime, high_reach: int, limit: int = ALERT_LIMIT) -> list[dict[str, Any]]:
    """Single posts that need a person now: critical risk, escalation words, or a large reach."""
    out = []
    for row in store.reports.alert_posts(now - timedelta(hours=ALERT_HOURS), high_reach, limit * 3):
        words = escalation_words(row.get("detail"))
        reasons = []
        if row["risk"] == "critical":
            reasons.append("critical")
        if words:
            reasons.append("escalation")
        if (row["followers"] or 0) >= high_reach:
            reasons.append("reach")
        if reasons:
            out.append({**row, "reasons": reasons, "words": words})
    return out[:limit]


def active_storms(store: Store, now: datetime, hours: int = ACTIVE_STORM_HOURS) -> list[dict[str, Any]]:
    recent = [s for s in store.storms.list_storms(min_size=2, limit=100)
              if _aware(s["last_post_at"]) >= now - timedelta(hours=hours)]
    growth = store.reports.storm_growth([s["id"] for s in recent], now - timedelta(hours=1))
    rows = []
    for storm in recent:
        replies = store.storms.storm_replies(storm["id"], limit=1)
        first = store.storms.storm_members_of(storm["id"], limit=1)
        rows.append({**storm, "growth": growth.get(storm["id"], 0), "answered": bool(replies),
                     "first": first[0] if first else None})
    rows.sort(key=lambda s: (-s["growth"], -s["size"]))
    return rows


def _day_figures(store: Store, day: date) -> dict[str, Any]:
    f = ReportFilter(since=day.isoformat(), until=day.isoformat())
    qualified = sum(n for _, value, n in store.reports.report_volumes(f, "qualified") if value == "1")
    negative = sum(n for _, value, n in store.reports.report_volumes(f, "sentiment") if value == "negative")
    topics = dict(store.reports.report_topics(f, 50))
    return {"day": day.isoformat(), "posts": qualified, "negative": negative,
            "negative_share": (100 * negative / qualified) if qualified else None, "topics": topics}


def change(store: Store, now: datetime) -> dict[str, Any]:
    """Today so far against yesterday and against the same weekday last week."""
    day = jst_today(now)
    current = _day_figures(store, day)
    out: dict[str, Any] = {"today": current, "compare": []}
    for key, other_day in (("yesterday", day - timedelta(days=1)), ("last_week", day - timedelta(days=7))):
        other = _day_figures(store, other_day)
        rising = sorted(((topic, n, n - other["topics"].get(topic, 0)) for topic, n in current["topics"].items()
                         if n > other["topics"].get(topic, 0)), key=lambda t: (-t[2], t[0]))[:5]
        share_delta = (None if current["negative_share"] is None or other["negative_share"] is None
                       else current["negative_share"] - other["negative_share"])
        out["compare"].append({"key": key, "other": other, "volume_delta": current["posts"] - other["posts"],
                               "share_delta": share_delta, "rising": rising})
    return out


def build(store: Store, env: Mapping[str, str], now: datetime | None = None) -> Today:
    now = now or datetime.now(timezone.utc)
    try:
        sla = parse_sla_minutes(env.get("YORISOI_SLA_MINUTES"))
    except ValueError:
        sla = parse_sla_minutes(None)
    high_reach_raw = (env.get("YORISOI_STORM_HIGH_REACH") or "").strip()
    high_reach = int(high_reach_raw) if high_reach_raw.isdigit() else 10_000
    cutoffs = {priority: now - timedelta(minutes=minutes) for priority, minutes in sla.items()}
    return Today(now=now, sla=sla, backlog=backlog(store, sla, now), counts=store.reports.backlog_counts(cutoffs),
                 alerts=critical_posts(store, now, high_reach), storms=active_storms(store, now),
                 change=change(store, now), storm_label_min=storm_label_min(env))
