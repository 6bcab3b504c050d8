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
