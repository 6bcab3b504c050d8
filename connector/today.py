"""「いま対応が必要なもの」: what needs the supervisor now — the dashboard's home page.

Pure assembly over the store's repositories (connector/db): the open backlog against the SLA
targets (YORISOI_SLA_MINUTES), critical single posts, active storms, and what changed since
yesterday and since the same weekday last week.

Statuses: a ticket is open while the helpdesk says so — its status synced back by the status
webhooks and the sweep (connector/ticket_status.py): new → 未対応, open → 対応中, pending/hold →
保留; solved/closed leave the list. A ticket whose status is not known yet (the local helpdesk
has none; a Zendesk/Freshdesk ticket before its first sync) counts as open until a public reply
(一次回答) is recorded. `status_note` says on the page which statuses are known and when the
last sync was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from connector.db import Store
from connector.db.reports import ReportFilter
from connector.db.ticket_status import BacklogRow
from connector.helpdesks.base import parse_sla_minutes
from connector.report_time import format_jst
from connector.report_time import today as jst_today
from connector.storms import cluster_term  # noqa: F401  (re-exported for the templates and reports)
from connector.ticket_status import last_sweep_at, supports_status

BACKLOG_LIMIT = 200
ALERT_LIMIT = 30
#: Critical single posts stay on the home page this long (a weekend must not hide one).
ALERT_HOURS = 72
ACTIVE_STORM_HOURS = 3
RISK_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
DEFAULT_STORM_LABEL_MIN = 20

#: The helpdesk's statuses in the words support teams use (対応中／未対応／保留).
STATUS_NAMES = {
    "new": ("未対応", "New"),
    "open": ("対応中", "Open"),
    "pending": ("保留（お客様の返答待ち）", "Pending (awaiting the customer)"),
    "hold": ("保留（社内確認中）", "On hold"),
    "solved": ("解決済み", "Solved"),
    "closed": ("終了", "Closed"),
}
#: A ticket without a known status and without a public reply yet.
UNSYNCED_NAME = ("未対応（返信なし）", "Open (no reply yet)")


def status_name(status: str | None, lang: str) -> str:
    names = STATUS_NAMES.get(status or "", UNSYNCED_NAME)
    return names[0] if lang == "ja" else names[1]


@dataclass(frozen=True)
class StatusSync:
    """Which statuses the page knows, for `status_note`."""

    helpdesk: str
    supported: bool  # the helpdesk sends statuses back (Zendesk, Freshdesk); local: no
    by_status: dict[str, int]
    last_sweep_at: datetime | None
    last_webhook_at: datetime | None


def status_note(sync: StatusSync, lang: str) -> str:
    """One paragraph: which statuses are known, since when, and what "open" means here."""
    ja = lang == "ja"
    if not sync.supported:
        return ("ローカルのヘルプデスクにはチケットのステータスがありません。ここでの「未対応」は、Yorisoi に公開返信"
                "（一次回答）の記録がないチケットです。" if ja else
                "The local helpdesk has no ticket statuses: here \"open\" means no public reply (first response) "
                "has been recorded by Yorisoi yet.")
    name = sync.helpdesk.capitalize()
    when = [(format_jst(sync.last_sweep_at), "定期同期", "sweep") if sync.last_sweep_at else None,
            (format_jst(sync.last_webhook_at), "Webhook", "webhook") if sync.last_webhook_at else None]
    done = [w for w in when if w]
    if not done and not sync.by_status:
        return (f"{name} のステータスはまだ同期されていません（`yorisoi sync-status` を実行するか、ステータスの Webhook を"
                "設定してください）。それまでは、公開返信（一次回答）の記録がないチケットを「未対応」と表示します。" if ja else
                f"No status has come back from {name} yet (run `yorisoi sync-status` or set up its status webhook); "
                "until then a ticket without a recorded public reply (first response) shows as open.")
    known = [(s, sync.by_status[s]) for s in STATUS_NAMES if sync.by_status.get(s)]
    counts = ("・".join(f"{status_name(s, 'ja')} {n} 件" for s, n in known) if ja else
              ", ".join(f"{status_name(s, 'en').lower()} {n}" for s, n in known)) or "—"
    last = ("、".join(f"{kind_ja} {at}" for at, kind_ja, _ in done) if ja else
            ", ".join(f"{kind_en} {at}" for at, _, kind_en in done)) or "—"
    if ja:
        return (f"{name} のステータスを表示しています（新規=未対応、対応中、保留。解決済み・終了は表示しません）。"
                f"最終同期: {last}。ステータスが分かっているチケット: {counts}。"
                "まだ同期されていないチケットは、公開返信（一次回答）の記録がなければ「未対応（返信なし）」と表示します。")
    return (f"Statuses from {name} (new, open, pending, on hold; solved and closed are left out). Last sync: {last}. "
            f"Tickets with a known status: {counts}. A ticket not synced yet shows as open while no public reply "
            "(first response) is recorded.")


def storm_label_min(env: Mapping[str, str] | None = None) -> int:
    """YORISOI_STORM_LABEL_MIN: from this many similar posts a cluster is called 「炎上」."""
    env = os.environ if env is None else env
    raw = (env.get("YORISOI_STORM_LABEL_MIN") or "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_STORM_LABEL_MIN




@dataclass
class BacklogItem:
    row: BacklogRow
    waited: float  # seconds since the post
    left: float  # seconds to the SLA target (negative: breached by that much)
    target_minutes: int

    @property
    def answered(self) -> bool:
        """A first public reply is recorded: the first-response target is met."""
        return self.row.answered

    @property
    def breached(self) -> bool:
        return not self.answered and self.left < 0


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
    sync: StatusSync | None = None
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
    for row in store.ticket_status.open_backlog(limit):
        target = sla.get(row.priority, sla.get("normal", 240))
        waited = (now - _aware(row.posted_at)).total_seconds()
        items.append(BacklogItem(row, waited, target * 60 - waited, target))
    return sort_backlog(items)[:limit]


def sort_backlog(items: list[BacklogItem]) -> list[BacklogItem]:
    """Breached first, then by public risk; within a risk, tickets still waiting for their first
    reply before those answered but still open in the helpdesk, then the least time left."""
    return sorted(items, key=lambda i: (not i.breached, RISK_ORDER.get(i.row.risk, 9), i.answered,
                                        -i.row.risk_score, i.left))


def status_sync(store: Store, helpdesk: Any) -> StatusSync:
    name = getattr(helpdesk, "name", "local")
    if not supports_status(helpdesk):
        return StatusSync(name, False, {}, None, None)
    state = store.ticket_status.sync_state(name)
    return StatusSync(name, True, state.by_status, last_sweep_at(store, name), state.last_webhook_at)


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


def build(store: Store, env: Mapping[str, str], now: datetime | None = None, helpdesk: Any = None) -> Today:
    now = now or datetime.now(timezone.utc)
    try:
        sla = parse_sla_minutes(env.get("YORISOI_SLA_MINUTES"))
    except ValueError:
        sla = parse_sla_minutes(None)
    high_reach_raw = (env.get("YORISOI_STORM_HIGH_REACH") or "").strip()
    high_reach = int(high_reach_raw) if high_reach_raw.isdigit() else 10_000
    cutoffs = {priority: now - timedelta(minutes=minutes) for priority, minutes in sla.items()}
    return Today(now=now, sla=sla, backlog=backlog(store, sla, now),
                 counts=store.ticket_status.open_backlog_counts(cutoffs),
                 alerts=critical_posts(store, now, high_reach), storms=active_storms(store, now),
                 change=change(store, now), storm_label_min=storm_label_min(env), sync=status_sync(store, helpdesk))
