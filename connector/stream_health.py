"""Each stream's health as people read it (pure): the dashboard's 「ストリーム / Streams」 section
on the outbox page, the banner on every page while a stream is down.

Input: the rows of `connector.streaming.stream_status` (stored health, with `fallback`); output:
typed rows with Japanese and English text, times in JST, durations like 「2時間15分」.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from connector.report_time import format_duration, format_jst

#: Stored status → (Japanese, English).
STATUS_TEXT = {
    "connected": ("接続中", "connected"),
    "reconnecting": ("再接続待ち", "reconnecting"),
    "starting": ("開始中", "starting"),
    "stopped": ("停止", "stopped"),
    "held by another instance": ("別のインスタンスが接続中", "held by another instance"),
    "never started": ("未起動", "never started"),
    "stale (its process stopped reporting)": ("応答なし（プロセスが止まっています）", "stale (its process stopped reporting)"),
}
NETWORK = {"x": "X", "mastodon": "Mastodon", "bluesky": "Bluesky"}


@dataclass(frozen=True)
class StreamHealthRow:
    name: str
    network: str
    up: bool  # connected, or another instance holds it (then that one reports)
    status_ja: str
    status_en: str
    connected_for_ja: str
    connected_for_en: str
    events_per_min: int
    last_event_jst: str
    reconnects: int
    last_error: str
    last_error_jst: str
    retry_jst: str
    fallback_ja: str
    fallback_en: str

    def text(self, field: str, lang: str) -> str:
        return str(getattr(self, f"{field}_{'ja' if lang == 'ja' else 'en'}"))


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def health_rows(statuses: Sequence[Mapping[str, Any]], now: datetime) -> list[StreamHealthRow]:
    rows = []
    for h in statuses:
        status = str(h.get("status") or "never started")
        ja, en = STATUS_TEXT.get(status, (status, status))
        since = _when(h.get("connected_since"))
        up = status in ("connected", "held by another instance")
        seconds = (now - since).total_seconds() if since and status == "connected" else None
        polling = h.get("fallback") == "polling"
        rows.append(StreamHealthRow(
            name=str(h.get("name")), network=NETWORK.get(str(h.get("platform")), str(h.get("platform") or "")),
            up=up, status_ja=ja, status_en=en,
            connected_for_ja=format_duration(seconds, "ja") if seconds is not None else "—",
            connected_for_en=format_duration(seconds, "en") if seconds is not None else "—",
            events_per_min=int(h.get("events_per_min") or 0),
            last_event_jst=format_jst(_when(h.get("last_event_at"))) if h.get("last_event_at") else "—",
            reconnects=int(h.get("reconnects") or 0),
            last_error=str(h.get("last_error") or ""),
            last_error_jst=format_jst(_when(h.get("last_error_at"))) if h.get("last_error_at") else "",
            retry_jst=format_jst(_when(h.get("retry_at"))) if h.get("retry_at") and not up else "",
            fallback_ja="ポーリング中（検索・タイムラインを定期取得）" if polling and not up else "—",
            fallback_en="polling (searches and timelines fetched on a schedule)" if polling and not up else "—",
        ))
    return rows


def down(rows: Sequence[StreamHealthRow]) -> list[StreamHealthRow]:
    """Streams not delivering (for the banner): reconnecting, stale, refused by the plan."""
    return [r for r in rows if not r.up and r.status_en not in ("never started", "stopped", "starting")]
