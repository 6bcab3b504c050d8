"""The weekly report: this week against the previous one, in Japanese by default.

Seven Japanese calendar days ending `until` (default today) against the seven before: volumes
by source and label, negative share, top complaint topics with examples, response times
against the SLA targets, storms, and the labels agents corrected (what was learnt). Every
figure is a `ReportTable`, so the page, the CLI (`yorisoi report --weekly`), the CSV/JSON and
the Excel workbook show the very same rows.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from connector import latency_bins
from connector.db import Store
from connector.db.reports import ReportFilter
from connector.helpdesks.base import parse_sla_minutes
from connector.labels import VALUE_NAMES, label_name, value_name
from connector.report_time import REPORT_TZ, day_start, format_duration, today
from connector.reports import PRIORITIES, Column, ReportTable
from connector.sources import PLATFORM_NAMES
from connector.today import cluster_term, storm_label_min

WEEKDAYS_JA = "月火水木金土日"
TOP_TOPICS = 10


@dataclass
class Week:
    since: date
    until: date

    @property
    def filter(self) -> ReportFilter:
        return ReportFilter(since=self.since.isoformat(), until=self.until.isoformat())

    def label(self) -> str:
        return f"{self.since.isoformat()}〜{self.until.isoformat()}"


@dataclass
class WeeklyReport:
    this: Week
    previous: Week
    tables: list[ReportTable]
    generated_at: datetime

    def title(self, lang: str) -> str:
        return (f"週次レポート {self.this.label()}（前週 {self.previous.label()} との比較・日本時間）" if lang == "ja"
                else f"Weekly report {self.this.label()} (against {self.previous.label()}, Japan time)")


def weeks(until: date | None = None, now: datetime | None = None) -> tuple[Week, Week]:
    last = until or today(now)
    this = Week(last - timedelta(days=6), last)
    return this, Week(this.since - timedelta(days=7), this.since - timedelta(days=1))


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _compare_cols(first: Column) -> list[Column]:
    return [first, Column("this_week", "今週", "This week", "int"), Column("previous", "前週", "Previous week", "int"),
            Column("change", "増減", "Change", "signed")]


def _volumes(store: Store, week: Week, column: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, value, n in store.reports.report_volumes(week.filter, column):
        out[value] = out.get(value, 0) + n
    return out


def _response_groups(store: Store, week: Week) -> dict[str, tuple[dict[int, int], dict[int, int]]]:
    """Per priority: (post → ticket, post → first reply) histograms of the week, the very bins
    the response-times page reads (connector.latency_bins), so both show the same figures."""
    out: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for _, priority, kind, b, n in store.reports.response_histograms(week.filter):
        histogram = out.setdefault(priority, ({}, {}))[0 if kind == "ticket" else 1]
        histogram[b] = histogram.get(b, 0) + n
    return out


def _targets(sla: dict[str, int], groups: Mapping[str, Any]) -> dict[str, int]:
    """The SLA target of every priority seen, in seconds (240 minutes when none is set)."""
    return {priority: sla.get(priority, 240) * 60 for priority in groups}


def summary_table(store: Store, this: Week, prev: Week, sla: dict[str, int]) -> ReportTable:
    rows: list[list[Any]] = []
    figures = []
    for week in (this, prev):
        qualified = _volumes(store, week, "qualified")
        sentiment = _volumes(store, week, "sentiment")
        kept = qualified.get("1", 0)
        negative = sentiment.get("negative", 0)
        groups = _response_groups(store, week)
        replies = latency_bins.merge(r for _, r in groups.values())
        tickets = sum(latency_bins.count(t) for t, _ in groups.values())
        within = sum(store.reports.replies_within(week.filter, _targets(sla, groups)).values())
        figures.append({"posts": sum(qualified.values()), "qualified": kept, "negative": negative,
                        "share": (100 * negative / kept) if kept else None, "tickets": tickets,
                        "replied": latency_bins.count(replies),
                        "within": (100 * within / tickets) if tickets else None,
                        "p50": latency_bins.percentile(replies, 50), "p90": latency_bins.percentile(replies, 90)})
    a, b = figures
    for key, ja, en, kind in (("posts", "投稿数", "Posts", "int"), ("qualified", "対象の投稿", "Qualified posts", "int"),
                              ("negative", "ネガティブ", "Negative", "int"), ("share", "ネガティブの割合", "Negative share", "pct"),
                              ("tickets", "チケット", "Tickets", "int"), ("replied", "一次回答済み", "First response sent", "int"),
                              ("within", "SLA内の一次回答", "First response within SLA", "pct"),
                              ("p50", "一次回答まで（中央値）", "Time to first response (median)", "duration"),
                              ("p90", "一次回答まで（p90）", "Time to first response (p90)", "duration")):
        rows.append([ja, a[key], b[key], _delta(a[key], b[key]), kind, en])
    table = ReportTable(
        "weekly_summary", "今週のまとめ", "This week at a glance",
        [Column("metric", "指標", "Figure"), Column("this_week", "今週", "This week", "mixed"),
         Column("previous", "前週", "Previous week", "mixed"), Column("change", "増減", "Change", "mixed")],
        rows, note_ja="一次回答 = 最初の公開返信。応答時間は投稿時刻から測ります。",
        note_en="First response = the first public reply, measured from the post.")
    return table


def by_source(store: Store, this: Week, prev: Week) -> ReportTable:
    a, b = _volumes(store, this, "platform"), _volumes(store, prev, "platform")
    keys = sorted(set(a) | set(b), key=lambda k: (-a.get(k, 0), k))
    rows = [[PLATFORM_NAMES.get(k, k), a.get(k, 0), b.get(k, 0), a.get(k, 0) - b.get(k, 0)] for k in keys]
    return ReportTable("weekly_sources", "ソース別の投稿数", "Posts by source",
                       _compare_cols(Column("source", "ソース", "Source")), rows, chart="bars", series=["this_week"])


def by_label(store: Store, this: Week, prev: Week, lang_labels: tuple[str, ...] = ("sentiment", "intent", "quality_axis")) -> ReportTable:
    rows = []
    for label in lang_labels:
        a, b = _volumes(store, this, label), _volumes(store, prev, label)
        for value in [v for v in VALUE_NAMES[label] if v in a or v in b]:
            rows.append([label, value, a.get(value, 0), b.get(value, 0), a.get(value, 0) - b.get(value, 0)])
    return ReportTable("weekly_labels", "ラベル別の件数（対象の投稿）", "Qualified posts by label",
                       [Column("label", "ラベル", "Label", "label"), Column("value", "値", "Value", "labelvalue"),
                        *_compare_cols(Column("x", "", ""))[1:]], rows)


def topics_table(store: Store, this: Week, prev: Week, limit: int = TOP_TOPICS) -> ReportTable:
    before = dict(store.reports.report_topics(prev.filter, 200))
    rows = []
    for rank, (topic, n) in enumerate(store.reports.report_topics(this.filter, limit), start=1):
        examples = store.reports.report_topic_examples(this.filter, topic, 2)
        rows.append([rank, topic, n, before.get(topic, 0), n - before.get(topic, 0),
                     "\n".join(e["text"][:120] for e in examples)])
    return ReportTable("weekly_topics", "苦情のトピック（上位）", "Top complaint topics",
                       [Column("rank", "順位", "Rank", "int"), Column("topic", "トピック", "Topic"),
                        Column("this_week", "今週", "This week", "int"), Column("previous", "前週", "Previous week", "int"),
                        Column("change", "増減", "Change", "signed"), Column("examples", "投稿の例", "Example posts")],
                       rows, chart="bars", series=["this_week"])


def sla_table(store: Store, this: Week, prev: Week, sla: dict[str, int]) -> ReportTable:
    rows = []
    for week_name, week in (("this", this), ("previous", prev)):
        groups = _response_groups(store, week)
        within_of = store.reports.replies_within(week.filter, _targets(sla, groups))
        for priority in PRIORITIES:
            if priority not in groups:
                continue
            n, replies = latency_bins.count(groups[priority][0]), groups[priority][1]
            target = sla.get(priority, 240) * 60
            within = within_of.get(priority, 0)
            rows.append([week_name, priority, target, n, latency_bins.count(replies), within,
                         (100 * within / n) if n else None,
                         latency_bins.percentile(replies, 50), latency_bins.percentile(replies, 90)])
    return ReportTable(
        "weekly_sla", "一次回答までの時間とSLA（優先度別）", "Time to first response against the SLA, by priority",
        [Column("week", "週", "Week", "week"), Column("priority", "優先度", "Priority", "value:priority"),
         Column("target", "SLA目標", "SLA target", "duration"), Column("tickets", "チケット", "Tickets", "int"),
         Column("replied", "一次回答済み", "Answered", "int"), Column("within", "SLA内", "Within SLA", "int"),
         Column("within_pct", "SLA達成率", "Within SLA %", "pct"), Column("p50", "中央値", "Median", "duration"),
         Column("p90", "p90", "p90", "duration")], rows,
        note_ja="SLA目標は YORISOI_SLA_MINUTES。未回答のチケットは達成に数えません。",
        note_en="Targets from YORISOI_SLA_MINUTES. Tickets not answered yet do not count as within.")


def storms_table(store: Store, this: Week, env: Mapping[str, str]) -> ReportTable:
    start, end = day_start(this.since), day_start(this.until + timedelta(days=1))
    minimum = storm_label_min(env)
    rows = []
    for s in store.storms.list_storms(min_size=2, limit=500):
        started = s["started_at"] if s["started_at"].tzinfo else s["started_at"].replace(tzinfo=timezone.utc)
        if start <= started < end:
            rows.append([started, s["brand"], s["size"], s["topic"] or "", s["size"] >= minimum])
    rows.sort(key=lambda r: -r[2])
    return ReportTable("weekly_storms", "炎上・類似投稿のまとまり", "Storms and clusters of similar posts",
                       [Column("started_at", "開始", "Started", "datetime"), Column("brand", "ブランド", "Brand"),
                        Column("size", "件数", "Posts", "int"), Column("topic", "トピック", "Topic"),
                        Column("kind", "種類", "Kind", f"storm:{minimum}")], rows,
                       note_ja=f"類似投稿が {minimum} 件以上のものを「炎上」と呼びます（YORISOI_STORM_LABEL_MIN）。",
                       note_en=f"Called a storm from {minimum} similar posts (YORISOI_STORM_LABEL_MIN).")


def corrections_table(store: Store, this: Week) -> ReportTable:
    start, end = day_start(this.since), day_start(this.until + timedelta(days=1))
    rows = [[label, old or "", new, n] for label, old, new, n in store.reports.corrections_between(start, end)]
    return ReportTable("weekly_corrections", "担当者が修正したラベル（学習したこと）", "Labels agents corrected (what was learnt)",
                       [Column("label", "ラベル", "Label", "label"), Column("old", "修正前", "Was", "labelvalue"),
                        Column("new", "修正後", "Corrected to", "labelvalue"), Column("n", "件数", "Corrections", "int")], rows)


def daily_table(store: Store, this: Week, prev: Week) -> ReportTable:
    a = {d: 0 for d in range(7)}
    b = {d: 0 for d in range(7)}
    for week, out in ((this, a), (prev, b)):
        for day, value, n in store.reports.report_volumes(week.filter, "qualified"):
            if value == "1":
                out[(date.fromisoformat(day) - week.since).days] += n
    rows = [[f"{(this.since + timedelta(days=i)).isoformat()}（{WEEKDAYS_JA[(this.since + timedelta(days=i)).weekday()]}）",
             a[i], b[i]] for i in range(7)]
    return ReportTable("weekly_daily", "日別の対象投稿数（前週の同じ曜日と比較）", "Qualified posts per day (against the same weekday)",
                       [Column("day", "日", "Day"), Column("this_week", "今週", "This week", "int"),
                        Column("previous", "前週", "Previous week", "int")], rows, chart="lines",
                       series=["this_week", "previous"])


def build(store: Store, env: Mapping[str, str], until: date | None = None, now: datetime | None = None) -> WeeklyReport:
    try:
        sla = parse_sla_minutes(env.get("YORISOI_SLA_MINUTES"))
    except ValueError:
        sla = parse_sla_minutes(None)
    this, prev = weeks(until, now)
    tables = [summary_table(store, this, prev, sla), daily_table(store, this, prev), by_source(store, this, prev),
              by_label(store, this, prev), topics_table(store, this, prev), sla_table(store, this, prev, sla),
              storms_table(store, this, env), corrections_table(store, this)]
    return WeeklyReport(this, prev, tables, now or datetime.now(timezone.utc))


# --- cells ----------------------------------------------------------------------------------
def cell(column: Column, value: Any, lang: str, row: list[Any] | None = None) -> str:
    """The weekly report's cells: durations as 「2時間15分」, signed changes, label names."""
    from connector.reports import cell_text
    kind = column.kind
    if kind == "mixed" and row is not None:
        kind = row[4]  # the summary row says how its numbers read
        column = Column(column.key, column.ja, column.en, kind)
        if column.key == "change" and value is not None:
            if kind == "int":
                return f"{int(value):+d}"
            if kind == "pct":
                return f"{value:+.1f} pt"
            if kind == "duration":
                return ("+" if value >= 0 else "−") + format_duration(abs(value), lang)
    if value is None or value == "":
        return "—" if kind in ("duration", "pct") else ""
    if kind == "duration":
        return format_duration(value, lang)
    if kind == "signed":
        return f"{int(value):+d}"
    if kind == "label":
        return label_name(str(value), lang)
    if kind == "labelvalue" and row is not None:
        return value_name(str(row[0]), str(value), lang) if value else "—"
    if kind == "week":
        return ("今週" if value == "this" else "前週") if lang == "ja" else ("this week" if value == "this" else "previous")
    if kind.startswith("storm:"):
        return cluster_term(int(row[2]) if row else 0, lang, int(kind[6:]))
    if kind == "datetime" and isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(REPORT_TZ).strftime("%Y-%m-%d %H:%M")
    return cell_text(column, value, lang)


def visible_columns(table: ReportTable) -> list[Column]:
    return table.columns


def display_rows(table: ReportTable, lang: str) -> list[list[str]]:
    rows = []
    for row in table.rows:
        texts = [cell(c, v, lang, row) for c, v in zip(table.columns, row)]
        if table.name == "weekly_summary":
            texts[0] = row[0] if lang == "ja" else row[5]
        rows.append(texts)
    return rows


# --- exports --------------------------------------------------------------------------------
def to_text(report: WeeklyReport, lang: str = "ja") -> str:
    from connector.reports import _pad, _width
    out = [report.title(lang), ""]
    for table in report.tables:
        headers = table.headers(lang)
        rows = [[t.replace("\n", " / ")[:60] for t in r] for r in display_rows(table, lang)]
        widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]
        out.append(f"== {table.title(lang)} ==")
        if table.note(lang):
            out.append(table.note(lang))
        out.append("  ".join(_pad(h, w) for h, w in zip(headers, widths)).rstrip())
        out += ["  ".join(_pad(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if not rows:
            out.append("（なし）" if lang == "ja" else "(none)")
        out.append("")
    return "\n".join(out)


def to_html(report: WeeklyReport, lang: str = "ja") -> str:
    """A self-contained HTML page of the tables (the report mail's HTML part): no scripts, no
    external resources, every cell escaped (post texts in the topic examples are hostile input)."""
    from html import escape
    out = [f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(report.title(lang))}</title>'
           "<style>body{font-family:sans-serif;color:#222}table{border-collapse:collapse;margin:0 0 1.2em}"
           "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
           "th{background:#f2f2f2}td.num{text-align:right}.note{color:#666;font-size:90%}</style></head><body>",
           f"<h1>{escape(report.title(lang))}</h1>"]
    for table in report.tables:
        out.append(f"<h2>{escape(table.title(lang))}</h2>")
        if table.note(lang):
            out.append(f'<p class="note">{escape(table.note(lang))}</p>')
        rows = display_rows(table, lang)
        if not rows:
            out.append(f'<p class="note">{"（なし）" if lang == "ja" else "(none)"}</p>')
            continue
        nums = [c.kind in ("int", "minutes", "pct", "score", "signed", "mixed", "duration") for c in table.columns]
        out.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers(lang)) + "</tr>")
        for row in rows:
            out.append("<tr>" + "".join(f'<td{" class=num" if num else ""}>{escape(v).replace(chr(10), "<br>")}</td>'
                                        for v, num in zip(row, nums)) + "</tr>")
        out.append("</table>")
    generated = report.generated_at.astimezone(REPORT_TZ).strftime("%Y-%m-%d %H:%M JST")
    out.append(f'<p class="note">{"作成" if lang == "ja" else "Generated"}: {generated} · Yorisoi</p></body></html>')
    return "\n".join(out)


def to_json(report: WeeklyReport, lang: str = "ja") -> dict[str, Any]:
    return {"this_week": {"from": report.this.since.isoformat(), "to": report.this.until.isoformat()},
            "previous_week": {"from": report.previous.since.isoformat(), "to": report.previous.until.isoformat()},
            "timezone": "Asia/Tokyo", "title": report.title(lang),
            "tables": [{"name": t.name, "title": t.title(lang), "columns": t.headers(lang), "keys": [c.key for c in t.columns],
                        "rows": display_rows(t, lang)} for t in report.tables]}


def to_csv(report: WeeklyReport, lang: str = "ja") -> str:
    import csv

    from connector.reports import _csv_safe
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"# {report.title(lang)}"])
    writer.writerow([])
    for table in report.tables:
        writer.writerow([f"# {table.title(lang)}"])
        writer.writerow(table.headers(lang))
        for row, texts in zip(table.rows, display_rows(table, lang)):
            # Only text that came from posts can be a hostile formula; signed numbers stay numbers.
            writer.writerow([_csv_safe(t) if isinstance(raw, str) else t for raw, t in zip(row, texts)])
        writer.writerow([])
    return out.getvalue()


#: Sheet names (Excel allows 31 characters and no []:*?/\).
SHEET_NAMES = {"weekly_summary": "まとめ", "weekly_daily": "日別", "weekly_sources": "ソース別",
               "weekly_labels": "ラベル別", "weekly_topics": "苦情トピック", "weekly_sla": "応答時間とSLA",
               "weekly_storms": "炎上・まとまり", "weekly_corrections": "修正されたラベル"}
SHEET_NAMES_EN = {"weekly_summary": "Summary", "weekly_daily": "Daily", "weekly_sources": "Sources",
                  "weekly_labels": "Labels", "weekly_topics": "Topics", "weekly_sla": "Response and SLA",
                  "weekly_storms": "Storms", "weekly_corrections": "Corrections"}


def to_xlsx(report: WeeklyReport, lang: str = "ja") -> bytes:
    """An Excel workbook an SV can send as is: one sheet per table, headers in the report's
    language, bold shaded header row, frozen, columns sized to their text, long text wrapped."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from connector.reports import _width

    book = Workbook()
    book.remove(book.active)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="20435C")
    names = SHEET_NAMES if lang == "ja" else SHEET_NAMES_EN
    for table in report.tables:
        sheet = book.create_sheet(names.get(table.name, table.name[:31]))
        sheet.append([report.title(lang)])
        sheet["A1"].font = Font(bold=True, size=12)
        sheet.append([table.title(lang)])
        sheet.append(table.headers(lang))
        for col in range(1, len(table.columns) + 1):
            c = sheet.cell(row=3, column=col)
            c.font, c.fill = header_font, header_fill
            c.alignment = Alignment(vertical="center", wrap_text=True)
        for row, texts in zip(table.rows, display_rows(table, lang)):
            values: list[Any] = []
            for column, raw, text in zip(table.columns, row, texts):
                if column.kind in ("int", "signed") and isinstance(raw, (int, float)) and not isinstance(raw, bool):
                    values.append(int(raw))
                else:
                    values.append(text)
            sheet.append(values)
        sheet.freeze_panes = "A4"
        for i, column in enumerate(table.columns, start=1):
            texts = [column.header(lang)] + [r[i - 1] for r in display_rows(table, lang)]
            longest = max((_width(line) for t in texts for line in str(t).split("\n")), default=8)
            sheet.column_dimensions[get_column_letter(i)].width = min(max(longest + 2, 8), 60)
            if column.key in ("examples", "text"):
                for cell_ in sheet.iter_rows(min_row=4, min_col=i, max_col=i):
                    cell_[0].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
