"""Calendar days for the dashboard and reports: a Japanese support team's day runs midnight to
midnight in Japan, not in UTC (a 08:00 JST complaint belongs to that morning, not yesterday)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

#: Japan has no daylight saving time, so a fixed offset is exact (and needs no tzdata).
REPORT_TZ = timezone(timedelta(hours=9), "JST")


def report_day(moment: datetime) -> str:
    """'YYYY-MM-DD' of an aware datetime in Japan."""
    return moment.astimezone(REPORT_TZ).date().isoformat()


def today(now: datetime | None = None) -> date:
    return (now or datetime.now(timezone.utc)).astimezone(REPORT_TZ).date()


def day_start(day: date) -> datetime:
    """The first instant of a Japanese calendar day, as aware UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=REPORT_TZ).astimezone(timezone.utc)


def format_duration(seconds: float | None, lang: str = "ja") -> str:
    """A duration as people say it: 「2時間15分」, 「3日4時間」, 「45分」 (English: "2 h 15 min").

    Pure: whole minutes, rounded down; under a minute 「1分未満」; None 「—」; negative
    durations are shown by their size (the caller says "over" or "left")."""
    if seconds is None:
        return "—"
    minutes = int(abs(seconds) // 60)
    if minutes < 1:
        return "1分未満" if lang == "ja" else "< 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if lang == "ja":
        if days:
            return f"{days}日" + (f"{hours}時間" if hours else "")
        return (f"{hours}時間" if hours else "") + (f"{mins}分" if mins or not hours else "")
    if days:
        return f"{days} d" + (f" {hours} h" if hours else "")
    return " ".join(part for part in ((f"{hours} h" if hours else ""), (f"{mins} min" if mins or not hours else "")) if part)


def format_jst(moment: datetime | None, with_seconds: bool = False) -> str:
    """An aware datetime as Japan time, e.g. 2026-11-20 18:05 JST."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(REPORT_TZ).strftime("%Y-%m-%d %H:%M" + (":%S" if with_seconds else "")) + " JST"
