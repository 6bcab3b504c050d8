"""The voice of the customer as numbers: the figures behind the dashboard and `yorisoi report`.

Pure aggregation over the rows the store's `report_*` queries return (the SQL stays in
store.py). Every figure is a `ReportTable`: the page draws it as a chart *and* a table, the CSV
export and the CLI print the very same rows, so the three can never disagree.

Days are calendar days in Japan (connector.report_time). Percentiles are nearest-rank (the
value below which p% of tickets fall, always an observed value, no interpolation), in minutes,
because SLA targets are set in minutes (YORISOI_SLA_MINUTES).
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from connector import latency_bins
from connector.db import Store
from connector.db.reports import ReportFilter
from connector.db.schema import LABEL_COLUMNS
from connector.labels import VALUE_NAMES, label_name, value_name
from connector.report_time import day_start, report_day, today
from connector.sources import PLATFORM_NAMES
from connector.textnorm import ZERO_WIDTH

#: Ranges longer than this are shown per week (starting Monday) instead of per day.
DAILY_MAX_DAYS = 92
DEFAULT_DAYS = 30
#: Longest range a filter may span (two years and a leap day). Every figure materialises one
#: row per day of the range (charts, CSV, the per-day series), so an unbounded `from`/`to`
#: (0001-01-01 … 9999-12-31 is 3.6 million days) would make one request, or one shared link,
#: allocate gigabytes. Longer ranges are refused with the parameters named.
MAX_RANGE_DAYS = 731
TOP_TOPICS = 30
TOPIC_EXAMPLES = 3
LEADERBOARD = 50
RECENT_POSTS = 100
PERCENTILES = (50, 90, 99)
PRIORITIES = ("urgent", "high", "normal", "low")
RISKS = ("critical", "high", "medium", "low")
#: How exact the response-time percentiles are (connector.latency_bins: per-day histograms).
PERCENTILE_NOTE_JA = (f"件数は正確です。パーセンタイルは度数分布から求め、{latency_bins.EXACT_BELOW}秒未満は正確、"
                      f"それ以上は誤差±{(latency_bins.RATIO - 1) * 50:.1f}%以内です。")
PERCENTILE_NOTE_EN = (f"Counts are exact; percentiles come from histograms: exact under {latency_bins.EXACT_BELOW} s, "
                      f"within ±{(latency_bins.RATIO - 1) * 50:.1f}% above.")
#: The overview's breakdowns, in the order the page shows them.
BREAKDOWNS = ("qualified", *LABEL_COLUMNS, "platform")


class FilterError(ValueError):
    """A filter parameter is wrong; the message names it and says what is expected."""


# --- filters ------------------------------------------------------------------------------
def parse_since(text: str, now: datetime | None = None) -> date:
    """'7d', '4w', '12m' (days, weeks, months of 30 days) or a date 'YYYY-MM-DD'."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*([dwm])\s*", text or "")
    if match:
        n = int(match.group(1))
        if n < 1:
            raise FilterError(f"since={text!r}: must be at least 1")
        days = n * {"d": 1, "w": 7, "m": 30}[match.group(2)]
        return today(now) - timedelta(days=days - 1)
    return _parse_day("since", text)


def _parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise FilterError(f"{name}={text!r}: expected a date like 2026-11-20 (YYYY-MM-DD)") from None


def parse_filter(args: Mapping[str, Any], *, now: datetime | None = None,
                 latest_day: str | None = None) -> ReportFilter:
    """A filter from query parameters (a MultiDict, or a dict of lists/strings):

    brand, source (the network: x, mastodon…), from, to (days in Japan, inclusive; default the
    last 30 days), and any of the labels sentiment, intent, expectation_type,
    expectation_content, quality_axis. Repeated parameters are alternatives."""
    def values(name: str) -> list[str]:
        if hasattr(args, "getlist"):
            raw = args.getlist(name)
        else:
            raw = args.get(name) or []
            raw = [raw] if isinstance(raw, str) else list(raw)
        return [v.strip() for v in raw if v and v.strip()]

    until = _parse_day("to", values("to")[0]) if values("to") else default_until(latest_day, now)
    since = _parse_day("from", values("from")[0]) if values("from") else until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise FilterError(f"from={since} is after to={until}")
    span = (until - since).days + 1
    if span > MAX_RANGE_DAYS:
        raise FilterError(f"from={since} to={until} spans {span} days; at most {MAX_RANGE_DAYS} days "
                          f"(2 years) can be shown at once: narrow the range")
    labels = []
    for name in LABEL_COLUMNS:
        chosen = values(name)
        unknown = [v for v in chosen if v not in VALUE_NAMES[name]]
        if unknown:
            raise FilterError(f"{name}={unknown[0]!r}: expected one of {', '.join(VALUE_NAMES[name])}")
        if chosen:
            labels.append((name, tuple(dict.fromkeys(chosen))))
    return ReportFilter(since=since.isoformat(), until=until.isoformat(),
                        brands=tuple(dict.fromkeys(values("brand"))),
                        platforms=tuple(dict.fromkeys(values("source"))), labels=tuple(labels))


def filter_query(f: ReportFilter) -> list[tuple[str, str]]:
    """The query parameters that reproduce `f` (for CSV links and page navigation)."""
    pairs = [("from", f.since), ("to", f.until)]
    pairs += [("brand", b) for b in f.brands] + [("source", p) for p in f.platforms]
    for name, chosen in f.labels:
        pairs += [(name, v) for v in chosen]
    return pairs


def default_until(latest_day: str | None, now: datetime | None = None) -> date:
    """Today, unless the newest post is older than the default range: then that post's day, so
    a quiet (or demo, or restored) database opens on its data instead of on empty charts."""
    current = today(now)
    if latest_day:
        latest = date.fromisoformat(latest_day)
        if latest < current - timedelta(days=DEFAULT_DAYS - 1):
            return latest
    return current


def _days(f: ReportFilter) -> list[date]:
    first, last = date.fromisoformat(f.since), date.fromisoformat(f.until)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _time_window(f: ReportFilter) -> tuple[datetime, datetime]:
    return (day_start(date.fromisoformat(f.since)),
            day_start(date.fromisoformat(f.until) + timedelta(days=1)))


def buckets(f: ReportFilter) -> tuple[str, dict[str, str]]:
    """('day' | 'week', day → bucket label) for every day of the range."""
    days = _days(f)
    if len(days) <= DAILY_MAX_DAYS:
        return "day", {d.isoformat(): d.isoformat() for d in days}
    return "week", {d.isoformat(): (d - timedelta(days=d.weekday())).isoformat() for d in days}


# --- tables -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    ja: str
    en: str
    kind: str = "text"  # text | int | minutes | pct | score | value:<label> | platform | day | bool | reasons

    def header(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en


@dataclass
class ReportTable:
    """One figure: what the chart draws, the table lists, the CSV and the CLI print."""

    name: str
    ja: str
    en: str
    columns: list[Column]
    rows: list[list[Any]]
    chart: str | None = None  # bars | stacked | lines | None (a table only)
    #: For stacked/lines charts: the columns that are series (the first column is the x axis).
    series: list[str] = field(default_factory=list)
    note_ja: str = ""
    note_en: str = ""

    def title(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en

    def note(self, lang: str) -> str:
        return self.note_ja if lang == "ja" else self.note_en

    def headers(self, lang: str) -> list[str]:
        return [c.header(lang) for c in self.columns]

    def display_rows(self, lang: str) -> list[list[str]]:
        return [[cell_text(c, v, lang) for c, v in zip(self.columns, row)] for row in self.rows]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.en, "columns": [c.key for c in self.columns],
                "rows": [[_jsonable(v) for v in row] for row in self.rows]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def cell_text(column: Column, value: Any, lang: str) -> str:
    """How a cell reads on the page and in the CSV (the same text in both)."""
    if value is None or value == "":
        return ""
    kind = column.kind
    if kind == "int":
        return str(int(value))
    if kind == "minutes":
        # 「2時間15分」, not decimal minutes (the JSON export keeps the exact minutes).
        from connector.report_time import format_duration
        return format_duration(value * 60, lang)
    if kind == "pct":
        return f"{value:.1f}%"
    if kind == "score":
        return f"{value:.2f}"
    if kind == "bool":
        return ("対象" if value else "対象外") if lang == "ja" else ("qualified" if value else "dropped")
    if kind.startswith("value:"):
        return value_name(kind[6:], str(value), lang)
    if kind == "platform":
        return PLATFORM_NAMES.get(str(value), str(value))
    if kind == "status":
        from connector.labels import status_word
        return status_word(value, lang)
    if kind == "reasons":  # qualification reasons, stored in English, joined by " / "
        from connector.evidence import render
        return " / ".join(render(reason, lang) for reason in str(value).split(" / "))
    if kind == "datetime" and isinstance(value, datetime):
        return value.astimezone(_jst()).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _jst():
    from connector.report_time import REPORT_TZ
    return REPORT_TZ


def to_csv(table: ReportTable, lang: str) -> str:
    """The table as CSV (the page's text). Cells that a spreadsheet would run as a formula
    (=, +, -, @ at the start, from hostile post text) get a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.headers(lang))
    for row, texts in zip(table.rows, table.display_rows(lang)):
        writer.writerow([_csv_safe(text) if isinstance(raw, str) else text for raw, text in zip(row, texts)])
    return out.getvalue()


#: First characters that make a spreadsheet read a cell as a formula: the ASCII ones and their
#: full-width forms (Excel and LibreOffice in Japanese locales accept ＝ＳＵＭ(…) as =SUM(…)).
_FORMULA_START = frozenset("=+-@＝＋－＠")


def _csv_safe(text: str) -> str:
    # Spreadsheets skip leading blanks (space, ideographic space U+3000, zero-width characters)
    # before looking for a formula, so " =cmd" and "\u3000＝cmd" are formulas too.
    lead = text.lstrip(" \t\r\n\u3000\u00a0" + ZERO_WIDTH)
    if text[:1] in ("\t", "\r", "\n") or lead[:1] in _FORMULA_START:
        return "'" + text
    return text


def to_text(table: ReportTable, lang: str = "en") -> str:
    """A plain-text table for the terminal and e-mail."""
    headers = table.headers(lang)
    rows = [[t.replace("\n", " ")[:60] for t in r] for r in table.display_rows(lang)]
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [f"== {table.title(lang)} =="]
    if table.note(lang):
        lines.append(table.note(lang))
    lines.append("  ".join(_pad(h, w) for h, w in zip(headers, widths)).rstrip())
    lines += ["  ".join(_pad(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if not rows:
        lines.append("(none)" if lang != "ja" else "（なし）")
    return "\n".join(lines)


def _width(text: str) -> int:
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# --- percentiles --------------------------------------------------------------------------
def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- the figures --------------------------------------------------------------------------
_BREAKDOWN_TITLES = {
    "qualified": ("対象・対象外の投稿数", "Posts kept and dropped"),
    "platform": ("ソース別の投稿数", "Posts by source"),
}


def overview(store: Store, f: ReportFilter, breakdowns: Sequence[str] = BREAKDOWNS) -> list[ReportTable]:
    """Volumes per day (or week) by each breakdown: one table per breakdown."""
    unit, bucket_of = buckets(f)
    bucket_list = sorted(set(bucket_of.values()))
    tables = []
    for breakdown in breakdowns:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        seen: set[str] = set()
        for day, value, n in store.reports.report_volumes(f, breakdown):
            if day in bucket_of:
                counts[bucket_of[day]][value] += n
                seen.add(value)
        if breakdown == "qualified":
            values = ["1", "0"]
            kind_of = {"1": ("対象", "qualified"), "0": ("対象外", "dropped")}
            columns = [Column(f"n_{v}", *kind_of[v], kind="int") for v in values]
        elif breakdown == "platform":
            values = sorted(seen)
            columns = [Column(f"n_{v}", PLATFORM_NAMES.get(v, v), PLATFORM_NAMES.get(v, v), kind="int") for v in values]
        else:
            values = [v for v in VALUE_NAMES[breakdown] if v in seen] + sorted(seen - set(VALUE_NAMES[breakdown]))
            columns = [Column(f"n_{v}", value_name(breakdown, v, "ja"), value_name(breakdown, v, "en"), kind="int")
                       for v in values]
        first = Column(unit, "日" if unit == "day" else "週（月曜から）", "Day" if unit == "day" else "Week (from Monday)")
        total = Column("total", "合計", "Total", kind="int")
        rows = []
        for bucket in bucket_list:
            cells = [counts[bucket].get(v, 0) for v in values]
            rows.append([bucket, *cells, sum(cells)])
        ja, en = _BREAKDOWN_TITLES.get(breakdown, (f"{label_name(breakdown, 'ja')}別の件数",
                                                   f"Qualified posts by {label_name(breakdown, 'en').lower()}"))
        tables.append(ReportTable(f"volume_{breakdown}", ja, en, [first, *columns, total], rows,
                                  chart="stacked", series=[c.key for c in columns]))
    return tables


def topics(store: Store, f: ReportFilter, limit: int = TOP_TOPICS,
           examples: int = TOPIC_EXAMPLES) -> ReportTable:
    rows = []
    for rank, (topic, n) in enumerate(store.reports.report_topics(f, limit), start=1):
        posts = store.reports.report_topic_examples(f, topic, examples) if examples else []
        rows.append([rank, topic, n, "\n".join(p["text"][:140] for p in posts)])
    return ReportTable(
        "topics", "苦情のトピック（上位）", "Top complaint topics",
        [Column("rank", "順位", "Rank", "int"), Column("topic", "トピック", "Topic"),
         Column("posts", "投稿数", "Posts", "int"), Column("examples", "投稿の例", "Example posts")],
        rows, chart="bars", series=["posts"],
        note_ja="ネガティブまたは苦情の投稿に出てくる名詞・名詞句（ブランド名とキーワードを除く）。1投稿で1回まで数えます。",
        note_en="Nouns and noun phrases in negative or complaint posts (the brands' own names and keywords "
                "left out), counted once per post.")


def open_tickets(store: Store, f: ReportFilter, limit: int = LEADERBOARD) -> tuple[ReportTable, ReportTable]:
    by_risk, rows = store.reports.report_open_tickets(f, limit)
    counts = ReportTable(
        "open_by_risk", "未対応チケット（拡散リスク別）", "Open tickets by public risk",
        [Column("risk", "拡散リスク", "Public risk", "value:risk"), Column("tickets", "チケット数", "Tickets", "int")],
        [[risk, by_risk.get(risk, 0)] for risk in RISKS], chart="bars", series=["tickets"],
        note_ja="未対応 = ヘルプデスクで解決済み・終了になっていないチケット（状態が届いていないチケットは公開返信がまだのもの）。",
        note_en="Open = not solved or closed in the helpdesk (tickets whose helpdesk status is not known yet: "
                "no public reply sent yet).")
    board = ReportTable(
        "risk_leaderboard", "拡散リスクの高い未対応チケット", "Public-risk leaderboard (open tickets)",
        [Column("risk", "拡散リスク", "Public risk", "value:risk"), Column("risk_score", "スコア", "Score", "score"),
         Column("priority", "優先度", "Priority", "value:priority"), Column("ticket", "チケット", "Ticket"),
         Column("posted_at", "投稿日時", "Posted", "datetime"), Column("source", "ソース", "Source", "platform"),
         Column("author", "投稿者", "Author"), Column("followers", "フォロワー", "Followers", "int"),
         Column("text", "本文", "Text"), Column("post_key", "投稿キー", "Post key")],
        [[r["risk"], r["risk_score"], r["priority"], f"{r['helpdesk']} #{r['ticket_id']}", r["posted_at"],
          r["platform"], r["handle"] or "", r["followers"] or 0, r["text"][:200], r["post_key"]] for r in rows])
    return counts, board


def response_times(store: Store, f: ReportFilter) -> list[ReportTable]:
    """Post → ticket and post → first public reply: p50/p90/p99 per priority, overall and over time.

    Read from histograms (connector.latency_bins): the database sums the per-day bins of the
    range, a (bucket, priority) group is one histogram, and the totals per priority, per bucket
    and overall are merged histograms. Counts are exact; percentiles exact below 20 s and
    within ±2.5 % above (the note under the table says so)."""
    unit, bucket_of = buckets(f)
    bucket_list = sorted(set(bucket_of.values()))
    wanted = set(bucket_list)
    ticket: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    reply: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for bucket, priority, kind, b, n in store.reports.response_histograms(f, weekly=unit == "week"):
        if bucket not in wanted:
            continue
        histogram = (ticket if kind == "ticket" else reply)[(bucket, priority)]
        histogram[b] = histogram.get(b, 0) + n
    for series in (ticket, reply):
        groups = [k for k in series if k[0] != "*" and k[1] != "*"]
        for bucket, priority in groups:
            for total in (("*", priority), (bucket, "*"), ("*", "*")):
                merged = series[total]
                for b, n in series[(bucket, priority)].items():
                    merged[b] = merged.get(b, 0) + n
    tickets_per = {key: latency_bins.count(values) for key, values in ticket.items()}
    priorities = [*PRIORITIES, "*"]

    def pcols(prefix: str) -> list[Column]:
        return [Column(f"{prefix}_p{p}", f"p{p}", f"p{p}", "minutes") for p in PERCENTILES]

    def pvals(histogram: dict[int, int]) -> list[float | None]:
        return [_minutes(latency_bins.percentile(histogram, p)) for p in PERCENTILES]

    summary_rows = []
    for priority in priorities:
        key = ("*", priority)
        if not tickets_per.get(key):
            continue
        summary_rows.append([priority, tickets_per[key], *pvals(ticket[key]), latency_bins.count(reply[key]),
                             *pvals(reply[key])])
    prio_col = Column("priority", "優先度", "Priority", "value:priority")
    summary = ReportTable(
        "response_summary", "投稿からの応答時間（優先度別）", "Response times from the post, by priority",
        [prio_col, Column("tickets", "チケット数", "Tickets", "int"), *pcols("ticket"),
         Column("replied", "一次回答済み", "Replied", "int"), *pcols("reply")],
        summary_rows,
        note_ja="左の p は投稿→チケット作成、右の p は投稿→一次回答（最初の公開返信）。* はすべての優先度。"
                f"{PERCENTILE_NOTE_JA}",
        note_en="First percentiles: post → ticket created; second: post → first public reply (minutes). "
                f"* = all priorities. {PERCENTILE_NOTE_EN}")
    tables = [summary]
    for name, series, ja, en in (("ticket", ticket, "投稿→チケット作成", "Post → ticket"),
                                 ("reply", reply, "投稿→一次回答（最初の公開返信）", "Post → first public reply")):
        rows = []
        for bucket in bucket_list:
            row: list[Any] = [bucket]
            for priority in priorities:
                row.append(_minutes(latency_bins.percentile(series.get((bucket, priority), {}), 90)))
            row.append(latency_bins.count(series.get((bucket, "*"), {})))
            rows.append(row)
        first = Column(unit, "日" if unit == "day" else "週（月曜から）", "Day" if unit == "day" else "Week (from Monday)")
        cols = [Column(f"p90_{p}", f"p90 {value_name('priority', p, 'ja') if p != '*' else '全体'}",
                       f"p90 {p if p != '*' else 'all'}", "minutes") for p in priorities]
        tables.append(ReportTable(
            f"{name}_over_time", f"{ja}の p90 の推移", f"{en}: p90 over time",
            [first, *cols, Column("n", "件数", "Count", "int")], rows, chart="lines",
            series=[c.key for c in cols]))
        detail_rows = []
        for bucket in bucket_list:
            for priority in PRIORITIES:
                values = series.get((bucket, priority), {})
                if values:
                    detail_rows.append([bucket, priority, latency_bins.count(values), *pvals(values)])
        tables.append(ReportTable(
            f"{name}_percentiles", f"{ja}（{'日' if unit == 'day' else '週'}・優先度別 p50/p90/p99）",
            f"{en} per {unit} and priority (p50/p90/p99)",
            [first, prio_col, Column("n", "件数", "Count", "int"), *pcols(name)], detail_rows))
    return tables


def qualification(store: Store, f: ReportFilter) -> list[ReportTable]:
    reasons = store.reports.report_reasons(f)
    tables = []
    for qualified, name, ja, en in ((False, "dropped_reasons", "対象外にした理由", "Why posts were dropped"),
                                    (True, "kept_reasons", "対象にしたルール", "Which rules kept posts")):
        rows = sorted(((reason, n) for q, reason, n in reasons if q == qualified), key=lambda r: (-r[1], r[0]))
        total = sum(n for _, n in rows) or 1
        tables.append(ReportTable(
            name, ja, en, [Column("reason", "理由", "Reason", "reasons"), Column("posts", "投稿数", "Posts", "int"),
                           Column("share", "割合", "Share", "pct")],
            [[reason, n, 100 * n / total] for reason, n in rows], chart="bars", series=["posts"],
            note_ja="1件の投稿に理由が複数あれば、それぞれに数えます。感情などのラベルの絞り込みは適用されません（対象外の投稿は分析しないため）。",
            note_en="A post with several reasons counts under each. Label filters do not apply (dropped posts "
                    "are not analysed)."))
    return tables


def recent_decisions(store: Store, f: ReportFilter, qualified: bool | None,
                     limit: int = RECENT_POSTS) -> ReportTable:
    since, until = _time_window(f)
    rows = store.reports.report_decisions(f, since, until, qualified=qualified, limit=limit)
    return ReportTable(
        "decisions", "最近の判定", "Recent decisions",
        [Column("posted_at", "投稿日時", "Posted", "datetime"), Column("source", "ソース", "Source", "platform"),
         Column("author", "投稿者", "Author"), Column("text", "本文", "Text"),
         Column("qualified", "判定", "Decision", "bool"), Column("brand", "ブランド", "Brand"),
         Column("reasons", "理由", "Reasons", "reasons"), Column("post_key", "投稿キー", "Post key")],
        [[r["created_at"], r["platform"], r["handle"] or "", r["text"], bool(r["qualified"]), r["brand"] or "",
          " / ".join(r["reasons"] or []), r["key"]] for r in rows])


def outbox(store: Store, f: ReportFilter, limit: int = 200) -> tuple[dict[str, int], ReportTable]:
    since, until = _time_window(f)
    counts, rows = store.reports.report_outbox(f, since, until, limit)
    table = ReportTable(
        "outbox", "ヘルプデスクへの送信待ち・失敗", "Waiting for or failing delivery to the helpdesk",
        [Column("id", "#", "#", "int"), Column("post_key", "投稿キー", "Post key"), Column("kind", "種類", "Kind", "status"),
         Column("status", "状態", "Status", "status"), Column("attempts", "試行", "Attempts", "int"),
         Column("next_attempt_at", "次回", "Next attempt", "datetime"), Column("last_error", "エラー", "Error"),
         Column("posted_at", "投稿日時", "Posted", "datetime")],
        [[r["id"], r["post_key"], r["kind"], r["status"], r["attempts"], r["next_attempt_at"], r["last_error"] or "",
          r["posted_at"]] for r in rows],
        note_ja="試行が2回以上 = 再試行中。失敗したものは修正後に「再送」で送信キューに戻せます。",
        note_en="Attempts of 2 or more = being retried. Failed rows go back in the queue with Retry once fixed.")
    return counts, table


def totals(store: Store, f: ReportFilter) -> dict[str, int]:
    """Headline numbers for the overview's cards."""
    posts = kept = negative = 0
    for _, value, n in store.reports.report_volumes(f, "qualified"):
        posts += n
        kept += n if value == "1" else 0
    for _, value, n in store.reports.report_volumes(f, "sentiment"):
        negative += n if value == "negative" else 0
    return {"posts": posts, "qualified": kept, "dropped": posts - kept, "negative": negative}


def full_report(store: Store, f: ReportFilter) -> list[ReportTable]:
    """Everything the dashboard shows, for `yorisoi report`."""
    counts, board = open_tickets(store, f)
    _, outbox_table = outbox(store, f)
    return [*overview(store, f), topics(store, f), counts, board, *response_times(store, f),
            *qualification(store, f), outbox_table]


def describe_filter(f: ReportFilter) -> str:
    parts = [f"{f.since} .. {f.until} (JST)"]
    if f.brands:
        parts.append("brand=" + ",".join(f.brands))
    if f.platforms:
        parts.append("source=" + ",".join(f.platforms))
    parts += [f"{name}=" + ",".join(values) for name, values in f.labels]
    return " · ".join(parts)


__all__ = ["FilterError", "ReportTable", "Column", "parse_filter", "parse_since", "filter_query", "overview",
           "topics", "open_tickets", "response_times", "qualification", "recent_decisions", "outbox", "totals",
           "full_report", "to_csv", "to_text", "percentile", "report_day", "describe_filter"]
